"""Next sentence prediction metrics: accuracy, and the share of pairs predicted "random".

``predictions`` / ``references``: 0 when segment B continues segment A, 1 when B is a random segment. The predicted
random rate next to the reference rate shows a model that only learned the label prior (accuracy ~0.5).
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{devlin2019bert,
  title={{BERT}: Pre-training of Deep Bidirectional Transformers for Language Understanding},
  author={Devlin, Jacob and Chang, Ming-Wei and Lee, Kenton and Toutanova, Kristina},
  booktitle={NAACL-HLT},
  year={2019}
}
"""

_INPUTS = """
Args:
    predictions (list of int): predicted label of each pair (0 continuation, 1 random).
    references (list of int): true label of each pair.
Returns:
    accuracy (float), predicted_random_rate (float), random_rate (float).
Example:
    >>> metric = evaluate.load("glm_hf/metrics/next_sentence_prediction")
    >>> metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0])
    {'accuracy': 0.75, 'predicted_random_rate': 0.5, 'random_rate': 0.25}
"""


class NextSentencePrediction(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if len(references) == 0:
            raise ValueError("next_sentence_prediction: no pairs to score")
        invalid = sorted(set(np.unique(np.concatenate([predictions, references])).tolist()) - {0, 1})
        if invalid:
            raise ValueError(f"next_sentence_prediction: labels must be 0 or 1, got {invalid}")
        return {
            "accuracy": float((predictions == references).mean()),
            "predicted_random_rate": float(predictions.mean()),
            "random_rate": float(references.mean()),
        }
