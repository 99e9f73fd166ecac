"""Fine-tune GLM for named-entity recognition (token classification), in the style of transformers' ``run_ner.py``.

``python recipes/finetune_ner.py --model_name_or_path PRETRAINED --dataset_name msra --do_train --do_eval
--do_predict --output_dir OUT`` plus any ``TrainingArguments`` flag.

Data: an embedded Chinese corpus (``--dataset_name msra`` or ``peoples_daily``, see :mod:`glm_hf.ner_data`), the
user's files (``--train_file``, ``--validation_file``, ``--test_file``: CoNLL-style ``token tag`` lines, or JSON lines
with a token list and a tag list per record, columns named by ``--text_column_name`` / ``--label_column_name``), or
a ``datasets`` name or local folder. Tags are BIO names; the label set is ``O`` plus ``B-``/``I-`` of every entity
type in train, and a validation or test file with a type train lacks is refused, naming the file and line (the
model could never predict it, so its score would be silently low). Reading rules, repairs and refusals of the files:
:mod:`glm_hf.ner_data`. A fine-tuned model keeps its tags and classifier when they are BIO names covering the data's;
otherwise ``--do_train`` gives it a new classifier for the data's tags, and scoring alone is refused.

Tokens are words (for Chinese, characters). Each word's first sub-token carries its tag; its other sub-tokens carry
``-100`` (not trained), or with ``--label_all_tokens`` the word's tag (``B-`` as ``I-``), as in ``run_ner.py``. A
word the tokenizer drops (a control character) is read as ``[UNK]``, so every word keeps its tag. A sentence longer
than ``--max_seq_length`` tokens is split into windows of whole words, never cut short; in the training data a cut
falls between two reference entities when the window allows it (validation and test windows are cut by length alone:
their reference tags must not steer what the model sees).

Scores: the local ``seqeval`` metric module, entity level (exact span and type): ``precision``, ``recall``, ``f1``
and token ``accuracy``; with ``--return_entity_level_metrics`` also ``<TYPE>_precision``, ``<TYPE>_recall``,
``<TYPE>_f1`` and ``<TYPE>_number`` (reference entities) per entity type. The final validation and test scores
(``eval_*``, ``test_*``) are the sentences': windows put back together, each word tagged by its first sub-token, so
neither windows nor ``--label_all_tokens`` change them. Evaluations during training (``--eval_strategy``) score the
windows' labelled tokens, as ``run_ner.py`` does.

Outputs in ``--output_dir``: the ``GLMForTokenClassification`` model (``id2label``/``label2id`` in its config, its
code) and tokenizer, ``train_results.json``, ``eval_results.json``, ``test_results.json``, ``all_results.json``,
``trainer_state.json``, and ``predict_results.conll`` (each test token and its predicted tag, a file this recipe
reads back). The folder belongs to one run, as for :mod:`glm_hf.finetuning`.
"""

import logging
import os
import sys
from dataclasses import dataclass, field

import datasets
import numpy as np
from datasets import ClassLabel, DatasetDict
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from .data_files import DEFAULT_ENCODING, check_encoding_name, require_file
from .evaluation import LOSS_CURVE_FILE, load_metric, save_confusion_matrix
from .finetuning import ModelArguments, _is_default_label_map, build_labelled_config_and_model
from .model_sources import from_pretrained
from .ner_data import (
    BIO_TAG,
    EMBEDDED_NER_DATASETS,
    bio_label_names,
    embedded_ner_description,
    load_embedded_ner_dataset,
    ner_features,
    read_ner_file,
    repair_bio,
)
from .run_folder import RecipeTrainingArguments, RunFolder, data_fingerprint, run_identity
from .training_setup import (
    check_distributed_settings,
    check_max_steps,
    checkpoint_to_resume,
    parse_args,
    setup_logging,
    train_and_save,
)

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predict_results.conll"
CONFUSION_FILE = "entity_confusion.png"
NER_FILE_EXTENSIONS = (".conll", ".txt", ".tsv", ".bio", ".iob", ".json", ".jsonl")
SPLIT_FILES = (("train", "train_file"), ("validation", "validation_file"), ("test", "test_file"))


@dataclass
class NerDataArguments:
    """Which data, which columns, and how to tokenize and score them."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": f"One of {list(EMBEDDED_NER_DATASETS)} (embedded Chinese NER corpora), a datasets name, or "
                  "a local folder (datasets.load_dataset or save_to_disk layout)."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the datasets dataset."})
    train_file: str | None = field(
        default=None,
        metadata={"help": "Training data: CoNLL-style 'token tag' lines (.conll, .txt, .tsv, .bio, .iob) or JSON "
                  "lines (.json, .jsonl) with a token list and a BIO tag list per record."},
    )
    validation_file: str | None = field(default=None, metadata={"help": "Validation data, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Test data, same formats."})
    encoding: str = field(default=DEFAULT_ENCODING, metadata={"help": "Encoding of the data files (utf-8, gbk, ...)."})
    text_column_name: str = field(default="tokens", metadata={"help": "Column of the token lists (JSON, datasets)."})
    label_column_name: str = field(default="ner_tags", metadata={"help": "Column of the tag lists (JSON, datasets)."})
    label_all_tokens: bool = field(
        default=False,
        metadata={"help": "Give every sub-token of a word its tag (B- as I-), trained and scored; by default only the "
                  "first sub-token of each word is."},
    )
    return_entity_level_metrics: bool = field(
        default=False, metadata={"help": "Report precision/recall/F1 per entity type, beside the overall scores."}
    )
    max_seq_length: int = field(
        default=128,
        metadata={"help": "Tokens per window ([CLS]/[SEP] included); a longer sentence is split into windows of "
                  "whole words, never cut."},
    )
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "Pad every window to max_seq_length (default: each batch to its longest)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training sentences."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many validation sentences."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Keep only this many test sentences."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for datasets.map."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute the cached tokenized datasets."})

    def __post_init__(self):
        if self.dataset_name is None and all(getattr(self, name) is None for _, name in SPLIT_FILES):
            raise ValueError(f"give the data: --dataset_name ({', '.join(EMBEDDED_NER_DATASETS)}, a datasets name or "
                             "folder) or --train_file/--validation_file/--test_file")
        if self.dataset_name is not None and any(getattr(self, name) is not None for _, name in SPLIT_FILES):
            raise ValueError("give either --dataset_name or --train_file/--validation_file/--test_file, not both")
        for _, name in SPLIT_FILES:
            path = getattr(self, name)
            if path is None:
                continue
            if not path.lower().endswith(NER_FILE_EXTENSIONS):
                raise ValueError(f"--{name} must end with one of {list(NER_FILE_EXTENSIONS)}, got {path!r}")
            require_file(path, f"--{name}")
        check_encoding_name(self.encoding)
        if self.max_seq_length < 3:
            raise ValueError(f"--max_seq_length must be >= 3 ([CLS], one token, [SEP]), got {self.max_seq_length}")
        for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{name} must be a positive integer, got {value!r}")


# --------------------------------------------------------------------------------------------------------- data
def entity_types_of(tags) -> list[str]:
    return sorted({tag[2:] for tag in tags if tag != "O"})


def load_ner_files(data_args: NerDataArguments) -> tuple[DatasetDict, list[str], str]:
    """The user's files as checked splits over the training file's label set (train's entity types)."""
    read = {
        split: (path, read_ner_file(path, f"--{name}", data_args.text_column_name, data_args.label_column_name,
                                    data_args.encoding))
        for split, name in SPLIT_FILES
        if (path := getattr(data_args, name)) is not None
    }
    reference = "train" if "train" in read else next(iter(read))
    label_names = bio_label_names(
        entity_types_of(tag for sentence in read[reference][1] for tag in sentence.tags)
    )
    known = set(label_names)
    for split, (path, sentences) in read.items():
        for sentence in sentences:
            for tag, where in zip(sentence.tags, sentence.where):
                if tag not in known:
                    raise ValueError(
                        f"--{split}_file {path}: {where} has the tag {tag!r}, whose type is not in --{reference}_file "
                        f"(types {entity_types_of(label_names) or 'none'}); the model cannot learn it, so its "
                        "entities would all count as missed -- add examples of it to the training file or drop it"
                    )
    features = ner_features(label_names)
    raw = DatasetDict({
        split: datasets.Dataset.from_dict(
            {"tokens": [s.tokens for s in sentences], "ner_tags": [s.tags for s in sentences]}, features=features
        )
        for split, (_, sentences) in read.items()
    })
    description = "User files: " + ", ".join(f"{split} `{os.path.basename(path)}`" for split, (path, _) in read.items())
    return raw, label_names, description + "."


def load_ner_hub_dataset(data_args: NerDataArguments, model_args) -> tuple[DatasetDict, list[str], str]:
    """A datasets name or folder whose token and tag columns hold BIO names (``ClassLabel`` or strings)."""
    name = data_args.dataset_name
    if os.path.isdir(name) and any(os.path.isfile(os.path.join(name, f)) for f in ("dataset_dict.json", "state.json")):
        raw = datasets.load_from_disk(name)
    else:
        raw = datasets.load_dataset(name, data_args.dataset_config_name, cache_dir=model_args.cache_dir,
                                    token=model_args.token)
    raw = DatasetDict({"train": raw}) if isinstance(raw, datasets.Dataset) else raw
    raw = DatasetDict({split: raw[split] for split in ("train", "validation", "test") if split in raw})
    tokens_column, tags_column = data_args.text_column_name, data_args.label_column_name
    for split, dataset in raw.items():
        missing = [column for column in (tokens_column, tags_column) if column not in dataset.column_names]
        if missing:
            raise ValueError(f"--dataset_name {name}: the {split} split lacks {missing} (its columns are "
                             f"{dataset.column_names}); name them with --text_column_name and --label_column_name")
    inner = raw[next(iter(raw))].features[tags_column].feature
    names_of = (lambda tags: [inner.int2str(t) for t in tags]) if isinstance(inner, ClassLabel) else list
    tag_lists = {split: [names_of(tags) for tags in dataset[tags_column]] for split, dataset in raw.items()}
    all_tags = {tag for lists in tag_lists.values() for tags in lists for tag in tags}
    bad = sorted(str(tag) for tag in all_tags if not isinstance(tag, str) or not BIO_TAG.match(tag))
    if bad:
        raise ValueError(f"--dataset_name {name}: tags {bad[:5]} are not BIO names (O, B-TYPE, I-TYPE)")
    tag_lists = {split: [repair_bio(tags)[0] for tags in lists] for split, lists in tag_lists.items()}
    reference = "train" if "train" in raw else next(iter(raw))
    label_names = bio_label_names(entity_types_of(tag for tags in tag_lists[reference] for tag in tags))
    for split, lists in tag_lists.items():
        for index, tags in enumerate(lists):
            unseen = sorted(set(tags) - set(label_names))
            if unseen:
                raise ValueError(f"--dataset_name {name}: sentence {index} of the {split} split has {unseen}, whose "
                                 f"type is not in its {reference} split (types {entity_types_of(label_names)})")
    features = ner_features(label_names)
    raw = DatasetDict({
        split: datasets.Dataset.from_dict(
            {"tokens": dataset[tokens_column], "ner_tags": tag_lists[split]}, features=features
        )
        for split, dataset in raw.items()
    })
    return raw, label_names, f"The dataset `{name}`."


def load_raw_ner_datasets(data_args: NerDataArguments, model_args) -> tuple[DatasetDict, list[str], str]:
    """The splits (train/validation/test) with ``tokens`` and ``ner_tags``, the label names, and a description."""
    if data_args.dataset_name in EMBEDDED_NER_DATASETS:
        raw = load_embedded_ner_dataset(data_args.dataset_name)
        return raw, raw["train"].features["ner_tags"].feature.names, embedded_ner_description(data_args.dataset_name)
    if data_args.dataset_name is not None:
        return load_ner_hub_dataset(data_args, model_args)
    return load_ner_files(data_args)


def prepare_ner_splits(data_args, model_args, training_args) -> tuple[DatasetDict, list[str], str]:
    raw, label_names, description = load_raw_ner_datasets(data_args, model_args)
    for split, needed, flag in (("train", training_args.do_train, "--do_train"),
                                ("validation", training_args.do_eval, "--do_eval"),
                                ("test", training_args.do_predict, "--do_predict")):
        if needed and split not in raw:
            raise ValueError(f"{flag} needs a {split} split: give --{split}_file or a dataset with one")
    return limit_splits(raw, data_args.max_train_samples, data_args.max_eval_samples,
                        data_args.max_predict_samples), label_names, description


def limit_splits(raw: DatasetDict, train: int | None, validation: int | None, test: int | None) -> DatasetDict:
    """The first ``train`` / ``validation`` / ``test`` sentences of each split (``None``: all)."""
    for split, limit in (("train", train), ("validation", validation), ("test", test)):
        if split in raw and limit is not None:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))
    return raw


# ------------------------------------------------------------------------------------------------ tokenization
def window_bounds(token_counts: list[int], tags: list[str] | None, capacity: int) -> list[tuple[int, int]]:
    """``(first word, end word)`` of each window: whole words, at most ``capacity`` tokens (a single longer word
    fills a window alone). With ``tags``, a cut is moved back to before a word not tagged ``I-`` when the window
    allows, so no reference entity is split between two windows."""
    bounds, start = [], 0
    while start < len(token_counts):
        end, used = start, 0
        while end < len(token_counts) and (end == start or used + token_counts[end] <= capacity):
            used, end = used + token_counts[end], end + 1
        if end < len(token_counts) and tags is not None:
            cut = end
            while cut > start + 1 and tags[cut].startswith("I-"):
                cut -= 1
            end = cut if not tags[cut].startswith("I-") else end
        bounds.append((start, end))
        start = end
    return bounds


def inside_of(tag: str) -> str:
    return f"I-{tag[2:]}" if tag.startswith("B-") else tag


def tokenize_ner_splits(raw: DatasetDict, tokenizer, label2id: dict[str, int], data_args, training_args):
    """Every split as windows: ``input_ids``, ``attention_mask`` (``token_type_ids``), ``labels`` and, for reading
    predictions back, ``sentence_index``, ``first_word`` and ``word_ids`` (-1 for special tokens)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("token classification needs a fast tokenizer (a tokenizer.json, or one transformers can "
                         "convert) to map tokens back to words")
    capacity = data_args.max_seq_length - tokenizer.num_special_tokens_to_add()
    padding = "max_length" if data_args.pad_to_max_length else False

    def preprocess(batch: dict, indices: list[int], names: list[str], cut_between_entities: bool) -> dict:
        word_pieces = tokenizer(batch["tokens"], is_split_into_words=True, add_special_tokens=False)
        windows, origins = [], []
        for row, (words, tag_ids) in enumerate(zip(batch["tokens"], batch["ner_tags"])):
            tags = [names[t] for t in tag_ids]
            counts = [0] * len(words)
            for word in word_pieces.word_ids(row):
                counts[word] += 1
            # A word the tokenizer drops would lose its tag: read it as the unknown token instead.
            words = [word if count else tokenizer.unk_token for word, count in zip(words, counts)]
            cut_tags = tags if cut_between_entities else None
            for first, end in window_bounds([max(c, 1) for c in counts], cut_tags, capacity):
                windows.append(words[first:end])
                origins.append((indices[row], first, tags[first:end]))
        encoded = tokenizer(windows, is_split_into_words=True, truncation=True, max_length=data_args.max_seq_length,
                            padding=padding)
        encoded["labels"], encoded["sentence_index"], encoded["first_word"], encoded["word_ids"] = [], [], [], []
        for row, (sentence, first, tags) in enumerate(origins):
            word_ids, labels, previous = encoded.word_ids(row), [], None
            for word in word_ids:
                if word is None:
                    labels.append(-100)
                elif word != previous:
                    labels.append(label2id[tags[word]])
                else:
                    labels.append(label2id[inside_of(tags[word])] if data_args.label_all_tokens else -100)
                previous = word
            encoded["labels"].append(labels)
            encoded["sentence_index"].append(sentence)
            encoded["first_word"].append(first)
            encoded["word_ids"].append([-1 if word is None else word for word in word_ids])
        return encoded

    tokenized = DatasetDict()
    with training_args.main_process_first(desc="tokenization"):
        for split, dataset in raw.items():
            tokenized[split] = dataset.map(
                preprocess, batched=True, with_indices=True, num_proc=data_args.preprocessing_num_workers,
                # Only training windows may be cut by the reference tags: evaluation must not see the true spans.
                fn_kwargs={"names": dataset.features["ner_tags"].feature.names,
                           "cut_between_entities": split == "train"},
                remove_columns=dataset.column_names, load_from_cache_file=not data_args.overwrite_cache,
                desc=f"Tokenizing {split} into windows",
            )
    return tokenized


# -------------------------------------------------------------------------------------------------------- model
def build_ner_config_and_model(
    model_args: ModelArguments, label_names: list[str], tokenizer, max_seq_length: int, training: bool = True
):
    """The config (``id2label``/``label2id`` set) and the token-classification model, pretrained or random."""

    def set_labels(config) -> bool:
        # A fine-tuned NER model keeps its own tags (and head) when they are BIO names and cover the data's;
        # otherwise training gives it a new head for the data's tags, and scoring alone is refused (its predictions
        # would be read wrong or could never hold the missing tags).
        label2id, kept = {label: i for i, label in enumerate(label_names)}, False
        if not _is_default_label_map(config):
            model_tags = sorted(str(label) for label in config.label2id)
            not_bio = [tag for tag in model_tags if not BIO_TAG.match(tag)]
            if not not_bio and set(label_names) <= set(model_tags):
                label2id, kept = {str(label): int(i) for label, i in config.label2id.items()}, True
            elif not training and not_bio:
                raise ValueError(
                    f"--model_name_or_path {model_args.model_name_or_path} tags {not_bio[:5]}, which are not BIO "
                    "names (O, B-TYPE, I-TYPE); this recipe scores BIO tags only -- give a BIO model, or add "
                    "--do_train to train a new head for the data's tags"
                )
            elif not training:
                raise ValueError(
                    f"--model_name_or_path {model_args.model_name_or_path} tags {model_tags}, but the data has "
                    f"{sorted(set(label_names) - set(model_tags))} too; score it with a model trained on those "
                    "tags, or add --do_train with a --train_file that has them"
                )
        config.label2id, config.id2label = label2id, {i: label for label, i in label2id.items()}
        config.num_labels = len(label2id)
        return kept

    return build_labelled_config_and_model(model_args, AutoModelForTokenClassification, tokenizer, max_seq_length,
                                           set_labels)


# ------------------------------------------------------------------------------------------------------ scoring
def tag_sequences(predictions: np.ndarray, labels: np.ndarray, id2label: dict[int, str]) -> tuple[list, list]:
    """Predicted and true tag names per window, at the positions that carry a label (not -100)."""
    predicted, true = [], []
    for row_predictions, row_labels in zip(predictions, labels):
        kept = row_labels != -100
        predicted.append([id2label[int(i)] for i in row_predictions[kept]])
        true.append([id2label[int(i)] for i in row_labels[kept]])
    return predicted, true


def seqeval_scores(predicted: list[list[str]], true: list[list[str]], entity_level: bool) -> dict:
    """``precision``, ``recall``, ``f1`` (entity level) and token ``accuracy``; per type too with ``entity_level``."""
    results = load_metric("seqeval").compute(predictions=predicted, references=true)
    metrics = {name: results[f"overall_{name}"] for name in ("precision", "recall", "f1", "accuracy")}
    if entity_level:
        for kind, scores in results.items():
            if isinstance(scores, dict):
                metrics.update({f"{kind}_{name}": value for name, value in scores.items()})
    return metrics


def build_ner_compute_metrics(id2label: dict[int, str], entity_level: bool):
    """``compute_metrics`` for ``Trainer``: :func:`seqeval_scores` of the windows (the evaluations during training;
    the final validation and test scores are the sentences', see :func:`finetune_ner`)."""

    def compute_metrics(eval_prediction) -> dict:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        predicted, true = tag_sequences(np.argmax(logits, axis=-1), eval_prediction.label_ids, id2label)
        return seqeval_scores(predicted, true, entity_level)

    return compute_metrics


def sentence_predictions(tokenized, predictions: np.ndarray, id2label: dict[int, str], lengths: list[int]) -> list:
    """The predicted tag of every word of every sentence, put back together from the windows (a word's tag is its
    first sub-token's)."""
    tags = [["O"] * length for length in lengths]
    columns = tokenized.select_columns(["sentence_index", "first_word", "word_ids"])
    for row, example in enumerate(columns):
        sentence, first, previous = tags[example["sentence_index"]], example["first_word"], -1
        for position, word in enumerate(example["word_ids"]):
            if word != -1 and word != previous:
                sentence[first + word] = id2label[int(predictions[row][position])]
            previous = word
    return tags


def write_ner_predictions(path: str, raw_test, tags: list[list[str]]) -> str:
    """CoNLL: each test token and its predicted tag, a blank line after each sentence (atomically)."""
    staging = f"{path}.tmp"
    with open(staging, "w", encoding="utf-8") as f:
        for tokens, predicted in zip(raw_test["tokens"], tags):
            f.writelines(f"{token} {tag}\n" for token, tag in zip(tokens, predicted))
            f.write("\n")
    os.replace(staging, path)
    return path


# --------------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    """The command line: flags (or one .json/.yaml file) -> :func:`finetune_ner`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return finetune_ner(*parse_args((ModelArguments, NerDataArguments, RecipeTrainingArguments), argv))


def ner_run_identity(model_args, data_args, training_args, label_names: list[str]) -> dict:
    operational = (
        "cache_dir", "token", "trust_remote_code", "train_file", "validation_file", "test_file",
        "preprocessing_num_workers", "overwrite_cache", "max_eval_samples", "max_predict_samples",
        "return_entity_level_metrics",
    )
    return run_identity(
        "finetune-ner", {"problem_type": "token_classification"}, label_names, model_args.model_source,
        data_fingerprint({name: getattr(data_args, name) for name in
                          ("train_file", "validation_file", "test_file", "dataset_name")}),
        (model_args, data_args, training_args),
        leave_out=operational,
    )


def entity_type_confusion(predicted: list[list[str]], true: list[list[str]], types: list[str]) -> tuple[list, list]:
    """(reference, prediction) index pairs over ``types + ["none"]``: each reference entity against the predicted
    entity with the same span (``none`` when there is none), then each predicted entity whose span no reference
    entity has (reference ``none``). The diagonal counts entities found with the right type."""
    from .metrics.seqeval.seqeval import get_entities

    index = {kind: i for i, kind in enumerate(types)}
    none = len(types)
    references, predictions = [], []
    for predicted_tags, true_tags in zip(predicted, true):
        found = {(first, last): kind for kind, first, last in get_entities(predicted_tags)}
        gold = {(first, last): kind for kind, first, last in get_entities(true_tags)}
        for span, kind in gold.items():
            references.append(index.get(kind, none))
            predictions.append(index.get(found[span], none) if span in found else none)
        for span, kind in found.items():
            if span not in gold:
                references.append(none)
                predictions.append(index.get(kind, none))
    return references, predictions


def score_split(trainer: Trainer, raw_split, tokenized_split, prefix: str, data_args: NerDataArguments) -> dict:
    """Predict a split and score its sentences (windows put back together, each word by its first sub-token), so
    that neither windows nor --label_all_tokens change the score. The test split's predictions are written too, with
    the confusion of entity types (``entity_confusion.png``). Returns the metrics (per type too with
    --return_entity_level_metrics) and, apart, the entity-level scores per type (for the card)."""
    output = trainer.predict(tokenized_split, metric_key_prefix=prefix)
    id2label = trainer.model.config.id2label
    predicted = sentence_predictions(tokenized_split, np.argmax(output.predictions, axis=-1), id2label,
                                     [len(tokens) for tokens in raw_split["tokens"]])
    names = raw_split.features["ner_tags"].feature.names
    true = [[names[t] for t in tags] for tags in raw_split["ner_tags"]]
    metrics = {key: value for key, value in output.metrics.items() if not key.startswith(f"{prefix}_")
               or key[len(prefix) + 1:] in ("loss", "runtime", "samples_per_second", "steps_per_second")}
    entity_scores = seqeval_scores(predicted, true, entity_level=True)
    shown = entity_scores if data_args.return_entity_level_metrics else seqeval_scores(predicted, true, False)
    metrics.update({f"{prefix}_{name}": value for name, value in shown.items()})
    metrics.update({f"{prefix}_samples": len(raw_split), f"{prefix}_windows": len(tokenized_split)})
    trainer.log_metrics(prefix, metrics)
    trainer.save_metrics(prefix, metrics)
    if prefix == "test" and trainer.is_world_process_zero():
        write_ner_predictions(os.path.join(trainer.args.output_dir, PREDICTIONS_FILE), raw_split, predicted)
        types = entity_types_of(names)
        save_confusion_matrix(*entity_type_confusion(predicted, true, types), [*types, "none"],
                              os.path.join(trainer.args.output_dir, CONFUSION_FILE),
                              title="test entities: reference (rows) vs prediction")
    return metrics, entity_scores


def write_ner_card(trainer: Trainer, model_args, data_args: NerDataArguments, raw, description: str,
                   entity_scores: dict, split: str) -> str:
    """The fine-tuned folder's README.md: entity scores per type, the type confusion and the loss curve."""
    from .cards import write_ner_card as fill_ner_card
    from .plots import save_loss_curve

    output_dir, plots = trainer.args.output_dir, {}
    if any("loss" in entry for entry in trainer.state.log_history):
        save_loss_curve(trainer.state.log_history, os.path.join(output_dir, LOSS_CURVE_FILE), title="fine-tuning loss")
        plots["Training loss"] = LOSS_CURVE_FILE
    if os.path.isfile(os.path.join(output_dir, CONFUSION_FILE)):
        plots["Entity types on the test split: reference (rows) against prediction (columns); none = no entity "
              "with that span"] = CONFUSION_FILE
    names = raw["train"].features["ner_tags"].feature.names
    dataset_name = data_args.dataset_name or os.path.basename(data_args.train_file)
    return fill_ner_card(
        output_dir, base_model=model_args.model_name_or_path, dataset_name=dataset_name,
        dataset_description=description, entity_types=entity_types_of(names), metrics=entity_scores,
        training_args={**trainer.args.to_dict(), "max_seq_length": data_args.max_seq_length,
                       "label_all_tokens": data_args.label_all_tokens, "train_sentences": len(raw["train"])},
        eval_split=split, eval_size=len(raw[split]), plots=plots, max_length=data_args.max_seq_length,
        repo_id=trainer.args.hub_model_id,
    )


def finetune_ner(model_args: ModelArguments, data_args: NerDataArguments, training_args: TrainingArguments) -> dict:
    """Fine-tune / evaluate / predict; returns every metric (as in ``all_results.json``)."""
    setup_logging(training_args, logger)
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError("nothing to do: give at least one of --do_train, --do_eval, --do_predict")
    check_max_steps(training_args)
    check_distributed_settings(training_args, logger)
    set_seed(training_args.seed)
    # Data, tokenizer and model are read and checked before the output folder is touched: bad input leaves nothing.
    raw, label_names, description = prepare_ner_splits(data_args, model_args, training_args)
    flag, source = model_args.tokenizer_source
    tokenizer = from_pretrained(AutoTokenizer, flag, source, cache_dir=model_args.cache_dir, token=model_args.token,
                                trust_remote_code=model_args.trust_remote_code)
    config, model = build_ner_config_and_model(model_args, label_names, tokenizer, data_args.max_seq_length,
                                               training=training_args.do_train)
    tokenized = tokenize_ner_splits(raw, tokenizer, config.label2id, data_args, training_args)
    collator = default_data_collator if data_args.pad_to_max_length else DataCollatorForTokenClassification(
        tokenizer, pad_to_multiple_of=8 if (training_args.fp16 or training_args.bf16) else None
    )
    with RunFolder(training_args, ner_run_identity(model_args, data_args, training_args, label_names)) as run_folder:
        resume_from_checkpoint = checkpoint_to_resume(training_args, logger)
        trainer = Trainer(
            model=model, args=training_args, processing_class=tokenizer, data_collator=collator,
            train_dataset=tokenized.get("train") if training_args.do_train else None,
            eval_dataset=tokenized.get("validation") if training_args.do_eval else None,
            compute_metrics=build_ner_compute_metrics(config.id2label, data_args.return_entity_level_metrics),
            callbacks=[run_folder.callback],
        )
        all_metrics = train_and_save(trainer, resume_from_checkpoint, train_samples=len(raw["train"]),
                                     train_windows=len(tokenized["train"])) if training_args.do_train else {}
        card_scores = None
        for split, prefix, enabled in (("validation", "eval", training_args.do_eval),
                                       ("test", "test", training_args.do_predict)):
            if enabled:
                metrics, entity_scores = score_split(trainer, raw[split], tokenized[split], prefix, data_args)
                all_metrics.update(metrics)
                card_scores = (entity_scores, split)
        if training_args.do_train and card_scores is not None and trainer.is_world_process_zero():
            write_ner_card(trainer, model_args, data_args, raw, description, *card_scores)
    return all_metrics


if __name__ == "__main__":
    main()
