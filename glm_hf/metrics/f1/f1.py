"""F1: the harmonic mean of precision and recall (offline twin of the Hub's ``f1`` metric).
"""

from sklearn.metrics import f1_score

from glm_hf.averaged_scores import AVERAGING, averaged_score_metric

F1 = averaged_score_metric("f1", f1_score, __doc__ + AVERAGING, example=0.7333333333333334, module=__name__)
