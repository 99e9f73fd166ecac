"""``glm-hf ner-compare``: the three rows on one split, the table and figure, resuming, and the folder rule."""

import json
import os

import pytest

from glm_hf import ner_comparison
from glm_hf.ner_comparison import NerComparisonSettings, comparison_table


def _argv(pretrained_dir, output_dir):
    return ["--model_name_or_path", pretrained_dir, "--output_dir", str(output_dir), "--dataset_name", "msra",
            "--max_train_samples", "48", "--max_eval_samples", "16", "--max_predict_samples", "16",
            "--max_steps", "2", "--per_device_train_batch_size", "8", "--max_seq_length", "32",
            "--crf_max_iterations", "5"]


@pytest.mark.slow
def test_three_rows_on_one_split_then_a_rerun_reads_them_back(pretrained_dir, tmp_path, capsys):
    output_dir = tmp_path / "ner"
    assert ner_comparison.main(_argv(pretrained_dir, output_dir)) == 0
    results = json.loads((output_dir / ner_comparison.RESULTS_FILE).read_text())
    assert list(results["rows"]) == ["glm_pretrained", "glm_random_init", "crf"]
    for record in results["rows"].values():
        metrics = record["metrics"]
        assert 0 <= metrics["test_f1"] <= 1 and 0 <= metrics["eval_f1"] <= 1
        assert record["seconds"] > 0
    glm = results["rows"]["glm_pretrained"]["metrics"]
    assert glm["test_samples"] == 16 and glm["train_samples"] == 48  # the same sentences as the CRF row
    assert (output_dir / "glm_random_init" / "config.json").is_file()
    assert (output_dir / ner_comparison.FIGURE_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "| GLM pretrained |" in table and "| character CRF |" in table and "PER F1" in table

    rows = [output_dir / row / ner_comparison.ROW_FILE for row in ("glm_pretrained", "glm_random_init", "crf")]
    stamps = [os.path.getmtime(path) for path in rows]
    assert ner_comparison.main(_argv(pretrained_dir, output_dir)) == 0
    assert [os.path.getmtime(path) for path in rows] == stamps  # nothing trained again


def test_a_folder_holding_someone_elses_files_is_refused_untouched(pretrained_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no glm-hf ner-compare"):
        ner_comparison.run_comparison(NerComparisonSettings(model_name_or_path=pretrained_dir,
                                                            output_dir=str(tmp_path)))
    assert os.listdir(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize("field, value, message", [
    ("dataset_name", "conll2003", "--dataset_name must be one of"),
    ("max_steps", 0, "--max_steps must be a positive integer"),
])
def test_bad_settings_name_the_flag(pretrained_dir, tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        NerComparisonSettings(model_name_or_path=pretrained_dir, output_dir=str(tmp_path), **{field: value})


def test_a_model_path_without_a_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is not a model folder"):
        NerComparisonSettings(model_name_or_path=str(tmp_path), output_dir=str(tmp_path / "out"))


def test_table_formats_every_row():
    metrics = {"test_precision": 0.5, "test_recall": 0.5, "test_f1": 0.5, "eval_f1": 0.4,
               "test_PER_f1": 0.6, "test_LOC_f1": 0.5, "test_ORG_f1": 0.3}
    results = {"rows": {row: {"metrics": metrics, "seconds": 90} for row in ("glm_pretrained", "crf")}}
    table = comparison_table(results)
    assert "| character CRF | 0.5000 | 0.5000 | 0.5000 | 0.6000 | 0.5000 | 0.3000 | 0.4000 | 1.5 |" in table


@pytest.mark.slow
def test_without_a_model_it_pretrains_in_domain_first(tmp_path):
    output_dir = tmp_path / "ner"
    argv = ["--output_dir", str(output_dir), "--dataset_name", "peoples_daily", "--pretrain_steps", "2",
            "--pretrain_model_size", "tiny", "--max_train_samples", "32", "--max_eval_samples", "8",
            "--max_predict_samples", "8", "--max_steps", "1", "--per_device_train_batch_size", "8",
            "--max_seq_length", "32", "--crf_max_iterations", "3"]
    assert ner_comparison.main(argv) == 0
    record = json.loads((output_dir / "pretraining.json").read_text())
    assert record["settings"]["steps"] == 2 and "eval_mlm_accuracy" in record["eval"]
    results = json.loads((output_dir / ner_comparison.RESULTS_FILE).read_text())
    assert results["settings"]["model_name_or_path"] == str(output_dir / "pretrain")
    assert (output_dir / "pretrain" / "model.safetensors").is_file()
