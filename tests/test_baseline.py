"""The TF-IDF character n-gram baseline: learns the task, handles every problem type, picks C on validation."""

import numpy as np
import pytest

from glm_hf.baseline import BaselineConfig, run_tfidf_baseline
from glm_hf.sentiment import load_sentiment_dataset


@pytest.fixture(scope="module")
def sentiment_subsets():
    data = load_sentiment_dataset()
    take = lambda split, n: (data[split]["text"][:n], data[split]["label"][:n])  # noqa: E731
    # The split files are sorted by text; every 7th example gives a mixed sample without shuffling.
    train = data["train"].select(range(0, len(data["train"]), 7))
    return (train["text"], train["label"]), take("validation", 300), take("test", 300)


def test_learns_sentiment_and_reports_every_split(sentiment_subsets):
    train, validation, test = sentiment_subsets
    result = run_tfidf_baseline(
        train,
        {"eval": validation, "test": test},
        problem_type="single_label_classification",
        label_names=["negative", "positive"],
        config=BaselineConfig(c_grid=(1.0, 8.0)),
    )
    assert result["test_accuracy"] > 0.75  # chance is ~0.5
    assert 0 < result["test_macro_f1"] <= 1
    assert {"eval_accuracy", "test_f1_negative", "test_precision_positive", "test_recall_negative"} <= result.keys()
    assert result["C"] in (1.0, 8.0) and f"C={result['C']:g}" in result["description"]
    assert result["num_features"] > 1000


def test_c_is_chosen_on_validation_not_test():
    texts = ["好 好 好", "差 差", "好 好", "差", "好", "差 差 差"] * 5
    labels = [1, 0, 1, 0, 1, 0] * 5
    validation = (["好", "差"], [1, 0])
    test = (["好", "差"], [0, 1])  # deliberately inverted: must not influence the choice
    result = run_tfidf_baseline(
        (texts, labels),
        {"eval": validation, "test": test},
        problem_type="single_label_classification",
        label_names=["neg", "pos"],
        config=BaselineConfig(c_grid=(0.5, 32.0)),
    )
    assert result["eval_accuracy"] == 1.0 and result["test_accuracy"] == 0.0


def test_multilabel_and_regression():
    texts = ["酒店 很好", "酒店 很差", "电脑 很好", "电脑 很差"] * 10
    multi = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1]] * 10)
    result = run_tfidf_baseline(
        (texts, multi),
        {"test": (texts[:4], multi[:4])},
        problem_type="multi_label_classification",
        label_names=["hotel", "good", "bad"],
    )
    assert result["test_accuracy"] == 1.0 and "test_f1_hotel" in result

    scores = [5.0, 1.0, 4.5, 1.5] * 10
    result = run_tfidf_baseline(
        (texts, scores),
        {"eval": (texts[:4], scores[:4]), "test": (texts[:4], scores[:4])},
        problem_type="regression",
    )
    assert result["test_mse"] < 0.5 and result["test_pearsonr"] > 0.9


def test_errors_are_clear():
    with pytest.raises(ValueError, match="at least 2 classes"):
        run_tfidf_baseline((["a", "b"], [1, 1]), {}, problem_type="single_label_classification")
    with pytest.raises(ValueError, match="problem_type must be one of"):
        run_tfidf_baseline((["a", "b"], [0, 1]), {}, problem_type="ranking")
