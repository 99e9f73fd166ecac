"""Recall: of the examples of a class, the share predicted as it (offline twin of the Hub's ``recall`` metric).
"""

from sklearn.metrics import recall_score

from glm_hf.averaged_scores import AVERAGING, averaged_score_metric

Recall = averaged_score_metric("recall", recall_score, __doc__ + AVERAGING, example=0.8333333333333333, module=__name__)
