"""Recall: of the examples of a class, the share predicted as it (offline twin of the Hub's ``recall`` metric).

``average`` picks how classes are combined: ``"binary"`` (the class ``pos_label`` only), ``"macro"`` (unweighted mean
over classes), ``"micro"``, ``"weighted"``, or ``None`` for one score per class (returned as a list, in the order of
``labels`` or of the sorted class ids). With the ``multilabel`` config, predictions and references are 0/1 vectors.
"""

import datasets
import evaluate
from sklearn.metrics import recall_score

_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""

_INPUTS = """
Args:
    predictions (list of int, or list of list of int with config "multilabel"): predicted labels.
    references (same shape as predictions): true labels.
    labels (list of int, optional): the classes to score, and their order when average=None.
    pos_label (int, default 1): the positive class when average="binary".
    average (str or None, default "binary"): "binary", "macro", "micro", "weighted", "samples" or None (per class).
    sample_weight (list of float, optional): per-example weights.
    zero_division (0, 1 or "warn", default 0): the value when the ratio is 0/0 (e.g. a class never predicted).
Returns:
    recall (float, or list of float when average=None).
Example:
    >>> metric = evaluate.load("glm_hf/metrics/recall")
    >>> metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0], average="macro")
    {'recall': 0.8333333333333333}
"""

AVERAGES = ("binary", "macro", "micro", "weighted", "samples", None)


class Recall(evaluate.Metric):
    def _info(self):
        label = (
            datasets.Sequence(datasets.Value("int32")) if self.config_name == "multilabel" else datasets.Value("int32")
        )
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": label, "references": label}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.recall_score.html"],
        )

    def _compute(
        self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None, zero_division=0
    ):
        if average not in AVERAGES:
            raise ValueError(f"recall: average must be one of {list(AVERAGES)}, got {average!r}")
        if len(references) == 0:
            raise ValueError("recall: no examples to score")
        score = recall_score(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        return {"recall": [float(s) for s in score] if average is None else float(score)}
