"""Offline evaluation for text classification and regression: metrics, confusion matrix, atomic result files.

Metrics are the local ``evaluate`` modules in ``glm_hf/metrics/<name>/<name>.py`` (the Hub's ``evaluate.load("f1")``
needs a network), loaded by path. The same functions score GLM models (through ``Trainer``'s ``compute_metrics``)
and the TF-IDF baseline, so their numbers are comparable key for key:

- single-label classification: ``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1`` and, per class,
  ``precision_<label>``, ``recall_<label>``, ``f1_<label>``;
- multi-label classification: ``accuracy`` (subset accuracy: every label of an example right), ``micro_f1``,
  ``macro_f1``, ``macro_precision``, ``macro_recall`` and ``f1_<label>``;
- regression: ``mse`` and ``pearsonr``.
"""

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

METRICS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics")
LOSS_CURVE_FILE = "loss_curve.png"  # beside the metrics of every training run
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
# The headline metric of each problem type: what cards and summaries lead with.
MAIN_METRICS = {
    "single_label_classification": ("accuracy", "macro_f1"),
    "multi_label_classification": ("accuracy", "macro_f1"),
    "regression": ("mse", "pearsonr"),
}


@cache
def load_metric(name: str, config_name: str | None = None):
    """A metric shipped with glm_hf (``accuracy``, ``precision``, ``recall``, ``f1``, ``mse``, ``pearsonr``, ...)."""
    import evaluate

    path = os.path.join(METRICS_DIR, name)
    if not os.path.isfile(os.path.join(path, f"{name}.py")):
        available = sorted(
            d for d in os.listdir(METRICS_DIR) if os.path.isfile(os.path.join(METRICS_DIR, d, f"{d}.py"))
        )
        raise ValueError(f"metric must be one of {available}, got {name!r}")
    return evaluate.load(path, config_name)


def check_problem_type(problem_type: str) -> None:
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {list(PROBLEM_TYPES)}, got {problem_type!r}")


def classification_metrics(predictions: Sequence[int], references: Sequence[int], label_names: Sequence[str]) -> dict:
    """Accuracy, macro precision/recall/F1 and per-class precision/recall/F1 of single-label predictions."""
    predictions, references = np.asarray(predictions).tolist(), np.asarray(references).tolist()
    class_ids = list(range(len(label_names)))
    results = {"accuracy": load_metric("accuracy").compute(predictions=predictions, references=references)["accuracy"]}
    per_class = {}
    for name in ("precision", "recall", "f1"):
        metric = load_metric(name)
        results[f"macro_{name}"] = metric.compute(
            predictions=predictions, references=references, labels=class_ids, average="macro"
        )[name]
        per_class[name] = metric.compute(
            predictions=predictions, references=references, labels=class_ids, average=None
        )[name]
    for name, scores in per_class.items():
        results.update({f"{name}_{label}": score for label, score in zip(label_names, scores)})
    return results


def multilabel_metrics(predictions: np.ndarray, references: np.ndarray, label_names: Sequence[str]) -> dict:
    """Subset accuracy, micro/macro F1, macro precision/recall and per-label F1 of 0/1 prediction matrices."""
    predictions = np.asarray(predictions).astype(int).tolist()
    references = np.asarray(references).astype(int).tolist()
    results = {
        "accuracy": load_metric("accuracy", "multilabel").compute(predictions=predictions, references=references)[
            "accuracy"
        ]
    }
    f1 = load_metric("f1", "multilabel")
    results["micro_f1"] = f1.compute(predictions=predictions, references=references, average="micro")["f1"]
    for name in ("precision", "recall", "f1"):
        results[f"macro_{name}"] = load_metric(name, "multilabel").compute(
            predictions=predictions, references=references, average="macro"
        )[name]
    per_label = f1.compute(predictions=predictions, references=references, average=None)["f1"]
    results.update({f"f1_{label}": score for label, score in zip(label_names, per_label)})
    return results


def regression_metrics(predictions: Sequence[float], references: Sequence[float]) -> dict:
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1).tolist()
    references = np.asarray(references, dtype=np.float64).reshape(-1).tolist()
    return {
        "mse": load_metric("mse").compute(predictions=predictions, references=references)["mse"],
        "pearsonr": load_metric("pearsonr").compute(predictions=predictions, references=references)["pearsonr"],
    }


def score(problem_type: str, predictions, references, label_names: Sequence[str] | None = None) -> dict:
    """The metrics of ``problem_type`` for decoded predictions (class ids, 0/1 matrices or values)."""
    check_problem_type(problem_type)
    if problem_type == "regression":
        return regression_metrics(predictions, references)
    if problem_type == "multi_label_classification":
        return multilabel_metrics(predictions, references, label_names)
    return classification_metrics(predictions, references, label_names)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def decode_logits(logits: np.ndarray, problem_type: str) -> tuple[np.ndarray, np.ndarray]:
    """``(predictions, scores)`` from model logits.

    single-label: class ids and softmax probabilities; multi-label: 0/1 matrix (sigmoid > 0.5) and sigmoid
    probabilities; regression: the values (twice).
    """
    check_problem_type(problem_type)
    logits = np.asarray(logits, dtype=np.float64)
    if problem_type == "regression":
        values = logits.reshape(len(logits), -1)[:, 0]
        return values, values
    if problem_type == "multi_label_classification":
        probabilities = sigmoid(logits)
        return (probabilities > 0.5).astype(int), probabilities
    probabilities = softmax(logits)
    return probabilities.argmax(axis=-1), probabilities


def build_compute_metrics(problem_type: str, label_names: Sequence[str] | None) -> Callable:
    """``compute_metrics`` for ``Trainer``: logits -> predictions -> :func:`score`."""
    check_problem_type(problem_type)

    def compute_metrics(eval_prediction) -> dict:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        predictions, _ = decode_logits(logits, problem_type)
        return score(problem_type, predictions, eval_prediction.label_ids, label_names)

    return compute_metrics


def _atomic_target(path: str) -> tuple[str, str]:
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    os.close(handle)
    return path, staging


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(data: dict, path: str) -> str:
    """Write ``data`` as indented JSON, atomically (temporary file, then rename)."""
    return write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n", path)


def write_text(text: str, path: str) -> str:
    """Write ``text`` (UTF-8) atomically (temporary file, then rename)."""
    path, staging = _atomic_target(path)
    try:
        with open(staging, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


def save_confusion_matrix(
    references: Sequence[int],
    predictions: Sequence[int],
    label_names: Sequence[str],
    path: str,
    title: str | None = None,
) -> str:
    """Plot the confusion matrix (rows: true class, columns: predicted class) as a PNG; returns ``path``.

    Cells show counts; colours show the share of each true class (row-normalised), so small classes stay readable.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: servers, CI
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(references, predictions, labels=list(range(len(label_names))))
    tick_labels, font_family = _displayable_labels(label_names)

    size = max(3.5, 0.6 * len(label_names) + 2.5)
    with plt.rc_context({"font.family": font_family} if font_family else {}):
        figure = _draw_confusion_matrix(plt, matrix, tick_labels, size, title)

    return save_png(plt, figure, path)


def save_png(plt, figure, path: str) -> str:
    """Save a matplotlib figure as PNG atomically (temporary file, then rename) and close it; returns the path."""
    path, staging = _atomic_target(path)
    try:
        figure.savefig(staging, format="png")
        os.chmod(staging, 0o644)  # mkstemp creates the file private to its owner
        os.replace(staging, path)
    finally:
        plt.close(figure)
        if os.path.exists(staging):
            os.remove(staging)
    return path


def _displayable_labels(label_names: Sequence[str]) -> tuple[list[str], str | None]:
    """Tick labels matplotlib can draw: non-ASCII names need a CJK font, else they become ``label <id>``."""
    if all(str(name).isascii() for name in label_names):
        return [str(name) for name in label_names], None
    from matplotlib import font_manager

    hints = ("CJK", "WenQuanYi", "SimHei", "Heiti", "Hiragino", "Microsoft YaHei", "PingFang", "Source Han")
    for font in font_manager.fontManager.ttflist:
        if any(hint.lower() in font.name.lower() for hint in hints):
            return [str(name) for name in label_names], font.name
    return [str(name) if str(name).isascii() else f"label {i}" for i, name in enumerate(label_names)], None


def _draw_confusion_matrix(plt, matrix: np.ndarray, label_names: Sequence[str], size: float, title: str | None):
    row_sums = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_sums, out=np.zeros(matrix.shape, dtype=float), where=row_sums > 0)
    figure, axes = plt.subplots(figsize=(size + 1, size), dpi=120)
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of true class")
    ticks = range(len(label_names))
    axes.set_xticks(ticks, labels=label_names, rotation=45, ha="right")
    axes.set_yticks(ticks, labels=label_names)
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axes.text(column, row, f"{matrix[row, column]}", ha="center", va="center", color=colour)
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    axes.set_title(f"{title + ' - ' if title else ''}accuracy {accuracy:.3f} (n={matrix.sum()})", fontsize=10)
    figure.tight_layout()
    return figure
