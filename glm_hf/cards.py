"""Model cards for pretrained and fine-tuned GLM folders, filled from what the training runs measured.

The cards are ``huggingface_hub.ModelCard`` objects rendered from the Jinja templates in ``glm_hf/model_cards/``
(``pretrained.md``, ``finetuned.md``): the YAML header (language, license, datasets, metrics, model-index) comes from
``ModelCardData``, so the Hub shows the evaluation results in the model's widget. Cards are written atomically
(temporary file, then rename) as ``README.md`` inside the model folder.
"""

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from numbers import Number

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import TrainingArguments

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_cards")
PRETRAINED_TEMPLATE = os.path.join(TEMPLATE_DIR, "pretrained.md")
FINETUNED_TEMPLATE = os.path.join(TEMPLATE_DIR, "finetuned.md")
NER_TEMPLATE = os.path.join(TEMPLATE_DIR, "ner.md")
DEFAULT_LICENSE = "apache-2.0"
LANGUAGE = "zh"

# Of the ~100 TrainingArguments fields, the ones that describe how a model was trained. Keys a caller adds that are
# not TrainingArguments fields at all (model_size, max_seq_length, mlm_probability, ...) are always shown.
HYPERPARAMETER_KEYS = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "total_train_batch_size",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "optim",
    "bf16",
    "fp16",
    "seed",
    "label_smoothing_factor",
)
_TRAINING_ARGUMENT_FIELDS = {f.name for f in fields(TrainingArguments)}
# config.json fields shown in the "Model" table, in this order.
ARCHITECTURE_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "position_embedding_type",
    "hidden_act",
)


def format_value(value) -> str:
    """Numbers as a reader wants them in a table: floats to 4 significant decimals, ints with no decimals."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.4g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def flatten(mapping: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    """``{"a": {"b": 1}}`` -> ``[("a / b", 1)]``, in insertion order."""
    rows = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flatten(value, prefix=f"{name} / "))
        else:
            rows.append((name, value))
    return rows


def hyperparameter_rows(training_args: Mapping) -> list[tuple[str, str]]:
    """The training-relevant entries of ``TrainingArguments.to_dict()``, plus every key that is not its field."""
    rows = [(key, training_args[key]) for key in HYPERPARAMETER_KEYS if key in training_args]
    rows += [(key, value) for key, value in training_args.items() if key not in _TRAINING_ARGUMENT_FIELDS]
    seen, unique = set(), []
    for key, value in rows:
        if key not in seen:
            seen.add(key)
            unique.append((key, format_value(value)))
    return unique


def numeric_metrics(metrics: Mapping) -> dict[str, float]:
    """The finite numeric entries of a metrics dict (runtime/throughput bookkeeping left out)."""
    skip_suffixes = ("_runtime", "_samples_per_second", "_steps_per_second", "_samples", "total_flos", "epoch")
    result = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, Number) or key.endswith(skip_suffixes):
            continue
        if math.isfinite(float(value)):
            result[key] = float(value)
    return result


def architecture_rows(model_dir: str) -> list[tuple[str, str]]:
    """Size of the model in ``model_dir`` from its config.json and weights (empty when they are not there yet)."""
    rows = []
    config_path = os.path.join(model_dir, "config.json")
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        rows += [(key, format_value(config[key])) for key in ARCHITECTURE_KEYS if key in config]
    num_parameters = count_parameters(model_dir)
    if num_parameters:
        rows.append(("parameters", f"{num_parameters / 1e6:.2f}M"))
    return rows


def count_parameters(model_dir: str) -> int:
    """Parameters stored in ``model.safetensors`` (tied weights counted once, as they are stored once)."""
    path = os.path.join(model_dir, "model.safetensors")
    if not os.path.isfile(path):
        return 0
    from safetensors import safe_open

    total = 0
    with safe_open(path, framework="pt") as f:
        for name in f.keys():
            total += math.prod(f.get_slice(name).get_shape())
    return total


def write_card(card: ModelCard, output_dir: str) -> str:
    """Write ``README.md`` in ``output_dir`` atomically; returns its path."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "README.md")
    tmp_path = f"{path}.tmp-{os.getpid()}"
    # Jinja blocks that render empty leave runs of blank lines behind; one blank line is all markdown needs.
    text = re.sub(r"\n{3,}", "\n\n", str(card))
    with open(tmp_path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp_path, path)
    return path


def _model_name(output_dir: str, model_name: str | None) -> str:
    return model_name or os.path.basename(os.path.normpath(os.path.abspath(output_dir)))


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def _hub_url(repo_id: str | None) -> str | None:
    """The Hub page of ``repo_id``, or ``None`` for a local folder (absolute, relative or existing path)."""
    if not repo_id or os.path.exists(repo_id) or not _HUB_ID.match(repo_id):
        return None
    return f"https://huggingface.co/{repo_id}"


def _check_file_name(value: str | None, field: str, output_dir: str) -> None:
    if value is None:
        return
    if os.path.isabs(value) or os.path.dirname(value):
        raise ValueError(f"{field} must be a file name inside output_dir (the card links it relatively), got {value!r}")
    if not os.path.isfile(os.path.join(output_dir, value)):
        raise ValueError(f"{field}={value!r} does not exist in {output_dir!r}")


def write_pretrained_card(
    output_dir: str,
    *,
    base_model: str | None,
    datasets: Sequence[str],
    training_args: Mapping,
    metrics: Mapping,
    data_stats: Mapping,
    loss_curve: str | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
    license: str = DEFAULT_LICENSE,
    objective: str = "masked language modelling (MLM) and next sentence prediction (NSP)",
) -> str:
    """Fill ``model_cards/pretrained.md`` for the pretraining run saved in ``output_dir``; returns README.md's path.

    Args:
        base_model: the checkpoint pretraining started from (Hub id or path), or ``None`` for a random init.
        datasets: names of the pretraining corpora (card metadata ``datasets``).
        training_args: ``TrainingArguments.to_dict()`` plus any recipe settings (model_size, max_seq_length, ...).
        metrics: final evaluation metrics (e.g. ``eval_loss``, ``eval_mlm_accuracy``, ``perplexity``).
        data_stats: corpus statistics (documents, examples, tokens, ...), nested dicts allowed.
        loss_curve: file name of a loss-curve image inside ``output_dir``, linked from the card.
        model_name: card title and model-index name; defaults to the folder name.
        repo_id: what the "How to load" snippet passes to ``from_pretrained``; defaults to the folder name
            (``glm-hf push --repo_id`` rewrites it to the Hub id).
        objective: what the model was pretrained with, as the card's first sentence says it.
    """
    _check_file_name(loss_curve, "loss_curve", output_dir)
    name = _model_name(output_dir, model_name)
    eval_metrics = numeric_metrics(metrics)
    dataset_names = list(datasets)
    # The evaluation text is held out from every corpus at once: name it after all of them.
    eval_dataset = " + ".join(dataset_names)
    eval_results = (
        [
            EvalResult(
                task_type="fill-mask",
                task_name="Masked language modelling",
                dataset_type=dataset_names[0],
                dataset_name=eval_dataset,
                dataset_split="validation",
                metric_type=key.removeprefix("eval_"),
                metric_name=key.removeprefix("eval_"),
                metric_value=round(value, 6),
            )
            for key, value in eval_metrics.items()
        ]
        if dataset_names
        else []
    )
    card_data = ModelCardData(
        language=LANGUAGE,
        license=license,
        library_name="transformers",
        pipeline_tag="fill-mask",
        tags=["glm_hf", "bert", "fill-mask", "pretraining", "chinese"],
        datasets=dataset_names or None,
        metrics=sorted({key.removeprefix("eval_") for key in eval_metrics}) or None,
        base_model=base_model if _hub_url(base_model) else None,
        model_name=name,
        eval_results=eval_results or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_path=PRETRAINED_TEMPLATE,
        model_name=name,
        objective=objective,
        repo_id=repo_id or name,
        base_model=base_model,
        base_model_url=_hub_url(base_model),
        architecture_rows=architecture_rows(output_dir),
        datasets=dataset_names,
        data_rows=[(key, format_value(value)) for key, value in flatten(data_stats)],
        hyperparameter_rows=hyperparameter_rows(training_args),
        metric_rows=[(key, format_value(value)) for key, value in eval_metrics.items()],
        loss_curve=loss_curve,
    )
    return write_card(card, output_dir)


# Column titles of the results table, per problem type (metric key -> title).
RESULT_COLUMNS = {
    "single_label_classification": {"accuracy": "accuracy", "macro_f1": "macro-F1"},
    "multi_label_classification": {"accuracy": "subset accuracy", "macro_f1": "macro-F1", "micro_f1": "micro-F1"},
    "regression": {"mse": "MSE", "pearsonr": "Pearson r"},
}
TASK_DESCRIPTIONS = {
    "single_label_classification": "text classification",
    "multi_label_classification": "multi-label text classification",
    "regression": "text regression",
}
PIPELINE_METRICS = {"accuracy": "accuracy", "macro_f1": "f1", "micro_f1": "f1", "mse": "mse", "pearsonr": "pearsonr"}


def write_finetuned_card(
    output_dir: str,
    *,
    base_model: str | None,
    dataset_name: str,
    dataset_description: str,
    data_stats: Mapping,
    problem_type: str,
    label_names: Sequence[str] | None,
    training_args: Mapping,
    results: Sequence[Mapping],
    eval_split: str = "test",
    eval_size: int | None = None,
    plots: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    limitations: Sequence[str] = (),
    max_length: int | None = None,
    example_text: str = "这家酒店的服务很好，房间也很干净。",
    model_name: str | None = None,
    repo_id: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> str:
    """Fill ``model_cards/finetuned.md`` for the fine-tuned model in ``output_dir``; returns README.md's path.

    Args:
        base_model: the checkpoint fine-tuning started from, or ``None`` for a random initialisation.
        dataset_name: dataset id or file name (card metadata ``datasets`` and model-index).
        dataset_description: markdown paragraph: where the data comes from, how it was cleaned and split.
        data_stats: split sizes and cleaning statistics (nested dicts allowed).
        problem_type: ``single_label_classification``, ``multi_label_classification`` or ``regression``.
        label_names: class names in id order (``None`` for regression).
        training_args: ``TrainingArguments.to_dict()`` plus recipe settings.
        results: rows of the results table, this model first: ``{"name", "description", "metrics"}`` where
            ``metrics`` holds unprefixed keys (``accuracy``, ``macro_f1``, ``f1_<label>``, ...) on ``eval_split``.
            The first row's metrics also fill the model-index and the per-class table.
        eval_split: the split ``results`` were measured on; ``eval_size`` its number of examples.
        plots: caption -> image file name inside ``output_dir`` (loss curve, confusion matrix, ...).
        notes: bullet points under the results (budget, how comparisons were made, ...).
        limitations: extra bullet points for the Limitations section.
    """
    _check_finetuned_inputs(output_dir, problem_type, results, plots or {})
    name = _model_name(output_dir, model_name)
    own_metrics = numeric_metrics(results[0]["metrics"])
    columns = _result_columns(problem_type, results)
    card_data = _finetuned_card_data(
        name,
        base_model=base_model,
        dataset_name=dataset_name,
        problem_type=problem_type,
        eval_split=eval_split,
        columns=columns,
        own_metrics=own_metrics,
        license=license,
    )
    card = ModelCard.from_template(
        card_data,
        template_path=FINETUNED_TEMPLATE,
        model_name=name,
        repo_id=repo_id or name,
        base_model=base_model,
        base_model_url=_hub_url(base_model),
        task_description=TASK_DESCRIPTIONS[problem_type],
        dataset_title=f"`{dataset_name}`",
        dataset_description=dataset_description,
        label_names=list(label_names or []),
        eval_split=eval_split,
        eval_size=f"{eval_size} examples" if eval_size else "the held-out examples",
        result_columns=list(columns.values()),
        result_rows=_result_rows(results, columns),
        per_class_rows=_per_class_rows(problem_type, label_names, own_metrics),
        plots=list((plots or {}).items()),
        notes=list(notes),
        limitations=list(limitations),
        accuracy_margin=_accuracy_margin(own_metrics, eval_size),
        data_rows=[(key, format_value(value)) for key, value in flatten(data_stats)],
        hyperparameter_rows=hyperparameter_rows(training_args),
        max_length=max_length or "the maximum sequence length",
        example_text=example_text,
    )
    return write_card(card, output_dir)


def _check_finetuned_inputs(
    output_dir: str, problem_type: str, results: Sequence[Mapping], plots: Mapping[str, str]
) -> None:
    """Refuse an unknown problem type, a results table without this model's row or a row without name/metrics,
    and plots that are not files inside ``output_dir``."""
    from .evaluation import check_problem_type

    check_problem_type(problem_type)
    if not results:
        raise ValueError("results must hold at least this model's row")
    for row in results:
        missing = {"name", "metrics"} - set(row)
        if missing:
            raise ValueError(f"each results row needs 'name' and 'metrics'; row {row!r} lacks {sorted(missing)}")
    for caption, file_name in plots.items():
        _check_file_name(file_name, f"plots[{caption!r}]", output_dir)


def _result_columns(problem_type: str, results: Sequence[Mapping]) -> dict[str, str]:
    """The columns of the results table (metric key -> title) that at least one row has a value for."""
    return {
        key: title
        for key, title in RESULT_COLUMNS[problem_type].items()
        if any(key in row["metrics"] for row in results)
    }


def _result_rows(results: Sequence[Mapping], columns: Mapping[str, str]) -> list[dict]:
    """The rows of the results table as the template takes them; "-" where a row lacks a column's metric."""
    return [
        {
            "name": row["name"],
            "cells": [format_value(row["metrics"][key]) if key in row["metrics"] else "-" for key in columns],
            "description": format_value(row.get("description", "")),
        }
        for row in results
    ]


def _per_class_rows(
    problem_type: str, label_names: Sequence[str] | None, own_metrics: Mapping[str, float]
) -> list[tuple[str, ...]]:
    """(label, precision, recall, F1) for each class that has all three (single-label classification only)."""
    rows = []
    if problem_type == "single_label_classification" and label_names:
        for label in label_names:
            values = [own_metrics.get(f"{metric}_{label}") for metric in ("precision", "recall", "f1")]
            if all(value is not None for value in values):
                rows.append((label, *(format_value(value) for value in values)))
    return rows


def _accuracy_margin(own_metrics: Mapping[str, float], eval_size: int | None) -> str | None:
    """Half-width of the 95% normal-approximation interval of the accuracy, in points, or ``None``."""
    if "accuracy" not in own_metrics or not eval_size:
        return None
    accuracy = own_metrics["accuracy"]
    return f"{100 * 1.96 * math.sqrt(accuracy * (1 - accuracy) / eval_size):.1f}"


def _finetuned_card_data(
    name: str,
    *,
    base_model: str | None,
    dataset_name: str,
    problem_type: str,
    eval_split: str,
    columns: Mapping[str, str],
    own_metrics: Mapping[str, float],
    license: str,
) -> ModelCardData:
    """The YAML header of a fine-tuned card: its model-index holds this model's metrics on ``eval_split``."""
    eval_results = [
        EvalResult(
            task_type="text-classification",
            task_name=TASK_DESCRIPTIONS[problem_type],
            dataset_type=dataset_name,
            dataset_name=dataset_name,
            dataset_split=eval_split,
            metric_type=PIPELINE_METRICS[key],
            metric_name=title,
            metric_value=round(own_metrics[key], 6),
            metric_config=key.split("_")[0] if key.endswith("_f1") else None,
        )
        for key, title in columns.items()
        if key in own_metrics
    ]
    return ModelCardData(
        language=LANGUAGE,
        license=license,
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["glm_hf", "bert", "text-classification", "chinese"],
        datasets=[dataset_name],
        metrics=sorted({PIPELINE_METRICS[key] for key in columns}),
        base_model=base_model if _hub_url(base_model) else None,
        model_name=name,
        eval_results=eval_results or None,
    )


def write_ner_card(
    output_dir: str,
    *,
    base_model: str | None,
    dataset_name: str,
    dataset_description: str,
    entity_types: Sequence[str],
    metrics: Mapping,
    training_args: Mapping,
    eval_split: str = "test",
    eval_size: int | None = None,
    plots: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    max_length: int | None = None,
    example_text: str = "中共中央总书记江泽民在北京发表新年讲话。",
    model_name: str | None = None,
    repo_id: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> str:
    """Fill ``model_cards/ner.md`` for the NER model in ``output_dir``; returns README.md's path.

    ``metrics`` holds unprefixed entity-level keys of ``eval_split``: ``precision``, ``recall``, ``f1`` and, per
    type, ``<TYPE>_precision``/``_recall``/``_f1``/``_number`` (as :func:`glm_hf.finetuning_ner.seqeval_scores`
    gives them with entity-level metrics).
    """
    for caption, file_name in (plots or {}).items():
        _check_file_name(file_name, f"plots[{caption!r}]", output_dir)
    name = _model_name(output_dir, model_name)
    type_rows = [
        (kind, *(format_value(metrics[f"{kind}_{key}"]) for key in ("precision", "recall", "f1", "number")))
        for kind in entity_types if f"{kind}_f1" in metrics
    ]
    number = sum(int(metrics.get(f"{kind}_number", 0)) for kind in entity_types)
    overall = {key: format_value(metrics[key]) for key in ("precision", "recall", "f1")} | {"number": number}
    card_data = ModelCardData(
        language=LANGUAGE, license=license, library_name="transformers", pipeline_tag="token-classification",
        tags=["glm_hf", "bert", "token-classification", "ner", "chinese"], datasets=[dataset_name],
        metrics=["precision", "recall", "f1"], base_model=base_model if _hub_url(base_model) else None,
        model_name=name,
        eval_results=[
            EvalResult(task_type="token-classification", task_name="Named-entity recognition",
                       dataset_type=dataset_name, dataset_name=dataset_name, dataset_split=eval_split,
                       metric_type=key, metric_name=f"entity {key}", metric_value=round(float(metrics[key]), 6))
            for key in ("precision", "recall", "f1")
        ],
    )
    card = ModelCard.from_template(
        card_data, template_path=NER_TEMPLATE, model_name=name, repo_id=repo_id or name, base_model=base_model,
        dataset_title=f"`{dataset_name}`", dataset_description=dataset_description,
        entity_types=list(entity_types), eval_split=eval_split,
        eval_size=f"{eval_size} sentences" if eval_size else "the held-out sentences",
        type_rows=type_rows, overall=overall, plots=list((plots or {}).items()), notes=list(notes),
        hyperparameter_rows=hyperparameter_rows(training_args), max_length=max_length or "the maximum length",
        example_text=example_text,
    )
    return write_card(card, output_dir)
