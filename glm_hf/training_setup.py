"""Set-up shared by the Trainer commands (pretraining, fine-tuning), as in transformers' example scripts: arguments
from flags or one .json/.yaml file, logging, config overrides, and which checkpoint to resume from."""

import logging
import os
import sys

import datasets
import transformers
from transformers import HfArgumentParser

from .run_folder import incomplete_checkpoint_reason, last_complete_checkpoint


def is_args_file(argv: list[str]) -> bool:
    return len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml"))


def parse_args(dataclass_types: tuple, argv: list[str]) -> tuple:
    """The argument dataclasses from command line flags, or from a single .json/.yaml file of them."""
    parser = HfArgumentParser(dataclass_types)
    if is_args_file(argv):
        loader = parser.parse_json_file if argv[0].endswith(".json") else parser.parse_yaml_file
        return loader(os.path.abspath(argv[0]))
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


def apply_config_overrides(config, overrides: str | None, logger: logging.Logger) -> None:
    """``"key=value,..."`` onto ``config``; a GLM config then checks the values (a bad one names its field)."""
    if not overrides:
        return
    logger.info("Overriding config: %s", overrides)
    config.update_from_string(overrides)
    if hasattr(config, "validate_architecture"):
        config.validate_architecture()


def check_max_steps(training_args) -> None:
    """Trainer reads a negative ``--max_steps`` as "train for --num_train_epochs" but 0 as a limit, and still takes
    one step: refuse it (and other negatives than the documented -1) before anything is loaded or written."""
    if training_args.do_train and (training_args.max_steps == 0 or training_args.max_steps < -1):
        raise ValueError(
            f"--max_steps must be a positive number of optimizer steps, or -1 to train for --num_train_epochs; "
            f"got {training_args.max_steps}"
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
