"""The character CRF baseline: its features, that it learns, and that it reports GLM's metric keys."""

import pytest
from datasets import DatasetDict

from glm_hf.ner_baseline import CRFBaselineConfig, character_kind, run_crf_baseline, sentence_features
from glm_hf.ner_data import _dataset_dict, bio_label_names


def test_sentence_features_cover_the_window_and_the_edges():
    features = sentence_features(list("北京大学"), window=2)
    assert len(features) == 4
    first = features[0]
    assert first["c[0]"] == "北" and first["c[-1]"] == "<s>" and first["c[2]"] == "大"
    assert first["c[0:1]"] == "北京" and first["c[-1:1]"] == "<s>北京"
    assert features[-1]["c[1]"] == "</s>" and features[-1]["kind"] == "cjk"
    assert [character_kind(c) for c in "7a，"] == ["digit", "latin", "punct"]


def _toy_corpus(n: int, offset: int = 0) -> list[tuple[list[str], list[str]]]:
    """Sentences with a person (王/李 + one character) and a place (one character + 市)."""
    surnames, given, places = "王李", "明华强伟", "杭苏宁广"
    sentences = []
    for i in range(offset, offset + n):
        person = [surnames[i % 2], given[i % 4]]
        place = [places[(i // 2) % 4], "市"]
        tokens = ["昨", "天", *person, "去", "了", *place, "。"]
        tags = ["O", "O", "B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]
        sentences.append((tokens, tags))
    return sentences


def test_the_crf_learns_a_toy_corpus_and_reports_glm_metric_keys():
    label_names = bio_label_names(["LOC", "ORG", "PER"])
    raw: DatasetDict = _dataset_dict(
        {"train": _toy_corpus(40), "validation": _toy_corpus(8, 40), "test": _toy_corpus(8, 48)}, label_names
    )
    result = run_crf_baseline(raw, CRFBaselineConfig(max_iterations=30))
    assert result["test_f1"] == pytest.approx(1.0)
    assert result["test_PER_f1"] == pytest.approx(1.0) and result["test_LOC_f1"] == pytest.approx(1.0)
    assert {"eval_f1", "test_precision", "test_recall", "test_accuracy"} <= set(result)
    assert set(result["validation_f1_by_regularisation"]) == {"c1=0.05,c2=0.01", "c1=0.2,c2=0.05"}
    assert (result["c1"], result["c2"]) in CRFBaselineConfig().regularisation_grid
    assert result["train_samples"] == 40 and result["seconds"] >= 0
