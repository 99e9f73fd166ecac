"""Entity-level precision, recall and F1 of BIO tag sequences (offline twin of the Hub's ``seqeval`` metric).

An entity is a span and a type; a predicted entity counts only when both match a reference entity exactly. Spans are
read as seqeval's default mode reads them: ``B-X`` starts an entity, ``I-X`` continues an entity of type ``X``, and an
``I-X`` after ``O``, after another type or first in a sentence starts a new one. Scores are micro-averaged over all
entities (``overall_*``) and given per type (a dict per type with ``precision``, ``recall``, ``f1`` and ``number``,
the count of reference entities); a ratio of 0/0 is 0. ``overall_accuracy`` is the share of tokens whose tag is right.
Sentences are scored apart: no entity runs across two. A tag that is not a BIO name (a BIOES ``S-X`` or ``E-X``, say)
is refused: read as BIO it would give wrong spans.
"""

import datasets
import evaluate

_CITATION = """\
@misc{seqeval,
  title={{seqeval}: A Python framework for sequence labeling evaluation},
  url={https://github.com/chakki-works/seqeval},
  author={Hiroki Nakayama},
  year={2018}
}
"""

_INPUTS = """
Args:
    predictions (list of list of str): predicted tags per sentence (O, B-TYPE, I-TYPE).
    references (list of list of str): true tags, sentence for sentence and token for token.
Returns:
    overall_precision, overall_recall, overall_f1 (float): over all entities.
    overall_accuracy (float): share of tokens tagged right.
    TYPE (dict): precision, recall, f1 and number (reference entities) of each entity type.
Example:
    >>> metric = evaluate.load("glm_hf/metrics/seqeval")
    >>> metric.compute(predictions=[["B-PER", "I-PER", "O", "B-LOC"]], references=[["B-PER", "I-PER", "O", "B-ORG"]])
    {'LOC': {'precision': 0.0, 'recall': 0.0, 'f1': 0.0, 'number': 0}, 'ORG': {'precision': 0.0, 'recall': 0.0, \
'f1': 0.0, 'number': 1}, 'PER': {'precision': 1.0, 'recall': 1.0, 'f1': 1.0, 'number': 1}, 'overall_precision': \
0.5, 'overall_recall': 0.5, 'overall_f1': 0.5, 'overall_accuracy': 0.75}
"""


def get_entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """``(type, first, last)`` of each entity of one sentence, read as seqeval's default mode reads BIO tags."""
    entities, start, previous_prefix, previous_type = [], None, "O", None
    for position, tag in enumerate([*tags, "O"]):
        if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
            raise ValueError(f"seqeval: the tag {tag!r} is not a BIO name (O, B-TYPE, I-TYPE); convert BIOES/BMES "
                             "tags to BIO before scoring")
        prefix, kind = ("O", None) if tag == "O" else (tag[0], tag[2:])
        ends = previous_prefix != "O" and (prefix != "I" or kind != previous_type)
        if ends:
            entities.append((previous_type, start, position - 1))
        if prefix == "B" or (prefix == "I" and (previous_prefix == "O" or kind != previous_type)):
            start = position
        previous_prefix, previous_type = prefix, kind
    return entities


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _scores(correct: int, predicted: int, true: int) -> dict:
    precision, recall = _ratio(correct, predicted), _ratio(correct, true)
    return {"precision": precision, "recall": recall, "f1": _ratio(2 * precision * recall, precision + recall)}


class Seqeval(evaluate.Metric):
    def _info(self):
        tags = datasets.Sequence(datasets.Value("string"))
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": tags, "references": tags}),
            reference_urls=["https://github.com/chakki-works/seqeval"],
        )

    def _compute(self, predictions, references):
        if len(references) == 0:
            raise ValueError("seqeval: no sentences to score")
        true_entities, predicted_entities, right_tokens, tokens = set(), set(), 0, 0
        for index, (predicted, true) in enumerate(zip(predictions, references)):
            if len(predicted) != len(true):
                raise ValueError(f"seqeval: sentence {index} has {len(predicted)} predicted tags but {len(true)} "
                                 "reference tags")
            true_entities.update((index, *entity) for entity in get_entities(true))
            predicted_entities.update((index, *entity) for entity in get_entities(predicted))
            right_tokens += sum(p == t for p, t in zip(predicted, true))
            tokens += len(true)
        correct = true_entities & predicted_entities
        results = {}
        for kind in sorted({entity[1] for entity in true_entities | predicted_entities}):
            count = sum(entity[1] == kind for entity in true_entities)
            results[kind] = {
                **_scores(
                    sum(e[1] == kind for e in correct), sum(e[1] == kind for e in predicted_entities), count
                ),
                "number": count,
            }
        overall = _scores(len(correct), len(predicted_entities), len(true_entities))
        results.update({f"overall_{name}": value for name, value in overall.items()})
        results["overall_accuracy"] = _ratio(right_tokens, tokens)
        return results
