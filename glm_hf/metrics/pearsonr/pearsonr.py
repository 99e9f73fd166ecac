"""Pearson correlation coefficient between predicted and true values (offline twin of the Hub's ``pearsonr``).

In [-1, 1]; 1 is a perfect increasing linear relation. Undefined (NaN) when either side is constant. Computed with
numpy so that scipy is not needed.
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@article{pearson1895,
  title={Notes on regression and inheritance in the case of two parents},
  author={Pearson, Karl},
  journal={Proceedings of the Royal Society of London},
  volume={58},
  pages={240--242},
  year={1895}
}
"""

_INPUTS = """
Args:
    predictions (list of float): predicted values.
    references (list of float): true values.
Returns:
    pearsonr (float): the correlation coefficient, NaN when predictions or references are constant.
Example:
    >>> metric = evaluate.load("glm_hf/metrics/pearsonr")
    >>> metric.compute(predictions=[1.0, 2.0, 3.0], references=[2.0, 4.0, 6.5])
    {'pearsonr': 0.9979487157886733}
"""


class Pearsonr(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
            reference_urls=["https://en.wikipedia.org/wiki/Pearson_correlation_coefficient"],
        )

    def _compute(self, predictions, references):
        predictions = np.asarray(predictions, dtype=np.float64)
        references = np.asarray(references, dtype=np.float64)
        if len(references) < 2:
            raise ValueError("pearsonr: needs at least 2 examples")
        predictions, references = predictions - predictions.mean(), references - references.mean()
        denominator = np.sqrt((predictions**2).sum() * (references**2).sum())
        return {"pearsonr": float((predictions * references).sum() / denominator) if denominator > 0 else float("nan")}
