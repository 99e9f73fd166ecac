"""The local ``seqeval`` metric module (glm_hf/metrics/seqeval): entity-level scores as the seqeval package gives."""

import ast
import random
import re

import pytest

from glm_hf.evaluation import load_metric

seqeval_metrics = pytest.importorskip("seqeval.metrics")
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
# Hand-made cases, each a reading seqeval's default mode fixes: I- after O, after another type, first in a
# sentence; B- right after B- of the same type; an entity that ends the sentence; sentences scored apart.
HAND_MADE = [
    (["O", "I-PER", "I-PER", "O"], ["O", "B-PER", "I-PER", "O"]),
    (["B-PER", "I-LOC", "I-LOC"], ["B-PER", "B-LOC", "I-LOC"]),
    (["I-ORG", "O"], ["B-ORG", "O"]),
    (["B-LOC", "B-LOC", "I-LOC"], ["B-LOC", "I-LOC", "I-LOC"]),
    (["O", "O", "B-PER"], ["O", "B-PER", "I-PER"]),
    (["B-PER", "I-PER", "I-ORG", "O"], ["B-PER", "I-PER", "O", "O"]),
]


def _seqeval_package_scores(predictions, references) -> dict:
    report = seqeval_metrics.classification_report(references, predictions, output_dict=True, zero_division=0)
    expected = {
        "overall_precision": seqeval_metrics.precision_score(references, predictions, zero_division=0),
        "overall_recall": seqeval_metrics.recall_score(references, predictions, zero_division=0),
        "overall_f1": seqeval_metrics.f1_score(references, predictions, zero_division=0),
        "overall_accuracy": seqeval_metrics.accuracy_score(references, predictions),
    }
    for kind, row in report.items():
        if not kind.endswith("avg"):
            expected[kind] = {"precision": row["precision"], "recall": row["recall"], "f1": row["f1-score"],
                              "number": row["support"]}
    return expected


def _assert_same(result: dict, expected: dict):
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key


def test_hand_made_sequences_match_the_seqeval_package():
    metric = load_metric("seqeval")
    for predicted, true in HAND_MADE:
        _assert_same(metric.compute(predictions=[predicted], references=[true]),
                     _seqeval_package_scores([predicted], [true]))
    predictions, references = [p for p, _ in HAND_MADE], [t for _, t in HAND_MADE]
    _assert_same(metric.compute(predictions=predictions, references=references),
                 _seqeval_package_scores(predictions, references))


def test_random_sequences_match_the_seqeval_package():
    generator = random.Random(0)
    metric = load_metric("seqeval")
    for _ in range(30):
        lengths = [generator.randint(1, 12) for _ in range(generator.randint(1, 6))]
        # Mostly-right predictions (each tag kept with probability 0.7), so that some entities match.
        references = [[generator.choice(TAGS) for _ in range(n)] for n in lengths]
        predictions = [[t if generator.random() < 0.7 else generator.choice(TAGS) for t in s] for s in references]
        _assert_same(metric.compute(predictions=predictions, references=references),
                     _seqeval_package_scores(predictions, references))


def test_entity_needs_exact_span_and_type():
    result = load_metric("seqeval").compute(
        predictions=[["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]],
        references=[["B-PER", "I-PER", "I-PER", "B-ORG", "I-ORG"]],
    )
    assert result["overall_precision"] == 0.0 and result["overall_recall"] == 0.0
    assert result["PER"]["number"] == 1 and result["LOC"]["number"] == 0


def test_documented_example_is_true():
    metric = load_metric("seqeval")
    match = re.search(r">>> metric\.compute\((.*)\)\n\s*(\{.*\})", metric.inputs_description.replace("\\\n", ""))
    kwargs = eval(f"dict({match.group(1)})")  # noqa: S307 - our own docstring
    assert metric.compute(**kwargs) == ast.literal_eval(match.group(2))


def test_length_mismatch_names_the_sentence():
    with pytest.raises(ValueError, match="sentence 1 has 1 predicted tags but 2"):
        load_metric("seqeval").compute(predictions=[["O"], ["O"]], references=[["O"], ["O", "O"]])


@pytest.mark.parametrize("tag", ["S-PER", "E-PER", "B-", "PER"])
def test_a_tag_that_is_not_bio_is_refused(tag):
    """Read as BIO, a BIOES tag would give an entity without a start; the metric names the tag instead."""
    with pytest.raises(ValueError, match=rf"the tag '{tag}' is not a BIO name"):
        load_metric("seqeval").compute(predictions=[["B-PER", tag]], references=[["B-PER", "I-PER"]])
