"""Precision: of the examples predicted as a class, the share that are (offline twin of the Hub's ``precision``).
"""

from sklearn.metrics import precision_score

from glm_hf.averaged_scores import AVERAGING, averaged_score_metric

Precision = averaged_score_metric("precision", precision_score, __doc__ + AVERAGING, example=0.75, module=__name__)
