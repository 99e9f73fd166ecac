"""Pretraining of GLM (from scratch or continued), in the style of transformers' ``run_mlm.py``: BERT's MLM + NSP
(the reference), MLM + sentence-order prediction, MLM alone on packed text, or ELECTRA's replaced-token detection
(``--objective``), with an optional masking-rate schedule and per-corpus sampling weights.

``python recipes/pretrain.py --tokenizer_name TOK --dataset_name embedded --model_size mini --max_steps 1000
--output_dir OUT`` plus any ``TrainingArguments`` flag. The same command runs on one process, under
``accelerate launch --multi_gpu --num_processes N`` or ``torchrun --nproc_per_node N`` (add ``--use_cpu`` for
CPU/gloo), with ``--bf16``/``--fp16``, and ``--resume_from_checkpoint``.

Pipeline: documents (:mod:`glm_hf.corpora`) -> tokens per sentence -> sentence pairs (NSP/SOP) or packed windows
(:mod:`glm_hf.pretraining_data`, ``datasets.map``, cached) -> optional per-corpus weighting -> masking collator
(:mod:`glm_hf.collator`) -> Trainer. The evaluation set is masked once, so every evaluation scores the same positions;
it reports MLM accuracy/perplexity, NSP/SOP accuracy, the discriminator's accuracy (RTD), and the unigram/bigram
cloze baselines on the same masked positions (:mod:`glm_hf.cloze`), through the local ``evaluate`` modules.

Each loss term of a step is averaged over the items of the step's whole batch (all processes, all
gradient-accumulation micro-batches): MLM over masked tokens, NSP/SOP over pairs, RTD over real tokens
(:class:`PreTrainingTrainer`), so N processes x B examples train exactly like 1 process x N*B examples.

The output folder holds the model (with its code, loadable with ``AutoModelForPreTraining`` or any other head),
the tokenizer, ``train_results.json`` / ``eval_results.json`` / ``all_results.json``, ``loss_curve.png`` and a
model card (``README.md``). It belongs to one run (:mod:`glm_hf.run_folder`): the same command again resumes its
newest complete checkpoint, another run is refused unless ``--overwrite_output_dir``.
"""

import itertools
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

import numpy as np
import torch
import transformers
from accelerate.data_loader import prepare_data_loader
from datasets import Dataset
from torch.nn import functional as F
from torch.utils.data import DataLoader
from transformers import (
    AutoConfig,
    AutoModelForPreTraining,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
    set_seed,
)

from .cloze import NgramCloze
from .collator import (
    DataCollatorForPreTraining,
    MaskingEpochCallback,
    MaskingRateCallback,
    mask_dataset,
    unigram_distribution,
)
from .configuration_glm import PRETRAINING_OBJECTIVES, GLMConfig
from .corpora import EMBEDDED, EMBEDDED_SOURCES, CorpusArguments, corpus_stats, load_document_file, load_documents
from .data_files import refuse_no_rows
from .evaluation import LOSS_CURVE_FILE, METRICS_DIR
from .model_sources import from_pretrained
from .plots import save_loss_curve
from .pretraining_data import (
    create_nsp_examples,
    create_packed_examples,
    nsp_example_stats,
    pack_options,
    pair_options,
    tokenize_documents,
)
from .run_folder import RecipeTrainingArguments, RunFolder, data_fingerprint, run_identity
from .streaming import (
    PreTrainingStream,
    hold_out_documents,
    packed_examples,
    pair_examples,
    stream_documents,
    training_stream,
)
from .training_setup import (
    BaseModelArguments,
    apply_config_overrides,
    check_distributed_settings,
    check_max_steps,
    checkpoint_to_resume,
    freeze_word_embeddings,
    is_args_file,
    parse_args,
    setup_logging,
    train_and_save,
)

logger = logging.getLogger(__name__)

TRAINING_SAMPLE = 20000  # training examples the n-gram cloze lines are fitted on


@dataclass
class ModelArguments(BaseModelArguments):
    """Which model to pretrain: a named size or a config (from scratch), or a checkpoint (continued pretraining: a
    GLM folder, e.g. a converted BERT). Its fields and their checks are those of :class:`BaseModelArguments`."""

    # A checkpoint is pretrained further as it is: its config is not changed, except for the settings of the heads
    # the objective adds (continued pretraining of a converted BERT with ELECTRA's generator, say).
    reconfigures_checkpoint: ClassVar[bool] = False
    checkpoint_overridable: ClassVar[tuple[str, ...]] = (
        "generator_num_hidden_layers", "rtd_loss_weight", "generator_sampling_temperature", "hidden_dropout_prob",
        "attention_probs_dropout_prob",
    )


# The objectives: what the examples are, which head learns, what the loss is (GLMConfig.pretraining_objective).
# Described per name of GLMConfig's PRETRAINING_OBJECTIVES (the one list of them; checked below).
OBJECTIVES = {
    "mlm_nsp": "BERT's masked LM + next sentence prediction on sentence pairs (the reference)",
    "mlm_sop": "masked LM + ALBERT's sentence-order prediction on sentence pairs",
    "mlm": "masked LM alone on contiguous packed text (RoBERTa)",
    "rtd": "ELECTRA's replaced-token detection on packed text: a small generator (config generator_num_hidden_layers"
    " > 0) or the corpus's unigram distribution fills the masked positions, the discriminator tells every token "
    "original or replaced",
}
assert tuple(OBJECTIVES) == PRETRAINING_OBJECTIVES, "describe every objective of GLMConfig, in its order"
SENTENCE_TASK_OF = {"mlm_nsp": "nsp", "mlm_sop": "sop"}


def parse_corpus_weights(spec: str | None) -> dict[str, float] | None:
    """``"reviews=3,peoples_daily=1"`` -> ``{"reviews": 3.0, "peoples_daily": 1.0}`` (checked: positive numbers)."""
    if not spec:
        return None
    weights = {}
    for item in spec.split(","):
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"corpus_weights must look like 'reviews=3,peoples_daily=1', got {spec!r}") from None
        if not weights[name.strip()] >= 0 or not name.strip():
            raise ValueError(f"corpus_weights: each weight must be a number >= 0 after a corpus name, got {item!r}")
    if not any(weights.values()):
        raise ValueError(f"corpus_weights: at least one weight must be > 0, got {spec!r}")
    return weights


@dataclass
class DataTrainingArguments(CorpusArguments):
    """What to pretrain on (the corpus flags and checks of :class:`~glm_hf.corpora.CorpusArguments`), with which
    objective, and how to make its examples."""

    validation_file: str | None = field(default=None, metadata={"help": "Validation data, same formats."})
    validation_split_percentage: float = field(
        default=5, metadata={"help": "Without a validation set: percent of the documents held out for it."}
    )
    max_seq_length: int = field(default=128, metadata={"help": "Length of a sentence pair, [CLS] and [SEP]s included."})
    short_seq_prob: float = field(
        default=0.1, metadata={"help": "Probability that a document's pairs aim at a random shorter length."}
    )
    nsp_probability: float = field(
        default=0.5, metadata={"help": "Probability that segment B is a random segment (label 1)."}
    )
    objective: str = field(
        default="mlm_nsp",
        metadata={"help": f"Pretraining objective, one of {list(OBJECTIVES)}: " + "; ".join(
            f"{name}: {description}" for name, description in OBJECTIVES.items()), "choices": list(OBJECTIVES)},
    )
    corpus_weights: str | None = field(
        default=None,
        metadata={"help": "Sampling weight of each corpus (the 'source' of a document), e.g. "
                  "'reviews=3,peoples_daily=1' for the embedded corpus; unset: every example once per epoch."},
    )
    mlm_probability: float = field(
        default=0.15, metadata={"help": "Share of the tokens to predict (rtd: to replace); at step 0 with a schedule."}
    )
    mlm_probability_end: float | None = field(
        default=None, metadata={"help": "Linear masking-rate schedule: the rate at the last step (e.g. 0.4 -> 0.15)."}
    )
    mask_replace_prob: float = field(default=0.8, metadata={"help": "Of the tokens to predict: share set to [MASK]."})
    random_replace_prob: float = field(
        default=0.1, metadata={"help": "Of the tokens to predict: share set to a random token (the rest: unchanged)."}
    )
    whole_word_mask: bool = field(
        default=False, metadata={"help": "Mask whole Chinese words (jieba segmentation) instead of single tokens."}
    )
    pad_to_multiple_of: int | None = field(
        default=None, metadata={"help": "Pad batches to a multiple of this (e.g. 8 for tensor cores)."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for datasets.map."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute the cached preprocessed datasets."})
    max_train_documents: int | None = field(
        default=None,
        metadata={"help": "Use only this many training documents (cut before tokenizing: fast quick runs)."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training pairs."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many evaluation pairs."})
    shuffle_buffer_size: int = field(
        default=10000, metadata={"help": "--streaming: documents are shuffled in a buffer of this many (seeded)."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        for name in ("mlm_probability", "mlm_probability_end"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        self.corpus_weight_map = parse_corpus_weights(self.corpus_weights)
        if not 5 <= self.max_seq_length <= 4096:
            raise ValueError(f"max_seq_length must be in [5, 4096], got {self.max_seq_length}")
        limits = ("max_train_documents", "max_train_samples", "max_eval_samples")
        for name, value in ((name, getattr(self, name)) for name in limits):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if self.streaming:
            check_streaming_arguments(self)


# What --streaming cannot do, by flag: the reason and what to do instead.
NOT_STREAMABLE = {
    "corpus_weights": "per-corpus weights need every corpus's examples up front; drop --corpus_weights, or weigh the "
    "corpora in the shards themselves",
    "max_train_samples": "a stream has no length to cut; use --max_steps (or --max_train_documents)",
    "preprocessing_num_workers": "a stream is tokenized as it is read, in the training process",
}


def check_streaming_arguments(data_args: "DataTrainingArguments") -> None:
    """The data flags --streaming cannot honour, refused by name (--max_steps is checked in configure_run)."""
    for name, reason in NOT_STREAMABLE.items():
        if getattr(data_args, name) is not None:
            raise ValueError(f"--{name} cannot be used with --streaming: {reason}")
    if data_args.shuffle_buffer_size < 1:
        raise ValueError(f"--shuffle_buffer_size must be a positive integer, got {data_args.shuffle_buffer_size}")


# ---------------------------------------------------------------------------------------------------------------
# Loss normalization over the whole optimizer step
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class StepItemCounts:
    """How many masked tokens, sentence pairs and real tokens one optimizer step has (over all processes when
    ``global_``): the denominators of the MLM, sentence-task and replaced-token-detection losses."""

    masked_tokens: torch.Tensor
    pairs: torch.Tensor
    tokens: torch.Tensor
    global_: bool


def _masked_lm_logits(prediction_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(num_masked, vocab)`` logits in the order of ``labels[labels != -100]``, from sparse or dense logits."""
    if prediction_logits.dim() == 3:  # dense (batch, seq, vocab): e.g. sparse_prediction=False or a BERT model
        return prediction_logits[labels != -100]
    return prediction_logits


def summed_pretraining_losses(outputs, labels: torch.Tensor, pair_labels: torch.Tensor | None) -> dict:
    """Each objective term summed (not averaged) over its items, so that a step can divide by the step's counts."""
    sums = {}
    if outputs.get("prediction_logits") is not None:  # MLM, or the RTD generator's MLM
        mlm_logits = _masked_lm_logits(outputs["prediction_logits"], labels)
        sums["mlm"] = F.cross_entropy(mlm_logits.float(), labels[labels != -100], reduction="sum")
    if pair_labels is not None:
        sums["pairs"] = F.cross_entropy(
            outputs["seq_relationship_logits"].float(), pair_labels.view(-1), reduction="sum"
        )
    if outputs.get("discriminator_logits") is not None:
        targets = outputs["discriminator_labels"]
        real = targets != -100
        sums["rtd"] = F.binary_cross_entropy_with_logits(
            outputs["discriminator_logits"][real].float(), targets[real].float(), reduction="sum"
        )
    return sums


class PreTrainingTrainer(Trainer):
    """Trainer whose training loss is normalized over the whole batch of an optimizer step.

    The model's own loss is a mean over *its* batch: with several processes or gradient accumulation steps, the
    average of those means weighs a masked token of a batch with few masks more than one of a batch with many. Here
    each term is ``sum over its items / items of the step`` -- MLM over masked tokens, NSP/SOP over pairs,
    replaced-token detection over real tokens (times ``config.rtd_loss_weight``) -- counted over all micro-batches
    and (with ``average_tokens_across_devices``, the default) all processes, the same thing Trainer does with
    ``num_items_in_batch`` for single-loss models, so the gradient is exactly that of one big batch. Evaluation keeps
    the model's own loss.
    """

    loss_is_scaled_for_ga = True

    def get_train_dataloader(self):
        if not isinstance(self.train_dataset, PreTrainingStream):
            return super().get_train_dataloader()
        # A stream is already this process's share (split_dataset_by_node over the documents). Trainer's
        # accelerator.prepare would split it again: for an IterableDataset accelerate dispatches by default
        # (dispatch_batches: process 0 reads N batches of its own share and sends the others slices, so the other
        # shares are never read), and without dispatching it wraps it in IterableDatasetShard (each process keeps
        # 1/N of each of its batches). So it is prepared as one process's loader: batches are only moved to the
        # device, and skip_first_batches still fast-forwards it on resume.
        loader = DataLoader(
            self.train_dataset,
            batch_size=self._train_batch_size,
            collate_fn=self.data_collator,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return prepare_data_loader(
            loader, device=self.args.device, num_processes=1, process_index=0, put_on_device=True,
            dispatch_batches=False,
        )

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not batch_samples or not all("labels" in b for b in batch_samples):
            raise ValueError("pretraining batches need 'labels' (DataCollatorForPreTraining)")
        masked_tokens = sum(int((batch["labels"] != -100).sum()) for batch in batch_samples)
        pairs = sum(len(batch["next_sentence_label"]) for batch in batch_samples if "next_sentence_label" in batch)
        tokens = sum(int(batch["attention_mask"].sum()) for batch in batch_samples)
        counts = torch.tensor([masked_tokens, pairs, tokens], dtype=torch.long, device=device)
        global_ = self.args.average_tokens_across_devices and self.args.world_size > 1
        if global_:
            counts = self.accelerator.gather(counts).view(-1, 3).sum(0)
        return batch_samples, StepItemCounts(counts[0], counts[1], counts[2], global_)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not isinstance(num_items_in_batch, StepItemCounts):  # evaluation: the model's loss
            return super().compute_loss(model, inputs, return_outputs=return_outputs)
        outputs = model(**inputs)
        sums = summed_pretraining_losses(outputs, inputs["labels"], inputs.get("next_sentence_label"))
        # clamp: a step without items of a kind (impossible with the collators) must not divide by zero
        loss = 0.0
        if "mlm" in sums:
            loss = loss + sums["mlm"] / num_items_in_batch.masked_tokens.clamp(min=1)
        if "pairs" in sums:
            loss = loss + sums["pairs"] / num_items_in_batch.pairs.clamp(min=1)
        if "rtd" in sums:
            weight = self.accelerator.unwrap_model(model).config.rtd_loss_weight
            loss = loss + weight * sums["rtd"] / num_items_in_batch.tokens.clamp(min=1)
        if num_items_in_batch.global_:
            # DDP averages gradients over processes; the global normalizers already did, so undo the average.
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss


# ---------------------------------------------------------------------------------------------------------------
# Evaluation metrics
# ---------------------------------------------------------------------------------------------------------------


def pretraining_output_fields(objective: str, has_generator: bool = False) -> tuple[str, ...]:
    """The tensors a GLMForPreTrainingOutput holds for ``objective``, in field order (what Trainer collects)."""
    fields = ("prediction_logits",) if objective != "rtd" or has_generator else ()
    if objective in SENTENCE_TASK_OF:
        fields += ("seq_relationship_logits",)
    if objective == "rtd":
        fields += ("discriminator_logits", "discriminator_labels")
    return fields


def preprocess_logits_for_metrics(
    logits, labels, fields: tuple[str, ...] = ("prediction_logits", "seq_relationship_logits")
):
    """Reduce the model outputs to what the metrics need, so evaluation never keeps ``(N, vocab)`` tensors.

    ``logits`` are the output tensors Trainer collected, named by ``fields`` (see :func:`pretraining_output_fields`;
    bind them with ``functools.partial``). Returns, laid out like ``labels`` (-100 / 0 elsewhere, so that they line
    up after Trainer pads and concatenates the batches): the predicted id and the cross-entropy of each masked
    position; the predicted label of each pair (-100 without a sentence task); the discriminator's call (1 replaced)
    and its target at each real token (-100 elsewhere, and everywhere without RTD).
    """
    outputs = dict(zip(fields, logits if isinstance(logits, (tuple, list)) else (logits,)))
    mlm_labels = labels[0] if isinstance(labels, (tuple, list)) else labels
    batch_size = mlm_labels.shape[0]
    prediction_logits = outputs.get("prediction_logits")
    seq_relationship_logits = outputs.get("seq_relationship_logits")
    discriminator_logits = outputs.get("discriminator_logits")
    discriminator_labels = outputs.get("discriminator_labels")
    predictions = torch.full_like(mlm_labels, -100)
    losses = torch.zeros(mlm_labels.shape, dtype=torch.float32, device=mlm_labels.device)
    selected = mlm_labels != -100
    if prediction_logits is not None:
        mlm_logits = _masked_lm_logits(prediction_logits, mlm_labels).float()
        predictions[selected] = mlm_logits.argmax(-1)
        losses[selected] = F.cross_entropy(mlm_logits, mlm_labels[selected], reduction="none")
    pair_predictions = torch.full((batch_size,), -100, dtype=torch.long, device=mlm_labels.device)
    if seq_relationship_logits is not None:
        pair_predictions = seq_relationship_logits.argmax(-1)
    rtd_predictions = torch.full_like(mlm_labels, -100)
    rtd_labels = torch.full_like(mlm_labels, -100)
    if discriminator_logits is not None:
        real = discriminator_labels != -100
        rtd_predictions[real] = (discriminator_logits[real] > 0).long()
        rtd_labels[real] = discriminator_labels[real]
    return predictions, losses, pair_predictions, rtd_predictions, rtd_labels


class PreTrainingMetrics:
    """``compute_metrics`` for Trainer, per objective, via the local evaluate modules: MLM accuracy / loss /
    perplexity (for RTD: of the generator), NSP or SOP accuracy, and the discriminator's accuracy and F1 on the
    replaced tokens. ``cloze_baseline`` (see :class:`glm_hf.cloze.NgramCloze`) adds what unigram and bigram models
    score on the same masked positions, so a reader sees whether the model has left the n-gram stage."""

    def __init__(self, objective: str = "mlm_nsp", cloze_baseline: dict | None = None):
        import evaluate

        load = lambda name: evaluate.load(os.path.join(METRICS_DIR, name), keep_in_memory=True)  # noqa: E731
        # keep_in_memory: no cache files, so that processes of a distributed run never contend for them
        self.objective, self.cloze_baseline = objective, cloze_baseline or {}
        self.masked_lm = load("masked_lm")
        self.sentence_pairs = load("next_sentence_prediction") if objective in SENTENCE_TASK_OF else None
        self.accuracy, self.f1 = (load("accuracy"), load("f1")) if objective == "rtd" else (None, None)

    def __call__(self, eval_prediction) -> dict:
        predictions, token_losses, pair_predictions, rtd_predictions, rtd_labels = eval_prediction.predictions
        label_ids = eval_prediction.label_ids
        labels, pair_labels = label_ids if isinstance(label_ids, (tuple, list)) else (label_ids, None)
        metrics = dict(self.cloze_baseline)
        masked = (labels != -100) & (predictions != -100)
        if masked.any():
            mlm = self.masked_lm.compute(
                predictions=predictions[masked], references=labels[masked], losses=token_losses[masked]
            )
            prefix = "generator_" if self.objective == "rtd" else ""
            metrics.update({f"{prefix}mlm_accuracy": mlm["accuracy"], f"{prefix}mlm_loss": mlm["loss"],
                            f"{prefix}perplexity": mlm["perplexity"]})
        if self.sentence_pairs is not None and pair_labels is not None:
            task = SENTENCE_TASK_OF[self.objective]
            pairs = self.sentence_pairs.compute(
                predictions=pair_predictions.reshape(-1), references=pair_labels.reshape(-1)
            )
            metrics[f"{task}_accuracy"] = pairs["accuracy"]
            metrics[f"{task}_predicted_label_1_rate"] = pairs["predicted_random_rate"]
        if self.accuracy is not None:
            real = rtd_labels != -100
            references, calls = rtd_labels[real], rtd_predictions[real]
            metrics["rtd_accuracy"] = self.accuracy.compute(predictions=calls, references=references)["accuracy"]
            metrics["rtd_replaced_f1"] = self.f1.compute(
                predictions=calls, references=references, average="binary", pos_label=1
            )["f1"]
            metrics["rtd_replaced_rate"] = float(references.mean())
        return metrics


# ---------------------------------------------------------------------------------------------------------------
# Data and model
# ---------------------------------------------------------------------------------------------------------------


def build_datasets(data_args: DataTrainingArguments, model_args: ModelArguments, training_args, tokenizer, collator):
    """NSP pairs for training and (masked once) for evaluation, plus statistics for the model card. With
    ``--streaming`` the training examples are a :class:`~glm_hf.streaming.PreTrainingStream`."""
    if data_args.streaming:
        return build_streaming_datasets(data_args, training_args, tokenizer, collator)
    num_proc = data_args.preprocessing_num_workers
    with training_args.main_process_first(desc="loading documents"):
        documents = load_documents(
            dataset_name=data_args.dataset_name,
            dataset_config_name=data_args.dataset_config_name,
            train_file=data_args.train_file,
            validation_file=data_args.validation_file,
            text_column_name=data_args.text_column_name,
            document_separator=data_args.document_separator,
            validation_split_percentage=data_args.validation_split_percentage,
            include_msra=data_args.include_msra,
            seed=training_args.seed,
            cache_dir=model_args.cache_dir,
            num_proc=num_proc,
            encoding=data_args.encoding,
        )
    if data_args.max_train_documents is not None:
        kept = min(data_args.max_train_documents, len(documents["train"]))
        documents["train"] = documents["train"].select(range(kept))
    with training_args.main_process_first(desc="tokenizing documents and creating sentence pairs"):
        examples = {
            split: split_examples(split, split_documents, data_args, tokenizer, training_args.seed)
            for split, split_documents in documents.items()
        }
    train_dataset = examples["train"]
    if data_args.corpus_weight_map is not None:
        train_dataset = weigh_corpora(train_dataset, data_args.corpus_weight_map, seed=training_args.seed)
    if data_args.max_train_samples is not None:
        train_dataset = train_dataset.select(range(min(data_args.max_train_samples, len(train_dataset))))
    eval_dataset = examples.get("validation")
    if eval_dataset is not None and data_args.corpus_weight_map is not None and "source" in eval_dataset.column_names:
        # Evaluate on what is trained on: a corpus left out of training (weight 0) is left out of the metrics too,
        # or an MLM accuracy on news would stand for a model trained on reviews.
        trained = {name for name, weight in data_args.corpus_weight_map.items() if weight > 0}
        eval_dataset = eval_dataset.filter(lambda source: source in trained, input_columns="source")
    eval_dataset = evaluation_set(eval_dataset, data_args, training_args, collator)

    stats = {
        "train_documents": corpus_stats(documents["train"]),
        "train_examples": nsp_example_stats(train_dataset),
    }
    if eval_dataset is not None:
        stats["validation_documents"] = corpus_stats(documents["validation"])
        stats["validation_examples"] = nsp_example_stats(eval_dataset)
    return train_dataset, eval_dataset, stats


def split_examples(split: str, documents, data_args: DataTrainingArguments, tokenizer, seed: int):
    """The examples of the objective (sentence pairs or packed windows) of one split's documents, refused when none."""
    num_proc = data_args.preprocessing_num_workers
    load_from_cache = None if not data_args.overwrite_cache else False
    tokenized = tokenize_documents(
        documents,
        tokenizer,
        whole_word_mask=data_args.whole_word_mask,
        num_proc=num_proc,
        load_from_cache_file=load_from_cache,
    )
    if data_args.objective in SENTENCE_TASK_OF:
        examples = create_nsp_examples(
            tokenized,
            tokenizer,
            max_seq_length=data_args.max_seq_length,
            short_seq_prob=data_args.short_seq_prob,
            nsp_probability=data_args.nsp_probability,
            seed=seed,
            num_proc=num_proc,
            load_from_cache_file=load_from_cache,
            sentence_task=SENTENCE_TASK_OF[data_args.objective],
        )
    else:
        examples = create_packed_examples(
            tokenized,
            tokenizer,
            max_seq_length=data_args.max_seq_length,
            num_proc=num_proc,
            load_from_cache_file=load_from_cache,
        )
    what = "training examples" if split == "train" else "evaluation examples"
    reason = _no_examples_reason(data_args, len(tokenized))
    refuse_no_rows(len(examples), _data_origin(split, data_args), what, reason)
    return examples


def evaluation_set(eval_dataset, data_args: DataTrainingArguments, training_args, collator):
    """The evaluation examples cut to --max_eval_samples and masked once (``None`` stays ``None``)."""
    if eval_dataset is None:
        return None
    if data_args.max_eval_samples is not None:
        eval_dataset = eval_dataset.select(range(min(data_args.max_eval_samples, len(eval_dataset))))
    with training_args.main_process_first(desc="masking the evaluation set"):
        return mask_dataset(eval_dataset, collator, num_proc=data_args.preprocessing_num_workers)


def build_streaming_datasets(data_args: DataTrainingArguments, training_args, tokenizer, collator):
    """``--streaming``: this process's :class:`~glm_hf.streaming.PreTrainingStream`, the evaluation examples (from
    --validation_file or the corpus's first --streaming_eval_documents documents, in memory: Trainer's evaluation
    and metrics work on them as on the in-memory path's), and statistics of the stream's first examples."""
    # The first process first: the embedded corpus and a --validation_file are cached by datasets on first read.
    with training_args.main_process_first(desc="loading documents"):
        documents = stream_documents(data_args)
        if data_args.validation_file is not None:
            eval_documents = load_document_file(
                data_args.validation_file, data_args.text_column_name, data_args.document_separator,
                flag="--validation_file", encoding=data_args.encoding,
            )
        else:
            eval_documents, documents = hold_out_documents(documents, data_args.streaming_eval_documents)
    if data_args.max_train_documents is not None:  # datasets takes them across the processes' shares
        documents = documents.take(data_args.max_train_documents)
    origin = _data_origin("train", data_args)
    if data_args.objective in SENTENCE_TASK_OF:
        objective = pair_examples, pair_options(
            tokenizer, max_seq_length=data_args.max_seq_length, short_seq_prob=data_args.short_seq_prob,
            nsp_probability=data_args.nsp_probability, seed=training_args.seed,
            sentence_task=SENTENCE_TASK_OF[data_args.objective],
        )
    else:
        objective = packed_examples, pack_options(tokenizer, data_args.max_seq_length)
    stream = training_stream(
        documents, tokenizer, objective_options=objective, whole_word_mask=data_args.whole_word_mask,
        seed=training_args.seed, shuffle_buffer_size=data_args.shuffle_buffer_size,
        rank=training_args.process_index, world_size=training_args.world_size, origin=origin,
    )
    stats = {"train_documents": {"streamed": origin, "sources": _streamed_sources(data_args)},
             "train_examples": stream_sample_stats(stream)}
    reason = "this process's documents have no token the tokenizer keeps" + (
        f" or are all a single token (--objective {data_args.objective} pairs a document with its continuation)"
        if data_args.objective in SENTENCE_TASK_OF else "")
    if data_args.validation_file is None and data_args.streaming_eval_documents:
        reason += (f", or none are left after the first {data_args.streaming_eval_documents} held out for "
                   "evaluation (--streaming_eval_documents)")
    refuse_no_rows(stats["train_examples"]["examples_in_sample"], origin, "training examples", reason)
    eval_dataset = None
    if eval_documents is not None:
        eval_examples = split_examples("validation", eval_documents, data_args, tokenizer, training_args.seed)
        eval_dataset = evaluation_set(eval_examples, data_args, training_args, collator)
        stats["validation_documents"] = corpus_stats(eval_documents)
        stats["validation_examples"] = nsp_example_stats(eval_dataset)
    return stream, eval_dataset, stats


def _streamed_sources(data_args: DataTrainingArguments) -> dict:
    if data_args.dataset_name != EMBEDDED:
        return {}
    return {name: "streamed" for name in EMBEDDED_SOURCES if name != "msra" or data_args.include_msra}


def stream_sample_stats(stream: PreTrainingStream, limit: int = TRAINING_SAMPLE) -> dict:
    """Keeps the token ids of the first ``limit`` examples of the stream's first pass on it (``sample_input_ids``: what
    the n-gram cloze lines and the unigram generator are fitted on) and returns their statistics."""
    ids, labels = [], []
    for example in itertools.islice(stream.examples(0), limit):
        ids.append(np.asarray(example["input_ids"], dtype=np.int32))
        if "next_sentence_label" in example:
            labels.append(example["next_sentence_label"])
    stream.sample_input_ids = ids
    tokens = sum(len(example) for example in ids)
    stats = {"examples_in_sample": len(ids), "mean_length": tokens / max(1, len(ids)),
             "tokens_in_sample": tokens}
    if labels:
        stats["random_next_rate"] = sum(labels) / len(labels)
    return stats


def training_token_ids(train_dataset, limit: int | None = TRAINING_SAMPLE) -> list:
    """The token ids of (up to ``limit``) training examples; of a stream, its first ones (see
    :func:`stream_sample_stats`)."""
    if isinstance(train_dataset, PreTrainingStream):
        return train_dataset.sample_input_ids[:limit]
    count = len(train_dataset) if limit is None else min(limit, len(train_dataset))
    return train_dataset.select(range(count))["input_ids"]


def _data_origin(split: str, data_args: DataTrainingArguments) -> str:
    """The flag and file (or dataset) a split of documents comes from, for messages."""
    if split == "validation" and data_args.validation_file is not None:
        return f"--validation_file {data_args.validation_file}"
    origin = (
        f"--train_file {data_args.train_file}" if data_args.train_file else f"--dataset_name {data_args.dataset_name}"
    )
    return origin if split == "train" else f"the validation share of {origin}"


def _no_examples_reason(data_args: DataTrainingArguments, documents_with_tokens: int) -> str:
    """Why no example came out of the documents: none had tokens, or (sentence pairs) none had two."""
    if documents_with_tokens == 0:
        return "no document has a token the tokenizer keeps; check the file's text and the tokenizer"
    return (
        f"{documents_with_tokens} document(s) have tokens, but --objective {data_args.objective} pairs a document's "
        "first part with its continuation and every document is a single token; give longer documents (one per "
        "line, or blank-line separated) or --objective mlm"
    )


def weigh_corpora(examples, weights: dict[str, float], seed: int):
    """The examples of each corpus (column ``source``) sampled in proportion to ``weights`` (``datasets``'
    ``interleave_datasets``, until every weighted corpus has been seen once); a corpus weighted 0 is left out."""
    from datasets import interleave_datasets

    present = sorted(set(examples["source"])) if "source" in examples.column_names else []
    if set(weights) != set(present):
        raise ValueError(
            "corpus_weights must give a weight to each corpus of the training data, "
            f"{present or 'none (no source column)'}; "
            f"got {sorted(weights)}"
        )
    kept = [name for name in present if weights[name] > 0]
    parts = [examples.filter(lambda source, name=name: source == name, input_columns="source") for name in kept]
    total = sum(weights[name] for name in kept)
    return interleave_datasets(
        parts, probabilities=[weights[name] / total for name in kept], seed=seed, stopping_strategy="all_exhausted"
    )


def build_model(model_args: ModelArguments, data_args: DataTrainingArguments, tokenizer):
    """The checkpoint of --model_name_or_path, or a new model of --model_size / --config_name sized to the tokenizer."""
    # The heads the objective trains; sparse prediction: the MLM head only runs where a label is.
    objective_fields = {"pretraining_objective": data_args.objective, "sparse_prediction": True}
    if model_args.model_name_or_path is not None:
        hub_kwargs = dict(cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code)
        config = from_pretrained(AutoConfig, "--model_name_or_path", model_args.model_name_or_path, **hub_kwargs)
        config.update(objective_fields)
        apply_config_overrides(config, model_args.config_overrides, logger)  # head settings only (checked)
        model = from_pretrained(
            AutoModelForPreTraining, "--model_name_or_path", model_args.model_name_or_path, config=config, **hub_kwargs
        )
    else:
        if model_args.config_name is not None:
            config = from_pretrained(
                AutoConfig, "--config_name", model_args.config_name, cache_dir=model_args.cache_dir,
                trust_remote_code=model_args.trust_remote_code,
            )
            config.vocab_size = len(tokenizer)
            config.pad_token_id = tokenizer.pad_token_id
        else:
            config = GLMConfig.from_size(
                model_args.model_size, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id
            )
        config.update(objective_fields)
        apply_config_overrides(config, model_args.config_overrides, logger)
        model = AutoModelForPreTraining.from_config(config, trust_remote_code=model_args.trust_remote_code)
        logger.info("Training a new model from scratch: %.2fM parameters", model.num_parameters() / 1e6)

    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        logger.info("Resizing the token embeddings to the tokenizer's %d tokens", len(tokenizer))
        model.resize_token_embeddings(len(tokenizer))
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions is not None and data_args.max_seq_length > max_positions:
        raise ValueError(
            f"max_seq_length ({data_args.max_seq_length}) exceeds the model's max_position_embeddings ({max_positions})"
        )
    if data_args.objective in SENTENCE_TASK_OF and getattr(model.config, "type_vocab_size", 2) < 2:
        raise ValueError("sentence pairs need two token types: the model's config has type_vocab_size < 2")
    if model_args.freeze_word_embeddings:
        freeze_word_embeddings(model)
    return model


def build_collator(data_args: DataTrainingArguments, tokenizer, seed: int) -> DataCollatorForPreTraining:
    """The masking collator of the objective."""
    rtd = data_args.objective == "rtd"
    return DataCollatorForPreTraining(
        tokenizer,
        mlm_probability=data_args.mlm_probability,
        # RTD: the model fills every chosen position with a generated token; [MASK] is what its generator reads.
        mask_replace_prob=1.0 if rtd else data_args.mask_replace_prob,
        random_replace_prob=0.0 if rtd else data_args.random_replace_prob,
        whole_word_mask=data_args.whole_word_mask,
        pad_to_multiple_of=data_args.pad_to_multiple_of,
        seed=seed,
    )


def evaluation_functions(objective: str, has_generator: bool, train_dataset, eval_dataset, tokenizer):
    """Trainer's ``compute_metrics`` and ``preprocess_logits_for_metrics`` for ``objective``."""
    compute_metrics = PreTrainingMetrics(objective, cloze_baseline(train_dataset, eval_dataset, tokenizer))
    preprocess = partial(preprocess_logits_for_metrics, fields=pretraining_output_fields(objective, has_generator))
    return compute_metrics, preprocess


def cloze_baseline(train_dataset, eval_dataset, tokenizer, max_fit_examples: int = TRAINING_SAMPLE) -> dict:
    """Unigram / bigram cloze accuracy on the evaluation set's masked positions, fitted on (up to
    ``max_fit_examples``) training examples: the n-gram lines the model's MLM accuracy is read against."""
    fit = training_token_ids(train_dataset, max_fit_examples)
    cloze = NgramCloze(fit, len(tokenizer), tokenizer.all_special_ids)
    return cloze.score(zip(eval_dataset["input_ids"], eval_dataset["labels"]))


def _card_training_args(model_args, data_args, training_args) -> dict:
    keys = (
        "max_steps", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
        "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "optim",
        "bf16", "fp16", "seed",
    )
    summary = {key: getattr(training_args, key) for key in keys}
    summary["world_size"] = training_args.world_size
    summary["total_train_batch_size"] = (
        training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * training_args.world_size
    )
    summary["lr_scheduler_type"] = str(getattr(summary["lr_scheduler_type"], "value", summary["lr_scheduler_type"]))
    summary["optim"] = str(getattr(summary["optim"], "value", summary["optim"]))
    for key in ("model_size", "config_name", "config_overrides", "model_name_or_path"):
        if getattr(model_args, key) is not None:
            summary[key] = getattr(model_args, key)
    for key in ("objective", "corpus_weights", "max_seq_length", "short_seq_prob", "nsp_probability", "mlm_probability",
                "mlm_probability_end", "whole_word_mask"):
        summary[key] = getattr(data_args, key)
    return summary


def _card_datasets(data_args, stats) -> list[str]:
    if data_args.dataset_name == EMBEDDED:
        present = stats["train_documents"]["sources"]
        return [name for source, (name, _) in EMBEDDED_SOURCES.items() if source in present]
    names = [data_args.dataset_name] if data_args.dataset_name else [os.path.basename(data_args.train_file)]
    if data_args.validation_file:
        names.append(os.path.basename(data_args.validation_file))
    return names


def write_model_card(output_dir, model_args, data_args, training_args, metrics, stats, loss_curve) -> str | None:
    """README.md through glm_hf.cards (imported here only: the card templates are optional for training)."""
    try:
        from .cards import write_pretrained_card
    except ModuleNotFoundError as err:
        if err.name != "glm_hf.cards":
            raise
        logger.warning("glm_hf.cards is not available: no model card written to %s", output_dir)
        return None
    if data_args.dataset_name == EMBEDDED:
        stats = {
            "sources": {name: description for source, (name, description) in EMBEDDED_SOURCES.items()
                        if source in stats["train_documents"]["sources"]},
            **stats,
        }
    return write_pretrained_card(
        output_dir,
        base_model=model_args.model_name_or_path,
        datasets=_card_datasets(data_args, stats),
        training_args={**training_args.to_dict(), **_card_training_args(model_args, data_args, training_args)},
        metrics={key: value for key, value in metrics.items() if key.startswith("eval_")},
        data_stats=stats,
        loss_curve=loss_curve,
        objective=f"{data_args.objective}: {OBJECTIVES[data_args.objective]}",
    )


# ---------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------


def cpu_has_bf16_instructions() -> bool | None:
    """Whether this x86 CPU multiplies bf16 in hardware (AMX or AVX512-BF16); ``None`` when it cannot tell."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None:  # not x86 (e.g. aarch64 lists "Features")
        return None
    return "amx_bf16" in flags or "avx512_bf16" in flags


def main(argv: list[str] | None = None) -> dict:
    """The command line: flags (or one .json/.yaml file) -> :func:`pretrain`. Without --do_train/--do_eval on the
    command line, it trains and then evaluates."""
    argv = sys.argv[1:] if argv is None else list(argv)
    model_args, data_args, training_args = parse_args(
        (ModelArguments, DataTrainingArguments, RecipeTrainingArguments), argv
    )
    if not is_args_file(argv) and not {"--do_train", "--do_eval"} & {arg.split("=")[0] for arg in argv}:
        training_args.do_train = training_args.do_eval = True
    return pretrain(model_args, data_args, training_args)


def pretrain(
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    training_args: TrainingArguments,
    extra_callbacks: list | None = None,
) -> dict:
    """Pretrain; returns the final metrics (train and eval, as in ``all_results.json``)."""
    configure_run(data_args, training_args)
    set_seed(training_args.seed)

    tokenizer = from_pretrained(
        AutoTokenizer,
        *model_args.tokenizer_source,
        cache_dir=model_args.cache_dir,
        trust_remote_code=model_args.trust_remote_code,
    )
    collator = build_collator(data_args, tokenizer, training_args.seed)
    # The data is read and checked before the output folder is touched: bad data leaves nothing behind.
    train_dataset, eval_dataset, stats = build_datasets(data_args, model_args, training_args, tokenizer, collator)
    logger.info("Training examples: %s", stats["train_examples"])
    if training_args.do_eval and eval_dataset is None:
        logger.warning("No validation data (validation_split_percentage=0 and no validation_file): no evaluation")
        training_args.do_eval = False

    model = build_model(model_args, data_args, tokenizer)  # its config checked, too, before the folder is touched
    with RunFolder(training_args, pretraining_run_identity(model_args, data_args, training_args)) as run_folder:
        resume_from_checkpoint = checkpoint_to_resume(training_args, logger)
        callbacks = [run_folder.callback, *(extra_callbacks or [])]
        return pretrain_on(
            model, model_args, data_args, training_args, tokenizer, collator, (train_dataset, eval_dataset, stats),
            resume_from_checkpoint, callbacks,
        )


def pretraining_run_identity(model_args, data_args, training_args) -> dict:
    """What this run is, for its output folder: a rerun of the same resumes it, another run is refused."""
    operational = (
        "cache_dir", "trust_remote_code", "train_file", "validation_file", "preprocessing_num_workers",
        "overwrite_cache", "max_eval_samples",
    )
    return run_identity(
        "pretrain",
        data_args.objective,
        None,
        model_args.model_source,
        data_fingerprint({"dataset_name": data_args.dataset_name, "train_file": data_args.train_file,
                          "validation_file": data_args.validation_file}),
        (model_args, data_args, training_args),
        leave_out=operational,
    )


def pretrain_on(
    model, model_args, data_args, training_args, tokenizer, collator, datasets_and_stats: tuple,
    resume_from_checkpoint, callbacks: list,
) -> dict:
    """Build the trainer, then train / evaluate into the claimed output folder."""
    train_dataset, eval_dataset, stats = datasets_and_stats
    rtd = data_args.objective == "rtd"
    has_generator = rtd and model.config.generator_num_hidden_layers > 0
    if rtd and not has_generator:  # the statistical generator: the training text's unigram distribution
        # (a stream: the first examples of its first pass)
        ids = training_token_ids(train_dataset, None if isinstance(train_dataset, Dataset) else TRAINING_SAMPLE)
        model.set_generator_distribution(torch.from_numpy(unigram_distribution(ids, tokenizer)))
    callbacks = [MaskingEpochCallback(collator), *callbacks]
    if data_args.mlm_probability_end is not None:
        callbacks.append(MaskingRateCallback(collator, data_args.mlm_probability, data_args.mlm_probability_end))
    compute_metrics = preprocess = None
    if training_args.do_eval:
        compute_metrics, preprocess = evaluation_functions(
            data_args.objective, has_generator, train_dataset, eval_dataset, tokenizer
        )

    trainer = PreTrainingTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess,
        callbacks=callbacks,
    )

    metrics: dict = {}
    if training_args.do_train:
        sized = {} if isinstance(train_dataset, PreTrainingStream) else {"train_samples": len(train_dataset)}
        metrics.update(train_and_save(trainer, resume_from_checkpoint, **sized))
    if training_args.do_eval:
        metrics.update(evaluate_and_save(trainer, len(eval_dataset)))
    if training_args.do_train and trainer.is_world_process_zero():
        write_curve_and_card(trainer, model_args, data_args, training_args, metrics, stats)
    return metrics


def configure_run(data_args: DataTrainingArguments, training_args: TrainingArguments) -> None:
    """Logging, the flag checks, and the ``TrainingArguments`` the pretraining datasets and metrics need."""
    setup_logging(training_args, logger)
    check_max_steps(training_args)
    check_distributed_settings(training_args, logger)
    if data_args.streaming and training_args.do_train and training_args.max_steps <= 0:
        raise ValueError(
            "--streaming needs --max_steps: a stream has no length, so Trainer cannot count the steps of an epoch "
            "(the corpus repeats, reshuffled, until --max_steps)"
        )
    if data_args.streaming and training_args.dataloader_num_workers > 0:
        raise ValueError(
            "--dataloader_num_workers cannot be used with --streaming: datasets would split the stream's shards "
            "over the workers again, and a worker without a shard would have no examples; leave it at 0"
        )
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    logger.warning(
        "Process rank: %s, device: %s, world size: %s, bf16: %s, fp16: %s",
        training_args.process_index, training_args.device, training_args.world_size,
        training_args.bf16, training_args.fp16,
    )

    if training_args.bf16 and training_args.device.type == "cpu" and cpu_has_bf16_instructions() is False:
        logger.warning(
            "--bf16 on a CPU without AMX or AVX512-BF16: bf16 matrix products are emulated there, measured about "
            "4x slower than fp32 on an AVX2 EPYC (benchmarks/bench_vs_bert.py). Drop --bf16 on this machine."
        )
    # The collator needs columns the model does not take (word_continuation); the datasets hold nothing else.
    training_args.remove_unused_columns = False
    # Trainer scores evaluation batches only when every label it knows of is there: packed text has no pair labels.
    pair_labels = ["next_sentence_label"] if data_args.objective in SENTENCE_TASK_OF else []
    training_args.label_names = ["labels", *pair_labels]




def evaluate_and_save(trainer: Trainer, eval_samples: int) -> dict:
    """Evaluate on the held-out text and save the metrics, perplexity included."""
    eval_metrics = trainer.evaluate()
    eval_metrics["eval_samples"] = eval_samples
    if "eval_perplexity" not in eval_metrics and "eval_loss" in eval_metrics:
        eval_metrics["eval_perplexity"] = math.exp(min(eval_metrics["eval_loss"], 700))
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    return eval_metrics


def write_curve_and_card(trainer: Trainer, model_args, data_args, training_args, metrics: dict, stats: dict) -> None:
    """The loss curve (when anything was logged) and README.md in the output folder."""
    loss_curve = None
    if any("loss" in entry or "eval_loss" in entry for entry in trainer.state.log_history):
        save_loss_curve(trainer.state.log_history, os.path.join(training_args.output_dir, LOSS_CURVE_FILE),
                        title=f"GLM pretraining ({data_args.objective})")
        loss_curve = LOSS_CURVE_FILE
    write_model_card(training_args.output_dir, model_args, data_args, training_args, metrics, stats, loss_curve)


if __name__ == "__main__":
    main()
