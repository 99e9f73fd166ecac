"""The output folder of a training run (fine-tuning, pretraining): what run it holds, who is writing it, what the
run wrote there, and which of its checkpoints are whole.

- A run record (``_glm_run.json``) says what a run is -- command, task and labels, model source, a fingerprint of
  its data and of the arguments that shape the model, with their defaults -- and which entries of the folder the run
  wrote. Running the same command again resumes; a flag added (or removed) since the run was recorded makes no other
  run while it is at its default (:func:`differing_settings`, the main job's rule too); another run is refused,
  unless ``--overwrite_output_dir``, which removes the recorded outputs of the previous run (and nothing else) before
  starting over. Only names the recipes write are recorded: a file the user adds during a run stays the user's. An
  evaluation-only run writes into the folder of the model it scores (or of a run started from that model), or into a
  folder holding none of the results it would write.
- An exclusive lock (``_glm_run.lock``, ``fcntl.flock``) is held for the whole run: a second run into the same folder
  stops at once, naming the first. The kernel releases it when the process ends, so a killed run leaves no stale lock.
- A checkpoint cut mid-write (no or unreadable ``trainer_state.json``, a truncated weights file) is skipped, with a
  warning, in favour of the newest complete one.

The ``_`` prefix keeps both files out of ``Trainer.push_to_hub`` uploads (it ignores ``_*``).
"""

import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields

from transformers import TrainerCallback, TrainingArguments

from .model_sources import weights_file_problem

logger = logging.getLogger(__name__)

RUN_RECORD = "_glm_run.json"
LOCK_FILE = "_glm_run.lock"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# Fixed names the recipes write (baseline_results.json: fine-tuning runs of earlier versions): in a folder without a run
# record they belong to someone else's run (or the user), and a new run would overwrite them or resume from them.
RECIPE_OUTPUT_NAMES = frozenset({
    "config.json", "model.safetensors", "training_args.bin", "trainer_state.json", "README.md",
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
    "train_results.json", "eval_results.json", "test_results.json", "all_results.json", "predict_results.csv",
    "predict_results.conll", "entity_confusion.png",
    "baseline_results.json", "loss_curve.png", "confusion_matrix.png",
    "configuration_glm.py", "modeling_glm.py", "added_tokens.json",
    "sentiment_model", "ner_model", "multitask_results.json", "task_loss_curves.png",  # finetune-multitask
})
LATEST_CHECKPOINT = ("last", "latest", "true", "True")  # --resume_from_checkpoint values meaning "the newest"
# Arguments of TrainingArguments that change the weights a run produces (not its length: --max_steps and
# --num_train_epochs may grow on a resume, as Trainer allows).
SHAPING_TRAINING_ARGUMENTS = (
    "seed", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "weight_decay",
    "lr_scheduler_type", "warmup_steps", "max_grad_norm", "adam_beta1", "adam_beta2", "adam_epsilon",
)


@dataclass
class RecipeTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus ``--overwrite_output_dir``, which transformers v5 dropped."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start over in an --output_dir that holds another (or the same) run: the outputs that run "
                  "recorded are removed first; files no run recorded are kept."},
    )


# ------------------------------------------------------------------------------------------------- fingerprints
def data_fingerprint(sources: dict[str, str | None]) -> dict[str, str]:
    """``{flag: fingerprint}`` of the data: a local file by its content, a local folder or a glob by its files' names
    and sizes, anything else (a Hub dataset name, an embedded corpus) by its name."""
    fingerprints = {}
    for flag, source in sources.items():
        if source is None:
            continue
        if os.path.isfile(source):
            digest = hashlib.sha256()
            with open(source, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            fingerprints[flag] = f"sha256:{digest.hexdigest()}"
        elif os.path.isdir(source):
            listing = sorted(
                (os.path.relpath(os.path.join(root, name), source), os.path.getsize(os.path.join(root, name)))
                for root, _, names in os.walk(source)
                for name in names
            )
            fingerprints[flag] = f"folder:{hashlib.sha256(json.dumps(listing).encode()).hexdigest()}"
        elif any(char in source for char in "*?["):  # a glob of shards (--streaming): the files it matches
            listing = sorted((name, os.path.getsize(name)) for name in glob.glob(source, recursive=True))
            fingerprints[flag] = f"glob:{hashlib.sha256(json.dumps(listing).encode()).hexdigest()}"
        else:
            fingerprints[flag] = f"name:{source}"
    return fingerprints


def as_json(values):
    """``values`` as a record reads them back (tuples as lists, anything else JSON cannot hold as its ``str``), so that
    settings compare equal to their record."""
    return json.loads(json.dumps(values, default=str))


def shaping_arguments(*argument_sets, leave_out: tuple[str, ...] = ()) -> dict:
    """The values of the argument dataclasses that shape the model, JSON-safe (as the record reads them back)."""
    values = {}
    for arguments in argument_sets:
        if isinstance(arguments, TrainingArguments):
            values.update({name: getattr(arguments, name, None) for name in SHAPING_TRAINING_ARGUMENTS})
        else:
            values.update(asdict(arguments))
    return as_json({name: value for name, value in values.items() if name not in leave_out})


def argument_defaults(arguments) -> dict:
    """``{field: default}`` of an argument dataclass (``default`` or ``default_factory``), JSON-safe; a field without a
    default (a required flag) is left out. ``TrainingArguments`` too: a default instance would tell the defaults its
    ``__post_init__`` settles, but building one resets accelerate's process-wide (distributed) state mid-run. Such a
    field, added later at its default, counts as a difference: the run is redone, never wrongly kept."""
    defaults = {}
    for argument in fields(arguments):
        if argument.default is not MISSING:
            defaults[argument.name] = argument.default
        elif argument.default_factory is not MISSING:
            defaults[argument.name] = argument.default_factory()
    return as_json(defaults)


def shaping_defaults(*argument_sets, leave_out: tuple[str, ...] = ()) -> dict:
    """The defaults of what :func:`shaping_arguments` records, by the same names."""
    defaults = {}
    for arguments in argument_sets:
        known = argument_defaults(arguments)
        if isinstance(arguments, TrainingArguments):
            known = {name: known[name] for name in SHAPING_TRAINING_ARGUMENTS if name in known}
        defaults.update(known)
    return {name: value for name, value in defaults.items() if name not in leave_out}


def differing_settings(recorded: dict, wanted: dict, recorded_defaults: dict, wanted_defaults: dict) -> list[str]:
    """The settings by which a recorded run is another run than the one wanted (empty: the same run).

    A setting on both sides differs when its values do -- a changed default included (the run was made with the old
    one). A setting on one side only -- added since the run was recorded, or removed -- differs only when it is not
    at its default on that side: a new flag left at its default does not make a finished run another run. A setting
    without a known default (a record that kept none) always differs. Groups of settings (a dict whose wanted default
    is a dict, e.g. the argument sets of a main-job stage) are compared setting by setting, as ``group.name``.
    """
    differences = []
    for name in sorted(set(recorded) | set(wanted)):
        if name in recorded and name in wanted:
            old, new = recorded[name], wanted[name]
            old_defaults, new_defaults = recorded_defaults.get(name), wanted_defaults.get(name)
            if isinstance(old, dict) and isinstance(new, dict) and isinstance(new_defaults, dict):
                old_defaults = old_defaults if isinstance(old_defaults, dict) else {}  # a record that kept none
                differences += [f"{name}.{inner}" for inner in differing_settings(old, new, old_defaults, new_defaults)]
            elif old != new:
                differences.append(name)
        else:
            values, defaults = (recorded, recorded_defaults) if name in recorded else (wanted, wanted_defaults)
            if name not in defaults or values[name] != defaults[name]:
                differences.append(name)
    return differences


def run_identity(command: str, task, labels, model: str | None, data: dict, argument_sets: tuple,
                 leave_out: tuple[str, ...] = ()) -> dict:
    """What makes two runs the same run (compared by :func:`run_differences`): the command, task, labels, model
    source and data, and the arguments of ``argument_sets`` that shape the model (without ``leave_out``), with their
    defaults -- kept in the record so that a flag added or removed later at its default is no difference."""
    return as_json({
        "command": command, "task": task, "labels": labels, "model": model, "data": data,
        "arguments": shaping_arguments(*argument_sets, leave_out=leave_out),
        "argument_defaults": shaping_defaults(*argument_sets, leave_out=leave_out),
    })


def run_differences(recorded: dict, wanted: dict) -> list[str]:
    """``["labels ['0', '1'] -> ['neg', 'pos']", "--train_file: other data", ...]``: what makes the recorded run
    another run than the wanted one (empty: the same run); arguments by :func:`differing_settings`."""
    differences = [
        f"{key} {recorded.get(key)!r} -> {wanted.get(key)!r}"
        for key in ("command", "task", "labels", "model")
        if recorded.get(key) != wanted.get(key)
    ]
    old_data, new_data = recorded.get("data") or {}, wanted.get("data") or {}
    differences += [f"--{flag}: other data" for flag in sorted(set(old_data) | set(new_data))
                    if old_data.get(flag) != new_data.get(flag)]
    model_flags = ("model_name_or_path", "model_size", "config_name")  # already said by "model"
    old_arguments, new_arguments = recorded.get("arguments") or {}, wanted.get("arguments") or {}
    # Records of earlier versions kept no defaults: an argument they hold that is gone now counts as a difference.
    changed = differing_settings(old_arguments, new_arguments, recorded.get("argument_defaults") or {},
                                 wanted.get("argument_defaults") or {})
    differences += [
        f"--{name} {old_arguments.get(name)!r} -> {new_arguments.get(name)!r}"
        for name in changed
        if not (name in model_flags and recorded.get("model") != wanted.get("model"))
    ]
    return differences


def describe_differences(recorded: dict, wanted: dict) -> str:
    """``labels ['0', '1'] -> ['neg', 'pos']; --train_file: other data; ...`` (the first few differences)."""
    differences = run_differences(recorded, wanted)
    shown = differences[:4] + ([f"{len(differences) - 4} more"] if len(differences) > 4 else [])
    return "; ".join(shown)


# --------------------------------------------------------------------------------------------------- checkpoints
def incomplete_checkpoint_reason(checkpoint: str) -> str | None:
    """Why ``checkpoint`` was cut mid-write, or None when it is whole: Trainer writes ``trainer_state.json`` last,
    and every weights file must pass the check models are loaded with (:func:`model_sources.weights_file_problem`)."""
    try:
        with open(os.path.join(checkpoint, "trainer_state.json"), encoding="utf-8") as f:
            json.load(f)
    except (OSError, ValueError):
        return "trainer_state.json is missing or unreadable"
    for name in sorted(os.listdir(checkpoint)):
        path = os.path.join(checkpoint, name)
        if name.endswith((".safetensors", ".pt", ".bin", ".pth")) and os.path.isfile(path):
            problem = weights_file_problem(path)
            if problem is not None:
                return f"{name} is truncated or corrupt ({problem})"
    return None


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` that was written whole; newer, incomplete ones are named in a
    warning and left in place (Trainer's rotation removes them later)."""
    if not os.path.isdir(output_dir):
        return None
    steps = sorted(
        (int(match.group(1)), name)
        for name in os.listdir(output_dir)
        if (match := CHECKPOINT_PATTERN.match(name)) and os.path.isdir(os.path.join(output_dir, name))
    )
    for _, name in reversed(steps):
        checkpoint = os.path.join(output_dir, name)
        reason = incomplete_checkpoint_reason(checkpoint)
        if reason is None:
            return checkpoint
        logger.warning("Skipping the incomplete checkpoint %s (%s)", checkpoint, reason)
    return None


# ---------------------------------------------------------------------------------------------------- the lock
def _describe_holder(lock_path: str) -> str:
    try:
        with open(lock_path, encoding="utf-8") as f:
            holder = json.load(f)
        return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
                f"{holder.get('command')}")
    except (OSError, ValueError):
        return "a process that has not written its details yet"


def acquire_lock(output_dir: str):
    """Hold ``output_dir``'s lock file for this process (the open file; closing it releases the lock)."""
    lock_path = os.path.join(output_dir, LOCK_FILE)
    handle = open(lock_path, "a+", encoding="utf-8")  # "a+": create it without emptying the holder's details
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(
            f"--output_dir {output_dir} is in use by another run ({_describe_holder(lock_path)}); wait for it to "
            "finish or give another --output_dir"
        ) from None
    handle.truncate(0)
    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
               "command": " ".join(sys.argv)}, handle)
    handle.flush()
    return handle


def refuse_if_locked(output_dir: str) -> None:
    """Name the run holding ``output_dir`` before anything is written (the lock file is only read)."""
    lock_path = os.path.join(output_dir, LOCK_FILE)
    if not os.path.isfile(lock_path):
        return
    with open(lock_path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"--output_dir {output_dir} is in use by another run ({_describe_holder(lock_path)}); wait for it "
                "to finish or give another --output_dir"
            ) from None


# ------------------------------------------------------------------------------------------------ the run folder
def read_run_record(output_dir: str) -> dict | None:
    path = os.path.join(output_dir, RUN_RECORD)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        raise ValueError(
            f"--output_dir {output_dir}: its run record {RUN_RECORD} is unreadable; nothing was written -- give "
            "another --output_dir"
        ) from None
    return record if isinstance(record, dict) else {}


def _is_plain_entry(name) -> bool:
    """A record lists entries of its own folder only: a hand-edited one cannot name a path elsewhere."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and os.sep not in name


def is_recipe_output(name: str) -> bool:
    """A name the recipes write into their output folder (Trainer's ``runs`` logs included): only such entries are
    recorded as a run's outputs, so that a file the user adds during a run is never removed with them."""
    return name in RECIPE_OUTPUT_NAMES or name == "runs" or bool(CHECKPOINT_PATTERN.match(name))


def _holds(entry: str, path: str | None) -> bool:
    """Whether ``path`` (a real path) is the folder entry ``entry`` or lies inside it."""
    if path is None:
        return False
    real_entry = os.path.realpath(entry)
    return path == real_entry or path.startswith(real_entry + os.sep)


def _remove_entry(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


class RecordCheckpoints(TrainerCallback):
    """Adds each checkpoint to the run record as it is saved, so that a run killed before its end still owns them."""

    def __init__(self, run_folder: "RunFolder"):
        self.run_folder = run_folder

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.run_folder.record is not None:
            self.run_folder.add_outputs([f"checkpoint-{state.global_step}"])


class RunFolder:
    """``with RunFolder(training_args, identity):`` around a run: claims ``--output_dir`` for it (refusing another
    run's folder, or one that holds a model or checkpoints no run recorded), holds its lock, and records what the run
    wrote. Training runs resume only the same run; ``--overwrite_output_dir`` first removes the previous run's
    recorded outputs. Evaluation-only runs score the folder's own model (or a checkpoint in it, or the model its run
    started from) and add what they write to its record; in a folder without a record they refuse to replace results
    that are there."""

    def __init__(self, training_args: TrainingArguments, identity: dict):
        self.training_args = training_args
        self.output_dir = training_args.output_dir
        self.identity = identity
        self.overwrite = bool(getattr(training_args, "overwrite_output_dir", False))
        self.record: dict | None = None
        self.lock = None
        self.callback = RecordCheckpoints(self)

    def __enter__(self) -> "RunFolder":
        # The main process decides; the others wait, then find the folder as it left it (e.g. without old checkpoints).
        with self.training_args.main_process_first(local=False, desc="claiming the output folder"):
            if self.training_args.process_index == 0:
                self._claim()
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if self.lock is None:
            return
        try:
            written = self._entries_written_since(self.started)
            if error_type is not None and not written and (self.owns_nothing_yet or self.created_folder):
                self._forget_the_run()  # it failed before writing anything: leave the folder as it was
            elif self.record is not None:
                if error_type is None and self.training_args.do_train:
                    self.record["status"] = "complete"
                self.add_outputs(written)
        finally:
            self.lock.close()  # releases the lock; the lock file stays (removing it would race with a new run)
            self.lock = None

    def _forget_the_run(self) -> None:
        if self.record is not None:  # an evaluation-only run into a new folder has none
            os.remove(os.path.join(self.output_dir, RUN_RECORD))
            self.record = None
        if self.created_folder:
            try:
                os.remove(os.path.join(self.output_dir, LOCK_FILE))
                os.rmdir(self.output_dir)
            except OSError as error:  # another run just created its lock there, or the user a file: not ours to remove
                logger.warning("Left the folder %s in place (%s)", self.output_dir, error)

    def add_outputs(self, names: list[str]) -> None:
        kept = set(self.record.get("kept", []))
        self.record["outputs"] = sorted(set(self.record.get("outputs", [])) | (set(names) - kept))
        self._write_record()

    def _claim(self) -> None:
        refuse_if_locked(self.output_dir)
        self._plan()  # refusals come before anything is written
        self.created_folder = not os.path.isdir(self.output_dir)
        os.makedirs(self.output_dir, exist_ok=True)
        self.lock = acquire_lock(self.output_dir)
        try:
            removals, record = self._plan()  # again under the lock: another run may have finished in between
            for name in removals:
                _remove_entry(os.path.join(self.output_dir, name))
            if removals:
                logger.warning("--overwrite_output_dir: removed the previous run's %s", ", ".join(sorted(removals)))
            # The lock file was just written: later files of this run have that mtime or a later one (same clock).
            self.started = os.stat(os.path.join(self.output_dir, LOCK_FILE)).st_mtime
            self.owns_nothing_yet = self.training_args.do_train and not record.get("outputs")
            self.record = record
            if record is not None:
                self._write_record()
        except BaseException:
            self.lock.close()
            self.lock = None
            raise

    def _entries(self) -> list[str]:
        if not os.path.isdir(self.output_dir):
            return []
        return sorted(set(os.listdir(self.output_dir)) - {RUN_RECORD, f"{RUN_RECORD}.tmp", LOCK_FILE})

    def _entries_written_since(self, start: float) -> list[str]:
        return [
            name for name in self._entries()
            if is_recipe_output(name) and os.lstat(os.path.join(self.output_dir, name)).st_mtime >= start
        ]

    def _plan(self) -> tuple[list[str], dict | None]:
        """(entries to remove, the run record to write) -- or a ValueError naming the folder and what is wrong."""
        if os.path.exists(self.output_dir) and not os.path.isdir(self.output_dir):
            raise ValueError(f"--output_dir {self.output_dir} is a file, not a folder; give a folder for the run")
        resume = self.training_args.resume_from_checkpoint
        if self.training_args.do_train and self.overwrite and resume in LATEST_CHECKPOINT:
            raise ValueError(
                f"--overwrite_output_dir removes the checkpoints in {self.output_dir} that --resume_from_checkpoint "
                f"{resume} would resume from; give one of the two"
            )
        record, entries = read_run_record(self.output_dir), self._entries()
        if not self.training_args.do_train:
            self._refuse_scoring_into_another_run(record, entries)
            return [], record
        if record is None:
            self._refuse_unrecorded_outputs(entries)
            return [], self._new_record(entries)
        if not self.overwrite:
            if run_differences(record, self.identity):
                differences = describe_differences(record, self.identity)
                raise ValueError(
                    f"--output_dir {self.output_dir} holds another run ({differences}); nothing was written -- give "
                    "another --output_dir, or pass --overwrite_output_dir to replace that run's outputs"
                )
            logger.info("%s holds this run (%s): continuing it", self.output_dir, record.get("status"))
            return [], {**record, **self._new_record(record.get("kept", [])), "outputs": record.get("outputs", [])}
        # A checkpoint given by path to resume from is kept when it lies in this folder (by real path, not by name).
        spared = os.path.realpath(resume) if isinstance(resume, str) else None
        removals = [
            name for name in record.get("outputs", [])
            if _is_plain_entry(name) and name in entries and not _holds(os.path.join(self.output_dir, name), spared)
        ]
        kept = [name for name in entries if name not in removals]
        return removals, self._new_record(kept)

    def _refuse_scoring_into_another_run(self, record: dict | None, entries: list[str]) -> None:
        """An evaluation-only run writes its results into the folder of the run that made the model it scores (the
        folder itself, or a checkpoint in it) -- never over another run's results."""
        model = self.identity.get("model")
        if record is not None:
            # Not "the same model source as the recorded run": that is the run's *starting* point (e.g. the
            # pretrained encoder), whose scores would pass for the fine-tuned model's.
            if self._is_this_folder_or_its_checkpoint(model):
                return
            raise ValueError(
                f"--output_dir {self.output_dir} holds another run ({record.get('command')} of "
                f"{record.get('model')!r}), whose results scoring {model!r} would replace; nothing was written -- "
                "give another --output_dir"
            )
        args = self.training_args
        would_write = ["all_results.json"] + (["eval_results.json"] if args.do_eval else [])
        if args.do_predict:
            would_write += ["test_results.json", "predict_results.csv", "predict_results.conll"]
        if self.identity.get("command") == "finetune":
            would_write.append("confusion_matrix.png")
        theirs = sorted(name for name in would_write if name in entries)
        if theirs:
            raise ValueError(
                f"--output_dir {self.output_dir} already holds results that no glm_hf run recorded writing "
                f"({', '.join(theirs)}; no {RUN_RECORD}), which this run would replace; nothing was written -- give "
                "another --output_dir"
            )

    def _is_this_folder_or_its_checkpoint(self, model) -> bool:
        if not isinstance(model, str) or not os.path.exists(os.path.expanduser(model)):
            return False
        scored, folder = os.path.realpath(os.path.expanduser(model)), os.path.realpath(self.output_dir)
        return scored == folder or (
            os.path.dirname(scored) == folder and CHECKPOINT_PATTERN.match(os.path.basename(scored)) is not None
        )

    def _refuse_unrecorded_outputs(self, entries: list[str]) -> None:
        # Someone else's model or checkpoints: resuming them would mix two runs, and they are not ours to replace.
        theirs = [name for name in entries if name in RECIPE_OUTPUT_NAMES or CHECKPOINT_PATTERN.match(name)]
        if theirs:
            shown = ", ".join(theirs[:5]) + (f" and {len(theirs) - 5} more" if len(theirs) > 5 else "")
            raise ValueError(
                f"--output_dir {self.output_dir} holds a model or checkpoints that no glm_hf run recorded writing "
                f"({shown}; no {RUN_RECORD}); nothing was written or removed -- move them away or give another "
                "--output_dir"
            )

    def _new_record(self, kept: list[str]) -> dict:
        # Entries with a name the recipes write are not kept as the user's: the run will overwrite them, then own them.
        kept = [name for name in kept if name not in RECIPE_OUTPUT_NAMES and not CHECKPOINT_PATTERN.match(name)]
        return {
            **self.identity,
            "status": "started",
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command_line": " ".join(sys.argv),
            "kept": sorted(kept),
            "outputs": [],
        }

    def _write_record(self) -> None:
        path = os.path.join(self.output_dir, RUN_RECORD)
        temporary = f"{path}.tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(self.record, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(temporary, path)  # a run killed mid-write leaves the previous record whole
