"""What the ``precision``, ``recall`` and ``f1`` metric modules (``glm_hf/metrics/``) share: one scikit-learn score
averaged over classes, as an ``evaluate.Metric``. Each module is then three lines: its docstring, its sklearn
function and the class this factory makes (``evaluate.load`` takes the first ``Metric`` class of a module, and this
module exports none, only the factory)."""

import datasets
import evaluate

# Also cited by the accuracy and mse modules (every metric module computed with scikit-learn).
SKLEARN_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""

AVERAGES = ("binary", "macro", "micro", "weighted", "samples", None)

AVERAGING = """
``average`` picks how classes are combined: ``"binary"`` (the class ``pos_label`` only), ``"macro"`` (unweighted mean
over classes), ``"micro"``, ``"weighted"``, or ``None`` for one score per class (returned as a list, in the order of
``labels`` or of the sorted class ids). With the ``multilabel`` config, predictions and references are 0/1 vectors.
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
    {name} (float, or list of float when average=None).
Example:
    >>> metric = evaluate.load("glm_hf/metrics/{name}")
    >>> metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0], average="macro")
    {{'{name}': {example}}}
"""


def averaged_score_metric(name: str, score_function, description: str, example: float, module: str) -> type:
    """An ``evaluate.Metric`` class called ``name`` (its result key) that computes ``score_function`` (an sklearn
    ``*_score`` with ``labels``/``pos_label``/``average``/``sample_weight``/``zero_division``); ``module`` is the
    metric module's ``__name__``, so that the class belongs to it."""

    class AveragedScore(evaluate.Metric):
        def _info(self):
            label = datasets.Value("int32")
            if self.config_name == "multilabel":
                label = datasets.Sequence(label)
            return evaluate.MetricInfo(
                description=description,
                citation=SKLEARN_CITATION,
                inputs_description=_INPUTS.format(name=name, example=example),
                features=datasets.Features({"predictions": label, "references": label}),
                reference_urls=[
                    f"https://scikit-learn.org/stable/modules/generated/sklearn.metrics.{score_function.__name__}.html"
                ],
            )

        def _compute(
            self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None,
            zero_division=0,
        ):
            if average not in AVERAGES:
                raise ValueError(f"{name}: average must be one of {list(AVERAGES)}, got {average!r}")
            if len(references) == 0:
                raise ValueError(f"{name}: no examples to score")
            score = score_function(
                references, predictions, labels=labels, pos_label=pos_label, average=average,
                sample_weight=sample_weight, zero_division=zero_division,
            )
            return {name: [float(s) for s in score] if average is None else float(score)}

    AveragedScore.__name__ = AveragedScore.__qualname__ = name.capitalize() if name != "f1" else "F1"
    AveragedScore.__module__ = module
    return AveragedScore
