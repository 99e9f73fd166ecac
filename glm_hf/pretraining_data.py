"""From documents to MLM + NSP training examples, with ``datasets.map`` (batched, cached, ``num_proc``-parallel).

Two steps:

1. :func:`tokenize_documents`: every sentence of every document becomes a list of token ids (no special tokens).
   With whole-word masking, jieba segments each sentence here too, and each token gets a ``word_continuation``
   flag (1 when it continues the jieba word of the token before it), which the collator uses to mask whole words.
2. :func:`create_nsp_examples`: BERT's ``create_instances_from_document``. Per document, a target length
   (``max_seq_length - 3``, or with probability ``short_seq_prob`` a random shorter one), chunks of consecutive
   sentences filling it, segment A = the first sentences of a chunk, segment B = the rest of the chunk (the true
   continuation, ``next_sentence_label`` 0) or, with probability ``nsp_probability``, a run of sentences from a
   random other document (label 1); then the longer side is truncated, from a random end, until the pair fits.

   One change to BERT's recipe keeps the labels balanced on corpora of short documents (a review is often one
   sentence): BERT makes every single-sentence chunk a random pair, so such corpora get far more 1s than 0s. Here
   the label is drawn first; a single-sentence chunk that must be a true continuation is cut in two inside the
   sentence, after a clause mark (，、：) when it has one, else at a random token.

Every random choice for a document comes from ``numpy.random.default_rng([seed, document_index])``, so the examples
are the same for any ``num_proc`` and batch size, and on every process of a distributed run.
"""

import logging
from collections import Counter

import numpy as np
from datasets import Dataset, Features, List, Value, concatenate_datasets
from datasets.fingerprint import Hasher

logger = logging.getLogger(__name__)

CLAUSE_MARKS = ("，", "、", "：", ",", ":")
SENTENCE_TASKS = ("nsp", "sop")


def _jieba():
    try:
        import jieba
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("whole-word masking segments Chinese with jieba: pip install jieba") from err
    jieba.setLogLevel(logging.WARNING)
    return jieba


def word_continuation_flags(text: str, offsets: list[tuple[int, int]], words: list[str]) -> list[int]:
    """1 for each token that continues the word (of ``words``, a segmentation of ``text``) of the token before it.

    ``offsets`` are the tokens' character spans in ``text`` (from a fast tokenizer). A token belongs to the word that
    holds its first character, so the ``##`` pieces of a Latin word and the characters of a Chinese word share one.
    """
    word_of_char = np.empty(len(text), dtype=np.int64)
    start = 0
    for index, word in enumerate(words):
        word_of_char[start : start + len(word)] = index
        start += len(word)
    flags, previous_word = [], None
    for char_start, char_end in offsets:
        word = int(word_of_char[char_start]) if char_end > char_start else None
        flags.append(int(word is not None and word == previous_word))
        previous_word = word
    return flags


def _tokenize_batch(batch, tokenizer, whole_word_mask: bool):
    # ``source`` (which corpus a document comes from) is kept: per-corpus sampling weights need it.
    sentences = [s for document in batch["sentences"] for s in document]
    encoded = tokenizer(
        sentences, add_special_tokens=False, return_attention_mask=False, return_offsets_mapping=whole_word_mask
    )
    ids = encoded["input_ids"]
    flags = None
    if whole_word_mask:
        jieba = _jieba()
        flags = [
            word_continuation_flags(text, offsets, jieba.lcut(text))
            for text, offsets in zip(sentences, encoded["offset_mapping"])
        ]
    output = {"sentence_ids": []}
    if "source" in batch:
        output["source"] = batch["source"]
    if whole_word_mask:
        output["sentence_word_continuation"] = []
    position = 0
    for document in batch["sentences"]:
        keep = [i for i in range(position, position + len(document)) if ids[i]]  # sentences left empty are dropped
        output["sentence_ids"].append([ids[i] for i in keep])
        if whole_word_mask:
            output["sentence_word_continuation"].append([flags[i] for i in keep])
        position += len(document)
    return output


def tokenize_documents(
    documents: Dataset,
    tokenizer,
    *,
    whole_word_mask: bool = False,
    num_proc: int | None = None,
    load_from_cache_file: bool | None = None,
) -> Dataset:
    """Token ids per sentence (``sentence_ids``), and ``sentence_word_continuation`` with ``whole_word_mask``.

    Documents whose sentences all tokenize to nothing are dropped.
    """
    if whole_word_mask and not getattr(tokenizer, "is_fast", False):
        raise ValueError("whole_word_mask needs a fast tokenizer (offsets mapping); got a slow one")
    features = {"sentence_ids": List(List(Value("int32")))}
    if "source" in documents.column_names:
        features["source"] = Value("string")
    if whole_word_mask:
        features["sentence_word_continuation"] = List(List(Value("int8")))
    tokenized = documents.map(
        _tokenize_batch,
        batched=True,
        remove_columns=documents.column_names,
        features=Features(features),
        fn_kwargs={"tokenizer": tokenizer, "whole_word_mask": whole_word_mask},
        num_proc=num_proc,
        load_from_cache_file=load_from_cache_file,
        desc="Tokenizing documents" + (" and segmenting words with jieba" if whole_word_mask else ""),
    )
    return tokenized.filter(
        lambda sentence_ids: len(sentence_ids) > 0,
        input_columns="sentence_ids",
        num_proc=num_proc,
        load_from_cache_file=load_from_cache_file,
    )


def _truncate_pair(a: list, b: list, a_flags: list | None, b_flags: list | None, max_tokens: int, rng) -> None:
    """BERT's ``truncate_seq_pair``: drop a token from a random end of the longer segment until the pair fits."""
    while len(a) + len(b) > max_tokens:
        longer, longer_flags = (a, a_flags) if len(a) > len(b) else (b, b_flags)
        index = 0 if rng.random() < 0.5 else -1
        del longer[index]
        if longer_flags is not None:
            del longer_flags[index]


class _DocumentSource:
    """Random access to the sentences of any document, for the random segment B of NSP pairs."""

    def __init__(self, tokenized: Dataset, with_flags: bool):
        columns = ["sentence_ids"] + (["sentence_word_continuation"] if with_flags else [])
        self.dataset = tokenized.select_columns(columns)
        self.with_flags = with_flags

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index: int):
        row = self.dataset[int(index)]
        return row["sentence_ids"], row.get("sentence_word_continuation")


def _split_point(sentence: list[int], clause_mark_ids: tuple[int, ...], rng) -> int:
    """Where to cut a lone sentence into A and B: after a clause mark if there is one inside, else anywhere."""
    candidates = [i + 1 for i, token in enumerate(sentence[:-1]) if token in clause_mark_ids]
    if candidates:
        return int(candidates[rng.integers(len(candidates))])
    return int(rng.integers(1, len(sentence)))


def document_examples(
    document_index: int,
    sentences: list[list[int]],
    flags: list[list[int]] | None,
    source: _DocumentSource,
    *,
    max_seq_length: int,
    short_seq_prob: float,
    nsp_probability: float,
    cls_id: int,
    sep_id: int,
    clause_mark_ids: tuple[int, ...],
    seed: int,
    sentence_task: str = "nsp",
    source_index: int | None = None,
) -> list[dict]:
    """The sentence-pair examples of one document (see the module docstring).

    ``sentence_task="sop"`` (ALBERT's sentence-order prediction): B is always the true continuation of A, and with
    probability 1/2 the two segments are swapped (label 1). Both segments come from one document, so unlike NSP
    the task cannot be solved by telling topics or corpora apart.

    ``source_index``: where the document itself is in ``source`` (never drawn as its random B), when that is not
    ``document_index`` -- a stream's buffer of recent documents (:mod:`glm_hf.streaming`).
    """
    rng = np.random.default_rng([seed, document_index])
    max_tokens = max_seq_length - 3  # [CLS] A [SEP] B [SEP]
    target_length = max_tokens
    if rng.random() < short_seq_prob:
        target_length = int(rng.integers(2, max_tokens + 1))

    examples = []
    chunk: list[int] = []  # sentence indices
    chunk_length = 0
    i = 0
    while i < len(sentences):
        chunk.append(i)
        chunk_length += len(sentences[i])
        if i == len(sentences) - 1 or chunk_length >= target_length:
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            is_random_next = sentence_task == "nsp" and rng.random() < nsp_probability and len(source) > 1
            tokens_a, flags_a = _segment(chunk[:a_end], sentences, flags)
            if is_random_next:
                target_b_length = max(1, target_length - len(tokens_a))
                own_index = document_index if source_index is None else source_index
                tokens_b, flags_b = _random_segment(source, own_index, target_b_length, flags is not None, rng)
                # BERT: the sentences of the chunk left unused go back to the document for the next chunk.
                i -= len(chunk) - a_end
            elif len(chunk) >= 2:
                tokens_b, flags_b = _segment(chunk[a_end:], sentences, flags)
            elif len(tokens_a) >= 2:  # a lone sentence: its second part is its true continuation
                cut = _split_point(tokens_a, clause_mark_ids, rng)
                tokens_a, tokens_b = tokens_a[:cut], tokens_a[cut:]
                if flags_a is not None:
                    flags_a, flags_b = flags_a[:cut], flags_a[cut:]
                else:
                    flags_b = None
            else:  # a one-token document: no continuation exists
                tokens_b, flags_b = [], None

            if tokens_b:
                label = 1 if is_random_next else 0
                examples.append(
                    _pair_example(
                        tokens_a, tokens_b, flags_a, flags_b, label,
                        sentence_task=sentence_task, max_tokens=max_tokens, cls_id=cls_id, sep_id=sep_id, rng=rng,
                    )
                )
            chunk, chunk_length = [], 0
        i += 1
    return examples


def _segment(sentence_indices: list[int], sentences: list[list[int]], flags: list[list[int]] | None):
    """The tokens of the document's sentences at ``sentence_indices``, joined, and their flags (``None`` without)."""
    tokens = [t for s in sentence_indices for t in sentences[s]]
    segment_flags = [f for s in sentence_indices for f in flags[s]] if flags is not None else None
    return tokens, segment_flags


def _random_segment(source: _DocumentSource, document_index: int, target_length: int, with_flags: bool, rng):
    """NSP's random B: consecutive sentences of a random other document, from a random one on, until
    ``target_length`` tokens are reached (or the document ends)."""
    tokens, flags = [], [] if with_flags else None
    for _ in range(10):  # BERT: try a few times to draw a document other than this one
        other = int(rng.integers(len(source)))
        if other != document_index:
            break
    other_sentences, other_flags = source[other]
    start = int(rng.integers(len(other_sentences)))
    for j in range(start, len(other_sentences)):
        tokens.extend(other_sentences[j])
        if flags is not None:
            flags.extend(other_flags[j])
        if len(tokens) >= target_length:
            break
    return tokens, flags


def _pair_example(
    tokens_a: list[int],
    tokens_b: list[int],
    flags_a: list[int] | None,
    flags_b: list[int] | None,
    label: int,
    *,
    sentence_task: str,
    max_tokens: int,
    cls_id: int,
    sep_id: int,
    rng,
) -> dict:
    """``[CLS] A [SEP] B [SEP]`` with its segment ids and label: for SOP, A and B swapped half of the time (label 1);
    truncated to ``max_tokens`` tokens of A and B."""
    if sentence_task == "sop" and rng.random() < 0.5:
        tokens_a, tokens_b, flags_a, flags_b, label = tokens_b, tokens_a, flags_b, flags_a, 1
    _truncate_pair(tokens_a, tokens_b, flags_a, flags_b, max_tokens, rng)
    if flags_a is not None:  # a segment cut inside a word starts with a word of its own
        flags_a[0] = flags_b[0] = 0
    example = {
        "input_ids": [cls_id, *tokens_a, sep_id, *tokens_b, sep_id],
        "token_type_ids": [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1),
        "next_sentence_label": label,
    }
    if flags_a is not None:
        example["word_continuation"] = [0, *flags_a, 0, *flags_b, 0]
    return example


def pair_options(
    tokenizer, *, max_seq_length: int, short_seq_prob: float, nsp_probability: float, seed: int, sentence_task: str
) -> dict:
    """The checked keyword arguments of :func:`document_examples` (all but the document and its source)."""
    if sentence_task not in SENTENCE_TASKS:
        raise ValueError(f"sentence_task must be one of {SENTENCE_TASKS}, got {sentence_task!r}")
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length must be >= 5 ([CLS] A [SEP] B [SEP]), got {max_seq_length}")
    if not 0 <= short_seq_prob <= 1:
        raise ValueError(f"short_seq_prob must be in [0, 1], got {short_seq_prob}")
    if not 0 < nsp_probability < 1:
        raise ValueError(f"nsp_probability must be in (0, 1), got {nsp_probability}")
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ValueError("the tokenizer needs [CLS] and [SEP] tokens (cls_token, sep_token) for NSP pairs")

    vocab = tokenizer.get_vocab()
    return {
        "max_seq_length": max_seq_length,
        "short_seq_prob": short_seq_prob,
        "nsp_probability": nsp_probability,
        "cls_id": tokenizer.cls_token_id,
        "sep_id": tokenizer.sep_token_id,
        "clause_mark_ids": tuple(sorted({vocab[mark] for mark in CLAUSE_MARKS if mark in vocab})),
        "seed": seed,
        "sentence_task": sentence_task,
    }


def _nsp_batch(batch, indices, source, options):
    columns = {"input_ids": [], "token_type_ids": [], "next_sentence_label": []}
    with_flags = "sentence_word_continuation" in batch
    if with_flags:
        columns["word_continuation"] = []
    if "source" in batch:
        columns["source"] = []
    for position, document_index in enumerate(indices):
        flags = batch["sentence_word_continuation"][position] if with_flags else None
        for example in document_examples(document_index, batch["sentence_ids"][position], flags, source, **options):
            for key, value in example.items():
                columns[key].append(value)
            if "source" in batch:
                columns["source"].append(batch["source"][position])
    return columns


def create_nsp_examples(
    tokenized: Dataset,
    tokenizer,
    *,
    max_seq_length: int = 128,
    short_seq_prob: float = 0.1,
    nsp_probability: float = 0.5,
    seed: int = 42,
    num_proc: int | None = None,
    load_from_cache_file: bool | None = None,
    sentence_task: str = "nsp",
) -> Dataset:
    """Sentence-pair examples: ``input_ids``, ``token_type_ids``, ``next_sentence_label`` (+ ``word_continuation``,
    ``source``).

    ``tokenized`` is the output of :func:`tokenize_documents`. ``sentence_task``: ``"nsp"`` (label 1 = B is a random
    segment) or ``"sop"`` (label 1 = A and B swapped). Deterministic for a given ``seed``.
    """
    with_flags = "sentence_word_continuation" in tokenized.column_names
    options = pair_options(
        tokenizer, max_seq_length=max_seq_length, short_seq_prob=short_seq_prob, nsp_probability=nsp_probability,
        seed=seed, sentence_task=sentence_task,
    )
    features = {
        "input_ids": List(Value("int32")),
        "token_type_ids": List(Value("int8")),
        "next_sentence_label": Value("int8"),
    }
    if with_flags:
        features["word_continuation"] = List(Value("int8"))
    if "source" in tokenized.column_names:
        features["source"] = Value("string")
    # The random B segments read other documents, so the examples depend on the whole dataset: its fingerprint and
    # the options make the cache key (hashing the dataset object itself would be slow).
    fingerprint = Hasher.hash(("nsp-examples", tokenized._fingerprint, sorted(options.items(), key=str)))
    return tokenized.map(
        _nsp_batch,
        batched=True,
        with_indices=True,
        remove_columns=tokenized.column_names,
        features=Features(features),
        fn_kwargs={"source": _DocumentSource(tokenized, with_flags), "options": options},
        num_proc=num_proc,
        load_from_cache_file=load_from_cache_file,
        new_fingerprint=fingerprint,
        desc=f"Creating {sentence_task.upper()} sentence pairs (max_seq_length={max_seq_length})",
    )


def nsp_example_stats(examples: Dataset) -> dict:
    """Count, label balance (sentence pairs), mean length and corpora of pretraining examples (computed in Arrow, no
    Python loop)."""
    import pyarrow.compute as pc

    table = examples.with_format("arrow")[:]
    if table.num_rows == 0:
        return {"examples": 0, "random_next_rate": 0.0, "mean_length": 0.0, "tokens": 0}
    lengths = pc.list_value_length(table["input_ids"])
    stats = {"examples": table.num_rows, "mean_length": pc.mean(lengths).as_py(), "tokens": pc.sum(lengths).as_py()}
    if "next_sentence_label" in table.column_names:  # sentence pairs: share of label 1 (random B, or swapped)
        stats["random_next_rate"] = pc.mean(pc.cast(table["next_sentence_label"], "float64")).as_py()
    if "source" in table.column_names:
        stats["sources"] = dict(sorted(Counter(table["source"].to_pylist()).items()))
    return stats


def _pack_batch(batch, options):
    """Documents of the batch joined (a [SEP] after each), cut into windows of ``[CLS] tokens [SEP]``."""
    window = options["max_seq_length"] - 2
    cls_id, sep_id = options["cls_id"], options["sep_id"]
    with_flags = "sentence_word_continuation" in batch
    stream = [t for sentences in batch["sentence_ids"] for t in [*(t for s in sentences for t in s), sep_id]]
    columns = {"input_ids": [[cls_id, *stream[i : i + window], sep_id] for i in range(0, len(stream), window)]}
    if with_flags:
        flags = [
            f
            for per_sentence in batch["sentence_word_continuation"]
            for f in [*(f for s in per_sentence for f in s), 0]
        ]
        # A window cut inside a word starts a word of its own.
        columns["word_continuation"] = [[0, 0, *flags[i + 1 : i + window], 0] for i in range(0, len(flags), window)]
    if "source" in batch:  # batches are cut per corpus (see create_packed_examples): one source per batch
        columns["source"] = [batch["source"][0]] * len(columns["input_ids"])
    return columns


def pack_options(tokenizer, max_seq_length: int) -> dict:
    """The checked options of :func:`_pack_batch`."""
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length must be >= 3 ([CLS] text [SEP]), got {max_seq_length}")
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ValueError("the tokenizer needs [CLS] and [SEP] tokens (cls_token, sep_token) to pack documents")
    return {"max_seq_length": max_seq_length, "cls_id": tokenizer.cls_token_id, "sep_id": tokenizer.sep_token_id}


def create_packed_examples(
    tokenized: Dataset,
    tokenizer,
    *,
    max_seq_length: int = 128,
    documents_per_pack: int = 1000,
    num_proc: int | None = None,
    load_from_cache_file: bool | None = None,
) -> Dataset:
    """Contiguous windows of text for objectives without a sentence-pair task (MLM alone, replaced-token detection).

    RoBERTa's FULL-SENTENCES format: consecutive documents are joined, each followed by ``[SEP]``, and cut into
    ``[CLS] + (max_seq_length - 2) tokens + [SEP]`` windows, so no position is spent on padding or on a second
    segment (short documents such as reviews fill a window together). Documents are packed in their dataset order,
    ``documents_per_pack`` at a time (the last window of each pack may be shorter); a pack never mixes two corpora
    (``source``), so per-corpus weights still apply. Deterministic: no random choice is made here.
    """
    options = pack_options(tokenizer, max_seq_length)
    features = {"input_ids": List(Value("int32"))}
    if "sentence_word_continuation" in tokenized.column_names:
        features["word_continuation"] = List(Value("int8"))
    parts = [tokenized]
    if "source" in tokenized.column_names:
        features["source"] = Value("string")
        parts = [tokenized.filter(lambda s, name=name: s == name, input_columns="source",
                                  load_from_cache_file=load_from_cache_file)
                 for name in sorted(set(tokenized["source"]))]
    packed = [
        part.map(
            _pack_batch,
            batched=True,
            batch_size=documents_per_pack,
            remove_columns=part.column_names,
            features=Features(features),
            fn_kwargs={"options": options},
            num_proc=num_proc,
            load_from_cache_file=load_from_cache_file,
            desc=f"Packing documents into windows of {max_seq_length} tokens",
        )
        for part in parts
    ]
    return packed[0] if len(packed) == 1 else concatenate_datasets(packed)
