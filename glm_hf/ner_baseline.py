"""The reference GLM's NER results are reported beside: a character CRF (``sklearn-crfsuite``).

Each character is described by the characters and character bigrams in a window of two on each side, the trigram
around it, its kind (CJK, digit, Latin letter, punctuation) and the sentence edges -- the standard feature set of
Chinese character NER, which needs no word segmentation. The L1/L2 regularisation pair is chosen on the validation
split (best entity F1), then the CRF is scored on every split with the same seqeval code as GLM
(:func:`glm_hf.finetuning_ner.seqeval_scores`), so the numbers compare key for key.
"""

import time
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# (c1, c2) pairs tried on the validation split: L1 and L2 penalties of L-BFGS training.
REGULARISATION_GRID = ((0.05, 0.01), (0.2, 0.05))


@dataclass
class CRFBaselineConfig:
    window: int = 2
    regularisation_grid: tuple[tuple[float, float], ...] = REGULARISATION_GRID
    max_iterations: int = 100

    def describe(self) -> str:
        return (
            f"character CRF (sklearn-crfsuite, L-BFGS, {self.max_iterations} iterations): characters and bigrams "
            f"within +-{self.window}, the centred trigram, character kind, sentence edges; (c1, c2) from "
            f"{[list(pair) for pair in self.regularisation_grid]} chosen on validation entity F1"
        )


def character_kind(char: str) -> str:
    if char.isdigit() or unicodedata.category(char) == "Nd":
        return "digit"
    if "CJK" in unicodedata.name(char, ""):
        return "cjk"
    if char.isalpha():
        return "latin"
    return "punct" if unicodedata.category(char).startswith(("P", "S")) else "other"


def sentence_features(tokens: Sequence[str], window: int = 2) -> list[dict[str, str | bool]]:
    """One feature dict per token (a token is a character in the embedded corpora; any string works)."""
    padded = ["<s>"] * window + list(tokens) + ["</s>"] * window
    features = []
    for i in range(len(tokens)):
        centre = i + window
        feats: dict[str, str | bool] = {"bias": True, "kind": character_kind(tokens[i][:1] or " ")}
        for offset in range(-window, window + 1):
            feats[f"c[{offset}]"] = padded[centre + offset]
            if offset < window:
                feats[f"c[{offset}:{offset + 1}]"] = padded[centre + offset] + padded[centre + offset + 1]
        feats["c[-1:1]"] = "".join(padded[centre - 1: centre + 2])
        features.append(feats)
    return features


def _tag_names(split) -> list[list[str]]:
    names = split.features["ner_tags"].feature.names
    return [[names[t] for t in tags] for tags in split["ner_tags"]]


def run_crf_baseline(raw, config: CRFBaselineConfig | None = None, entity_level: bool = True) -> dict:
    """Train on ``raw["train"]``, choose (c1, c2) on ``raw["validation"]``, score validation and test.

    ``raw`` is a DatasetDict with ``tokens`` and ``ner_tags`` (as :mod:`glm_hf.ner_data` gives). Returns
    ``eval_*`` and ``test_*`` metrics (overall, and per entity type with ``entity_level``), the chosen pair, the
    validation F1 of every pair, and the wall-clock seconds of training and prediction.
    """
    try:
        import sklearn_crfsuite
    except ImportError as error:
        raise ImportError("the character CRF baseline needs sklearn-crfsuite: pip install 'glm_hf[ner]' (or "
                          "pip install sklearn-crfsuite)") from error

    from .finetuning_ner import seqeval_scores

    config = config or CRFBaselineConfig()
    start = time.perf_counter()
    features = {split: [sentence_features(tokens, config.window) for tokens in raw[split]["tokens"]] for split in raw}
    tags = {split: _tag_names(raw[split]) for split in raw}
    grid, models = {}, {}
    for c1, c2 in config.regularisation_grid:
        crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=c1, c2=c2, max_iterations=config.max_iterations,
                                   all_possible_transitions=True)
        crf.fit(features["train"], tags["train"])
        models[(c1, c2)] = crf
        grid[f"c1={c1:g},c2={c2:g}"] = seqeval_scores(crf.predict(features["validation"]), tags["validation"],
                                                       entity_level=False)["f1"]
    best = max(models, key=lambda pair: grid[f"c1={pair[0]:g},c2={pair[1]:g}"])
    metrics = {}
    for split, prefix in (("validation", "eval"), ("test", "test")):
        scores = seqeval_scores(models[best].predict(features[split]), tags[split], entity_level)
        metrics.update({f"{prefix}_{name}": value for name, value in scores.items()})
    return {
        **metrics,
        "c1": best[0],
        "c2": best[1],
        "validation_f1_by_regularisation": grid,
        "train_samples": len(raw["train"]),
        "seconds": round(time.perf_counter() - start, 1),
        "config": asdict(config),
        "description": config.describe(),
    }
