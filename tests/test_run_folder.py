"""The rule that says whether a recorded run is the run wanted (run_folder.differing_settings), for run folders; the
folders themselves (locks, resumes, refusals) are tested with the recipes in test_reliability.py."""

import json
from dataclasses import dataclass, field

import pytest
from transformers import TrainingArguments

from glm_hf.run_folder import (
    RUN_RECORD,
    RunFolder,
    argument_defaults,
    differing_settings,
    run_differences,
    run_identity,
)


@dataclass
class Recorded:
    """The arguments of a command as a finished run had them."""

    steps: int = 10
    rate: float = 1e-3
    labels: list = field(default_factory=lambda: ["neg", "pos"])


@dataclass
class WithNewFlag(Recorded):
    """The same command after a release added a flag."""

    new_flag: int = 0


@dataclass
class WithNewDefault:
    """The same command after a release changed the default of --rate."""

    steps: int = 10
    rate: float = 5e-4
    labels: list = field(default_factory=lambda: ["neg", "pos"])


@dataclass
class WithoutRate:
    """The same command after a release removed --rate."""

    steps: int = 10
    labels: list = field(default_factory=lambda: ["neg", "pos"])


def _changes(recorded, wanted) -> list[str]:
    return differing_settings(vars(recorded), vars(wanted), argument_defaults(recorded), argument_defaults(wanted))


def test_a_flag_added_or_removed_at_its_default_is_the_same_run():
    assert _changes(Recorded(), WithNewFlag()) == []
    assert _changes(Recorded(rate=0.1), WithNewFlag(rate=0.1)) == []
    assert _changes(Recorded(), WithoutRate()) == []  # the run had the default the removed flag now always has


def test_a_new_flag_off_its_default_or_a_changed_value_is_another_run():
    assert _changes(Recorded(), WithNewFlag(new_flag=3)) == ["new_flag"]
    assert _changes(Recorded(), WithNewFlag(steps=20)) == ["steps"]
    assert _changes(Recorded(rate=0.1), WithoutRate()) == ["rate"]  # the run set a flag that is gone


def test_a_changed_default_is_another_run():
    # Both sides hold --rate: the run was made with the old default, a rerun gets the new one.
    assert _changes(Recorded(), WithNewDefault()) == ["rate"]


def test_without_recorded_defaults_a_recorded_only_setting_counts():
    # Records of earlier versions kept no defaults: a setting they hold that is gone cannot be judged at its default.
    assert differing_settings({"steps": 10, "rate": 1e-3}, {"steps": 10}, {}, argument_defaults(WithoutRate())) == [
        "rate"
    ]


def test_groups_of_settings_are_compared_setting_by_setting():
    recorded = {"model": {"size": "mini"}, "data": {"objective": "mlm"}}
    defaults = {"model": {"size": "mini"}, "data": {"objective": "mlm_nsp", "streaming": False}}
    assert differing_settings(recorded, {**recorded, "data": {"objective": "mlm", "streaming": False}},
                              defaults, defaults) == []
    assert differing_settings(recorded, {**recorded, "data": {"objective": "mlm", "streaming": True}},
                              defaults, defaults) == ["data.streaming"]
    assert differing_settings(recorded, {**recorded, "model": {"size": "tiny"}}, defaults, defaults) == ["model.size"]
    # A record that kept no defaults: the groups are the wanted side's.
    assert differing_settings(recorded, {**recorded, "data": {"objective": "mlm", "streaming": False}},
                              {}, defaults) == []


def test_training_arguments_defaults_are_its_fields_defaults(monkeypatch):
    training_args = TrainingArguments(output_dir="somewhere", learning_rate=0.1, use_cpu=True)
    # No instance is built: that would reset accelerate's distributed state under a running Trainer.
    monkeypatch.setattr(TrainingArguments, "__post_init__", lambda self: pytest.fail("built a TrainingArguments"))
    defaults = argument_defaults(training_args)
    assert defaults["learning_rate"] == 5e-5 and defaults["lr_scheduler_type"] == "linear"
    assert "output_dir" not in defaults or defaults["output_dir"] != "somewhere"


def _identity(arguments) -> dict:
    return run_identity("finetune", None, ["neg", "pos"], "tiny", {"train_file": "sha256:x"}, (arguments,))


def test_run_identities_follow_the_rule():
    recorded = _identity(Recorded())
    assert run_differences(recorded, _identity(WithNewFlag())) == []
    assert run_differences(recorded, _identity(WithNewFlag(new_flag=1))) == ["--new_flag None -> 1"]
    assert run_differences(recorded, _identity(WithNewFlag(steps=5))) == ["--steps 10 -> 5"]
    assert run_differences(recorded, _identity(WithNewDefault())) == ["--rate 0.001 -> 0.0005"]
    # A record of an earlier version: no argument_defaults in it; a flag added since at its default still matches.
    earlier = {key: value for key, value in recorded.items() if key != "argument_defaults"}
    assert run_differences(earlier, _identity(WithNewFlag())) == []


def test_a_run_folder_recorded_before_a_flag_existed_is_resumed(tmp_path):
    """The folder of a finished run, recorded by an earlier version (no defaults, no --new_flag), is the same run for
    a rerun that leaves --new_flag at its default, and another run for one that sets it."""
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    earlier = {key: value for key, value in _identity(Recorded()).items() if key != "argument_defaults"}
    (output_dir / RUN_RECORD).write_text(json.dumps({**earlier, "status": "complete", "outputs": [], "kept": []}))
    training_args = TrainingArguments(output_dir=str(output_dir), do_train=True, report_to="none")
    with RunFolder(training_args, _identity(WithNewFlag())) as run_folder:
        assert run_folder.record["status"] == "started"  # continuing it, not refused
    recorded = json.loads((output_dir / RUN_RECORD).read_text())
    assert recorded["arguments"]["new_flag"] == 0 and recorded["argument_defaults"]["new_flag"] == 0
    with pytest.raises(ValueError, match=r"holds another run \(--new_flag 0 -> 1\)"):
        with RunFolder(training_args, _identity(WithNewFlag(new_flag=1))):
            pass
