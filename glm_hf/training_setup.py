"""Set-up shared by the Trainer commands (pretraining, fine-tuning), as in transformers' example scripts: the model
arguments both take, arguments from flags or one .json/.yaml file, logging, config overrides, and which checkpoint
to resume from."""

import difflib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import ClassVar

import datasets
import transformers
import yaml
from transformers import HfArgumentParser

from .configuration_glm import MODEL_SIZES, check_model_size
from .run_folder import incomplete_checkpoint_reason, last_complete_checkpoint

logger = logging.getLogger(__name__)

# Config entries that record where a config came from rather than set the model.
NOT_OVERRIDABLE = ("model_type", "transformers_version", "architectures", "auto_map")
OVERRIDES_EXAMPLE = "'hidden_dropout_prob=0.1,num_hidden_layers=2'"


@dataclass
class BaseModelArguments:
    """Where a recipe's model comes from -- a checkpoint, or a random initialisation of a named size or a config --
    and its tokenizer; checked once here for every recipe. Each recipe subclasses it with its own fields."""

    # Whether --config_name / --config_overrides may change a --model_name_or_path checkpoint's config (fine-tuning
    # reads that config first); a recipe that loads the checkpoint as it is sets it False and refuses them.
    reconfigures_checkpoint: ClassVar[bool] = True
    # Config keys --config_overrides may still set on a checkpoint that is loaded as it is: settings of heads the
    # recipe adds, which leave the checkpoint's own weights and function unchanged.
    checkpoint_overridable: ClassVar[tuple[str, ...]] = ()

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "GLM checkpoint to start from (folder or Hub id); omit it to start from a random "
                  "initialisation of --model_size or --config_name."},
    )
    model_size: str | None = field(
        default=None,
        metadata={"help": f"Start from a random initialisation of a named GLM size, one of {list(MODEL_SIZES)} "
                  "(needs --tokenizer_name).", "choices": list(MODEL_SIZES)},
    )
    config_name: str | None = field(
        default=None,
        metadata={"help": "Config (folder or Hub id) of a random initialisation, instead of --model_size; "
                  "fine-tuning also reads it instead of a checkpoint's own config."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": f"Override config settings, e.g. {OVERRIDES_EXAMPLE} (of a new model; fine-tuning "
                  "applies them to a checkpoint's config too)."},
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer folder or Hub id; defaults to --model_name_or_path."}
    )
    freeze_word_embeddings: bool = field(
        default=False,
        metadata={"help": "Do not train the word embeddings (nor a decoder tied to them): for large vocabularies, most "
                  "of whose rows the data never uses, it saves their gradients and optimizer states (3x their size)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache models and datasets from the Hub."})
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Allow model code from the checkpoint folder or the Hub (GLM itself does not need it once "
                  "glm_hf is installed)."},
    )

    def __post_init__(self):
        if self.model_size is not None:  # a .json/.yaml arguments file passes no argparse choices
            check_model_size(self.model_size)
        if self.model_name_or_path is None and self.model_size is None and self.config_name is None:
            raise ValueError(
                f"give --model_name_or_path (a GLM checkpoint to start from), or --model_size ({'/'.join(MODEL_SIZES)})"
                " or --config_name for a random initialisation"
            )
        if self.model_size is not None and (self.model_name_or_path is not None or self.config_name is not None):
            other = "--model_name_or_path" if self.model_name_or_path is not None else "--config_name"
            raise ValueError(f"give either --model_size (a random initialisation) or {other}, not both")
        if self.model_name_or_path is not None and not self.reconfigures_checkpoint:
            if self.config_name is not None:
                raise ValueError("--config_name applies to models trained from scratch, not --model_name_or_path "
                                 "(the checkpoint is loaded with its own config)")
            keys = [item.partition("=")[0].strip() for item in (self.config_overrides or "").split(",") if item.strip()]
            refused = [key for key in keys if key not in self.checkpoint_overridable]
            if refused:
                allowed = ", ".join(self.checkpoint_overridable) or "none"
                raise ValueError(f"--config_overrides {', '.join(refused)}: a --model_name_or_path checkpoint is "
                                 "loaded with its own config; only the settings of the heads this recipe adds may be "
                                 f"set ({allowed})")
        if self.tokenizer_name is None and self.model_name_or_path is None:
            raise ValueError("from a random initialisation, give --tokenizer_name (e.g. a folder from 'glm-hf "
                             "train-tokenizer'): there is no model folder to read it from")

    @property
    def model_source(self) -> str:
        """The checkpoint, config or size the model starts from (for run records and cards)."""
        return self.model_name_or_path or self.config_name or self.model_size

    @property
    def tokenizer_source(self) -> tuple[str, str]:
        """The flag the tokenizer is read from, and its value: --tokenizer_name, else the checkpoint's folder."""
        if self.tokenizer_name is not None:
            return "--tokenizer_name", self.tokenizer_name
        return "--model_name_or_path", self.model_name_or_path


def is_args_file(argv: list[str]) -> bool:
    return len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml"))


def parse_args(dataclass_types: tuple, argv: list[str], removed_flags: dict[str, str] | None = None) -> tuple:
    """The argument dataclasses from command line flags, or from a single .json/.yaml file of them. A flag of
    ``removed_flags`` (name -> what to use instead) stops the command with that pointer, as argparse stops on a bad
    flag (exit status 2, no traceback)."""
    parser = HfArgumentParser(dataclass_types)
    if is_args_file(argv):
        with open(os.path.abspath(argv[0]), encoding="utf-8") as f:
            values = json.load(f) if argv[0].endswith(".json") else yaml.safe_load(f)
        given = set(values) if isinstance(values, dict) else set()
    else:  # --name, --name=value, and the --dashed-name aliases HfArgumentParser accepts
        given = {arg.split("=", 1)[0][2:].replace("-", "_") for arg in argv if arg.startswith("--")}
    for name in sorted(given & set(removed_flags or {})):
        where = f"{argv[0]}: {name}" if is_args_file(argv) else f"--{name}"
        parser.exit(2, f"{parser.prog}: error: {where} was removed: {removed_flags[name]}\n")
    if is_args_file(argv):
        return tuple(parser.parse_dict(values))
    return parser.parse_args_into_dataclasses(args=argv)


def setup_logging(training_args, logger: logging.Logger) -> None:
    """Log to stdout at the process's level (quiet on the non-main processes of a multi-process run)."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)


def _overridable_settings(config) -> dict:
    """The settings ``--config_overrides`` can set, with their current values (plain values: a string, a number, a
    boolean, or unset)."""
    return {
        key: value
        for key, value in config.to_dict().items()
        if not key.startswith("_")
        and key not in NOT_OVERRIDABLE
        and (value is None or isinstance(value, (bool, int, float, str)))
    }


def _override_value(key: str, text: str, current):
    """``text`` read as the type of the setting's current value; an unset one takes a boolean, a number, ``none``
    or a string (transformers' update_from_string refuses unset settings such as classifier_dropout)."""
    lowered = text.lower()
    if isinstance(current, bool) or (current is None and lowered in ("true", "false")):
        if lowered in ("true", "1", "yes", "y"):
            return True
        if lowered in ("false", "0", "no", "n"):
            return False
        raise ValueError(f"--config_overrides: {key} takes true or false, got {text!r}")
    for kind, name in ((int, "an integer"), (float, "a number")):
        if isinstance(current, kind):
            try:
                return kind(text)
            except ValueError:
                raise ValueError(f"--config_overrides: {key} takes {name}, got {text!r}") from None
    if current is None:
        if lowered in ("none", "null"):
            return None
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    return text


def parse_config_overrides(config, overrides: str) -> dict:
    """``"key=value,..."`` as ``{key: value}`` typed like ``config``'s settings; an unknown key, a pair without
    ``=`` or a value of the wrong type is named with what is expected."""
    settings = _overridable_settings(config)
    parsed = {}
    for pair in overrides.split(","):
        if not pair.strip():  # a trailing comma
            continue
        key, equals, text = (part.strip() for part in pair.partition("="))
        if not equals or not key:
            raise ValueError(f"--config_overrides: {pair!r} is not key=value; give comma-separated pairs, e.g. "
                             f"{OVERRIDES_EXAMPLE}")
        if key not in settings:
            close = difflib.get_close_matches(key, settings, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(
                f"--config_overrides: cannot set {key!r} on the {config.model_type} config{hint}; valid keys are "
                f"{', '.join(sorted(settings))}"
            )
        parsed[key] = _override_value(key, text, settings[key])
    return parsed


def apply_config_overrides(config, overrides: str | None, logger: logging.Logger) -> None:
    """``"key=value,..."`` onto ``config``; a GLM config then checks the values (a bad one names its field)."""
    if not overrides:
        return
    logger.info("Overriding config: %s", overrides)
    config.update(parse_config_overrides(config, overrides))
    if hasattr(config, "validate_architecture"):
        try:
            config.validate_architecture()
        except ValueError as err:
            raise ValueError(f"--config_overrides {overrides!r}: {err}") from err


def check_max_steps(training_args) -> None:
    """Trainer reads a negative ``--max_steps`` as "train for --num_train_epochs" but 0 as a limit, and still takes
    one step: refuse it (and other negatives than the documented -1) before anything is loaded or written."""
    if training_args.do_train and (training_args.max_steps == 0 or training_args.max_steps < -1):
        raise ValueError(
            f"--max_steps must be a positive number of optimizer steps, or -1 to train for --num_train_epochs; "
            f"got {training_args.max_steps}"
        )


def glm_module_classes() -> list[str]:
    """The names of the ``nn.Module`` classes of ``modeling_glm`` (what an FSDP wrap policy can name)."""
    import torch

    from . import modeling_glm

    return sorted(
        name for name, obj in vars(modeling_glm).items()
        if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and obj.__module__ == modeling_glm.__name__
    )


def _fsdp_classes_to_wrap(training_args) -> list[tuple[str, str]]:
    """(where it was set, class name) of each class an FSDP transformer wrap policy is given: by an ``accelerate
    launch`` config (passed to the processes as FSDP_* variables) or by Trainer's ``--fsdp_config``."""
    named = []
    if (
        os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
        and os.environ.get("FSDP_AUTO_WRAP_POLICY", "").upper() == "TRANSFORMER_BASED_WRAP"
    ):
        named += [("fsdp_transformer_layer_cls_to_wrap (accelerate config)", name.strip())
                  for name in os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "").split(",") if name.strip()]
    if getattr(training_args, "fsdp", None) and isinstance(getattr(training_args, "fsdp_config", None), dict):
        names = training_args.fsdp_config.get("transformer_layer_cls_to_wrap") or []
        named += [("--fsdp_config transformer_layer_cls_to_wrap", name) for name in names]
    return named


def check_distributed_settings(training_args, logger: logging.Logger) -> None:
    """An FSDP wrap class GLM does not have stops the run at start-up, naming the setting and the classes GLM has
    (accelerate would stop only once training starts, with neither); an FSDP or DeepSpeed config on CPU processes,
    which accelerate silently runs as plain DDP, is said so."""
    import torch

    classes = glm_module_classes()
    for where, name in _fsdp_classes_to_wrap(training_args):
        # torch.nn classes (Embedding, Linear, ...) are found in the model as well; anything else is not
        if name not in classes and not (isinstance(getattr(torch.nn, name, None), type)
                                        and issubclass(getattr(torch.nn, name), torch.nn.Module)):
            close = difflib.get_close_matches(name, classes, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(
                f"{where}: {name!r} is not a module class of the GLM model{hint}; name GLMLayer (one Transformer "
                f"layer per FSDP unit), or another of its classes: {', '.join(classes)}"
            )
    from accelerate.utils import DistributedType

    state = getattr(training_args, "distributed_state", None)
    if state is not None and state.distributed_type == DistributedType.MULTI_CPU:
        for variable, kind in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")):
            if os.environ.get(variable, "false").lower() == "true":
                logger.warning(
                    "%s config on CPU processes: accelerate runs %s on GPUs (or other accelerators) only, so this run "
                    "is plain DDP over gloo (the same training, no sharding)", kind, kind,
                )


def checkpoint_to_resume(training_args, logger: logging.Logger):
    """``--resume_from_checkpoint`` as given (``last``/``latest``/``true``: the newest in output_dir); without it, the
    newest checkpoint in output_dir when training (none with ``--overwrite_output_dir``), so that running the same
    command again resumes. Checkpoints cut mid-write are skipped (named in a warning); one given by path is refused."""
    resume_from_checkpoint = training_args.resume_from_checkpoint
    if not training_args.do_train:  # evaluation alone resumes nothing
        return resume_from_checkpoint
    if resume_from_checkpoint in ("last", "latest", "true", "True"):
        last_checkpoint = last_complete_checkpoint(training_args.output_dir)
        if last_checkpoint is None:
            raise ValueError(
                f"--resume_from_checkpoint {resume_from_checkpoint}: {training_args.output_dir} holds no complete "
                "checkpoint to resume from; run without it to start training"
            )
        return last_checkpoint
    if resume_from_checkpoint is not None:
        reason = incomplete_checkpoint_reason(resume_from_checkpoint) if os.path.isdir(resume_from_checkpoint) else (
            "it is not a folder"
        )
        if reason is not None:
            raise ValueError(f"--resume_from_checkpoint {resume_from_checkpoint} cannot be resumed: {reason}")
        return resume_from_checkpoint
    if not getattr(training_args, "overwrite_output_dir", False):
        last_checkpoint = last_complete_checkpoint(training_args.output_dir)
        if last_checkpoint is not None:
            logger.warning("Checkpoint detected, resuming training at %s", last_checkpoint)
            return last_checkpoint
    return None


def freeze_word_embeddings(model) -> None:
    """``--freeze_word_embeddings``: the input embedding matrix (and every layer tied to it) is not trained."""
    weight = model.get_input_embeddings().weight
    weight.requires_grad_(False)
    logger.info("Word embeddings frozen: %d of %d parameters not trained", weight.numel(), model.num_parameters())


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process (and peak CUDA memory when a GPU ran), in MiB."""
    import resource

    import torch

    peak = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # Linux: KiB
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        peak["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def train_and_save(trainer, resume_from_checkpoint: str | None, **extra_metrics) -> dict:
    """Train (from ``resume_from_checkpoint`` if any); save the model (with its code and the tokenizer), the train
    metrics (with ``extra_metrics`` and the peak memory) and the trainer state; returns the metrics."""
    train_result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    trainer.save_model()
    metrics = {**train_result.metrics, **extra_metrics, **peak_memory_mb()}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    return metrics
