"""The main job end to end (tiny size), its artefacts, and resuming interrupted, finished and damaged stages."""

import json
import os

import pytest

from glm_hf import main_job
from glm_hf.main_job import Stage, StageRecords, run_stage

# Smaller than --quick: a smoke test of the wiring, in well under 2 minutes.
TINY_JOB = [
    "--quick",
    "--vocab_size",
    "800",
    "--tokenizer_max_documents",
    "600",
    "--pretrain_steps",
    "4",
    "--pretrain_max_train_samples",
    "128",
    "--pretrain_max_eval_samples",
    "32",
    "--finetune_steps",
    "8",
    "--finetune_learning_rates",
    "1e-3,3e-3",
    "--finetune_seeds",
    "0,1",
    "--finetune_batch_size",
    "8",
    "--max_train_samples",
    "160",
    "--max_eval_samples",
    "80",
    "--max_predict_samples",
    "120",
    "--examples",
    "这家酒店很好。",
    "太差了。",
]


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.slow
def test_end_to_end_interrupt_resume_and_skip(tmp_path, monkeypatch, capsys, caplog):
    job_dir = tmp_path / "job"
    argv = [*TINY_JOB, "--pretrain_steps", "20", "--output_dir", str(job_dir)]  # a checkpoint every 10 steps

    # 0. Kill the pretraining after its checkpoint-10 and cut that checkpoint's weights (a save cut mid-write): the
    #    rerun skips it with a warning instead of crashing on every rerun.
    from glm_hf.pretraining import PreTrainingTrainer

    original_pretraining_step = PreTrainingTrainer.training_step

    def killed_pretraining_step(self, *args, **kwargs):
        if self.state.global_step == 15:
            raise KeyboardInterrupt
        return original_pretraining_step(self, *args, **kwargs)

    monkeypatch.setattr(PreTrainingTrainer, "training_step", killed_pretraining_step)
    assert main_job.main(argv) == 130
    weights = job_dir / "pretrain" / "checkpoint-10" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    monkeypatch.setattr(PreTrainingTrainer, "training_step", original_pretraining_step)
    capsys.readouterr()

    # 1. Interrupt (Ctrl-C) the from-scratch fine-tuning in its second cell (seed 1), after its first finished.
    from glm_hf.finetuning import ClassificationTrainer

    original_step = ClassificationTrainer.training_step

    def interrupted_step(self, *args, **kwargs):
        if "finetune_from_scratch" in self.args.output_dir and self.args.seed == 1 and self.state.global_step == 5:
            raise KeyboardInterrupt
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(ClassificationTrainer, "training_step", interrupted_step)
    with caplog.at_level("WARNING"):
        assert main_job.main(argv) == 130
    assert "Run the same command again to resume" in capsys.readouterr().err
    assert "Skipping the incomplete checkpoint" in caplog.text
    assert "checkpoint-10 (model.safetensors is truncated" in caplog.text
    records = StageRecords(str(job_dir))
    statuses = {name: records.read(name).get("status") for name in main_job.STAGES}
    assert statuses == {"tokenizer": "complete", "pretrain": "complete", "finetune": "complete",
                        "finetune_checkpoint": None, "finetune_from_scratch": "started", "baseline": None}
    scratch_dir = job_dir / "finetune_from_scratch"
    finished_cell = scratch_dir / "lr0.001-seed0" / "cell.json"
    assert finished_cell.is_file()
    stamp = os.path.getmtime(finished_cell)
    monkeypatch.setattr(ClassificationTrainer, "training_step", original_step)

    # 2. Run again: finished stages are skipped, the interrupted one keeps its finished cells and redoes the rest.
    assert main_job.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("done before") == 3 and "resuming an interrupted run" in out
    assert os.path.getmtime(finished_cell) == stamp
    assert _read(scratch_dir / "lr0.001-seed1" / "cell.json")["settings"]["seed"] == 1

    # Artefacts: metrics JSON (means over seeds, the rate each run chose), card, plots, reloaded predictions.
    summary = _read(job_dir / main_job.RESULTS_FILE)
    for system in ("glm_pretrained_finetuned", "glm_from_scratch", "tfidf_baseline"):
        assert {"accuracy", "macro_f1"} <= set(summary["results"][system])
        assert 0 <= summary["results"][system]["accuracy"] <= 1
    assert summary["test_split"]["examples"] == 120 and summary["quick_mode"] is True
    ours, scratch = summary["results"]["glm_pretrained_finetuned"], summary["results"]["glm_from_scratch"]
    assert ours["seeds"] == scratch["seeds"] == 2 and len(ours["per_seed_test_accuracy"]) == 2
    assert ours["accuracy"] == pytest.approx(sum(ours["per_seed_test_accuracy"]) / 2)
    assert set(ours["validation_accuracy_by_learning_rate"]) == {"0.001", "0.003"}
    best = max(ours["validation_accuracy_by_learning_rate"].items(), key=lambda item: item[1]["accuracy"])[0]
    assert f"{ours['learning_rate']:g}" == best
    assert summary["pretraining_gain"]["accuracy"] == pytest.approx(ours["accuracy"] - scratch["accuracy"])
    assert [example["text"] for example in summary["examples"]] == ["这家酒店很好。", "太差了。"]
    assert all(example["label"] in ("negative", "positive") for example in summary["examples"])

    finetune_dir = job_dir / "finetune"
    card = (finetune_dir / "README.md").read_text(encoding="utf-8")
    from glm_hf.cards import format_value

    for system in ("glm_pretrained_finetuned", "glm_from_scratch", "tfidf_baseline"):
        assert format_value(summary["results"][system]["accuracy"]) in card
    assert "GLM from scratch" in card and "TF-IDF baseline" in card and "Quick mode" in card
    assert "Pretraining gain" in card and "language: zh" in card and "model-index" in card
    assert "chosen on validation" in card
    for image in ("confusion_matrix.png", "loss_curve.png", "pretraining_loss_curve.png"):
        assert (finetune_dir / image).is_file() and f"]({image})" in card
    assert (job_dir / "pretrain" / "README.md").is_file()
    assert "test_accuracy" in _read(finetune_dir / "test_results.json")
    assert "Reloaded" in out and "这家酒店很好。" in out
    # Only the chosen model keeps weights: the cells keep their metrics.
    cell_weights = [name for root, _, files in os.walk(finetune_dir / "cells") for name in files
                    if name.endswith(".safetensors")]
    assert cell_weights == [] and (finetune_dir / "model.safetensors").is_file()
    # One card, the final one: no cell writes its own (study.finetune_cell), so none is copied over it.
    assert [root for root, _, files in os.walk(job_dir) if "README.md" in files and "cells" in root] == []

    # 3. Damage one finished stage by hand and run again: that stage is redone, the others are skipped untouched.
    untouched = job_dir / "pretrain" / "model.safetensors"
    stamp = os.path.getmtime(untouched)
    os.remove(finetune_dir / "model.safetensors")
    assert main_job.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("done before") == 4 and "[3/5] finetune: " in out
    assert (finetune_dir / "model.safetensors").is_file() and os.path.getmtime(untouched) == stamp


def _writer(calls, folder, files):
    def run():
        calls.append(folder)
        os.makedirs(folder, exist_ok=True)
        for name in files:
            with open(os.path.join(folder, name), "w") as f:
                f.write("x")
        return {"ok": 1.0}

    return run


def test_stage_records_skip_redo_and_resume(tmp_path, capsys):
    job_dir = str(tmp_path)
    records = StageRecords(job_dir)
    calls = []
    tokenizer_dir = os.path.join(job_dir, "tokenizer")
    writer = _writer(calls, tokenizer_dir, ["tokenizer_config.json"])
    stage = Stage("tokenizer", "test stage", {"vocab_size": 10}, writer)

    record = run_stage(stage, job_dir, records, {}, 1)
    assert record["status"] == "complete" and record["metrics"] == {"ok": 1.0} and len(calls) == 1
    run_stage(stage, job_dir, records, {}, 1)
    assert len(calls) == 1 and "skipped" in capsys.readouterr().out

    # Changed settings: the old folder is removed and the stage redone.
    open(os.path.join(tokenizer_dir, "stale.txt"), "w").close()
    changed = Stage("tokenizer", "test stage", {"vocab_size": 20}, stage.run)
    run_stage(changed, job_dir, records, {}, 1)
    assert len(calls) == 2 and "settings changed" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(tokenizer_dir, "stale.txt"))

    # Interrupted non-resumable stage (record says started): removed and redone.
    records.write("tokenizer", {**records.read("tokenizer"), "status": "started"})
    open(os.path.join(tokenizer_dir, "half.txt"), "w").close()
    run_stage(changed, job_dir, records, {}, 1)
    assert len(calls) == 3 and not os.path.exists(os.path.join(tokenizer_dir, "half.txt"))

    # Interrupted Trainer stage: the folder (and its checkpoints) is kept for Trainer to resume.
    pretrain_dir = os.path.join(job_dir, "pretrain")
    seen = []
    write = _writer(calls, pretrain_dir, ["config.json", "model.safetensors"])

    def resuming_run():
        seen.append(os.path.isdir(os.path.join(pretrain_dir, "checkpoint-5")))
        return write()

    trainer_stage = Stage("pretrain", "test", {"steps": 5}, resuming_run, upstream=["tokenizer"], resumable=True)
    known = {"tokenizer": records.read("tokenizer")}
    os.makedirs(os.path.join(pretrain_dir, "checkpoint-5"))
    records.write("pretrain", {"status": "started", "fingerprint": trainer_stage.fingerprint(known)})
    run_stage(trainer_stage, job_dir, records, known, 2)
    assert seen == [True] and "resuming" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(pretrain_dir, "checkpoint-5"))  # cleaned once complete

    # A fix to the embedded data (its digest) or an upstream change changes the fingerprint: the stage is redone.
    fixed_data = Stage("pretrain", "test", {"steps": 5}, resuming_run, upstream=["tokenizer"], resumable=True,
                       data_version="v2")
    assert fixed_data.fingerprint(known) != trainer_stage.fingerprint(known)
    assert trainer_stage.fingerprint({"tokenizer": {"fingerprint": "other"}}) != trainer_stage.fingerprint(known)

    # An unreadable record counts as never run.
    with open(os.path.join(job_dir, ".stages", "pretrain.json"), "w") as f:
        f.write("{half")
    assert records.read("pretrain") == {}


def _job_of_two_stages(job_dir: str, calls: list, tokenizer_settings: dict, tokenizer_defaults: dict) -> list[Stage]:
    """A tokenizer stage with these settings, and a stage after it (its record names the tokenizer's fingerprint)."""
    return [
        Stage("tokenizer", "t", tokenizer_settings, _writer(calls, os.path.join(job_dir, "tokenizer"),
                                                            ["tokenizer_config.json"]), defaults=tokenizer_defaults),
        Stage("baseline", "b", {"C": 1.0}, _writer(calls, os.path.join(job_dir, "baseline"), [main_job.BASELINE_FILE]),
              upstream=["tokenizer"], defaults={"C": 1.0}),
    ]


def _run_job(job_dir: str, stages: list[Stage]) -> dict[str, dict]:
    records, known = StageRecords(job_dir), {}
    for index, stage in enumerate(stages, start=1):
        known[stage.name] = run_stage(stage, job_dir, records, known, index)
    return known


def test_a_setting_added_at_its_default_does_not_redo_a_finished_job(tmp_path, capsys):
    """Stages are compared setting by setting by the rule of run folders (run_folder.differing_settings): a setting
    added since the job ran, at its default, leaves every stage done; off its default, or any changed value -- a
    changed default included -- redoes the stage and those after it."""
    job_dir, calls = str(tmp_path), []
    finished = _run_job(job_dir, _job_of_two_stages(job_dir, calls, {"vocab_size": 10}, {"vocab_size": 8000}))
    assert len(calls) == 2

    newer = {"vocab_size": 10, "new_flag": 0}, {"vocab_size": 8000, "new_flag": 0}
    known = _run_job(job_dir, _job_of_two_stages(job_dir, calls, *newer))
    assert len(calls) == 2 and capsys.readouterr().out.count("skipped") == 2
    # The tokenizer keeps its fingerprint (the next stage recorded it); its record now holds the new setting.
    assert known["tokenizer"]["fingerprint"] == finished["tokenizer"]["fingerprint"]
    assert StageRecords(job_dir).read("tokenizer")["settings"] == {"vocab_size": 10, "new_flag": 0}

    _run_job(job_dir, _job_of_two_stages(job_dir, calls, {"vocab_size": 10, "new_flag": 1}, newer[1]))
    assert len(calls) == 4 and "settings changed: new_flag" in capsys.readouterr().out
    _run_job(job_dir, _job_of_two_stages(job_dir, calls, {"vocab_size": 20, "new_flag": 1}, newer[1]))
    assert len(calls) == 6 and "settings changed: vocab_size" in capsys.readouterr().out

    # A changed default: the job ran with the old one (recorded as a value), a rerun would get the new one.
    _run_job(job_dir, _job_of_two_stages(job_dir, calls, {"vocab_size": 8000}, {"vocab_size": 8000}))
    assert len(calls) == 8
    _run_job(job_dir, _job_of_two_stages(job_dir, calls, {"vocab_size": 9000}, {"vocab_size": 9000}))
    assert len(calls) == 10 and "settings changed: vocab_size" in capsys.readouterr().out


def test_stage_records_of_earlier_versions_are_honoured(tmp_path, capsys):
    """A finished job whose records were written before stages were compared setting by setting (a fingerprint and
    the settings, nothing else) is not redone: not as it is, nor once a setting was added at its default."""
    job_dir, calls = str(tmp_path), []
    stages = _job_of_two_stages(job_dir, calls, {"vocab_size": 10}, {"vocab_size": 8000})
    records, known = StageRecords(job_dir), {}
    for stage in stages:  # the stage folders and records as the earlier code left them
        stage.run()
        fingerprint = stage.fingerprint(known)
        records.write(stage.name, {"status": "complete", "fingerprint": fingerprint, "settings": stage.settings,
                                   "seconds": 1.0, "metrics": {"ok": 1.0}, "resumed": False})
        known[stage.name] = {"fingerprint": fingerprint}
    calls.clear()

    _run_job(job_dir, stages)
    assert calls == [] and capsys.readouterr().out.count("skipped") == 2
    records.write("tokenizer", {"status": "complete", "fingerprint": known["tokenizer"]["fingerprint"]})
    _run_job(job_dir, stages)  # a record with a fingerprint alone: compared by it
    assert calls == [] and capsys.readouterr().out.count("skipped") == 2

    records.write("tokenizer", {"status": "complete", "fingerprint": known["tokenizer"]["fingerprint"],
                                "settings": {"vocab_size": 10}})
    newer = {"vocab_size": 10, "new_flag": 0}, {"vocab_size": 8000, "new_flag": 0}
    after = _run_job(job_dir, _job_of_two_stages(job_dir, calls, *newer))
    assert calls == [] and after["tokenizer"]["fingerprint"] == known["tokenizer"]["fingerprint"]
    _run_job(job_dir, _job_of_two_stages(job_dir, calls, {"vocab_size": 10, "new_flag": 1}, newer[1]))
    assert len(calls) == 2 and "settings changed: new_flag" in capsys.readouterr().out


def test_stages_know_the_defaults_of_their_settings(tmp_path):
    stages = {stage.name: stage for stage in main_job.build_stages(str(tmp_path), main_job.JobSettings())}
    assert set(stages["tokenizer"].settings) - set(stages["tokenizer"].defaults) == {"output_dir"}  # required
    for group in ("model", "data", "training"):
        assert set(stages["pretrain"].settings[group]) <= set(stages["pretrain"].defaults[group])
    assert stages["pretrain"].defaults["data"]["streaming"] is False
    assert stages["pretrain"].defaults["training"]["learning_rate"] == 5e-5
    assert set(stages["finetune"].settings) == set(stages["finetune"].defaults)


def test_settings_validation():
    parser = main_job.build_parser()
    with pytest.raises(ValueError, match="model_size must be one of"):
        main_job.settings_from_args(parser.parse_args(["--model_size", "huge"]))
    with pytest.raises(ValueError, match="finetune_steps must be a positive integer"):
        main_job.settings_from_args(parser.parse_args(["--finetune_steps", "0"]))
    quick = main_job.settings_from_args(parser.parse_args(["--quick", "--pretrain_steps", "7"]))
    assert quick.model_size == "tiny" and quick.pretrain_steps == 7
    with pytest.raises(ValueError, match="pretrain_dropout must be a probability"):
        main_job.settings_from_args(parser.parse_args(["--pretrain_dropout", "1.5"]))
    with pytest.raises(ValueError, match="objective must be one of"):
        main_job.settings_from_args(parser.parse_args(["--objective", "gpt"]))
    with pytest.raises(ValueError, match="finetune_learning_rates must be comma-separated"):
        main_job.settings_from_args(parser.parse_args(["--finetune_learning_rates", "fast"]))
    with pytest.raises(ValueError, match="finetune_pooling must be one of"):
        main_job.settings_from_args(parser.parse_args(["--finetune_pooling", "max"]))
    with pytest.raises(ValueError, match=r"position_embedding_init must be one of \['normal', 'sinusoidal'\]"):
        main_job.settings_from_args(parser.parse_args(["--position_embedding_init", "rope"]))
    with pytest.raises(ValueError, match=r"position_embedding_type must be one of \['absolute', 'rotary'\]"):
        main_job.settings_from_args(parser.parse_args(["--position_embedding_type", "relative"]))


def test_settings_reach_every_training_stage(tmp_path):
    settings = main_job.settings_from_args(main_job.build_parser().parse_args([
        "--pretrain_dropout", "0.05", "--finetune_dropout", "0.2", "--objective", "rtd",
        "--generator_num_hidden_layers", "2", "--finetune_pooling", "mean", "--reinit_pooler", "true",
        "--corpus_weights", "reviews=1,peoples_daily=0", "--position_embedding_init", "normal",
        "--position_embedding_type", "absolute",
    ]))
    stages = {stage.name: stage.settings for stage in main_job.build_stages(str(tmp_path), settings)}
    assert stages["pretrain"]["model"]["config_overrides"] == (
        "hidden_dropout_prob=0.05,attention_probs_dropout_prob=0.05,position_embedding_type=absolute,"
        "position_embedding_init=normal,generator_num_hidden_layers=2"
    )
    assert stages["pretrain"]["data"]["objective"] == "rtd"
    assert stages["pretrain"]["data"]["corpus_weights"] == "reviews=1,peoples_daily=0"
    # Both fine-tuning runs get the same protocol: only the initialisation differs between them.
    assert stages["finetune"] == stages["finetune_from_scratch"]
    assert stages["finetune"]["dropout"] == 0.2 and stages["finetune"]["pooling"] == "mean"
    assert stages["finetune"]["reinit_pooler"] is True


def test_a_run_that_never_trains_is_named_and_the_gain_is_also_given_without_it(tmp_path, capsys):
    """A from-scratch seed that ends predicting one class (macro-F1 0.34) makes the mean gain large; the summary names
    the seed, gives the gain per seed and over the seeds where both runs trained, and the report says so."""
    from glm_hf.evaluation import write_json
    from glm_hf.study import spread

    def stage(per_seed):
        cells = [{"settings": {"seed": seed}, "validation": {"accuracy": acc, "macro_f1": f1},
                  "test": {"accuracy": acc, "macro_f1": f1}} for seed, (acc, f1) in enumerate(per_seed)]
        return {"metrics": {"learning_rate": 5e-4, "grid": {}, "cells": cells, **spread(cells)}, "seconds": 1.0}

    records = {"finetune": stage([(0.83, 0.83), (0.82, 0.82)]),
               "finetune_from_scratch": stage([(0.81, 0.81), (0.51, 0.34)])}
    write_json({"test_accuracy": 0.86, "test_macro_f1": 0.86}, str(tmp_path / "baseline" / main_job.BASELINE_FILE))
    write_json({"eval_mlm_accuracy": 0.1}, str(tmp_path / "pretrain" / "all_results.json"))
    write_json({"test_samples": 100}, str(tmp_path / "finetune" / "all_results.json"))
    settings = main_job.JobSettings(finetune_seeds="0,1")
    summary = main_job.summarize(str(tmp_path), settings, records, total_seconds=1.0, quick=False)
    assert summary["results"]["glm_from_scratch"]["untrained_seeds"] == [1]
    assert summary["results"]["glm_pretrained_finetuned"]["untrained_seeds"] == []
    assert summary["pretraining_gain"]["accuracy"] == pytest.approx(0.165)
    assert summary["pretraining_gain_per_seed"]["accuracy"] == pytest.approx([0.02, 0.31])
    assert summary["pretraining_gain_where_both_trained"] == {"accuracy": pytest.approx(0.02), "seeds": 1}
    summary["examples"], summary["model_card"] = [], "finetune/README.md"
    main_job.print_report(summary, str(tmp_path))
    out = capsys.readouterr().out
    assert "GLM from scratch (same budget), seed 1, did not train" in out
    assert "where both runs trained: accuracy +2.0 points" in out
    assert main_job._gain_detail(summary) == (
        "; per seed: +2.0, +31.0 accuracy points; over the seeds where both runs trained: +2.0 points")


def test_a_gain_below_the_target_says_where_the_budget_that_pays_it_is_measured():
    summary = {"pretraining_gain": {"accuracy": 0.05}, "pretraining_gain_where_both_trained": {"accuracy": 0.015}}
    below = main_job._below_target(summary)  # the gain where both runs trained counts, not the mean with a failure
    assert "does not pay 2 points (+1.5)" in below and "--pretrain_steps" in below
    summary["pretraining_gain_where_both_trained"]["accuracy"] = 0.025
    assert main_job._below_target(summary) is None
    summary["pretraining_gain_where_both_trained"]["accuracy"] = None  # no seed where both trained: the mean gain
    assert main_job._below_target(summary) is None
    summary["pretraining_gain"]["accuracy"] = -0.01
    assert "(-1.0)" in main_job._below_target(summary)


def test_init_from_must_be_a_glm_folder_with_its_tokenizer(tmp_path, pretrained_dir):
    parser = main_job.build_parser()
    with pytest.raises(ValueError, match="not a model folder"):
        main_job.settings_from_args(parser.parse_args(["--init_from", str(tmp_path)]))
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="a 'bert' checkpoint, not a GLM one .* glm-hf convert-bert"):
        main_job.settings_from_args(parser.parse_args(["--init_from", str(bert)]))
    with pytest.raises(ValueError, match="pretrain_steps must be a positive integer"):
        main_job.settings_from_args(parser.parse_args(["--pretrain_steps", "0"]))
    settings = main_job.settings_from_args(parser.parse_args(["--init_from", pretrained_dir, "--pretrain_steps", "0"]))
    names = [stage.name for stage in main_job.build_stages(str(tmp_path / "job"), settings)]
    assert names == ["tokenizer", "finetune", "finetune_from_scratch", "baseline"]  # no continued pretraining
    settings = main_job.settings_from_args(parser.parse_args(["--init_from", pretrained_dir]))
    stages = {stage.name: stage for stage in main_job.build_stages(str(tmp_path / "job"), settings)}
    assert list(stages) == ["tokenizer", "pretrain", "finetune", "finetune_checkpoint", "finetune_from_scratch",
                            "baseline"]
    model = stages["pretrain"].settings["model"]
    assert model["model_name_or_path"] == pretrained_dir and "position_embedding_type" not in model["config_overrides"]


@pytest.mark.slow
def test_the_job_started_from_a_checkpoint_reports_the_checkpoint_row(tmp_path, pretrained_dir, capsys):
    job = tmp_path / "job"
    tiny = [arg for arg in TINY_JOB if arg not in ("--tokenizer_max_documents", "600", "--vocab_size", "800")]
    assert main_job.main([*tiny, "--init_from", pretrained_dir, "--finetune_seeds", "0", "--output_dir", str(job)]) == 0
    summary = _read(job / main_job.RESULTS_FILE)
    assert set(summary["results"]) == {"glm_pretrained_finetuned", "glm_from_scratch", "tfidf_baseline",
                                       "checkpoint_finetuned"}
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(job / "tokenizer").get_vocab() == AutoTokenizer.from_pretrained(
        pretrained_dir).get_vocab()
    card = (job / "finetune" / "README.md").read_text(encoding="utf-8")
    assert "| the starting checkpoint, fine-tuned |" in card and "starting checkpoint (--init_from)" in card
    assert "starting checkpoint fine-tuned" in capsys.readouterr().out
