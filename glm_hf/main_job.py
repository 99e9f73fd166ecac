"""The main job: ``glm-hf main`` runs the whole comparison on the embedded data, end to end, on a CPU.

Stages, each in its own folder under ``--output_dir``, each a typed call of the library (no command lines between):

1. ``tokenizer/``: a Chinese WordPiece tokenizer trained on the pretraining corpus (:mod:`glm_hf.tokenization`).
2. ``pretrain/``: GLM pretrained from scratch on People's Daily 1998 + the *train* reviews with ``--objective``
   (:func:`glm_hf.pretraining.pretrain`).
3. ``finetune/``: that model fine-tuned on the embedded sentiment task (:func:`glm_hf.study.tune_and_repeat`): each
   rate of ``--finetune_learning_rates`` on the first seed, the best on *validation* kept, then the other seeds;
   ``finetune/cells/`` holds every run's metrics and ``finetune/`` itself the chosen model (seed 0), its card and plots.
4. ``finetune_from_scratch/``: the same protocol -- same grid, seeds, steps and data -- from a random initialisation
   of the same architecture: what pretraining bought.
5. ``baseline/``: TF-IDF character n-grams + logistic regression on the same split.

It ends with ``main_results.json`` (test accuracy and macro-F1 of the three systems: the GLM rows are means over the
seeds, with their spread and chosen rates), the model card ``finetune/README.md`` with every number and plot, and a
reload of ``finetune/`` with ``AutoModelForSequenceClassification.from_pretrained`` that classifies a few sentences.

Re-running resumes: a stage whose completion record (``.stages/<stage>.json``) matches its settings is skipped; an
interrupted pretraining resumes from its last checkpoint, an interrupted fine-tuning stage keeps its finished runs;
anything else half-written is removed and redone. A stage whose settings changed is redone with everything after it;
settings are compared one by one, by the rule of run folders: one the library added since, at its default, changes
nothing (:func:`glm_hf.run_folder.differing_settings`).
Only what the job recorded as its own is ever removed or overwritten: a stage folder without a record (the user's own
``tokenizer/``, say), a ``main_results.json`` in a folder without records and, with ``--overwrite``, any entry that is
not the job's stop the job with a message instead.
The measured time of the default settings is in README.md; ``--quick`` (tiny model, few steps, subsets) is a smoke
test whose numbers mean nothing.
"""

import argparse
import hashlib
import json
import logging
import os
import shutil
import statistics
import sys
import time
import typing
from dataclasses import asdict, dataclass, field, fields

from .evaluation import read_json, write_json
from .run_folder import argument_defaults, as_json, differing_settings
from .study import (
    UNTRAINED_MACRO_F1,
    FinetuneProtocol,
    drop_weights,
    parse_numbers,
    starting_point_fingerprint,
    tune_and_repeat,
)

logger = logging.getLogger(__name__)

STATE_DIR = ".stages"
RESULTS_FILE = "main_results.json"
STAGES = ("tokenizer", "pretrain", "finetune", "finetune_checkpoint", "finetune_from_scratch", "baseline")
BASELINE_FILE = "baseline_results.json"
EXAMPLE_SENTENCES = (
    "这家酒店的服务很好，房间也很干净，下次还会再来。",
    "质量太差了，用了两天就坏了，不推荐购买。",
    "物流很快，包装完好，书的内容也很精彩。",
    "前台态度冷淡，早餐难吃，房间还有异味。",
    "屏幕显示效果不错，就是电池不太耐用。",
)


@dataclass
class JobSettings:
    """Every setting that shapes the results; stages are fingerprinted by the settings they use."""

    init_from: str | None = field(
        default=None,
        metadata={"help": "start from this GLM checkpoint (e.g. a BERT converted with glm-hf convert-bert): its "
                  "tokenizer and architecture, --pretrain_steps of continued pretraining (0: none), and a row for the "
                  "checkpoint fine-tuned as it is"},
    )
    model_size: str = field(default="mini", metadata={"help": "GLM size for both GLM runs (tiny, mini, small, ...)"})
    vocab_size: int = field(default=8000, metadata={"help": "WordPiece vocabulary size"})
    tokenizer_max_documents: int | None = field(
        default=None, metadata={"help": "train the tokenizer on fewer documents"}
    )
    # MLM alone on packed in-domain text: measured (README) against MLM + NSP on news + reviews, which fine-tuned 3.5
    # points below the random initialisation at this budget; 30 % masking gives twice the predictions per sequence.
    objective: str = field(default="mlm", metadata={"help": "pretraining objective (see glm-hf pretrain --help)"})
    corpus_weights: str | None = field(
        default="reviews=1,peoples_daily=0", metadata={"help": "pretraining corpus weights (0 leaves a corpus out)"}
    )
    mlm_probability: float = field(default=0.3, metadata={"help": "masking (rtd: replacement) rate"})
    mlm_probability_end: float | None = field(default=None, metadata={"help": "masking rate at the last step"})
    generator_num_hidden_layers: int = field(default=1, metadata={"help": "rtd: generator layers (0: unigram)"})
    pretrain_max_seq_length: int = field(default=128, metadata={"help": "tokens per pretraining example"})
    pretrain_steps: int = field(default=900, metadata={"help": "pretraining optimizer steps"})
    pretrain_batch_size: int = field(default=32, metadata={"help": "examples per pretraining step"})
    pretrain_learning_rate: float = field(default=1e-3, metadata={"help": "peak pretraining learning rate"})
    pretrain_warmup: float = field(default=0.06, metadata={"help": "pretraining warmup, share of the steps"})
    # Dropout off: in a run of minutes it only slows learning (as in Geiping & Goldstein 2022, "Cramming"); measured
    # here, MLM accuracy after 250 / 500 pretraining steps 0.084 / 0.121 without dropout vs 0.048 / 0.106 with 0.1.
    # Rotary positions (RoPE): with a learned table, even started sinusoidal, MLM sat at the n-gram stage until ~1,100
    # steps; with rotary it leaves it within 300 (README, "The diagnosis").
    position_embedding_type: str = field(
        default="rotary", metadata={"help": "how both GLM runs encode positions: rotary or absolute (a learned table)"}
    )
    position_embedding_init: str = field(
        default="sinusoidal", metadata={"help": "absolute: how the position table starts: normal or sinusoidal"}
    )
    pretrain_dropout: float = field(default=0.0, metadata={"help": "hidden and attention dropout in pretraining"})
    pretrain_max_train_samples: int | None = field(default=None, metadata={"help": "pretrain on fewer examples"})
    pretrain_max_eval_samples: int | None = field(
        default=500, metadata={"help": "examples in the pretraining evaluation"}
    )
    finetune_max_seq_length: int = field(default=128, metadata={"help": "tokens per review (longer ones are cut)"})
    finetune_steps: int = field(default=440, metadata={"help": "fine-tuning optimizer steps (both GLM runs)"})
    finetune_batch_size: int = field(default=32, metadata={"help": "reviews per fine-tuning step"})
    finetune_learning_rates: str = field(
        default="1e-4,5e-4",
        metadata={"help": "fine-tuning learning-rate grid; each GLM run picks its best on validation"},
    )
    finetune_seeds: str = field(default="0,1", metadata={"help": "fine-tuning seeds (the first one picks the rate)"})
    finetune_warmup: float = field(default=0.06, metadata={"help": "fine-tuning warmup, share of the steps"})
    finetune_dropout: float = field(
        default=0.0, metadata={"help": "hidden and attention dropout in fine-tuning (one epoch: nothing to regularise)"}
    )
    finetune_pooling: str = field(default="cls", metadata={"help": "classifier pooling: cls or mean"})
    reinit_pooler: bool = field(default=False, metadata={"help": "re-initialise the pretrained pooler"})
    reinit_top_layers: int = field(default=0, metadata={"help": "re-initialise the top N pretrained layers"})
    max_train_samples: int | None = field(default=None, metadata={"help": "fine-tune on fewer reviews"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "fewer validation reviews"})
    max_predict_samples: int | None = field(default=None, metadata={"help": "score on fewer test reviews"})
    seed: int = field(default=42, metadata={"help": "seed of the tokenizer and pretraining stages"})

    @classmethod
    def quick(cls) -> "JobSettings":
        """Minutes, not tens of minutes: checks that everything runs, not how well."""
        return cls(
            model_size="tiny",
            vocab_size=3000,
            tokenizer_max_documents=3000,
            pretrain_max_seq_length=64,
            pretrain_steps=60,
            pretrain_batch_size=16,
            pretrain_learning_rate=1e-3,
            pretrain_max_train_samples=2000,
            pretrain_max_eval_samples=100,
            finetune_max_seq_length=64,
            finetune_steps=200,
            finetune_batch_size=32,
            finetune_learning_rates="1e-3",
            finetune_seeds="0",
            max_train_samples=6400,
            max_eval_samples=400,
            max_predict_samples=None,
        )

    def finetune_protocol(self) -> FinetuneProtocol:
        """The fine-tuning both GLM runs get (glm_hf.study): same steps, data, grid of rates and seeds."""
        return FinetuneProtocol(
            steps=self.finetune_steps,
            batch_size=self.finetune_batch_size,
            max_seq_length=self.finetune_max_seq_length,
            warmup=self.finetune_warmup,
            dropout=self.finetune_dropout,
            pooling=self.finetune_pooling,
            reinit_pooler=self.reinit_pooler,
            reinit_top_layers=self.reinit_top_layers,
            learning_rates=tuple(parse_numbers(self.finetune_learning_rates, float, "finetune_learning_rates")),
            seeds=tuple(parse_numbers(self.finetune_seeds, int, "finetune_seeds")),
            max_train_samples=self.max_train_samples,
            max_eval_samples=self.max_eval_samples,
            max_predict_samples=self.max_predict_samples,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glm-hf main",
        description="Train a tokenizer, pretrain GLM, fine-tune it (and a randomly initialised twin) on the embedded "
        "Chinese sentiment task, evaluate on the test split against a TF-IDF baseline, write card, plots and "
        "metrics, then reload the model and classify example sentences. Re-running resumes.",
    )
    parser.add_argument(
        "--output_dir", default=None, help="job folder (default: runs/main, or runs/main_quick with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke-test settings: tiny model, subsets, under a minute")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="delete what an earlier run wrote in the job folder (its stage folders, records and results) and start "
        "over; a folder that holds anything else is refused",
    )
    parser.add_argument("--examples", nargs="+", default=None, help="sentences to classify at the end")
    settings = parser.add_argument_group("settings (override the default or --quick values)")
    quick = JobSettings.quick()
    for setting in fields(JobSettings):
        kind = _argument_type(setting.type)
        settings.add_argument(
            f"--{setting.name}",
            type=kind,
            default=None,
            help=f"{setting.metadata['help']} (default {setting.default}; --quick {getattr(quick, setting.name)})",
        )
    return parser


def _argument_type(annotation):
    """The parser type of a JobSettings field: its type, without ``| None``; booleans from true/false."""
    kinds = [kind for kind in typing.get_args(annotation) or (annotation,) if kind is not type(None)]
    kind = kinds[0]
    if kind is bool:
        return lambda text: {"true": True, "false": False}[text.lower()]
    return kind


def settings_from_args(args: argparse.Namespace) -> JobSettings:
    settings = JobSettings.quick() if args.quick else JobSettings()
    overrides = {f.name: getattr(args, f.name) for f in fields(JobSettings) if getattr(args, f.name) is not None}
    settings = JobSettings(**{**asdict(settings), **overrides})
    from .configuration_glm import check_model_size

    check_model_size(settings.model_size)
    for name in ("pretrain_warmup", "finetune_warmup"):
        if not 0 <= getattr(settings, name) < 1:
            raise ValueError(f"{name} must be a share of the steps in [0, 1), got {getattr(settings, name)}")
    for name in ("pretrain_dropout", "finetune_dropout"):
        if not 0 <= getattr(settings, name) < 1:
            raise ValueError(f"{name} must be a probability in [0, 1), got {getattr(settings, name)}")
    from .configuration_glm import CLASSIFIER_POOLING, POSITION_EMBEDDING_INITS, POSITION_EMBEDDING_TYPES, check_choice
    from .pretraining import OBJECTIVES

    check_choice("objective", settings.objective, OBJECTIVES)
    check_choice("position_embedding_type", settings.position_embedding_type, POSITION_EMBEDDING_TYPES)
    check_choice("position_embedding_init", settings.position_embedding_init, POSITION_EMBEDDING_INITS)
    check_choice("finetune_pooling", settings.finetune_pooling, CLASSIFIER_POOLING)
    for name in ("mlm_probability", "mlm_probability_end"):
        value = getattr(settings, name)
        if value is not None and not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), got {value}")
    settings.finetune_protocol()  # checks the grid of rates and the seeds
    if settings.init_from is not None:
        check_starting_checkpoint(settings.init_from)
    if settings.pretrain_steps < (0 if settings.init_from else 1):
        raise ValueError("pretrain_steps must be a positive integer (or 0 with --init_from), got "
                         f"{settings.pretrain_steps}")
    for name in (
        "vocab_size",
        "finetune_steps",
        "pretrain_batch_size",
        "finetune_batch_size",
        "pretrain_max_seq_length",
        "finetune_max_seq_length",
    ):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(settings, name)}")
    return settings


def check_starting_checkpoint(folder: str) -> None:
    """--init_from must be a GLM folder with its tokenizer (a BERT folder is converted first)."""
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise ValueError(f"--init_from {folder}: not a model folder (no config.json)")
    model_type = read_json(config_path).get("model_type")
    if model_type != "glm_hf":
        hint = " -- convert it first: glm-hf convert-bert SRC DST" if model_type == "bert" else ""
        raise ValueError(f"--init_from {folder}: a {model_type!r} checkpoint, not a GLM one (model_type glm_hf){hint}")
    if not os.path.isfile(os.path.join(folder, "tokenizer_config.json")):
        raise ValueError(f"--init_from {folder}: holds no tokenizer (tokenizer_config.json); the job uses the "
                         "checkpoint's own vocabulary")


# ------------------------------------------------------------------------------------------------- stage records
def _count(items, noun: str) -> str:
    """``_count([1e-4], "rate")`` -> ``"1 rate"``; two or more: ``"2 rates"``."""
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


@dataclass
class Stage:
    """One step of the job: a folder, the settings that shape it (and their defaults, in the same shape), the function
    that fills it, and whether an interrupted run of it can continue (Trainer checkpoints, finished fine-tuning cells)
    instead of starting over."""

    name: str
    description: str
    settings: dict
    run: typing.Callable[[], dict] | None = None
    upstream: list[str] = field(default_factory=list)
    resumable: bool = False
    data_version: str = ""  # changes when the embedded data (its cleaning or split) changes
    defaults: dict = field(default_factory=dict)  # a setting without one always counts when added or removed

    def what_shapes_it(self, records: dict[str, dict], settings: dict | None = None) -> dict:
        """What the fingerprint is taken of: the settings, the upstream stages' fingerprints, glm_hf's version and
        the embedded data's."""
        from . import __version__

        return {
            "settings": self.settings if settings is None else settings,
            "upstream": {name: records.get(name, {}).get("fingerprint") for name in self.upstream},
            "glm_hf": __version__,
            "data": self.data_version,
        }

    def fingerprint(self, records: dict[str, dict], settings: dict | None = None) -> str:
        """Changes when this stage's settings, the embedded data or any upstream result changes."""
        payload = self.what_shapes_it(records, settings)
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()

    def comparable(self, records: dict[str, dict]) -> dict:
        """What a stage record keeps so that a later run can compare it setting by setting: what the fingerprint is
        taken of, JSON-safe, and the settings' defaults."""
        return as_json({**self.what_shapes_it(records), "setting_defaults": self.defaults})

    def differences(self, record: dict, records: dict[str, dict]) -> list[str]:
        """What makes the run ``record`` holds another run of this stage (empty: the same run). Its fingerprint
        matching says the same; otherwise the record is compared setting by setting by the rule of run folders
        (:func:`~glm_hf.run_folder.differing_settings`: a setting added or removed since, at its default, is no
        difference), so that a new flag of the library does not redo a finished job."""
        if record.get("fingerprint") == self.fingerprint(records):
            return []
        wanted = self.comparable(records)
        if "upstream" not in record:
            # Records of earlier versions keep only the settings: their fingerprint, taken again of the recorded
            # settings, vouches for the rest (upstream results, glm_hf's version, the data). No settings: it alone.
            if "settings" not in record or record.get("fingerprint") != self.fingerprint(records, record["settings"]):
                return ["fingerprint"]
            record = {**wanted, "settings": record["settings"], "setting_defaults": {}}
        changed = [what for name, what in (("upstream", "upstream stages"), ("glm_hf", "glm_hf version"),
                                           ("data", "embedded data")) if record.get(name) != wanted[name]]
        return changed + differing_settings(record.get("settings") or {}, wanted["settings"],
                                            record.get("setting_defaults") or {}, wanted["setting_defaults"])


class StageRecords:
    """``<job>/.stages/<stage>.json``, written atomically: ``{"status": "started"|"complete", "fingerprint", ...}`` and
    what :meth:`Stage.comparable` keeps (settings and their defaults, upstream fingerprints, versions)."""

    def __init__(self, job_dir: str):
        self.folder = os.path.join(job_dir, STATE_DIR)

    def read(self, name: str) -> dict:
        path = os.path.join(self.folder, f"{name}.json")
        if not os.path.isfile(path):
            return {}
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError):
            return {}  # unreadable record: treat the stage as never run

    def write(self, name: str, record: dict) -> None:
        write_json(record, os.path.join(self.folder, f"{name}.json"))

    def clear(self, name: str) -> None:
        path = os.path.join(self.folder, f"{name}.json")
        if os.path.exists(path):
            os.remove(path)


def _stage_outputs_present(stage_dir: str, name: str) -> bool:
    """Files a finished stage must have left (guards against a folder deleted or emptied by hand)."""
    required = {
        "tokenizer": ["tokenizer_config.json"],
        "pretrain": ["config.json", "model.safetensors"],
        "finetune": ["config.json", "model.safetensors", "all_results.json"],
        "finetune_checkpoint": [],
        "finetune_from_scratch": [],
        "baseline": [BASELINE_FILE],
    }[name]
    return os.path.isdir(stage_dir) and all(os.path.isfile(os.path.join(stage_dir, f)) for f in required)


def remove_job_outputs(job_dir: str) -> None:
    """``--overwrite``: remove the stage folders the job recorded, its records and its results file -- and nothing
    else: a folder that holds other entries (``--output_dir .``, say) is refused before anything is removed."""
    if not os.path.isdir(job_dir):
        return
    records = StageRecords(job_dir)
    ours = [name for name in STAGES if records.read(name)]
    if os.path.isdir(records.folder):
        ours += [RESULTS_FILE, STATE_DIR]  # the records go last: an interrupted removal is still recognised
    foreign = sorted(set(os.listdir(job_dir)) - set(ours))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(
            f"--overwrite: {job_dir} holds entries this job did not write ({shown}); nothing was removed -- give "
            "--output_dir a folder of its own (new, empty or an earlier job's)"
        )
    for name in ours:
        path = os.path.join(job_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def _remove_checkpoints(stage_dir: str) -> None:
    # Optimizer states of intermediate checkpoints are only needed to resume; a finished stage keeps the model.
    for entry in os.listdir(stage_dir):
        if entry.startswith("checkpoint-") and os.path.isdir(os.path.join(stage_dir, entry)):
            shutil.rmtree(os.path.join(stage_dir, entry), ignore_errors=True)


def run_stage(stage: Stage, job_dir: str, records: StageRecords, known: dict[str, dict], index: int,
              total: int = len(STAGES)) -> dict:
    """Run, resume or skip ``stage`` (the ``index``-th of ``total``); returns its completion record."""
    stage_dir = os.path.join(job_dir, stage.name)
    record = records.read(stage.name)
    changes = stage.differences(record, known) if record.get("fingerprint") else None
    same_run = changes == []
    # A stage judged the same run keeps its recorded fingerprint: the stages after it recorded that one upstream.
    fingerprint = record["fingerprint"] if same_run else stage.fingerprint(known)
    header = f"[{index}/{total}] {stage.name}: {stage.description}"
    if record.get("status") == "complete" and same_run and _stage_outputs_present(stage_dir, stage.name):
        updated = {**record, **stage.comparable(known)}  # the settings as they are now: compared next time
        if updated != record:
            records.write(stage.name, updated)
        print(f"{header} -- done before ({record.get('seconds', 0):.0f} s), skipped", flush=True)
        return updated
    resuming = record.get("status") == "started" and same_run and stage.resumable and os.path.isdir(stage_dir)
    if resuming:
        print(f"{header} -- resuming an interrupted run", flush=True)
    else:
        if os.path.exists(stage_dir):
            if not record:  # never started by this job (or its record is unreadable): not ours to delete
                raise ValueError(
                    f"{stage_dir} exists but the job has no record of writing it ({STATE_DIR}/{stage.name}.json); "
                    "nothing was removed -- move it away or give --output_dir another folder"
                )
            reason = f"settings changed: {', '.join(changes[:4])}" if changes else "incomplete"
            print(f"{header} -- removing the previous {stage.name}/ ({reason})", flush=True)
            shutil.rmtree(stage_dir)
        print(header, flush=True)
    records.write(stage.name, {"status": "started", "fingerprint": fingerprint, **stage.comparable(known)})
    start = time.perf_counter()
    metrics = stage.run()
    seconds = time.perf_counter() - start  # of this run only, when the stage was resumed
    if stage.resumable:
        _remove_checkpoints(stage_dir)
    record = {
        "status": "complete",
        "fingerprint": fingerprint,
        **stage.comparable(known),
        "seconds": round(seconds, 1),
        "metrics": metrics if isinstance(metrics, dict) else {},
        "resumed": resuming,
    }
    records.write(stage.name, record)
    print(f"{header} -- finished in {seconds / 60:.1f} min", flush=True)
    return record


# -------------------------------------------------------------------------------------------------------- stages
def pretraining_arguments(job_dir: str, s: JobSettings) -> tuple:
    """The pretraining stage's (model, data, training) arguments; with --init_from, continued pretraining of the
    checkpoint (its architecture, positions and vocabulary; only the new heads' settings may be set)."""
    from transformers import TrainingArguments

    from .pretraining import DataTrainingArguments, ModelArguments

    path = lambda name: os.path.join(job_dir, name)  # noqa: E731
    overrides = f"hidden_dropout_prob={s.pretrain_dropout},attention_probs_dropout_prob={s.pretrain_dropout}"
    if not s.init_from:  # the twin is built from the pretrained config, so it starts from the same position table
        overrides += (f",position_embedding_type={s.position_embedding_type}"
                      f",position_embedding_init={s.position_embedding_init}")
    if s.objective == "rtd":
        overrides += f",generator_num_hidden_layers={s.generator_num_hidden_layers}"
    start = {"model_name_or_path": s.init_from} if s.init_from else {"model_size": s.model_size}
    return (
        ModelArguments(**start, tokenizer_name=path("tokenizer"), config_overrides=overrides),
        DataTrainingArguments(
            dataset_name="embedded", objective=s.objective, corpus_weights=s.corpus_weights,
            mlm_probability=s.mlm_probability, mlm_probability_end=s.mlm_probability_end,
            max_seq_length=s.pretrain_max_seq_length, max_train_samples=s.pretrain_max_train_samples,
            max_eval_samples=s.pretrain_max_eval_samples,
        ),
        TrainingArguments(
            output_dir=path("pretrain"), do_train=True, do_eval=True, max_steps=s.pretrain_steps,
            per_device_train_batch_size=s.pretrain_batch_size, per_device_eval_batch_size=2 * s.pretrain_batch_size,
            learning_rate=s.pretrain_learning_rate, warmup_steps=s.pretrain_warmup, weight_decay=0.01,
            logging_steps=max(1, s.pretrain_steps // 40), save_strategy="steps",
            save_steps=max(10, s.pretrain_steps // 4), save_total_limit=1, report_to="none", seed=s.seed,
            dataloader_num_workers=0, dataloader_pin_memory=False,  # CPU: nothing to pin to
        ),
    )


def tokenizer_stage(job_dir: str, s: JobSettings) -> Stage:
    """Train the job's WordPiece tokenizer, or (--init_from) take the checkpoint's."""
    from .tokenization import TokenizerTrainingArguments, train_tokenizer

    output_dir = os.path.join(job_dir, "tokenizer")
    if s.init_from:
        return Stage("tokenizer", f"the tokenizer of {s.init_from} (no tokenizer training)",
                     {"init_from": s.init_from, "start": starting_point_fingerprint(s.init_from, s.init_from)},
                     lambda: copy_tokenizer(s.init_from, output_dir))
    tokenizer_args = TokenizerTrainingArguments(
        output_dir=output_dir, dataset_name="embedded", vocab_size=s.vocab_size,
        max_train_documents=s.tokenizer_max_documents, seed=s.seed, overwrite_output_dir=True,
    )
    return Stage("tokenizer", "train a WordPiece tokenizer on the pretraining corpus", asdict(tokenizer_args),
                 lambda: train_tokenizer(tokenizer_args)[1], defaults=argument_defaults(tokenizer_args))


def build_stages(job_dir: str, settings: JobSettings, data_version: str = "") -> list[Stage]:
    """The job's stages, each a typed call of the library's functions (no command lines in between)."""
    from .pretraining import pretrain
    from .study import sentiment_tfidf_baseline

    path = lambda name: os.path.join(job_dir, name)  # noqa: E731
    s = settings
    pretrain_args = pretraining_arguments(job_dir, s)
    pretrain_groups = dict(zip(("model", "data", "training"), pretrain_args))
    protocol = s.finetune_protocol()
    continued = not s.init_from or s.pretrain_steps > 0
    pretrained_dir = path("pretrain") if continued else s.init_from  # each holds its tokenizer
    common = {"config_dir": pretrained_dir, "tokenizer_dir": pretrained_dir}

    def run_finetune() -> dict:
        cells = path("finetune/cells")
        result = tune_and_repeat(cells, protocol, init_dir=pretrained_dir, keep_model=True, **common)
        chosen = os.path.join(cells, f"lr{result['learning_rate']:g}-seed{protocol.seeds[0]}")
        for name in os.listdir(chosen):  # the chosen model becomes finetune/ itself; its card: write_final_card
            if os.path.isfile(os.path.join(chosen, name)) and name not in ("cell.json", "README.md"):
                shutil.copy2(os.path.join(chosen, name), path(f"finetune/{name}"))
        drop_weights(cells)
        return result

    def run_baseline() -> dict:
        baseline = sentiment_tfidf_baseline()
        write_json(baseline, path(f"baseline/{BASELINE_FILE}"))
        return {key: value for key, value in baseline.items() if key.startswith("test_")}

    pretrained_stage = "pretrain" if continued else "tokenizer"
    protocol_defaults = argument_defaults(protocol)
    stages = [
        tokenizer_stage(job_dir, s),
        Stage("pretrain", (f"continue pretraining {s.init_from}" if s.init_from else f"pretrain a {s.model_size} GLM")
              + f" with {s.objective} ({s.pretrain_steps} steps)",
              {name: _public_settings(args) for name, args in pretrain_groups.items()},
              lambda: pretrain(*pretrain_args), upstream=["tokenizer"], resumable=True,
              defaults={name: _public_defaults(args) for name, args in pretrain_groups.items()}),
        Stage("finetune", f"fine-tune it on the sentiment task ({_count(protocol.learning_rates, 'rate')} x "
              f"{_count(protocol.seeds, 'seed')} of {s.finetune_steps} steps), test", asdict(protocol), run_finetune,
              upstream=[pretrained_stage], resumable=True, defaults=protocol_defaults),
        Stage("finetune_checkpoint", f"the same fine-tuning from {s.init_from} as it is (no continued pretraining)",
              asdict(protocol), lambda: tune_and_repeat(path("finetune_checkpoint"), protocol, init_dir=s.init_from,
                                                        config_dir=s.init_from, tokenizer_dir=s.init_from),
              upstream=["tokenizer"], resumable=True, defaults=protocol_defaults),
        Stage("finetune_from_scratch", "the same fine-tuning from a random initialisation, test", asdict(protocol),
              lambda: tune_and_repeat(path("finetune_from_scratch"), protocol, init_dir=None, **common),
              upstream=[pretrained_stage], resumable=True, defaults=protocol_defaults),
        Stage("baseline", "TF-IDF character n-grams + logistic regression on the same split", {}, run_baseline),
    ]
    # Without --init_from there is no checkpoint row; with --pretrain_steps 0 the checkpoint row is the model itself.
    stages = [stage for stage in stages if (stage.name != "finetune_checkpoint" or (s.init_from and continued))
              and (stage.name != "pretrain" or continued)]
    for stage in stages:  # the tokenizer and pretraining corpora hold the sentiment train split too
        stage.data_version = data_version
    return stages


def copy_tokenizer(source: str, destination: str) -> dict:
    """--init_from: the checkpoint's tokenizer, saved as the job's (its vocabulary is the model's)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.save_pretrained(destination)
    return {"vocab_size": len(tokenizer), "source": source}


def _public_settings(arguments) -> dict:
    """The fields of an argument dataclass that shape results (TrainingArguments: without its run-time state)."""
    values = arguments.to_dict() if hasattr(arguments, "to_dict") else asdict(arguments)
    return {key: value for key, value in values.items() if not key.startswith("_") and key not in ("logging_dir",)}


def _public_defaults(arguments) -> dict:
    """The defaults of the fields :func:`_public_settings` keeps."""
    public = _public_settings(arguments)
    return {key: value for key, value in argument_defaults(arguments).items() if key in public}


# ------------------------------------------------------------------------------------------------------- summary
def summarize(job_dir: str, settings: JobSettings, records: dict[str, dict], total_seconds: float, quick: bool) -> dict:
    """Test accuracy / macro-F1 of the three systems (GLM rows: mean over the fine-tuning seeds at the rate each chose
    on validation, with the spread), the gain, the pretraining metrics, the budget and stage times."""
    baseline = read_json(os.path.join(job_dir, "baseline", BASELINE_FILE))
    pretrain_results = os.path.join(job_dir, "pretrain", "all_results.json")
    # none with --init_from and --pretrain_steps 0
    pretrain = read_json(pretrain_results) if os.path.isfile(pretrain_results) else {}
    test_size = read_json(os.path.join(job_dir, "finetune", "all_results.json")).get("test_samples")

    def glm_row(stage: str) -> dict:
        tuned = records[stage]["metrics"]
        row = {key: tuned[f"test_{key}"]["mean"] for key in ("accuracy", "macro_f1")}
        row.update(
            accuracy_std=tuned["test_accuracy"]["std"], accuracy_min=tuned["test_accuracy"]["min"],
            accuracy_max=tuned["test_accuracy"]["max"], seeds=tuned["test_accuracy"]["n"],
            learning_rate=tuned["learning_rate"], validation_accuracy_by_learning_rate=tuned["grid"],
            per_seed_test_accuracy=[cell["test"]["accuracy"] for cell in tuned["cells"]],
            # A run that ends predicting (nearly) one class: below the macro-F1 of a balanced random guess.
            untrained_seeds=[cell["settings"]["seed"] for cell in tuned["cells"]
                             if cell["test"]["macro_f1"] < UNTRAINED_MACRO_F1],
        )
        return row

    results = {
        "glm_pretrained_finetuned": glm_row("finetune"),
        "glm_from_scratch": glm_row("finetune_from_scratch"),
        "tfidf_baseline": {key: baseline[f"test_{key}"] for key in ("accuracy", "macro_f1")},
    }
    if "finetune_checkpoint" in records:
        results["checkpoint_finetuned"] = glm_row("finetune_checkpoint")
    pretrained, scratch = results["glm_pretrained_finetuned"], results["glm_from_scratch"]
    gain = {key: pretrained[key] - scratch[key] for key in ("accuracy", "macro_f1")}
    # Seed by seed (the same seeds, each run at its own chosen rate), and over the seeds where both runs trained:
    # one from-scratch run that never leaves one class would otherwise pass for a pretraining gain.
    per_seed = [a - b for a, b in zip(pretrained["per_seed_test_accuracy"], scratch["per_seed_test_accuracy"])]
    failed = set(pretrained["untrained_seeds"]) | set(scratch["untrained_seeds"])
    both_trained = [g for g, seed in zip(per_seed, settings.finetune_protocol().seeds) if seed not in failed]
    return {
        "test_split": {"examples": test_size, "rule": _split_rule()},
        "results": results,
        "pretraining_gain": gain,
        "pretraining_gain_per_seed": {"accuracy": per_seed},
        "pretraining_gain_where_both_trained": {
            "accuracy": statistics.fmean(both_trained) if both_trained else None, "seeds": len(both_trained)
        },
        "pretraining": {
            key: value for key, value in pretrain.items() if key.startswith("eval_") or key == "train_loss"
        },
        "settings": asdict(settings),
        "stage_seconds": {name: record.get("seconds") for name, record in records.items()},
        "total_stage_seconds": round(sum(record.get("seconds") or 0 for record in records.values()), 1),
        "total_seconds_this_run": round(total_seconds, 1),
        "quick_mode": quick,
    }


def _split_rule() -> str:
    from .sentiment import SPLIT_RULE

    return SPLIT_RULE


def _gain_detail(summary: dict) -> str:
    """``; per seed: ...`` and, when a run did not train, the gain over the seeds where both did."""
    per_seed = summary["pretraining_gain_per_seed"]["accuracy"]
    detail = "; per seed: " + ", ".join(f"{100 * g:+.1f}" for g in per_seed) + " accuracy points"
    where_both = summary["pretraining_gain_where_both_trained"]
    if where_both["seeds"] < len(per_seed) and where_both["accuracy"] is not None:
        detail += f"; over the seeds where both runs trained: {100 * where_both['accuracy']:+.1f} points"
    return detail


def write_final_card(job_dir: str, summary: dict, settings: JobSettings) -> str:
    """The fine-tuned card with all three systems on the test split, the pretraining facts and the plots."""
    from .cards import write_finetuned_card
    from .finetuning import EMBEDDED_SENTIMENT, embedded_sentiment_description

    finetune_dir = os.path.join(job_dir, "finetune")
    results = _card_results(summary["results"], read_json(os.path.join(job_dir, "baseline", BASELINE_FILE)), settings)
    plots = _card_plots(job_dir, finetune_dir, settings)
    return write_finetuned_card(
        finetune_dir,
        base_model="../pretrain",
        dataset_name=EMBEDDED_SENTIMENT,
        dataset_description=embedded_sentiment_description(),
        data_stats=_card_data_stats(settings),
        problem_type="single_label_classification",
        label_names=["negative", "positive"],
        training_args=_card_training_args(settings),
        results=results,
        eval_split="test",
        eval_size=summary["test_split"]["examples"],
        plots=plots,
        notes=_card_notes(summary),
        limitations=[
            f"A {settings.model_size} model pretrained for minutes on a CPU: far from the quality of large pretrained "
            "Chinese encoders; compare it with the baseline and from-scratch rows, not with published results.",
        ],
        max_length=settings.finetune_max_seq_length,
        model_name="GLM sentiment (embedded main job)",
        repo_id=_display_path(finetune_dir),
    )


def _seeds_note(row: dict) -> str:
    """How a GLM row's test accuracy was measured: the seeds' mean and spread, the chosen rate, seeds that failed."""
    untrained = row.get("untrained_seeds") or []
    return (f"; test accuracy mean of {row['seeds']} fine-tuning seeds (std {row['accuracy_std']:.4f}, "
            f"min {row['accuracy_min']:.4f}, max {row['accuracy_max']:.4f}) at lr {row['learning_rate']:g}, "
            "chosen on validation"
            + (f"; seed(s) {', '.join(map(str, untrained))} did not train (macro-F1 below "
               f"{UNTRAINED_MACRO_F1}, nearly one class)" if untrained else ""))


def _card_results(rows: dict, baseline: dict, settings: JobSettings) -> list[dict]:
    """The card's results table: this model, the same model from scratch, the TF-IDF baseline."""
    from .finetuning import unprefixed as unprefix

    size = settings.model_size if not settings.init_from else f"`{settings.init_from}`'s"
    pretraining = (f"{settings.init_from}, pretrained {settings.pretrain_steps} steps more" if settings.init_from
                   else f"{size} GLM pretrained {settings.pretrain_steps} steps")
    checkpoint_row = [] if "checkpoint_finetuned" not in rows else [{
        "name": "the starting checkpoint, fine-tuned",
        "description": f"{settings.init_from} fine-tuned as it is (no continued pretraining), same protocol"
        + _seeds_note(rows["checkpoint_finetuned"]),
        "metrics": {k: rows["checkpoint_finetuned"][k] for k in ("accuracy", "macro_f1")},
    }]
    return [
        {
            "name": "**GLM, pretrained + fine-tuned (this model)**",
            "description": f"{pretraining} ({settings.objective}), fine-tuned "
            f"{settings.finetune_steps} steps" + _seeds_note(rows["glm_pretrained_finetuned"]),
            "metrics": {k: rows["glm_pretrained_finetuned"][k] for k in ("accuracy", "macro_f1")},
        },
        *checkpoint_row,
        {
            "name": "GLM from scratch",
            "description": f"same {size} architecture, tokenizer, data, steps and fine-tuning protocol, random "
            "initialisation (no pretraining)" + _seeds_note(rows["glm_from_scratch"]),
            "metrics": {k: rows["glm_from_scratch"][k] for k in ("accuracy", "macro_f1")},
        },
        {"name": "TF-IDF baseline", "description": baseline["description"], "metrics": unprefix(baseline, "test")},
    ]


def _card_plots(job_dir: str, finetune_dir: str, settings: JobSettings) -> dict[str, str]:
    """Caption -> image file for the plots that exist; the pretraining loss curve is copied in beside the card
    (the card links its plots relatively)."""
    plots = {}
    if os.path.isfile(os.path.join(finetune_dir, "confusion_matrix.png")):
        plots["Confusion matrix on the test split"] = "confusion_matrix.png"
    if os.path.isfile(os.path.join(finetune_dir, "loss_curve.png")):
        plots["Fine-tuning loss"] = "loss_curve.png"
    pretrain_curve = os.path.join(job_dir, "pretrain", "loss_curve.png")
    if os.path.isfile(pretrain_curve):
        shutil.copyfile(pretrain_curve, os.path.join(finetune_dir, "pretraining_loss_curve.png"))
        plots[f"Pretraining loss ({settings.objective})"] = "pretraining_loss_curve.png"
    return plots


TARGET_GAIN = 0.02  # the gain pretraining should pay over the random initialisation (accuracy, 2 points)


def _below_target(summary: dict) -> str | None:
    """What to say when this run's pretraining gain (over the seeds where both runs trained) is below the target:
    where the budget that pays it is measured, and the flag that buys it. None when the target is met."""
    where_both, gain = summary["pretraining_gain_where_both_trained"], summary["pretraining_gain"]
    measured_gain = where_both["accuracy"] if where_both["accuracy"] is not None else gain["accuracy"]
    if measured_gain >= TARGET_GAIN:
        return None
    return (f"At this budget pretraining does not pay {100 * TARGET_GAIN:.0f} points ({100 * measured_gain:+.1f}): "
            "the compute study (`glm-hf study`, README.md: 'What the 2-point target needs') measures the budget at "
            "which it does; rerun with more --pretrain_steps (e.g. 1800, twice the default) to get there.")


def _card_notes(summary: dict) -> list[str]:
    """The bullet points under the results: how the rows compare, the pretraining gain and metrics, the compute."""
    gain = summary["pretraining_gain"]
    below_target = _below_target(summary)
    pretraining = summary["pretraining"]
    minutes = {name: (seconds or 0) / 60 for name, seconds in summary["stage_seconds"].items()}
    notes = [
        "All rows: the same test split (" + summary["test_split"]["rule"] + "), never used for training or model "
        "selection. Each GLM row chose its fine-tuning learning rate from the same grid on the validation split; "
        "the TF-IDF baseline's C was chosen on the validation split too.",
        "Pretraining gain (pretrained minus from scratch): "
        + ", ".join(f"{key} {100 * value:+.1f} points" for key, value in gain.items())
        + _gain_detail(summary)
        + "." + (f" {below_target}" if below_target else ""),
        "Pretraining: "
        + ", ".join(
            f"{key.removeprefix('eval_')} {value:.4g}"
            for key, value in pretraining.items()
            if key in ("eval_mlm_accuracy", "eval_perplexity", "eval_nsp_accuracy", "eval_sop_accuracy",
                       "eval_rtd_accuracy", "eval_generator_mlm_accuracy", "eval_unigram_cloze_accuracy",
                       "eval_bigram_cloze_accuracy")
        )
        + " on held-out pretraining text.",
        "Compute: " + ", ".join(f"{name} {value:.1f} min" for name, value in minutes.items()) + " (wall clock).",
    ]
    if summary["quick_mode"]:
        notes.insert(
            0,
            "**Quick mode** (smoke test): tiny model, few steps, training subsets -- these numbers say "
            "that the pipeline runs, not how well GLM does.",
        )
    return notes


def _card_data_stats(settings: JobSettings) -> dict:
    """The embedded sentiment data as the card's Data table shows it: cleaning, split sizes, examples used."""
    from .sentiment import sentiment_data_stats

    stats = sentiment_data_stats()
    return {
        "raw lines": stats["raw_lines"],
        "unique texts": stats["unique_texts"],
        "texts in both classes (dropped)": stats["conflicting_texts_dropped"],
        "split sizes": {name: sizes["total"] for name, sizes in stats["split_sizes"].items()},
        "training examples used": settings.max_train_samples or stats["split_sizes"]["train"]["total"],
    }


def _card_training_args(settings: JobSettings) -> dict:
    """The card's Training table: the settings of both GLM runs, in words where a bare value would not say enough."""
    return {
        **({"starting checkpoint (--init_from)": settings.init_from} if settings.init_from else {}),
        "model_size": settings.model_size if not settings.init_from else "the checkpoint's",
        "pretraining steps": settings.pretrain_steps,
        "pretraining batch size": settings.pretrain_batch_size,
        "pretraining learning rate": settings.pretrain_learning_rate,
        "pretraining max_seq_length": settings.pretrain_max_seq_length,
        "fine-tuning steps": settings.finetune_steps,
        "fine-tuning batch size": settings.finetune_batch_size,
        "pretraining objective": settings.objective,
        "position encoding": settings.position_embedding_type if settings.position_embedding_type == "rotary"
        else f"absolute, learned table started {settings.position_embedding_init}",
        "pretraining corpus weights": settings.corpus_weights or "every document once per epoch",
        "masking rate": settings.mlm_probability if settings.mlm_probability_end is None
        else f"{settings.mlm_probability} -> {settings.mlm_probability_end} (linear)",
        "fine-tuning learning-rate grid (chosen on validation)": settings.finetune_learning_rates,
        "fine-tuning seeds": settings.finetune_seeds,
        "classifier pooling": settings.finetune_pooling,
        "fine-tuning max_seq_length": settings.finetune_max_seq_length,
        "warmup (share of steps), then linear decay": f"pretraining {settings.pretrain_warmup:g}, fine-tuning "
        f"{settings.finetune_warmup:g}",
        "dropout (hidden and attention)": f"pretraining {settings.pretrain_dropout:g}, fine-tuning "
        f"{settings.finetune_dropout:g}",
        "weight decay": 0.01,
        "optimizer": "AdamW",
        "precision": "fp32 (CPU)",
        "seed (tokenizer, pretraining)": settings.seed,
    }


def _display_path(path: str) -> str:
    """``path`` relative to the working directory when it is below it (shorter, and true for the user)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def classify_examples(model_dir: str, sentences, max_length: int = 128) -> list[dict]:
    """Reload the fine-tuned folder with ``from_pretrained`` (as a user would) and classify ``sentences``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import glm_hf  # noqa: F401  (registers GLM with the Auto classes)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    inputs = tokenizer(list(sentences), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**inputs).logits.softmax(dim=-1)
    predictions = []
    for sentence, row in zip(sentences, probabilities):
        label_id = int(row.argmax())
        predictions.append({"text": sentence, "label": model.config.id2label[label_id], "score": float(row[label_id])})
    return predictions


# ---------------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    job_dir = os.path.abspath(args.output_dir or ("runs/main_quick" if args.quick else "runs/main"))
    if args.overwrite:
        remove_job_outputs(job_dir)
    os.makedirs(job_dir, exist_ok=True)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.WARNING)

    print(f"GLM main job in {job_dir}{' (quick mode)' if args.quick else ''}", flush=True)
    records = StageRecords(job_dir)
    if os.path.exists(os.path.join(job_dir, RESULTS_FILE)) and not os.path.isdir(records.folder):
        # no records: not an earlier run of this job, so its results file is the user's
        raise ValueError(
            f"{os.path.join(job_dir, RESULTS_FILE)} exists but {job_dir} holds no job records ({STATE_DIR}/); the job "
            "will not overwrite it -- move it away or give --output_dir another folder"
        )
    known: dict[str, dict] = {}
    from .sentiment import sentiment_data_digest

    data_version = sentiment_data_digest()  # a fix to the embedded data (its cleaning or split) reruns the stages
    start = time.perf_counter()
    try:
        stages = build_stages(job_dir, settings, data_version)
        for index, stage in enumerate(stages, start=1):
            known[stage.name] = run_stage(stage, job_dir, records, known, index, len(stages))
    except KeyboardInterrupt:
        print("\nInterrupted. Run the same command again to resume where it stopped.", file=sys.stderr)
        return 130
    total_seconds = time.perf_counter() - start

    summary = summarize(job_dir, settings, known, total_seconds, quick=args.quick)
    card = write_final_card(job_dir, summary, settings)
    summary["examples"] = classify_examples(
        os.path.join(job_dir, "finetune"), args.examples or EXAMPLE_SENTENCES, settings.finetune_max_seq_length
    )
    summary["model_card"] = os.path.relpath(card, job_dir)
    write_json(summary, os.path.join(job_dir, RESULTS_FILE))
    print_report(summary, job_dir)
    return 0


def print_report(summary: dict, job_dir: str) -> None:
    rows = (
        ("GLM pretrained + fine-tuned", "glm_pretrained_finetuned"),
        ("GLM from scratch (same budget)", "glm_from_scratch"),
        ("TF-IDF char n-grams + LR", "tfidf_baseline"),
    )
    if "checkpoint_finetuned" in summary["results"]:
        rows = (*rows, ("starting checkpoint fine-tuned", "checkpoint_finetuned"))
    print(
        f"\nTest split ({summary['test_split']['examples']} examples)"
        + (" -- QUICK MODE, numbers mean nothing" if summary["quick_mode"] else "")
    )
    print(f"  {'system':<32} {'accuracy':>9} {'macro-F1':>9}")
    for title, key in rows:
        metrics = summary["results"][key]
        print(
            f"  {title:<32} {metrics.get('accuracy', float('nan')):>9.4f} {metrics.get('macro_f1', float('nan')):>9.4f}"
        )
    gain = summary["pretraining_gain"]
    print("  pretraining gain: " + ", ".join(f"{k} {100 * v:+.1f} points" for k, v in gain.items())
          + " (per seed: " + ", ".join(f"{100 * g:+.1f}" for g in summary["pretraining_gain_per_seed"]["accuracy"])
          + " accuracy points)")
    for title, key in rows[:2]:
        for seed in summary["results"][key]["untrained_seeds"]:
            print(f"  NOTE: {title}, seed {seed}, did not train (test macro-F1 below {UNTRAINED_MACRO_F1}: it predicts "
                  "nearly one class); the mean gain above counts that failure")
    where_both = summary["pretraining_gain_where_both_trained"]
    if where_both["seeds"] < len(summary["pretraining_gain_per_seed"]["accuracy"]):
        value = "none left" if where_both["accuracy"] is None else f"{100 * where_both['accuracy']:+.1f} points"
        print(f"  pretraining gain over the {where_both['seeds']} seed(s) where both runs trained: accuracy {value}")
    below_target = _below_target(summary)
    if below_target:
        print(f"  {below_target}")
    for title, key in rows[:2]:
        row = summary["results"][key]
        print(f"  {title}: test accuracy over {row['seeds']} seeds {row['accuracy_min']:.4f}-{row['accuracy_max']:.4f}"
              f" (std {row['accuracy_std']:.4f}), lr {row['learning_rate']:g} chosen on validation")
    print(f"\nReloaded {os.path.join(job_dir, 'finetune')} with AutoModelForSequenceClassification.from_pretrained:")
    for example in summary["examples"]:
        print(f"  {example['label']:<9} {example['score']:.3f}  {example['text']}")
    print(f"\nModel card: {os.path.join(job_dir, summary['model_card'])}")
    print(f"Metrics:    {os.path.join(job_dir, RESULTS_FILE)}")
    print(f"Time (this run): {summary['total_seconds_this_run'] / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
