"""Accuracy: the share of predictions equal to their reference (offline twin of the Hub's ``accuracy`` metric).

Single-label: ``predictions`` and ``references`` are class ids. With the ``multilabel`` config they are 0/1 vectors
and accuracy is subset accuracy (every label of an example right).
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

from glm_hf.averaged_scores import SKLEARN_CITATION

_INPUTS = """
Args:
    predictions (list of int, or list of list of int with config "multilabel"): predicted labels.
    references (same shape as predictions): true labels.
    normalize (bool, default True): the share of correct examples; False gives their number.
    sample_weight (list of float, optional): per-example weights.
Returns:
    accuracy (float): in [0, 1] (a count when normalize=False).
Example:
    >>> metric = evaluate.load("glm_hf/metrics/accuracy")
    >>> metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0])
    {'accuracy': 0.75}
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        label = (
            datasets.Sequence(datasets.Value("int32")) if self.config_name == "multilabel" else datasets.Value("int32")
        )
        return evaluate.MetricInfo(
            description=__doc__,
            citation=SKLEARN_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": label, "references": label}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        if len(references) == 0:
            raise ValueError("accuracy: no examples to score")
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score)}
