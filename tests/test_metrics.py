"""The local evaluate metric modules and glm_hf.evaluation: values, documented examples, errors, plots."""

import ast
import os
import re

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from glm_hf.evaluation import (
    METRICS_DIR,
    build_compute_metrics,
    classification_metrics,
    decode_logits,
    load_metric,
    multilabel_metrics,
    regression_metrics,
    save_confusion_matrix,
    write_json,
)

ISSUE_METRICS = ("accuracy", "precision", "recall", "f1", "mse", "pearsonr")
PREDICTIONS = [0, 2, 1, 2, 2, 0, 1, 1]
REFERENCES = [0, 1, 1, 2, 0, 0, 1, 2]


def test_modules_load_offline_by_path():
    for name in ISSUE_METRICS:
        assert os.path.isfile(os.path.join(METRICS_DIR, name, f"{name}.py")), name
        metric = load_metric(name)
        assert metric.name == name


@pytest.mark.parametrize("name", ISSUE_METRICS)
def test_documented_example_is_true(name):
    """Each module's documented example (>>> metric.compute(...) then the dict, in the inputs description that
    ``evaluate`` shows) is what compute returns."""
    source = load_metric(name).inputs_description
    match = re.search(r">>> metric\.compute\((.*)\)\n\s*(\{.*\})", source)
    assert match, f"{name}.py has no example"
    kwargs = eval(f"dict({match.group(1)})")  # noqa: S307 - our own docstring
    expected = ast.literal_eval(match.group(2))
    result = load_metric(name).compute(**kwargs)
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        assert result[key] == pytest.approx(value)


@pytest.mark.parametrize(
    "name, sklearn_fn", [("precision", precision_score), ("recall", recall_score), ("f1", f1_score)]
)
def test_macro_and_per_class_match_sklearn(name, sklearn_fn):
    metric = load_metric(name)
    macro = metric.compute(predictions=PREDICTIONS, references=REFERENCES, average="macro")[name]
    per_class = metric.compute(predictions=PREDICTIONS, references=REFERENCES, average=None)[name]
    assert macro == pytest.approx(sklearn_fn(REFERENCES, PREDICTIONS, average="macro", zero_division=0))
    assert per_class == pytest.approx(list(sklearn_fn(REFERENCES, PREDICTIONS, average=None, zero_division=0)))
    assert len(per_class) == 3


def test_bad_average_names_the_choices():
    with pytest.raises(ValueError, match=r"average must be one of .*'macro'"):
        load_metric("f1").compute(predictions=[0, 1], references=[0, 1], average="average")


def test_classification_metrics_keys_and_values():
    metrics = classification_metrics(PREDICTIONS, REFERENCES, ["neg", "neu", "pos"])
    assert metrics["accuracy"] == pytest.approx(5 / 8)
    assert metrics["macro_f1"] == pytest.approx(f1_score(REFERENCES, PREDICTIONS, average="macro"))
    for label, value in zip(["neg", "neu", "pos"], f1_score(REFERENCES, PREDICTIONS, average=None)):
        assert metrics[f"f1_{label}"] == pytest.approx(value)
    assert {"macro_precision", "macro_recall", "precision_pos", "recall_neu"} <= metrics.keys()


def test_per_class_keeps_classes_missing_from_the_predictions():
    metrics = classification_metrics([0, 0, 0], [0, 1, 0], ["a", "b", "c"])
    assert metrics["f1_b"] == 0.0 and metrics["f1_c"] == 0.0
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0 + 0) / 3)


def test_multilabel_and_regression_metrics():
    predictions = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    references = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0]])
    metrics = multilabel_metrics(predictions, references, ["x", "y", "z"])
    assert metrics["accuracy"] == pytest.approx(1 / 3)  # subset accuracy
    assert metrics["micro_f1"] == pytest.approx(f1_score(references, predictions, average="micro"))
    assert metrics["f1_z"] == pytest.approx(f1_score(references[:, 2], predictions[:, 2]))

    regression = regression_metrics([1.0, 2.0, 3.5], [1.5, 2.0, 3.0])
    assert regression["mse"] == pytest.approx((0.25 + 0 + 0.25) / 3)
    assert regression["pearsonr"] == pytest.approx(np.corrcoef([1.0, 2.0, 3.5], [1.5, 2.0, 3.0])[0, 1])
    assert np.isnan(regression_metrics([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["pearsonr"])


def test_decode_logits_and_trainer_compute_metrics():
    from transformers import EvalPrediction

    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    predictions, scores = decode_logits(logits, "single_label_classification")
    assert predictions.tolist() == [0, 1, 0]
    assert np.allclose(scores.sum(axis=1), 1.0)
    multi, probabilities = decode_logits(np.array([[2.0, -2.0]]), "multi_label_classification")
    assert multi.tolist() == [[1, 0]] and probabilities[0, 0] > 0.5
    values, _ = decode_logits(np.array([[0.5], [1.5]]), "regression")
    assert values.tolist() == [0.5, 1.5]
    with pytest.raises(ValueError, match="problem_type must be one of"):
        decode_logits(logits, "ranking")

    compute = build_compute_metrics("single_label_classification", ["neg", "pos"])
    metrics = compute(EvalPrediction(predictions=logits, label_ids=np.array([0, 0, 0])))
    assert metrics["accuracy"] == pytest.approx(2 / 3)


def test_confusion_matrix_png_written_atomically(tmp_path):
    path = save_confusion_matrix(REFERENCES, PREDICTIONS, ["neg", "neu", "pos"], str(tmp_path / "cm.png"), title="t")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # Non-ASCII labels draw (with a CJK font, or as "label <id>" without one) instead of failing.
    save_confusion_matrix([0, 1], [0, 0], ["好评", "差评"], str(tmp_path / "cm_zh.png"))
    write_json({"a": 1.5, "标签": "好"}, str(tmp_path / "r.json"))
    assert sorted(os.listdir(tmp_path)) == ["cm.png", "cm_zh.png", "r.json"]  # no temporary files left
