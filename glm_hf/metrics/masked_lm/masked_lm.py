"""Masked language modelling metrics: accuracy and perplexity over the masked positions.

Inputs, one entry per masked token (flatten ``labels[labels != -100]`` and the matching predictions):

- ``predictions``: the predicted token id (argmax of the MLM logits),
- ``references``: the original token id,
- ``losses``: the token's cross-entropy, ``-log p(reference)``.

Returns ``accuracy`` (share of masked tokens predicted exactly), ``loss`` (mean cross-entropy) and ``perplexity``
(``exp(loss)``) -- all over tokens, so large and small batches weigh by their number of masked tokens.
"""

import math

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
    predictions (list of int): predicted token id of each masked position.
    references (list of int): original token id of each masked position.
    losses (list of float): cross-entropy -log p(reference) of each masked position.
Returns:
    accuracy (float), loss (float), perplexity (float), masked_tokens (int).
Example:
    >>> metric = evaluate.load("glm_hf/metrics/masked_lm")
    >>> metric.compute(predictions=[5, 7], references=[5, 8], losses=[0.1, 2.3])
    {'accuracy': 0.5, 'loss': 1.2, 'perplexity': 3.3201169227365472, 'masked_tokens': 2}
"""


class MaskedLm(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64"),
                 "losses": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions, references, losses):
        predictions, references, losses = (np.asarray(x) for x in (predictions, references, losses))
        if len(references) == 0:
            raise ValueError("masked_lm: no masked tokens to score (labels are all -100)")
        loss = float(losses.mean())
        return {
            "accuracy": float((predictions == references).mean()),
            "loss": loss,
            "perplexity": math.exp(loss) if loss < 700 else float("inf"),
            "masked_tokens": int(len(references)),
        }
