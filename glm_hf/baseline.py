"""The reference every GLM result is reported beside: TF-IDF character n-grams + a linear model (scikit-learn).

Character n-grams need no word segmentation, which suits Chinese; the linear model is logistic regression
(one-vs-rest for multi-label) or ridge regression. Its regularisation strength is chosen on the validation split
when there is one (best macro-F1, or lowest MSE), then the model is scored with the same metric code as GLM
(:mod:`glm_hf.evaluation`) on every split it is given, so the numbers compare key for key.
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .evaluation import check_problem_type, decode_logits, score

# Inverse regularisation strengths tried on the validation split (logistic regression C; ridge uses alpha = 1 / C).
C_GRID = (0.5, 2.0, 8.0, 32.0)


@dataclass
class BaselineConfig:
    analyzer: str = "char"
    ngram_range: tuple[int, int] = (1, 3)
    min_df: int = 2
    max_features: int | None = 300_000
    sublinear_tf: bool = True
    c_grid: tuple[float, ...] = C_GRID
    max_iter: int = 2000

    def describe(self) -> str:
        low, high = self.ngram_range
        return (
            f"TF-IDF over character {low}-{high}-grams (min_df={self.min_df}, sublinear tf, "
            f"at most {self.max_features} features) + a linear model, C from {list(self.c_grid)} chosen on validation"
        )


def _linear_model(problem_type: str, c: float, max_iter: int):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier

    if problem_type == "regression":
        return Ridge(alpha=1.0 / c)
    classifier = LogisticRegression(C=c, max_iter=max_iter)
    return OneVsRestClassifier(classifier) if problem_type == "multi_label_classification" else classifier


def _logits(model, features, problem_type: str, num_classes: int | None) -> np.ndarray:
    """Scores in the shape GLM's logits have, so :func:`decode_logits` decodes both the same way."""
    if problem_type == "regression":
        return model.predict(features).reshape(-1, 1)
    if problem_type == "multi_label_classification":
        probabilities = np.clip(model.predict_proba(features), 1e-7, 1 - 1e-7)
        return np.log(probabilities / (1 - probabilities))
    log_probabilities = model.predict_log_proba(features)
    # LogisticRegression orders columns by the classes it saw in training; map them back to every class id.
    num_classes = max(num_classes or 0, int(model.classes_.max()) + 1)
    logits = np.full((log_probabilities.shape[0], num_classes), -np.inf)
    logits[:, model.classes_] = log_probabilities
    return logits


def _selection_score(metrics: Mapping, problem_type: str) -> float:
    return -metrics["mse"] if problem_type == "regression" else metrics["macro_f1"]


def run_tfidf_baseline(
    train: tuple[Sequence[str], Sequence],
    evaluation_sets: Mapping[str, tuple[Sequence[str], Sequence]],
    *,
    problem_type: str,
    label_names: Sequence[str] | None = None,
    validation_set: str | None = "eval",
    config: BaselineConfig | None = None,
) -> dict:
    """Fit on ``train`` and score every ``(texts, labels)`` of ``evaluation_sets``.

    Labels are class ids (single-label), 0/1 rows (multi-label) or floats (regression). The regularisation strength
    is picked on ``evaluation_sets[validation_set]`` when present. Returns ``{"<set>_<metric>": value, ...}`` plus
    ``description``, ``C`` and ``train_seconds``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    check_problem_type(problem_type)
    config = config or BaselineConfig()
    train_texts, train_labels = list(train[0]), np.asarray(train[1])
    if len(train_texts) == 0:
        raise ValueError("the baseline needs a non-empty training set")
    if problem_type == "single_label_classification" and len(np.unique(train_labels)) < 2:
        raise ValueError("the baseline needs at least 2 classes in the training labels")
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(
        analyzer=config.analyzer,
        ngram_range=tuple(config.ngram_range),
        min_df=config.min_df if len(train_texts) >= 50 else 1,  # tiny datasets: keep every n-gram
        max_features=config.max_features,
        sublinear_tf=config.sublinear_tf,
        lowercase=True,
    )
    train_features = vectorizer.fit_transform(train_texts)
    features = {name: vectorizer.transform(list(texts)) for name, (texts, _) in evaluation_sets.items()}
    labels = {name: np.asarray(labels) for name, (_, labels) in evaluation_sets.items()}

    num_classes = len(label_names) if label_names else None

    def fit_and_score(c: float, names: Sequence[str]) -> tuple[object, dict]:
        model = _linear_model(problem_type, c, config.max_iter).fit(train_features, train_labels)
        results = {}
        for name in names:
            predictions, _ = decode_logits(_logits(model, features[name], problem_type, num_classes), problem_type)
            results[name] = score(problem_type, predictions, labels[name], label_names)
        return model, results

    if validation_set in evaluation_sets and len(config.c_grid) > 1:
        candidates = [(c, fit_and_score(c, [validation_set])[1][validation_set]) for c in config.c_grid]
        best_c = max(candidates, key=lambda candidate: _selection_score(candidate[1], problem_type))[0]
    else:
        best_c = config.c_grid[len(config.c_grid) // 2]
    _, results = fit_and_score(best_c, list(evaluation_sets))
    output = {f"{name}_{key}": value for name, metrics in results.items() for key, value in metrics.items()}
    output.update(
        description=f"{config.describe()}; chosen C={best_c:g}",
        C=best_c,
        num_features=len(vectorizer.vocabulary_),
        train_seconds=round(time.perf_counter() - start, 2),
        config={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
    )
    return output
