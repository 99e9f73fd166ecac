"""The compute study: what pretraining buys, per objective and budget, on the embedded sentiment split.

``glm-hf study --output_dir runs/study`` runs, for each pretraining objective, one pretraining run that saves a
checkpoint at each budget (a number of optimizer steps), then fine-tunes every checkpoint -- and a random
initialisation of the same architecture, budget 0 -- with the same fine-tuning protocol and several seeds, and scores
each on the validation and test splits. The TF-IDF baseline is scored on the same split. It writes

- ``study.json``: every cell (objective, budget, seed) with its validation/test accuracy and macro-F1, the
  pretraining FLOPs (Trainer's ``total_flos``) and minutes of each budget, the pretraining metrics (MLM / SOP / RTD
  accuracy and the n-gram cloze lines), and per objective and budget the mean and spread over seeds;
- ``study.png``: test accuracy (mean, min-max over seeds) against pretraining FLOPs, one line per objective, with
  the random-init and TF-IDF levels.

Rerunning skips finished cells and resumes an interrupted pretraining run, so a study can span several sittings;
``--quick`` is a tiny grid for smoke tests. A fine-tuning variant (``--finetune_pooling mean``, other
``--finetune_steps``) keeps its cells and ``study-<variant>.json`` / ``.png`` beside the default's, and a grid of
fewer budgets ending at the same last budget reuses the finished pretraining runs. ``--compare_with`` draws other
studies' rows beside this one's (``study-compared.png``), labelled by the length of their pretraining run.
The folder is the study's own: a non-empty folder that holds no study is
refused, and nothing outside the cells it records is ever removed.

The fine-tuning of one cell (:func:`finetune_cell`) and the learning-rate choice on validation
(:func:`tune_and_repeat`) are shared with the main job (:mod:`glm_hf.main_job`).
"""

import hashlib
import json
import logging
import os
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field

from transformers import TrainerCallback

from .evaluation import save_png, write_json
from .run_folder import RUN_RECORD, argument_defaults, as_json, differing_settings

logger = logging.getLogger(__name__)

STUDY_MARKER = ".glm_hf_study.json"
CELL_FILE = "cell.json"
RESULTS_FILE = "study.json"
FIGURE_FILE = "study.png"


# ------------------------------------------------------------------------------------------------- fine-tuning
# A fine-tuning run below this test macro-F1 (a balanced random guess on two classes) did not train: it ends
# predicting nearly one class (about 0.34). Reports name such runs instead of folding them silently into a mean.
UNTRAINED_MACRO_F1 = 0.5


@dataclass
class FinetuneProtocol:
    """How a checkpoint (or a random initialisation) is fine-tuned and scored: the same for every row compared."""

    steps: int = 440
    batch_size: int = 32
    max_seq_length: int = 128
    warmup: float = 0.06
    dropout: float = 0.0
    pooling: str = "cls"
    reinit_pooler: bool = False
    reinit_top_layers: int = 0
    learning_rates: tuple[float, ...] = (5e-4,)
    seeds: tuple[int, ...] = (0,)
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_predict_samples: int | None = None


def starting_point_fingerprint(init_dir: str | None, config_dir: str) -> str:
    """SHA-1 of what a cell starts from: the config, plus the weights of a pretrained start. A path alone would let
    a cell made from an earlier checkpoint of the same name pass for one of the current checkpoint."""
    digest = hashlib.sha1()
    for name in ["config.json", *(["model.safetensors"] if init_dir else [])]:
        path = os.path.join(init_dir or config_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def finetune_cell(
    cell_dir: str,
    protocol: FinetuneProtocol,
    learning_rate: float,
    seed: int,
    *,
    init_dir: str | None,
    config_dir: str,
    tokenizer_dir: str,
    keep_model: bool = False,
) -> dict:
    """Fine-tune ``init_dir`` (None: a random initialisation of ``config_dir``'s architecture) into ``cell_dir`` and
    score it on validation and test; the result is written to ``cell_dir/cell.json`` (a finished cell is read back).
    Without ``keep_model`` only the metrics stay: the weights of dozens of cells are not worth their disk."""
    from .finetuning import DataTrainingArguments, ModelArguments, finetune

    record_path = os.path.join(cell_dir, CELL_FILE)
    # As JSON reads it back (tuples become lists), so that a finished cell's record compares equal.
    settings = as_json({"init": init_dir, "start": starting_point_fingerprint(init_dir, config_dir),
                        "learning_rate": learning_rate, "seed": seed, "protocol": cell_protocol(asdict(protocol))})
    if os.path.isfile(record_path):
        with open(record_path, encoding="utf-8") as f:
            record = json.load(f)
        recorded = record.get("settings") or {}
        if {**recorded, "protocol": cell_protocol(recorded.get("protocol") or {})} == settings:
            return record
    if os.path.isdir(cell_dir):
        shutil.rmtree(cell_dir)  # a cell of this study left half-done, or made with other settings
    overrides = [f"hidden_dropout_prob={protocol.dropout}", f"attention_probs_dropout_prob={protocol.dropout}"]
    if protocol.pooling != "cls":
        overrides.append(f"classifier_pooling={protocol.pooling}")
    model_args = ModelArguments(
        model_name_or_path=init_dir,
        config_name=None if init_dir else config_dir,
        tokenizer_name=tokenizer_dir,
        config_overrides=",".join(overrides),
        reinit_pooler=protocol.reinit_pooler and init_dir is not None,
        reinit_top_layers=protocol.reinit_top_layers if init_dir else 0,
    )
    data_args = DataTrainingArguments(
        dataset_name="embedded-sentiment",
        max_seq_length=protocol.max_seq_length,
        shuffle_train_dataset=True,
        shuffle_seed=seed,
        max_train_samples=protocol.max_train_samples,
        max_eval_samples=protocol.max_eval_samples,
        max_predict_samples=protocol.max_predict_samples,
    )
    start = time.perf_counter()
    # No card per cell: the study's results and the main job's final card are the ones written (each once).
    metrics = finetune(
        model_args, data_args, _cell_training_args(cell_dir, protocol, learning_rate, seed), write_model_card=False
    )
    record = {
        "settings": settings,
        "seconds": round(time.perf_counter() - start, 1),
        "validation": {key.removeprefix("eval_"): metrics[key] for key in ("eval_accuracy", "eval_macro_f1")},
        "test": {key.removeprefix("test_"): metrics[key] for key in ("test_accuracy", "test_macro_f1")},
    }
    if not keep_model:
        drop_weights(cell_dir)
    write_json(record, record_path)
    return record


# The grid a cell belongs to, not how it trains: widening the rate grid or adding seeds reuses the finished cells.
GRID_FIELDS = ("learning_rates", "seeds")


def cell_protocol(protocol: dict) -> dict:
    """What of the protocol a single cell's result depends on (records written before this rule carry the grid too)."""
    return {key: value for key, value in protocol.items() if key not in GRID_FIELDS}


def drop_weights(folder: str) -> None:
    """Fine-tuning cells keep their metrics; their weights (dozens of copies of the model) are not kept."""
    for root, _, files in os.walk(folder):
        for name in files:
            if name.endswith((".safetensors", ".bin")):
                os.remove(os.path.join(root, name))


def _cell_training_args(cell_dir: str, protocol: FinetuneProtocol, learning_rate: float, seed: int):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=cell_dir,
        do_train=True,
        do_eval=True,
        do_predict=True,
        max_steps=protocol.steps,
        per_device_train_batch_size=protocol.batch_size,
        per_device_eval_batch_size=2 * protocol.batch_size,
        learning_rate=learning_rate,
        warmup_steps=protocol.warmup,
        weight_decay=0.01,
        logging_steps=max(1, protocol.steps // 40),
        save_strategy="no",
        report_to="none",
        seed=seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )


def tune_and_repeat(cells_dir: str, protocol: FinetuneProtocol, report=print, **cell_kwargs) -> dict:
    """The learning rate with the best validation accuracy on the first seed (model selection on validation only),
    then the other seeds at that rate. Returns the chosen rate, every cell, and the test mean / spread over seeds."""
    first_seed, *other_seeds = protocol.seeds
    by_rate = {}
    for rate in protocol.learning_rates:
        by_rate[rate] = finetune_cell(os.path.join(cells_dir, f"lr{rate:g}-seed{first_seed}"), protocol, rate,
                                      first_seed, **cell_kwargs)
        report(f"    lr {rate:g} seed {first_seed}: validation accuracy {by_rate[rate]['validation']['accuracy']:.4f}")
    best_rate = max(protocol.learning_rates, key=lambda rate: by_rate[rate]["validation"]["accuracy"])
    cells = [by_rate[best_rate]]
    for seed in other_seeds:
        cells.append(finetune_cell(os.path.join(cells_dir, f"lr{best_rate:g}-seed{seed}"), protocol, best_rate, seed,
                                   **cell_kwargs))
        report(f"    lr {best_rate:g} seed {seed}: validation accuracy {cells[-1]['validation']['accuracy']:.4f}")
    return {"learning_rate": best_rate, "grid": {f"{r:g}": by_rate[r]["validation"] for r in by_rate},
            "cells": cells, **spread(cells)}


def spread(cells: list[dict]) -> dict:
    """Mean, standard deviation, min and max over seeds of the test accuracy and macro-F1."""
    summary = {}
    for split in ("validation", "test"):
        for metric in ("accuracy", "macro_f1"):
            values = [cell[split][metric] for cell in cells]
            summary[f"{split}_{metric}"] = {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values),
                "max": max(values),
                "n": len(values),
            }
    return summary


# ------------------------------------------------------------------------------------------------- the study
@dataclass
class StudySettings:
    output_dir: str = field(default="runs/study", metadata={"help": "Study folder (created; reruns resume)."})
    objectives: str = field(default="mlm_nsp,mlm_sop,mlm,rtd", metadata={"help": "Comma-separated objectives."})
    budgets: str = field(default="300,900,1800", metadata={"help": "Pretraining steps at which to fine-tune."})
    seeds: str = field(default="0,1,2", metadata={"help": "Fine-tuning seeds of every cell."})
    learning_rates: str = field(
        default="1e-4,5e-4", metadata={"help": "Fine-tuning learning-rate grid (chosen on validation, first seed)."}
    )
    model_size: str = field(default="mini", metadata={"help": "GLM size of every model."})
    vocab_size: int = field(default=8000, metadata={"help": "WordPiece vocabulary of the study's tokenizer."})
    pretrain_batch_size: int = field(default=32, metadata={"help": "Examples per pretraining step."})
    pretrain_max_seq_length: int = field(default=128, metadata={"help": "Tokens per pretraining example."})
    pretrain_learning_rate: float = field(default=1e-3, metadata={"help": "Peak pretraining learning rate."})
    mlm_probability: float = field(default=0.3, metadata={"help": "Masking (rtd: replacement) rate."})
    corpus_weights: str | None = field(
        default="reviews=1,peoples_daily=0", metadata={"help": "Pretraining corpus weights (see pretrain)."}
    )
    generator_num_hidden_layers: int = field(default=1, metadata={"help": "rtd: generator layers (0: unigram)."})
    generator_sampling_temperature: float = field(
        default=1.0, metadata={"help": "rtd: replacements sampled from softmax(generator logits / T)."}
    )
    position_embedding_type: str = field(
        default="rotary", metadata={"help": "How every model encodes positions: rotary or absolute (a learned table)."}
    )
    position_embedding_init: str = field(
        default="sinusoidal",
        metadata={"help": "absolute: how new models' position tables start: normal or sinusoidal."},
    )
    finetune_steps: int = field(default=440, metadata={"help": "Fine-tuning steps (one epoch at batch 32)."})
    finetune_pooling: str = field(default="cls", metadata={"help": "Classifier pooling: cls or mean."})
    compare_with: str | None = field(
        default=None,
        metadata={"help": "Comma-separated other study folders (or their study.json) of the same fine-tuning protocol: "
                  "their rows join this study's in study-compared.png and the printed table, each labelled with "
                  "the length of the pretraining run it comes from."},
    )
    quick: bool = field(default=False, metadata={"help": "Tiny grid for smoke tests: its numbers mean nothing."})

    def __post_init__(self):
        from .pretraining import OBJECTIVES

        self.objective_list = [name.strip() for name in self.objectives.split(",") if name.strip()]
        unknown = [name for name in self.objective_list if name not in OBJECTIVES]
        if unknown or not self.objective_list:
            raise ValueError(
                f"objectives must be a comma-separated subset of {list(OBJECTIVES)}, got {self.objectives!r}"
            )
        self.budget_list = sorted(set(parse_numbers(self.budgets, int, "budgets", minimum=1)))
        self.seed_list = parse_numbers(self.seeds, int, "seeds")
        self.rate_list = parse_numbers(self.learning_rates, float, "learning_rates")
        from .configuration_glm import POSITION_EMBEDDING_INITS, POSITION_EMBEDDING_TYPES, check_choice

        check_choice("position_embedding_type", self.position_embedding_type, POSITION_EMBEDDING_TYPES)
        if not self.generator_sampling_temperature > 0:
            raise ValueError(f"generator_sampling_temperature must be > 0, got {self.generator_sampling_temperature}")
        check_choice("position_embedding_init", self.position_embedding_init, POSITION_EMBEDDING_INITS)


def parse_numbers(text: str, kind, name: str, minimum: float = 0) -> list:
    """``"1e-4,5e-4"`` -> ``[0.0001, 0.0005]``; a bad item or one below ``minimum`` names the setting."""
    try:
        values = [kind(item) for item in text.split(",")]
    except ValueError:
        values = []
    if not values or any(value < minimum for value in values):
        plural = "positive integers" if kind is int and minimum >= 1 else "non-negative numbers"
        raise ValueError(f"{name} must be comma-separated {plural}, got {text!r}")
    return values


# The settings that shape a pretraining run (a run made with others is not reused).
PRETRAINING_SETTINGS = (
    "model_size", "pretrain_batch_size", "pretrain_max_seq_length", "pretrain_learning_rate", "mlm_probability",
    "corpus_weights", "generator_num_hidden_layers", "generator_sampling_temperature", "position_embedding_type",
    "position_embedding_init", "quick",
)


def _run_settings_differ(previous: dict, wanted: dict) -> bool:
    """Whether a recorded pretraining run was made with other settings, by the rule of run folders
    (:func:`~glm_hf.run_folder.differing_settings`): a setting the study added since, at its default, is no difference
    (runs recorded before ``generator_sampling_temperature`` existed stay valid at T = 1)."""
    defaults = {name: value for name, value in argument_defaults(StudySettings).items() if name in PRETRAINING_SETTINGS}
    return bool(differing_settings(previous, wanted, {}, defaults))


class SaveAtStepsCallback(TrainerCallback):
    """Evaluates and saves a checkpoint at each of ``steps`` (the study's budgets), whatever the strategies."""

    def __init__(self, steps):
        self.steps = set(steps)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            control.should_save = control.should_evaluate = True
        return control


def finished_pretraining_run(run_dir: str, run_settings: dict) -> dict[int, dict] | None:
    """The budgets of a finished run of ``run_settings`` in ``run_dir``; None when it must still run (an interrupted run
    of the same settings is left to resume). The study's own folder made with other settings, or interrupted before run
    records existed (no run_folder record: the recipe would refuse its checkpoints as another run's), is removed."""
    if not os.path.isdir(run_dir):
        return None
    done_path, settings_path = os.path.join(run_dir, "budgets.json"), os.path.join(run_dir, "run_settings.json")
    previous = None
    if os.path.isfile(settings_path):
        with open(settings_path, encoding="utf-8") as f:
            previous = json.load(f)
    finished = None
    if os.path.isfile(done_path):
        with open(done_path, encoding="utf-8") as f:
            finished = {int(step): info for step, info in json.load(f).items()}
    if finished is not None and _same_run_fewer_budgets(previous, run_settings, finished):
        return {step: finished[step] for step in run_settings["budgets"]}
    if previous is None or _run_settings_differ(previous, run_settings) or (
            finished is None and not os.path.isfile(os.path.join(run_dir, RUN_RECORD))):
        shutil.rmtree(run_dir)
        return None
    return finished


def _same_run_fewer_budgets(previous: dict | None, wanted: dict, finished: dict[int, dict]) -> bool:
    """A finished run also answers a grid of fewer budgets with the same last one (its learning rate decays over the
    last budget, so that one must match): ``--budgets 900`` reuses the run of ``300,600,900``."""
    if previous is None:
        return False
    same_settings = not _run_settings_differ({**previous, "budgets": None}, {**wanted, "budgets": None})
    return (same_settings and set(wanted["budgets"]) <= set(finished)
            and max(wanted["budgets"]) == max(previous["budgets"]))


def pretraining_run(run_dir: str, objective: str, settings: StudySettings, tokenizer_dir: str) -> dict[int, dict]:
    """Pretrain with ``objective`` up to the largest budget, keeping a checkpoint at each budget; returns, per budget,
    the checkpoint folder, its FLOPs and minutes. A finished run is read back and an interrupted one resumes, if
    it was made with the same settings; a run of other settings (this study's own folder) is started over."""
    from transformers import TrainingArguments

    from .pretraining import DataTrainingArguments, ModelArguments, pretrain

    budgets = settings.budget_list
    done_path, settings_path = os.path.join(run_dir, "budgets.json"), os.path.join(run_dir, "run_settings.json")
    run_settings = {"objective": objective, "budgets": budgets, "tokenizer": tokenizer_dir,
                    **{name: getattr(settings, name) for name in PRETRAINING_SETTINGS}}
    finished = finished_pretraining_run(run_dir, run_settings)
    if finished is not None:
        return finished
    write_json(run_settings, settings_path)
    overrides = "hidden_dropout_prob=0.0,attention_probs_dropout_prob=0.0"
    # the random-init cells' too (they start from this run's config)
    overrides += (f",position_embedding_type={settings.position_embedding_type}"
                  f",position_embedding_init={settings.position_embedding_init}")
    if objective == "rtd":
        overrides += (f",generator_num_hidden_layers={settings.generator_num_hidden_layers}"
                      f",generator_sampling_temperature={settings.generator_sampling_temperature}")
    model_args = ModelArguments(
        model_size=settings.model_size, tokenizer_name=tokenizer_dir, config_overrides=overrides
    )
    data_args = DataTrainingArguments(
        dataset_name="embedded",
        objective=objective,
        max_seq_length=settings.pretrain_max_seq_length,
        mlm_probability=settings.mlm_probability,
        corpus_weights=settings.corpus_weights,
        max_eval_samples=100 if settings.quick else 500,
        max_train_documents=400 if settings.quick else None,
    )
    training_args = TrainingArguments(
        output_dir=run_dir,
        do_train=True,
        do_eval=True,
        max_steps=budgets[-1],
        per_device_train_batch_size=settings.pretrain_batch_size,
        per_device_eval_batch_size=2 * settings.pretrain_batch_size,
        learning_rate=settings.pretrain_learning_rate,
        warmup_steps=0.06,
        weight_decay=0.01,
        logging_steps=max(1, budgets[-1] // 40),
        save_strategy="no",  # the budgets' checkpoints are saved by SaveAtStepsCallback
        report_to="none",
        seed=0,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    start = time.perf_counter()
    metrics = pretrain(model_args, data_args, training_args, extra_callbacks=[SaveAtStepsCallback(budgets)])
    seconds = time.perf_counter() - start
    result = {}
    for step in budgets:
        checkpoint = os.path.join(run_dir, f"checkpoint-{step}")
        with open(os.path.join(checkpoint, "trainer_state.json"), encoding="utf-8") as f:
            state = json.load(f)
        evaluations = [entry for entry in state["log_history"] if "eval_loss" in entry and entry["step"] == step]
        result[step] = {
            "checkpoint": checkpoint,
            "flos": state["total_flos"],
            "eval": {k: v for k, v in (evaluations[-1] if evaluations else {}).items() if k.startswith("eval_")},
            # time is proportional to steps here (same batch shapes throughout); a resumed run timed only its part
            "minutes": seconds / 60 * step / budgets[-1],
        }
        for name in ("optimizer.pt", "scheduler.pt"):  # only needed to resume, and the run is finished
            if os.path.exists(os.path.join(checkpoint, name)):
                os.remove(os.path.join(checkpoint, name))
    result[budgets[-1]]["eval"] = {k: v for k, v in metrics.items() if k.startswith("eval_")}  # the last is final
    write_json({str(step): info for step, info in result.items()}, done_path)
    return result


def sentiment_tfidf_baseline() -> dict:
    """TF-IDF character n-grams + logistic regression on the embedded sentiment split (C chosen on validation)."""
    from .baseline import run_tfidf_baseline
    from .sentiment import LABEL_NAMES, load_sentiment_dataset

    data = load_sentiment_dataset()
    texts_and_labels = {split: (list(data[split]["text"]), list(data[split]["label"])) for split in data}
    return run_tfidf_baseline(
        texts_and_labels["train"],
        {"eval": texts_and_labels["validation"], "test": texts_and_labels["test"]},
        problem_type="single_label_classification",
        label_names=LABEL_NAMES,
    )


def claim_folder(folder: str, marker: str, owner: str) -> None:
    """Make ``folder`` ours: create it, or accept it when it holds our ``marker``; refuse a non-empty folder that
    holds someone else's files (nothing in it is ever removed)."""
    marker_path = os.path.join(folder, marker)
    if os.path.isdir(folder) and os.listdir(folder) and not os.path.isfile(marker_path):
        raise ValueError(
            f"{folder} is not empty and holds no {owner} ({marker} is missing): give a new or empty --output_dir"
        )
    os.makedirs(folder, exist_ok=True)
    if not os.path.isfile(marker_path):
        write_json({"owner": owner, "created": time.strftime("%Y-%m-%d %H:%M:%S")}, marker_path)


def protocol_variant(settings: StudySettings) -> str:
    """Empty for the default fine-tuning protocol, else a suffix naming what differs ("-mean", "-steps880"): a variant's
    cells and results sit beside the default's instead of replacing them (a cell of other settings is redone)."""
    parts = []
    if settings.finetune_pooling != StudySettings.finetune_pooling:
        parts.append(settings.finetune_pooling)
    if settings.finetune_steps != StudySettings.finetune_steps:
        parts.append(f"steps{settings.finetune_steps}")
    return "".join(f"-{part}" for part in parts)


def results_paths(settings: StudySettings) -> tuple[str, str]:
    """Where the study's JSON and figure go: ``study.json`` / ``study.png``, or ``study-mean.json``, ... (a variant)."""
    variant = protocol_variant(settings)
    return tuple(os.path.join(settings.output_dir, name.replace("study", "study" + variant, 1))
                 for name in (RESULTS_FILE, FIGURE_FILE))


def study_protocol(settings: StudySettings) -> FinetuneProtocol:
    protocol = FinetuneProtocol(
        steps=settings.finetune_steps,
        pooling=settings.finetune_pooling,
        learning_rates=tuple(settings.rate_list),
        seeds=tuple(settings.seed_list),
    )
    if settings.quick:
        protocol.steps, protocol.max_seq_length = min(protocol.steps, 20), 64
        protocol.max_train_samples, protocol.max_eval_samples, protocol.max_predict_samples = 640, 200, 200
    return protocol


def run_study(settings: StudySettings, report=print) -> dict:
    """Every cell of the grid (see the module docstring); returns what ``study.json`` holds."""
    from .tokenization import TokenizerTrainingArguments, train_tokenizer

    study_dir = os.path.abspath(settings.output_dir)
    claim_folder(study_dir, STUDY_MARKER, "glm-hf study")
    tokenizer_dir = os.path.join(study_dir, "tokenizer")
    if not os.path.isfile(os.path.join(tokenizer_dir, "tokenizer_config.json")):
        report("tokenizer: training a WordPiece vocabulary on the embedded corpus")
        train_tokenizer(TokenizerTrainingArguments(
            output_dir=tokenizer_dir, dataset_name="embedded", vocab_size=settings.vocab_size,
            max_train_documents=3000 if settings.quick else None, overwrite_output_dir=True,
        ))
    protocol, variant = study_protocol(settings), protocol_variant(settings)
    rows = []
    config_dir = None
    for objective in settings.objective_list:
        report(f"{objective}: pretraining up to {settings.budget_list[-1]} steps")
        budgets = pretraining_run(os.path.join(study_dir, "pretrain", objective), objective, settings, tokenizer_dir)
        for step, info in budgets.items():
            config_dir = config_dir or info["checkpoint"]
            report(f"  {objective} at {step} steps: fine-tuning")
            cells_dir = os.path.join(study_dir, "finetune", f"{objective}-{step}{variant}")
            result = tune_and_repeat(cells_dir, protocol, report,
                                     init_dir=info["checkpoint"], config_dir=info["checkpoint"],
                                     tokenizer_dir=tokenizer_dir)
            rows.append({"objective": objective, "steps": step, "flos": info["flos"], "minutes": info["minutes"],
                         "pretraining": info["eval"], **result})
    report("random initialisation: fine-tuning")
    random_init = tune_and_repeat(os.path.join(study_dir, "finetune", f"random-init{variant}"), protocol, report,
                                  init_dir=None, config_dir=config_dir, tokenizer_dir=tokenizer_dir)
    results = {
        "settings": asdict(settings),
        "protocol": asdict(protocol),
        "random_init": random_init,
        "tfidf": {key: value for key, value in sentiment_tfidf_baseline().items() if key != "config"},
        "rows": rows,
    }
    results_path, figure_path = results_paths(settings)
    write_json(results, results_path)
    plot_study(results, figure_path)
    return results


def plot_study(results: dict, path: str) -> str:
    """Test accuracy (mean, min-max over seeds) against pretraining FLOPs, per objective, with the random-init and
    TF-IDF levels; written to a temporary file and renamed into place."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for objective in dict.fromkeys(row["objective"] for row in results["rows"]):
        rows = sorted((row for row in results["rows"] if row["objective"] == objective), key=lambda row: row["flos"])
        x = [row["flos"] for row in rows]
        mean = [row["test_accuracy"]["mean"] for row in rows]
        # max(0, ...): with equal seeds the float mean can land a hair outside [min, max]; errorbar refuses that
        low = [max(0.0, row["test_accuracy"]["mean"] - row["test_accuracy"]["min"]) for row in rows]
        high = [max(0.0, row["test_accuracy"]["max"] - row["test_accuracy"]["mean"]) for row in rows]
        axes.errorbar(x, mean, yerr=[low, high], marker="o", capsize=3, label=objective)
    random_init = results["random_init"]["test_accuracy"]
    axes.axhline(random_init["mean"], color="black", linestyle="--", label="random init (mean)")
    axes.axhspan(random_init["min"], random_init["max"], color="black", alpha=0.08)
    axes.axhline(results["tfidf"]["test_accuracy"], color="tab:gray", linestyle=":", label="TF-IDF + LR")
    axes.set_xscale("log")
    axes.set_xlabel("pretraining FLOPs (Trainer total_flos)")
    axes.set_ylabel("test accuracy (mean, min-max over seeds)")
    axes.set_title("What pretraining buys: fine-tuned sentiment accuracy")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return save_png(plt, figure, path)


COMPARED_FIGURE_FILE = "study-compared.png"


def compare_studies(results: dict, others: dict[str, dict]) -> dict:
    """``results`` with the rows of ``others`` (``{path: study.json}``) joined, every row's objective labelled with the
    length of its pretraining run ("mlm, 1800-step run"): a checkpoint at 900 steps of a 1,800-step run is not a
    900-step run (its learning rate has not decayed), so rows of runs of different lengths are told apart. The
    random-init and TF-IDF rows are this study's; another study must share its fine-tuning protocol and seeds."""
    def protocol(study: dict) -> dict:  # as JSON reads it (a study in memory holds tuples), without the rate grid
        return {key: value for key, value in as_json(study.get("protocol") or {}).items()
                if key != "learning_rates"}

    def labelled(study: dict) -> list[dict]:
        run_length = {}
        for row in study["rows"]:
            run_length[row["objective"]] = max(row["steps"], run_length.get(row["objective"], 0))
        return [{**row, "objective": f"{row['objective']}, {run_length[row['objective']]}-step run"}
                for row in study["rows"]]

    rows = labelled(results)
    for path, other in others.items():
        theirs, ours = protocol(other), protocol(results)
        if theirs != ours:
            differing = ", ".join(f"{key} {theirs.get(key)!r} (this study: {ours.get(key)!r})"
                                  for key in sorted(set(theirs) | set(ours)) if theirs.get(key) != ours.get(key))
            raise ValueError(f"--compare_with {path}: its fine-tuning protocol differs from this study's "
                             f"({differing}), so its rows cannot be compared")
        rows += [row for row in labelled(other) if row["objective"] not in {known["objective"] for known in rows}]
    return {**results, "rows": rows}


def read_compared_studies(folders: str) -> dict[str, dict]:
    """``--compare_with``: ``{path: study.json}`` of each comma-separated study folder or study.json file."""
    studies = {}
    for item in (part.strip() for part in folders.split(",")):
        path = os.path.join(item, RESULTS_FILE) if os.path.isdir(item) else item
        if not os.path.isfile(path):
            raise ValueError(f"--compare_with {item}: no study results there ({RESULTS_FILE}); run glm-hf study first")
        with open(path, encoding="utf-8") as f:
            studies[path] = json.load(f)
    return studies


def study_table(results: dict) -> str:
    """The study as a markdown table (README, cards); the gain is the row's mean test accuracy minus random init's,
    in points."""
    lines = [
        "| objective | pretraining steps | FLOPs | minutes | MLM / RTD acc. | NSP / SOP acc. | bigram cloze | "
        "fine-tuning lr | test accuracy (mean ± std, n) | gain (points) | per seed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    baseline = results["random_init"]["test_accuracy"]["mean"]

    def accuracy(row: dict) -> str:
        stats = row["test_accuracy"]
        per_seed = ", ".join(
            f"{cell['test']['accuracy']:.4f}"
            + (" (did not train)" if cell["test"]["macro_f1"] < UNTRAINED_MACRO_F1 else "")
            for cell in row.get("cells", [])
        )
        gain = "-" if row is results["random_init"] else f"{100 * (stats['mean'] - baseline):+.1f}"
        return f"{stats['mean']:.4f} ± {stats['std']:.4f} ({stats['n']}) | {gain} | {per_seed or '-'}"

    def number(value) -> str:
        return "-" if value is None else f"{value:.3f}"

    random_init = results["random_init"]
    lines.append(f"| random init | 0 | 0 | 0 | - | - | - | {random_init['learning_rate']:g} | "
                 f"{accuracy(random_init)} |")
    for row in results["rows"]:
        pretraining = row["pretraining"]
        task = pretraining.get("eval_rtd_accuracy", pretraining.get("eval_mlm_accuracy"))
        pairs = pretraining.get("eval_sop_accuracy", pretraining.get("eval_nsp_accuracy"))
        lines.append(
            f"| {row['objective']} | {row['steps']} | {row['flos']:.2e} | {row['minutes']:.1f} | {number(task)} | "
            f"{number(pairs)} | {number(pretraining.get('eval_bigram_cloze_accuracy'))} | "
            f"{row['learning_rate']:g} | {accuracy(row)} |"
        )
    lines.append(
        f"| TF-IDF char 1-3-grams + LR | - | - | - | - | - | - | - | {results['tfidf']['test_accuracy']:.4f} | - | - |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(StudySettings)
    parser.prog = "glm-hf study"
    (settings,) = parser.parse_args_into_dataclasses(args=argv)
    if settings.quick and settings.budgets == StudySettings.budgets:
        settings.budgets, settings.budget_list = "4,8", [4, 8]
        settings.model_size, settings.vocab_size = "tiny", 3000
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.WARNING)
    others = read_compared_studies(settings.compare_with) if settings.compare_with else {}  # bad paths fail first
    results = run_study(settings)
    results_path, figure_path = results_paths(settings)
    if others:
        results = compare_studies(results, others)
        figure_path = plot_study(results, os.path.join(settings.output_dir, COMPARED_FIGURE_FILE))
    print(study_table(results))
    print(f"\nResults: {results_path}")
    print(f"Figure:  {figure_path}")
    return 0
