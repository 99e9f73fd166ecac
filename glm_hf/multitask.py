"""Multi-task fine-tuning: one GLM encoder with a sequence-classification head (e.g. sentiment) and a
token-classification head (NER), trained together through ``Trainer`` on task-sampled batches.

- Data: each task is read, checked and tokenized by its own recipe's code (:mod:`glm_hf.finetuning` and
  :mod:`glm_hf.finetuning_ner`), so every flag and check of those recipes holds here too.
- Batches: every batch comes from one task (their labels have different shapes); the task of each batch is drawn
  with probability proportional to ``n_task ** (1 / T)`` (``--task_sampling_temperature`` T: 1 = proportional to
  the tasks' sizes, large = uniform), from a per-task shuffle, reproducibly from ``--seed``.
- Model: the two single-task models (``GLMForSequenceClassification``, ``GLMForTokenClassification``) built by their
  recipes, with one encoder object between them. Losses are logged per task (``loss_<task>``) beside the mean.
- Outputs: each task exports as an ordinary single-task folder (``sentiment_model/``, ``ner_model/``: weights,
  config with its labels, tokenizer, remote code) that ``from_pretrained`` and pipelines load; both are scored on
  their validation and test splits (``multitask_results.json``), and ``task_loss_curves.png`` shows the losses.
"""

import logging
import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from datasets import ClassLabel
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, Trainer, set_seed

from .evaluation import build_compute_metrics, save_png, write_json
from .finetuning import (
    DataTrainingArguments,
    LabelEncoder,
    ModelArguments,
    build_config_and_model,
    load_tokenizer,
    prepare_splits,
    tokenize_splits,
)
from .finetuning_ner import (
    NerDataArguments,
    build_ner_compute_metrics,
    build_ner_config_and_model,
    prepare_ner_splits,
    score_split,
    tokenize_ner_splits,
)
from .run_folder import RecipeTrainingArguments, RunFolder, data_fingerprint, run_identity
from .training_setup import check_distributed_settings, check_max_steps, checkpoint_to_resume, parse_args, setup_logging

logger = logging.getLogger(__name__)

RESULTS_FILE = "multitask_results.json"
LOSS_FIGURE = "task_loss_curves.png"
TASKS = ("sentiment", "ner")
EXPORT_FOLDERS = {"sentiment": "sentiment_model", "ner": "ner_model"}
# Columns the models read; the NER windows carry more (sentence_index, word_ids, ...) for scoring.
MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")


@dataclass
class MultiTaskDataArguments:
    classification_dataset: str = field(
        default="embedded-sentiment",
        metadata={"help": "Sequence-classification task: a --dataset_name of glm-hf finetune (embedded-sentiment, a "
                  "datasets name or folder)."},
    )
    ner_dataset: str = field(
        default="msra", metadata={"help": "NER task: a --dataset_name of glm-hf finetune-ner (msra, peoples_daily)."}
    )
    task_sampling_temperature: float = field(
        default=1.0,
        metadata={"help": "Each batch's task is drawn with probability ~ n_task ** (1 / T): 1 = proportional to the "
                  "tasks' training sizes, a large value (e.g. 1e9) = uniform."},
    )
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per example / window, both tasks."})
    classification_max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only this many classification training examples."}
    )
    ner_max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only this many NER training sentences."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Validation examples per task."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Test examples per task."})

    def __post_init__(self):
        if not self.task_sampling_temperature > 0 or math.isnan(self.task_sampling_temperature):
            raise ValueError(f"--task_sampling_temperature must be > 0, got {self.task_sampling_temperature!r}")

    def task_arguments(self) -> tuple[DataTrainingArguments, NerDataArguments]:
        limits = dict(max_eval_samples=self.max_eval_samples, max_predict_samples=self.max_predict_samples)
        return (
            DataTrainingArguments(dataset_name=self.classification_dataset, max_seq_length=self.max_seq_length,
                                  max_train_samples=self.classification_max_train_samples, **limits),
            NerDataArguments(dataset_name=self.ner_dataset, max_seq_length=self.max_seq_length,
                             max_train_samples=self.ner_max_train_samples, return_entity_level_metrics=True, **limits),
        )


# -------------------------------------------------------------------------------------------------------- data
class TaskDatasets(Dataset):
    """The tasks' training sets end to end; item ``i`` is ``(task index, the model columns of that example)``."""

    def __init__(self, datasets: list):
        self.datasets = [dataset.select_columns([c for c in MODEL_COLUMNS if c in dataset.column_names])
                         for dataset in datasets]
        self.offsets = np.cumsum([0] + [len(dataset) for dataset in self.datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> tuple[int, dict]:
        task = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return task, self.datasets[task][int(index - self.offsets[task])]


def task_probabilities(sizes: list[int], temperature: float) -> np.ndarray:
    """``n ** (1 / T)``, normalised (computed in log space: a large T must not overflow or divide by zero)."""
    logits = np.log(np.asarray(sizes, dtype=np.float64)) / temperature
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


class TaskBatchSampler(Sampler):
    """``num_batches`` batches of indices into :class:`TaskDatasets`, each from one task drawn with
    :func:`task_probabilities`; each task's examples are walked in a shuffled order, reshuffled when used up."""

    def __init__(self, sizes: list[int], batch_size: int, num_batches: int, temperature: float, seed: int):
        self.sizes, self.batch_size, self.num_batches, self.seed = list(sizes), batch_size, num_batches, seed
        self.probabilities = task_probabilities(self.sizes, temperature)
        self.offsets = np.cumsum([0] + self.sizes)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        orders = [rng.permutation(size) for size in self.sizes]
        cursors = [0] * len(self.sizes)
        for _ in range(self.num_batches):
            task = int(rng.choice(len(self.sizes), p=self.probabilities))
            batch = []
            while len(batch) < self.batch_size:
                if cursors[task] == self.sizes[task]:
                    orders[task], cursors[task] = rng.permutation(self.sizes[task]), 0
                take = min(self.batch_size - len(batch), self.sizes[task] - cursors[task])
                batch += (orders[task][cursors[task]: cursors[task] + take] + self.offsets[task]).tolist()
                cursors[task] += take
            yield batch


class TaskCollator:
    """Collates a one-task batch with that task's collator and adds ``task_ids``."""

    def __init__(self, collators: list):
        self.collators = collators

    def __call__(self, items: list[tuple[int, dict]]) -> dict:
        tasks = {task for task, _ in items}
        if len(tasks) != 1:
            raise ValueError(f"a multi-task batch must hold one task, got {sorted(tasks)}")
        task = tasks.pop()
        batch = self.collators[task]([example for _, example in items])
        batch["task_ids"] = torch.full((len(items),), task, dtype=torch.long)
        return batch


# ------------------------------------------------------------------------------------------------------- model
class MultiTaskGLM(nn.Module):
    """The task models with one encoder between them: ``glm`` is registered here only, and each task model reads it
    as a plain attribute, so the state dict holds every weight once (Trainer's safetensors checkpoints refuse shared
    tensors) while each task model runs its own, unchanged ``forward``."""

    # Each task model's loss is the mean over its batch; Trainer must not pass num_items_in_batch (see GLM's models).
    accepts_loss_kwargs = False

    def __init__(self, task_models: dict[str, nn.Module]):
        super().__init__()
        self.task_names = list(task_models)
        self.glm = task_models[self.task_names[0]].glm
        for model in task_models.values():
            del model._modules["glm"]
            object.__setattr__(model, "glm", self.glm)
        self.tasks = nn.ModuleDict(task_models)

    def forward(self, task_ids: torch.Tensor, **inputs):
        return self.tasks[self.task_names[int(task_ids[0])]](**inputs)

    def floating_point_ops(self, inputs: dict) -> int:
        """For Trainer's ``total_flos``: the encoder's estimate (the heads are a rounding error)."""
        return self.glm.floating_point_ops(inputs)

    def export(self, task: str) -> nn.Module:
        """The task as an ordinary single-task model (a fresh instance of its class holding the trained weights)."""
        trained = self.tasks[task]
        model = type(trained)(trained.config)
        wanted = model.state_dict()
        weights = {f"glm.{name}": value for name, value in self.glm.state_dict().items() if f"glm.{name}" in wanted}
        weights.update(trained.state_dict())
        model.load_state_dict(weights, strict=True)
        return model


class MultiTaskTrainer(Trainer):
    """Trainer over :class:`TaskDatasets` with :class:`TaskBatchSampler` batches; logs each task's mean loss."""

    def __init__(self, *args, batch_sampler: TaskBatchSampler, task_names: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_sampler, self.task_names = batch_sampler, task_names
        self._task_losses: dict[str, list[float]] = {name: [] for name in task_names}

    def get_train_dataloader(self) -> DataLoader:
        loader = DataLoader(self.train_dataset, batch_sampler=self.batch_sampler, collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory)
        return self.accelerator.prepare(loader)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        task = self.task_names[int(inputs["task_ids"][0])]
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        self._task_losses[task].append(float(loss.detach()))
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:
            for name, losses in self._task_losses.items():
                if losses:
                    logs[f"loss_{name}"] = round(sum(losses) / len(losses), 4)
                    losses.clear()
        super().log(logs, *args, **kwargs)


# ----------------------------------------------------------------------------------------------------- run
def multitask_run_identity(model_args, data_args, training_args) -> dict:
    operational = ("cache_dir", "token", "trust_remote_code", "max_eval_samples", "max_predict_samples")
    return run_identity(
        "finetune-multitask", {"problem_type": "multi_task"}, list(TASKS), model_args.model_source,
        data_fingerprint({"classification_dataset": data_args.classification_dataset,
                          "ner_dataset": data_args.ner_dataset}),
        (model_args, data_args, training_args),
        leave_out=operational,
    )


def prepare_tasks(model_args, data_args: MultiTaskDataArguments, training_args, tokenizer) -> dict:
    """Per task: raw and tokenized splits, the single-task model its recipe builds, its collator and scorer."""
    classification_args, ner_args = data_args.task_arguments()
    raw, task, description, _ = prepare_splits(classification_args, model_args, training_args)
    if task.problem_type != "single_label_classification":
        raise ValueError(f"--classification_dataset {data_args.classification_dataset} is {task.problem_type}; the "
                         "multi-task recipe takes a single-label classification task")
    config, model, label2id = build_config_and_model(model_args, task, tokenizer, data_args.max_seq_length)
    label_feature = raw["train"].features[task.label_column]
    encoder = LabelEncoder(task, label2id, classification_args.label_delimiter,
                           class_label=label_feature if isinstance(label_feature, ClassLabel) else None)
    sentiment = {
        "raw": raw, "tokenized": tokenize_splits(raw, task, tokenizer, encoder, classification_args, training_args),
        "model": model, "collator": DataCollatorWithPadding(tokenizer),
        "compute_metrics": build_compute_metrics(task.problem_type, task.label_names),
        "description": description, "label_names": task.label_names,
    }
    ner_raw, label_names, ner_description = prepare_ner_splits(ner_args, model_args, training_args)
    ner_config, ner_model = build_ner_config_and_model(model_args, label_names, tokenizer, data_args.max_seq_length)
    ner = {
        "raw": ner_raw, "tokenized": tokenize_ner_splits(ner_raw, tokenizer, ner_config.label2id, ner_args,
                                                         training_args),
        "model": ner_model, "collator": DataCollatorForTokenClassification(tokenizer), "data_args": ner_args,
        "compute_metrics": build_ner_compute_metrics(ner_config.id2label, True), "description": ner_description,
    }
    return {"sentiment": sentiment, "ner": ner}


def score_export(name: str, model, prepared: dict, tokenizer, training_args, folder: str) -> dict:
    """Validation and test scores of an exported task model, with its task's own metric code."""
    args = RecipeTrainingArguments(
        output_dir=folder, per_device_eval_batch_size=training_args.per_device_eval_batch_size, report_to="none",
        use_cpu=training_args.use_cpu, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, processing_class=tokenizer, data_collator=prepared["collator"],
                      compute_metrics=prepared["compute_metrics"])
    metrics = {}
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if split not in prepared["tokenized"]:
            continue
        if name == "ner":
            metrics.update(score_split(trainer, prepared["raw"][split], prepared["tokenized"][split], prefix,
                                       prepared["data_args"])[0])
        else:
            output = trainer.predict(prepared["tokenized"][split], metric_key_prefix=prefix)
            metrics.update(output.metrics)
            trainer.save_metrics(prefix, output.metrics)
    return metrics


def write_task_card(name: str, folder: str, prepared: dict, metrics: dict, model_args, data_args, training_args,
                    sampler: "TaskBatchSampler") -> str:
    """The exported folder's model card, as its single-task recipe writes it, with how it was trained jointly."""
    from .cards import write_finetuned_card, write_ner_card
    from .finetuning_ner import entity_types_of

    share = dict(zip(TASKS, sampler.probabilities.tolist()))[name]
    others = " and ".join(task for task in TASKS if task != name)
    notes = [f"Trained jointly with {others} on one shared encoder (glm-hf finetune-multitask): "
             f"{training_args.max_steps} steps in all, each batch from one task, this task's batches drawn with "
             f"probability {share:.2f} (task sampling temperature {data_args.task_sampling_temperature:g})."]
    hyperparameters = {**training_args.to_dict(), "max_seq_length": data_args.max_seq_length,
                       "task_sampling_temperature": data_args.task_sampling_temperature}
    split = "test" if any(key.startswith("test_") for key in metrics) else "validation"
    prefix = "test" if split == "test" else "eval"
    raw = prepared["raw"]
    scores = {key.removeprefix(f"{prefix}_"): value for key, value in metrics.items() if key.startswith(prefix)}
    if name == "ner":
        names = raw["train"].features["ner_tags"].feature.names
        return write_ner_card(folder, base_model=model_args.model_name_or_path, dataset_name=data_args.ner_dataset,
                              dataset_description=prepared["description"], entity_types=entity_types_of(names),
                              metrics=scores, training_args=hyperparameters, eval_split=split,
                              eval_size=len(raw[split]), notes=notes, max_length=data_args.max_seq_length)
    return write_finetuned_card(
        folder, base_model=model_args.model_name_or_path, dataset_name=data_args.classification_dataset,
        dataset_description=prepared["description"], data_stats={split: len(rows) for split, rows in raw.items()},
        problem_type="single_label_classification", label_names=prepared["label_names"],
        training_args=hyperparameters,
        results=[{"name": "this model", "description": "the sentiment head of the joint model", "metrics": scores}],
        eval_split=split, eval_size=len(raw[split]), notes=notes, max_length=data_args.max_seq_length,
    )


def plot_task_losses(log_history: list[dict], task_names: list[str], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=120)
    for name in task_names:
        points = [(entry["step"], entry[f"loss_{name}"]) for entry in log_history if f"loss_{name}" in entry]
        if points:
            axes.plot(*zip(*points), marker=".", label=name)
    axes.set_xlabel("step")
    axes.set_ylabel("training loss (mean since the last log)")
    axes.set_title("Multi-task fine-tuning: loss per task")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return save_png(plt, figure, path)


def finetune_multitask(model_args: ModelArguments, data_args: MultiTaskDataArguments, training_args) -> dict:
    """Train both tasks on one encoder, export each as a single-task folder, score it; returns the results."""
    setup_logging(training_args, logger)
    if not training_args.do_train:
        raise ValueError("the multi-task recipe trains: give --do_train (score an exported folder with its own recipe)")
    check_max_steps(training_args)
    check_distributed_settings(training_args, logger)
    if training_args.max_steps <= 0:
        raise ValueError("--max_steps is required: task-sampled batches have no epochs")
    set_seed(training_args.seed)
    tokenizer = load_tokenizer(model_args)
    prepared = prepare_tasks(model_args, data_args, training_args, tokenizer)
    model = MultiTaskGLM({name: prepared[name]["model"] for name in TASKS})
    sizes = [len(prepared[name]["tokenized"]["train"]) for name in TASKS]
    sampler = TaskBatchSampler(
        sizes, training_args.per_device_train_batch_size,
        training_args.max_steps * training_args.gradient_accumulation_steps, data_args.task_sampling_temperature,
        training_args.seed,
    )
    with RunFolder(training_args, multitask_run_identity(model_args, data_args, training_args)) as run_folder:
        resume_from_checkpoint = checkpoint_to_resume(training_args, logger)
        trainer = MultiTaskTrainer(
            model=model, args=training_args,
            train_dataset=TaskDatasets([prepared[name]["tokenized"]["train"] for name in TASKS]),
            data_collator=TaskCollator([prepared[name]["collator"] for name in TASKS]),
            callbacks=[run_folder.callback], batch_sampler=sampler, task_names=list(TASKS),
        )
        train_metrics = trainer.train(resume_from_checkpoint=resume_from_checkpoint).metrics
        trainer.save_state()
        results = {"train": train_metrics, "task_probabilities": dict(zip(TASKS, sampler.probabilities.tolist())),
                   "train_sizes": dict(zip(TASKS, sizes)), "tasks": {}}
        if trainer.is_world_process_zero():
            for name in TASKS:
                folder = os.path.join(training_args.output_dir, EXPORT_FOLDERS[name])
                exported = model.export(name)
                exported.save_pretrained(folder)
                tokenizer.save_pretrained(folder)
                scores = score_export(name, exported, prepared[name], tokenizer, training_args, folder)
                results["tasks"][name] = {"folder": folder, **scores}
                write_task_card(name, folder, prepared[name], scores, model_args, data_args, training_args, sampler)
            plot_task_losses(trainer.state.log_history, list(TASKS),
                             os.path.join(training_args.output_dir, LOSS_FIGURE))
            write_json(results, os.path.join(training_args.output_dir, RESULTS_FILE))
    return results


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    return finetune_multitask(*parse_args((ModelArguments, MultiTaskDataArguments, RecipeTrainingArguments), argv))
