"""Pretraining examples from a corpus read as a stream (``--streaming``): memory that does not grow with the corpus.

The in-memory path (:func:`glm_hf.corpora.load_documents`, then the ``datasets.map`` steps of
:mod:`glm_hf.pretraining_data`) reads every document and writes every example to Arrow files before training. Here
the documents -- plain text, JSON lines, CSV or Parquet shards (a file, a glob or a folder), a ``save_to_disk``
folder or the embedded corpus -- are read lazily and go through the same steps a few at a time:

documents (``datasets.IterableDataset``) -> the held-out evaluation documents dropped -> this process's share
(``datasets.distributed.split_dataset_by_node``: no two processes read the same document) -> shuffled in a buffer
(seeded; reshuffled each pass) -> token ids per sentence (:func:`~glm_hf.pretraining_data._tokenize_batch`) ->
sentence pairs (:func:`~glm_hf.pretraining_data.document_examples`, the random B of NSP drawn from a buffer of the
recent documents) or packed windows (:func:`~glm_hf.pretraining_data._pack_batch`) -> the masking collator.

:class:`PreTrainingStream` repeats this process's share, pass after pass, for as long as Trainer asks
(``--max_steps``); each example carries its pass as ``epoch``, which the collator masks with. The stream and its
masks are a function of the seed alone, so a resumed run, which Trainer fast-forwards past the batches it has seen,
continues exactly where the interrupted one stopped.
"""

import glob
import hashlib
import itertools
import logging
import os
from collections.abc import Callable, Iterator

import torch
from datasets import Dataset, DatasetDict, IterableDataset, load_dataset, load_from_disk
from datasets.distributed import split_dataset_by_node

from .corpora import (
    DOCUMENT_FEATURES,
    EMBEDDED,
    _generate_text_documents,
    _pick_text_column,
    load_embedded_corpus,
    split_sentences,
)
from .data_files import builder_kwargs, require_file
from .pretraining_data import _pack_batch, _tokenize_batch, document_examples

logger = logging.getLogger(__name__)

# Shard formats by file extension; any other extension is read as plain text (as the in-memory loader does).
STREAM_FORMATS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "tsv"}
BUILDERS = {"parquet": "parquet", "json": "json", "csv": "csv", "tsv": "csv"}
RECENT_DOCUMENTS = 1000  # NSP's random segment B comes from one of this many documents read before
DOCUMENTS_PER_PACK = 100  # packed windows are cut from this many consecutive documents at a time


# ---------------------------------------------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------------------------------------------


def is_pattern(path: str) -> bool:
    return any(char in path for char in "*?[")


def shard_files(path: str, flag: str) -> list[str]:
    """The files of ``path``: itself, the files a glob matches, or every file of a folder (hidden ones left out)."""
    if os.path.isdir(path):
        files = []
        for root, folders, names in os.walk(path):
            folders[:] = sorted(name for name in folders if not name.startswith("."))  # .git, .cache: not data
            files += [os.path.join(root, name) for name in names if not name.startswith(".")]
        where = "in the folder"
    elif is_pattern(path):
        files = [name for name in glob.glob(path, recursive=True) if os.path.isfile(name)]
        where = "matches the pattern"
    else:
        require_file(path, flag)
        files, where = [path], ""
    if not files:
        raise FileNotFoundError(f"{flag} {path}: no file {where}")
    return sorted(files)


def shard_format(files: list[str], path: str, flag: str) -> str:
    """The one format of ``files`` (``text``, ``json``, ``csv``, ``tsv`` or ``parquet``); mixed formats are refused."""
    kinds: dict[str, list[str]] = {}
    for name in files:
        kinds.setdefault(STREAM_FORMATS.get(os.path.splitext(name)[1].lower(), "text"), []).append(name)
    if len(kinds) > 1:
        described = "; ".join(
            f"{kind}: {len(names)} file(s), e.g. {os.path.basename(names[0])}" for kind, names in sorted(kinds.items())
        )
        raise ValueError(
            f"{flag} {path} mixes file formats ({described}); --streaming reads shards of one format: move the "
            "others out, or name the ones to read with a glob (e.g. 'data/*.parquet')"
        )
    return next(iter(kinds))


def _table_documents(files: list[str], kind: str, text_column_name: str | None, origin: str, encoding: str):
    """Documents from JSON lines / CSV / Parquet shards: one per row of the text column."""
    table = load_dataset(
        BUILDERS[kind], data_files=files, split="train", streaming=True, **builder_kwargs(files[0], encoding)
    )
    first = next(iter(table.take(1)), None)
    if first is None:
        raise ValueError(f"{origin} holds no rows")
    column = _pick_text_column(Dataset.from_list([first]), text_column_name, origin)
    source = os.path.basename(origin.split(" ", 1)[1].rstrip(os.sep))

    def to_documents(batch):
        sentences = [split_sentences(text or "") for text in batch[column]]
        return {"sentences": sentences, "source": [source] * len(sentences)}

    documents = table.map(to_documents, batched=True, remove_columns=list(first), features=DOCUMENT_FEATURES)
    return documents.filter(lambda sentences: len(sentences) > 0, input_columns="sentences")


def _saved_documents(path: str, text_column_name: str | None, origin: str) -> IterableDataset:
    """A ``save_to_disk`` folder (memory-mapped Arrow already): its train split as a stream of documents."""
    loaded = load_from_disk(path)
    table = loaded["train"] if isinstance(loaded, DatasetDict) else loaded
    if not set(DOCUMENT_FEATURES) <= set(table.column_names):
        column = _pick_text_column(table, text_column_name, origin)
        return _stream_rows(table.select_columns([column]), column, os.path.basename(path.rstrip(os.sep)))
    return table.select_columns(list(DOCUMENT_FEATURES)).to_iterable_dataset(num_shards=_arrow_shards(table))


def _stream_rows(table: Dataset, column: str, source: str) -> IterableDataset:
    def to_documents(batch):
        sentences = [split_sentences(text or "") for text in batch[column]]
        return {"sentences": sentences, "source": [source] * len(sentences)}

    stream = table.to_iterable_dataset(num_shards=_arrow_shards(table))
    stream = stream.map(to_documents, batched=True, remove_columns=[column], features=DOCUMENT_FEATURES)
    return stream.filter(lambda sentences: len(sentences) > 0, input_columns="sentences")


def _arrow_shards(table: Dataset) -> int:
    # Several shards let split_dataset_by_node hand whole shards to processes; it needs n_shards % world_size == 0
    # for that (else each process reads all rows and keeps every world_size-th: still disjoint, only slower).
    return max(1, min(len(table), 64))


def stream_documents(data_args) -> IterableDataset:
    """The training corpus of ``data_args`` (:class:`~glm_hf.pretraining.DataTrainingArguments`) as a stream of
    documents (``sentences``, ``source``), in file order."""
    if data_args.dataset_name == EMBEDDED:
        corpus = load_embedded_corpus(include_msra=data_args.include_msra)
        return corpus.to_iterable_dataset(num_shards=_arrow_shards(corpus))
    flag = "--train_file" if data_args.train_file else "--dataset_name"
    path = data_args.train_file or data_args.dataset_name
    origin = f"{flag} {path}"
    if os.path.isdir(path) and any(os.path.exists(os.path.join(path, m)) for m in ("dataset_dict.json", "state.json")):
        return _saved_documents(path, data_args.text_column_name, origin)
    if flag == "--dataset_name" and not os.path.exists(path) and not is_pattern(path):
        raise ValueError(
            f"--dataset_name {path} with --streaming: streaming reads local data -- '{EMBEDDED}', a file, a glob or a "
            "folder of text / JSON lines / CSV / Parquet shards, or a save_to_disk folder; no such path here"
        )
    files = shard_files(path, flag)
    kind = shard_format(files, path, flag)
    logger.info("Streaming %d %s shard(s) of %s", len(files), kind, origin)
    if kind != "text":
        return _table_documents(files, kind, data_args.text_column_name, origin, data_args.encoding)
    return IterableDataset.from_generator(
        _generate_text_documents,
        features=DOCUMENT_FEATURES,
        # lists in gen_kwargs are the shards: one per file
        gen_kwargs={
            "paths": files,
            "document_separator": data_args.document_separator,
            "cache_keys": [""] * len(files),
            "encoding": data_args.encoding,
        },
    )


def document_key(sentences: list[str]) -> bytes:
    return hashlib.blake2b("\n".join(sentences).encode("utf-8"), digest_size=16).digest()


def hold_out_documents(documents: IterableDataset, count: int) -> tuple[Dataset | None, IterableDataset]:
    """The first ``count`` documents as an in-memory evaluation set, and the stream without them."""
    if count == 0:
        return None, documents
    held_out = Dataset.from_list(list(documents.take(count)), features=DOCUMENT_FEATURES)
    # Dropped by content (their keys: ``count`` x 16 bytes), not with skip(): datasets splits a skip() over the
    # processes of split_dataset_by_node, which would leave some held-out documents in training. A training document
    # equal to a held-out one is dropped too, which keeps the evaluation honest.
    keys = {document_key(sentences) for sentences in held_out["sentences"]}
    training = documents.filter(lambda sentences: document_key(sentences) not in keys, input_columns="sentences")
    return held_out, training


# ---------------------------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------------------------


class RecentDocuments:
    """The last ``capacity`` documents read (token ids per sentence, and flags), by position: the ``source`` of
    :func:`~glm_hf.pretraining_data.document_examples` in a stream, where NSP's random segment B can only come from a
    document still in memory."""

    def __init__(self, capacity: int = RECENT_DOCUMENTS):
        self.capacity, self.items, self.added = capacity, [], 0

    def add(self, sentences, flags) -> int:
        """Keep a document (in place of the oldest when full); returns its position."""
        position = self.added % self.capacity
        if len(self.items) < self.capacity:
            self.items.append((sentences, flags))
        else:
            self.items[position] = (sentences, flags)
        self.added += 1
        return position

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[int(index)]


def pair_examples(documents: Iterator[dict], epoch: int, options: dict) -> Iterator[dict]:
    """NSP/SOP sentence pairs of a stream of tokenized documents (``options``: see
    :func:`~glm_hf.pretraining_data.pair_options`)."""
    recent = RecentDocuments()
    for position, document in enumerate(documents):
        flags = document.get("sentence_word_continuation")
        slot = recent.add(document["sentence_ids"], flags)
        # Each document's random choices are seeded by its pass and position, so a pass is the same every time.
        index = (epoch << 40) + position
        yield from document_examples(index, document["sentence_ids"], flags, recent, source_index=slot, **options)


def packed_examples(documents: Iterator[dict], epoch: int, options: dict) -> Iterator[dict]:
    """Packed windows of a stream of tokenized documents, ``DOCUMENTS_PER_PACK`` at a time (``options``: see
    :func:`~glm_hf.pretraining_data.pack_options`)."""
    while True:
        pack = list(itertools.islice(documents, DOCUMENTS_PER_PACK))
        if not pack:
            return
        columns = _pack_batch({key: [document[key] for document in pack] for key in pack[0]}, options)
        yield from (dict(zip(columns, row)) for row in zip(*columns.values()))


class PreTrainingStream(torch.utils.data.IterableDataset):
    """This process's training examples: its share of the documents, tokenized, made into examples by
    ``make_examples`` (:func:`pair_examples` or :func:`packed_examples`), repeated pass after pass without end."""

    def __init__(self, tokenized: IterableDataset, make_examples: Callable, options: dict, origin: str):
        self.tokenized, self.make_examples, self.options, self.origin = tokenized, make_examples, options, origin

    def examples(self, epoch: int) -> Iterator[dict]:
        """The examples of one pass; ``epoch`` reshuffles the documents (the shuffle's seed is ``seed + epoch``)."""
        self.tokenized.set_epoch(epoch)
        for example in self.make_examples(iter(self.tokenized), epoch, self.options):
            yield {**example, "epoch": epoch}

    def __iter__(self):
        # Endless: Trainer stops at --max_steps, and every process always has a next batch, so a process whose share
        # is smaller never leaves the others waiting in a collective (it just starts its next pass sooner).
        for epoch in itertools.count():
            examples = self.examples(epoch)
            first = next(examples, None)
            if first is None:
                raise ValueError(
                    f"{self.origin}: this process's share of the training documents gives no examples; give more "
                    "documents (or shards) than processes"
                )
            yield first
            yield from examples


def training_stream(
    documents: IterableDataset,
    tokenizer,
    *,
    objective_options: tuple[Callable, dict],
    whole_word_mask: bool,
    seed: int,
    shuffle_buffer_size: int,
    rank: int,
    world_size: int,
    origin: str,
) -> PreTrainingStream:
    """:class:`PreTrainingStream` over ``documents`` for process ``rank`` of ``world_size``."""
    if whole_word_mask and not getattr(tokenizer, "is_fast", False):
        raise ValueError("whole_word_mask needs a fast tokenizer (offsets mapping); got a slow one")
    share = split_dataset_by_node(documents.select_columns(["sentences"]), rank=rank, world_size=world_size)
    share = share.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
    tokenized = share.map(
        _tokenize_batch,
        batched=True,
        remove_columns=["sentences"],
        fn_kwargs={"tokenizer": tokenizer, "whole_word_mask": whole_word_mask},
    ).filter(lambda sentence_ids: len(sentence_ids) > 0, input_columns="sentence_ids")
    make_examples, options = objective_options
    return PreTrainingStream(tokenized, make_examples, options, origin)
