"""Mean squared error between predicted and true values (offline twin of the Hub's ``mse`` metric).

Lower is better. ``squared=False`` gives the root mean squared error (RMSE) instead.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import mean_squared_error

from glm_hf.averaged_scores import SKLEARN_CITATION

_INPUTS = """
Args:
    predictions (list of float): predicted values.
    references (list of float): true values.
    sample_weight (list of float, optional): per-example weights.
    squared (bool, default True): MSE; False gives RMSE.
Returns:
    mse (float): mean squared error (RMSE when squared=False).
Example:
    >>> metric = evaluate.load("glm_hf/metrics/mse")
    >>> metric.compute(predictions=[2.5, 0.0, 2.0], references=[3.0, -0.5, 2.0])
    {'mse': 0.16666666666666666}
"""


class Mse(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=SKLEARN_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.mean_squared_error.html"
            ],
        )

    def _compute(self, predictions, references, sample_weight=None, squared=True):
        if len(references) == 0:
            raise ValueError("mse: no examples to score")
        mse = float(mean_squared_error(references, predictions, sample_weight=sample_weight))
        return {"mse": mse if squared else float(np.sqrt(mse))}
