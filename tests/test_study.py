"""The compute study: settings checks, folder ownership, aggregation over seeds, table and figure; the quick grid
end to end (tiny models, a few steps) with a rerun that skips every finished cell."""

import json
import os

import pytest

from glm_hf import study
from glm_hf.study import StudySettings, claim_folder, spread, study_table


def _cell(validation, test):
    return {
        "validation": {"accuracy": validation, "macro_f1": validation},
        "test": {"accuracy": test, "macro_f1": test},
    }


def test_spread_over_seeds():
    summary = spread([_cell(0.8, 0.81), _cell(0.82, 0.83), _cell(0.84, 0.85)])
    assert summary["test_accuracy"]["mean"] == pytest.approx(0.83)
    assert summary["test_accuracy"]["std"] == pytest.approx(0.02)
    assert (summary["test_accuracy"]["min"], summary["test_accuracy"]["max"], summary["test_accuracy"]["n"]) == (
        0.81, 0.85, 3)
    assert spread([_cell(0.8, 0.8)])["test_accuracy"]["std"] == 0.0


def test_settings_name_the_bad_flag():
    with pytest.raises(ValueError, match="objectives must be a comma-separated subset"):
        StudySettings(objectives="mlm,gpt")
    with pytest.raises(ValueError, match="budgets must be comma-separated positive integers"):
        StudySettings(budgets="100,0")
    with pytest.raises(ValueError, match=r"position_embedding_type must be one of \['absolute', 'rotary'\]"):
        StudySettings(position_embedding_type="alibi")
    with pytest.raises(ValueError, match="generator_sampling_temperature must be > 0, got -1"):
        StudySettings(generator_sampling_temperature=-1)
    settings = StudySettings(objectives="rtd, mlm", budgets="300,100,300")
    assert settings.objective_list == ["rtd", "mlm"] and settings.budget_list == [100, 300]


def test_a_folder_holding_someone_elses_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no glm-hf study"):
        claim_folder(str(tmp_path), study.STUDY_MARKER, "glm-hf study")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    fresh = tmp_path / "fresh"
    claim_folder(str(fresh), study.STUDY_MARKER, "glm-hf study")
    claim_folder(str(fresh), study.STUDY_MARKER, "glm-hf study")  # ours: accepted again
    assert (fresh / study.STUDY_MARKER).is_file()


def _results():
    row = lambda objective, steps, flos, accuracies: {  # noqa: E731
        "objective": objective, "steps": steps, "flos": flos, "minutes": steps / 100, "learning_rate": 5e-4,
        "pretraining": {"eval_mlm_accuracy": 0.2, "eval_bigram_cloze_accuracy": 0.15},
        **spread([_cell(a, a) for a in accuracies]),
    }
    rtd, sop = row("rtd", 100, 1.2e12, (0.83, 0.83, 0.84)), row("mlm_sop", 100, 1e12, (0.8, 0.8, 0.8))
    rtd["pretraining"] = {"eval_rtd_accuracy": 0.9}
    sop["pretraining"]["eval_sop_accuracy"] = 0.7
    random_init = [_cell(0.80, 0.80), _cell(0.81, 0.81), _cell(0.82, 0.82)]
    return {
        "random_init": {"learning_rate": 1e-3, "cells": random_init, **spread(random_init)},
        "tfidf": {"test_accuracy": 0.865},
        "rows": [row("mlm", 100, 1e12, (0.80, 0.82, 0.81)), row("mlm", 300, 3e12, (0.84, 0.85, 0.83)), rtd, sop],
    }


def test_table_and_figure(tmp_path):
    table = study_table(_results())
    assert "| random init | 0 | 0 | 0 | - | - | - | 0.001 | 0.8100 ± 0.0100 (3) | - | 0.8000, 0.8100, 0.8200 |" in table
    assert "| mlm | 300 | 3.00e+12 | 3.0 | 0.200 | - | 0.150 | 0.0005 | 0.8400 ± 0.0100 (3) | +3.0 | - |" in table
    assert "| rtd | 100 | 1.20e+12 | 1.0 | 0.900 | - | - | 0.0005 | 0.8333 ± 0.0058 (3) | +2.3 | - |" in table
    assert "| mlm_sop | 100 | 1.00e+12 | 1.0 | 0.200 | 0.700 | 0.150 |" in table
    assert table.splitlines()[-1].endswith("| 0.8650 | - | - |")
    untrained = _results()
    untrained["random_init"]["cells"][1] = _cell(0.51, 0.51) | {"test": {"accuracy": 0.51, "macro_f1": 0.34}}
    assert "0.8000, 0.5100 (did not train), 0.8200 |" in study_table(untrained)
    path = study.plot_study(_results(), str(tmp_path / "study.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["study.png"]  # no temporary file left behind


def test_compared_studies_label_rows_by_the_length_of_their_pretraining_run(tmp_path):
    shorter, longer = _results(), _results()
    for results in (shorter, longer):
        results["protocol"] = {"steps": 440, "seeds": [0, 1, 2], "learning_rates": [5e-4]}
    longer["protocol"]["learning_rates"] = [1e-4, 5e-4]  # a wider rate grid is the same protocol
    longer["rows"] = [{**row, "steps": 2 * row["steps"]} for row in longer["rows"] if row["objective"] == "mlm"]
    (tmp_path / "shorter").mkdir()
    (tmp_path / "shorter" / "study.json").write_text(json.dumps(shorter))
    compared = study.compare_studies(longer, study.read_compared_studies(str(tmp_path / "shorter")))
    labels = [(row["objective"], row["steps"]) for row in compared["rows"]]
    assert labels == [("mlm, 600-step run", 200), ("mlm, 600-step run", 600), ("mlm, 300-step run", 100),
                      ("mlm, 300-step run", 300), ("rtd, 100-step run", 100), ("mlm_sop, 100-step run", 100)]
    assert compared["random_init"] is longer["random_init"]  # this study's own
    assert "| mlm, 300-step run | 300 |" in study_table(compared)
    with open(study.plot_study(compared, str(tmp_path / "compared.png")), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    longer["protocol"]["seeds"] = (0, 1, 2)  # a study in memory holds tuples, its study.json lists
    assert len(study.compare_studies(longer, {"other": shorter})["rows"]) == 6
    shorter["protocol"]["seeds"] = [0]
    with pytest.raises(ValueError, match=r"--compare_with other: .* differs from this study's \(seeds \[0\] "
                                         r"\(this study: \[0, 1, 2\]\)\)"):
        study.compare_studies(longer, {"other": shorter})
    with pytest.raises(ValueError, match="--compare_with .*missing: no study results there"):
        study.read_compared_studies(str(tmp_path / "missing"))


@pytest.mark.slow
def test_quick_study_end_to_end_then_every_cell_is_skipped(tmp_path, capsys):
    output_dir = tmp_path / "study"
    argv = ["--output_dir", str(output_dir), "--quick", "--objectives", "mlm_sop,rtd", "--seeds", "0,1",
            "--learning_rates", "3e-3"]  # the choice of a rate on validation is tested with the main job
    assert study.main(argv) == 0
    results = json.loads((output_dir / study.RESULTS_FILE).read_text())
    assert [(row["objective"], row["steps"]) for row in results["rows"]] == [
        ("mlm_sop", 4), ("mlm_sop", 8), ("rtd", 4), ("rtd", 8)]
    for row in [*results["rows"], results["random_init"]]:
        assert row["test_accuracy"]["n"] == 2 and len(row["cells"]) == 2
        assert {cell["settings"]["learning_rate"] for cell in row["cells"]} == {row["learning_rate"]}
        assert set(row["grid"]) == {"0.003"}
    flos = {row["objective"]: [] for row in results["rows"]}
    for row in results["rows"]:
        flos[row["objective"]].append(row["flos"])
    assert all(0 < first < second for first, second in flos.values())  # more steps, more FLOPs
    assert "eval_sop_accuracy" in results["rows"][1]["pretraining"]
    assert "eval_rtd_accuracy" in results["rows"][3]["pretraining"]
    assert "eval_bigram_cloze_accuracy" in results["rows"][3]["pretraining"]
    assert 0.5 < results["tfidf"]["test_accuracy"] <= 1
    assert (output_dir / study.FIGURE_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "| random init |" in table and "| rtd | 8 |" in table
    cells = [os.path.join(root, name) for root, _, files in os.walk(output_dir / "finetune") for name in files
             if name == study.CELL_FILE]
    assert len(cells) == 5 * 2  # 4 checkpoints + random init, each with 2 seeds
    stamps = {path: os.path.getmtime(path) for path in cells}

    # A rerun finds every cell and pretraining run finished: nothing is trained again.
    assert study.main(argv) == 0
    assert {path: os.path.getmtime(path) for path in cells} == stamps

    # Other pretraining settings: that objective's run is started over and the cells made from its checkpoints are
    # fine-tuned again, not passed off as results of the new settings.
    rtd_run = output_dir / "pretrain" / "rtd"
    before = (rtd_run / "budgets.json").stat().st_mtime
    rtd_cell = str(output_dir / "finetune" / "rtd-4" / "lr0.003-seed0" / study.CELL_FILE)
    sop_cell = str(output_dir / "finetune" / "mlm_sop-4" / "lr0.003-seed0" / study.CELL_FILE)
    assert study.main([*argv[:3], "--objectives", "rtd", "--seeds", "0", "--learning_rates", "3e-3",
                       "--mlm_probability", "0.2"]) == 0
    assert json.loads((rtd_run / "run_settings.json").read_text())["mlm_probability"] == 0.2
    assert (rtd_run / "budgets.json").stat().st_mtime > before
    assert os.path.getmtime(rtd_cell) > stamps[rtd_cell]
    assert os.path.getmtime(sop_cell) == stamps[sop_cell]


def test_an_interrupted_pretraining_run_without_a_run_record_starts_over(tmp_path, monkeypatch):
    """A run interrupted before run records existed (no _glm_run.json) would be refused by the recipe as another
    run's checkpoints: the study starts it over; one with a record is left to resume."""
    from glm_hf import pretraining

    seen = []

    def interrupted_pretrain(model_args, data_args, training_args, **kwargs):
        seen.append(sorted(os.listdir(training_args.output_dir)))
        raise KeyboardInterrupt

    monkeypatch.setattr(pretraining, "pretrain", interrupted_pretrain)
    settings = StudySettings(output_dir=str(tmp_path), objectives="mlm", budgets="4,8")
    run_dir = tmp_path / "pretrain" / "mlm"
    for record in (False, True):
        with pytest.raises(KeyboardInterrupt):  # the first call writes the study's run_settings.json
            study.pretraining_run(str(run_dir), "mlm", settings, str(tmp_path / "tokenizer"))
        (run_dir / "checkpoint-4").mkdir(exist_ok=True)
        if record:
            (run_dir / "_glm_run.json").write_text("{}")
        with pytest.raises(KeyboardInterrupt):
            study.pretraining_run(str(run_dir), "mlm", settings, str(tmp_path / "tokenizer"))
    assert seen[1] == ["run_settings.json"]  # no record: started over
    assert "checkpoint-4" in seen[3] and "_glm_run.json" in seen[3]  # a record: kept, for the recipe to resume


def test_a_finished_cell_is_reused_when_only_the_grid_grows(tmp_path, monkeypatch):
    """Widening the learning-rate grid or adding seeds does not change what one cell trained; other steps do."""
    from glm_hf import finetuning

    calls = []

    def fake_finetune(model_args, data_args, training_args, *, write_model_card=True):
        assert write_model_card is False
        calls.append(training_args.learning_rate)
        return {"eval_accuracy": 0.8, "eval_macro_f1": 0.8, "test_accuracy": 0.7, "test_macro_f1": 0.7}

    monkeypatch.setattr(finetuning, "finetune", fake_finetune)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text("{}")
    kwargs = dict(init_dir=None, config_dir=str(tmp_path / "config"), tokenizer_dir=str(tmp_path / "tokenizer"))
    cell_dir = str(tmp_path / "cell")
    first = study.finetune_cell(cell_dir, study.FinetuneProtocol(), 5e-4, 0, **kwargs)
    wider = study.FinetuneProtocol(learning_rates=(1e-4, 5e-4), seeds=(0, 1, 2))
    assert study.finetune_cell(cell_dir, wider, 5e-4, 0, **kwargs) == first
    assert calls == [5e-4]
    study.finetune_cell(cell_dir, study.FinetuneProtocol(steps=100), 5e-4, 0, **kwargs)
    assert calls == [5e-4, 5e-4]
    # A record written while cells still carried the grid is read back too.
    record = json.loads((tmp_path / "cell" / study.CELL_FILE).read_text())
    record["settings"]["protocol"] |= {"learning_rates": [5e-4], "seeds": [0]}
    (tmp_path / "cell" / study.CELL_FILE).write_text(json.dumps(record))
    study.finetune_cell(cell_dir, study.FinetuneProtocol(steps=100), 5e-4, 0, **kwargs)
    assert calls == [5e-4, 5e-4]


def test_a_cell_writes_no_model_card(tmp_path, pretrained_dir):
    """A cell is one of many runs: the study's results and the main job's final card are the cards, written once."""
    protocol = study.FinetuneProtocol(steps=2, batch_size=4, max_seq_length=32, max_train_samples=8,
                                      max_eval_samples=8, max_predict_samples=8)
    cell_dir = tmp_path / "cell"
    record = study.finetune_cell(str(cell_dir), protocol, 1e-3, 0, init_dir=pretrained_dir, config_dir=pretrained_dir,
                                 tokenizer_dir=pretrained_dir, keep_model=True)
    assert 0 <= record["test"]["accuracy"] <= 1
    written = os.listdir(cell_dir)
    assert study.CELL_FILE in written and "config.json" in written and "model.safetensors" in written
    assert "README.md" not in written


def test_a_fine_tuning_variant_keeps_its_cells_and_results_beside_the_defaults(tmp_path):
    assert study.protocol_variant(StudySettings()) == ""
    assert study.results_paths(StudySettings(output_dir="s")) == (os.path.join("s", "study.json"),
                                                                  os.path.join("s", "study.png"))
    variant = StudySettings(output_dir="s", finetune_pooling="mean", finetune_steps=880)
    assert study.protocol_variant(variant) == "-mean-steps880"
    assert study.results_paths(variant) == (os.path.join("s", "study-mean-steps880.json"),
                                            os.path.join("s", "study-mean-steps880.png"))


def test_a_run_recorded_before_a_setting_existed_is_reused_at_its_default_only(tmp_path):
    run_dir = tmp_path / "pretrain" / "rtd"
    run_dir.mkdir(parents=True)
    recorded = {"objective": "rtd", "budgets": [900], "mlm_probability": 0.3}  # no generator_sampling_temperature
    (run_dir / "run_settings.json").write_text(json.dumps(recorded))
    (run_dir / "budgets.json").write_text(json.dumps({"900": {"flos": 900}}))

    at_default = {**recorded, "generator_sampling_temperature": 1.0}
    assert study.finished_pretraining_run(str(run_dir), at_default) == {900: {"flos": 900}}
    assert study.finished_pretraining_run(str(run_dir), {**at_default, "generator_sampling_temperature": 2.0}) is None
    assert not run_dir.exists()  # another run: the study's own folder is started over


def test_a_grid_of_fewer_budgets_with_the_same_last_one_reuses_the_finished_run(tmp_path):
    run_dir = tmp_path / "pretrain" / "mlm"
    run_dir.mkdir(parents=True)
    settings = {"objective": "mlm", "budgets": [300, 600, 900], "mlm_probability": 0.3}
    (run_dir / "run_settings.json").write_text(json.dumps(settings))
    (run_dir / "budgets.json").write_text(json.dumps({str(step): {"flos": step} for step in (300, 600, 900)}))

    assert study.finished_pretraining_run(str(run_dir), {**settings, "budgets": [900]}) == {900: {"flos": 900}}
    assert study.finished_pretraining_run(str(run_dir), {**settings, "budgets": [300, 900]}) == {
        300: {"flos": 300}, 900: {"flos": 900}}
    assert run_dir.is_dir()
    # The learning rate decays over the last budget: a run ending at 600 steps is another run.
    assert study.finished_pretraining_run(str(run_dir), {**settings, "budgets": [300, 600]}) is None
    assert not run_dir.exists()
