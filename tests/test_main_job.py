"""The main job end to end (tiny size), its artefacts, and resuming interrupted, finished and damaged stages."""

import json
import os

import pytest

from glm_hf import main_job
from glm_hf.main_job import Stage, StageRecords, run_stage

# Smaller than --quick: a smoke test of the wiring, in well under 2 minutes.
TINY_JOB = [
    "--quick",
    "--vocab_size",
    "800",
    "--tokenizer_max_documents",
    "600",
    "--pretrain_steps",
    "4",
    "--pretrain_max_train_samples",
    "128",
    "--pretrain_max_eval_samples",
    "32",
    "--finetune_steps",
    "12",
    "--finetune_batch_size",
    "8",
    "--max_train_samples",
    "160",
    "--max_eval_samples",
    "80",
    "--max_predict_samples",
    "120",
    "--examples",
    "这家酒店很好。",
    "太差了。",
]


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_end_to_end_interrupt_resume_and_skip(tmp_path, monkeypatch, capsys):
    job_dir = tmp_path / "job"
    argv = [*TINY_JOB, "--output_dir", str(job_dir)]

    # 1. Interrupt the last stage (Ctrl-C) after its checkpoint at step 10.
    from glm_hf.finetuning import ClassificationTrainer

    original_step = ClassificationTrainer.training_step

    def interrupted_step(self, *args, **kwargs):
        if self.args.output_dir.endswith("finetune_from_scratch") and self.state.global_step == 11:
            raise KeyboardInterrupt
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(ClassificationTrainer, "training_step", interrupted_step)
    assert main_job.main(argv) == 130
    assert "Run the same command again to resume" in capsys.readouterr().err
    records = StageRecords(str(job_dir))
    assert [records.read(name)["status"] for name in main_job.STAGES] == ["complete"] * 3 + ["started"]
    assert os.path.isdir(job_dir / "finetune_from_scratch" / "checkpoint-10")
    monkeypatch.setattr(ClassificationTrainer, "training_step", original_step)

    # 2. Run again: finished stages are skipped, the interrupted one resumes from its checkpoint.
    assert main_job.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("done before") == 3 and "finetune_from_scratch" in out and "resuming an interrupted run" in out
    scratch_dir = job_dir / "finetune_from_scratch"
    assert _read(scratch_dir / "trainer_state.json")["global_step"] == 12
    assert not [name for name in os.listdir(scratch_dir) if name.startswith("checkpoint-")]

    # Artefacts: metrics JSON, card with every number, plots, reloaded predictions.
    summary = _read(job_dir / main_job.RESULTS_FILE)
    for system in ("glm_pretrained_finetuned", "glm_from_scratch", "tfidf_baseline"):
        assert set(summary["results"][system]) == {"accuracy", "macro_f1"}
        assert 0 <= summary["results"][system]["accuracy"] <= 1
    assert summary["test_split"]["examples"] == 120 and summary["quick_mode"] is True
    ours, scratch = summary["results"]["glm_pretrained_finetuned"], summary["results"]["glm_from_scratch"]
    assert summary["pretraining_gain"]["accuracy"] == pytest.approx(ours["accuracy"] - scratch["accuracy"])
    assert [example["text"] for example in summary["examples"]] == ["这家酒店很好。", "太差了。"]
    assert all(example["label"] in ("negative", "positive") for example in summary["examples"])

    finetune_dir = job_dir / "finetune"
    card = (finetune_dir / "README.md").read_text(encoding="utf-8")
    from glm_hf.cards import format_value

    for system in ("glm_pretrained_finetuned", "glm_from_scratch", "tfidf_baseline"):
        assert format_value(summary["results"][system]["accuracy"]) in card
        assert format_value(summary["results"][system]["macro_f1"]) in card
    assert "GLM from scratch" in card and "TF-IDF baseline" in card and "Quick mode" in card
    assert "Pretraining gain" in card and "language: zh" in card and "model-index" in card
    for image in ("confusion_matrix.png", "loss_curve.png", "pretraining_loss_curve.png"):
        assert (finetune_dir / image).is_file() and f"]({image})" in card
    assert (job_dir / "pretrain" / "README.md").is_file()
    assert "test_accuracy" in _read(finetune_dir / "test_results.json")
    assert "Reloaded" in out and "这家酒店很好。" in out

    # 3. Damage one finished stage by hand and run again: that stage is redone, the others are skipped untouched.
    untouched = scratch_dir / "model.safetensors"
    stamp = os.path.getmtime(untouched)
    os.remove(finetune_dir / "model.safetensors")
    assert main_job.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("done before") == 3 and "[3/4] finetune: " in out
    assert (finetune_dir / "model.safetensors").is_file() and os.path.getmtime(untouched) == stamp


def _stage(tmp_path, argv, resumable=False):
    return Stage("tokenizer" if not resumable else "pretrain", "test stage", argv, resumable=resumable)


def _runner(calls, files):
    def run(argv):
        calls.append(list(argv))
        folder = argv[-1]
        os.makedirs(folder, exist_ok=True)
        for name in files:
            with open(os.path.join(folder, name), "w") as f:
                f.write("x")
        return {"ok": 1.0}

    return run


def test_stage_records_skip_redo_and_resume(tmp_path, capsys):
    job_dir = str(tmp_path)
    records = StageRecords(job_dir)
    calls = []
    runner = _runner(calls, ["tokenizer_config.json"])
    stage = _stage(tmp_path, ["--vocab_size", "10", os.path.join(job_dir, "tokenizer")])

    record = run_stage(stage, job_dir, records, {}, runner, 1)
    assert record["status"] == "complete" and record["metrics"] == {"ok": 1.0} and len(calls) == 1
    run_stage(stage, job_dir, records, {}, runner, 1)
    assert len(calls) == 1 and "skipped" in capsys.readouterr().out

    # Changed settings: the old folder is removed and the stage redone.
    open(os.path.join(job_dir, "tokenizer", "stale.txt"), "w").close()
    changed = _stage(tmp_path, ["--vocab_size", "20", os.path.join(job_dir, "tokenizer")])
    run_stage(changed, job_dir, records, {}, runner, 1)
    assert len(calls) == 2 and "settings changed" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(job_dir, "tokenizer", "stale.txt"))

    # Interrupted non-resumable stage (record says started): removed and redone.
    records.write("tokenizer", {**records.read("tokenizer"), "status": "started"})
    open(os.path.join(job_dir, "tokenizer", "half.txt"), "w").close()
    run_stage(changed, job_dir, records, {}, runner, 1)
    assert len(calls) == 3 and not os.path.exists(os.path.join(job_dir, "tokenizer", "half.txt"))

    # Interrupted Trainer stage: the folder (and its checkpoints) is kept for Trainer to resume.
    trainer_stage = Stage(
        "pretrain", "test", [os.path.join(job_dir, "pretrain")], upstream=["tokenizer"], resumable=True
    )
    known = {"tokenizer": records.read("tokenizer")}
    os.makedirs(os.path.join(job_dir, "pretrain", "checkpoint-5"))
    records.write("pretrain", {"status": "started", "fingerprint": trainer_stage.fingerprint(known)})
    seen = []

    def resuming_runner(argv):
        seen.append(os.path.isdir(os.path.join(job_dir, "pretrain", "checkpoint-5")))
        return _runner(calls, ["config.json", "model.safetensors"])(argv)

    run_stage(trainer_stage, job_dir, records, known, resuming_runner, 2)
    assert seen == [True] and "resuming" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(job_dir, "pretrain", "checkpoint-5"))  # cleaned once complete

    # A fix to the embedded data (its digest) or an upstream change changes the fingerprint: the stage is redone.
    fixed_data = Stage(
        "pretrain", "test", trainer_stage.argv, upstream=["tokenizer"], resumable=True, data_version="v2"
    )
    assert fixed_data.fingerprint(known) != trainer_stage.fingerprint(known)
    assert trainer_stage.fingerprint({"tokenizer": {"fingerprint": "other"}}) != trainer_stage.fingerprint(known)

    # An unreadable record counts as never run.
    with open(os.path.join(job_dir, ".stages", "pretrain.json"), "w") as f:
        f.write("{half")
    assert records.read("pretrain") == {}


def test_settings_validation():
    parser = main_job.build_parser()
    with pytest.raises(ValueError, match="model_size must be one of"):
        main_job.settings_from_args(parser.parse_args(["--model_size", "huge"]))
    with pytest.raises(ValueError, match="finetune_steps must be a positive integer"):
        main_job.settings_from_args(parser.parse_args(["--finetune_steps", "0"]))
    quick = main_job.settings_from_args(parser.parse_args(["--quick", "--pretrain_steps", "7"]))
    assert quick.model_size == "tiny" and quick.pretrain_steps == 7
    with pytest.raises(ValueError, match="pretrain_dropout must be a probability"):
        main_job.settings_from_args(parser.parse_args(["--pretrain_dropout", "1.5"]))


def test_dropout_settings_reach_every_training_stage(tmp_path):
    settings = main_job.settings_from_args(
        main_job.build_parser().parse_args(["--pretrain_dropout", "0.05", "--finetune_dropout", "0.2"])
    )
    stages = {stage.name: stage.argv for stage in main_job.build_stages(str(tmp_path), settings)}
    override = lambda argv: argv[argv.index("--config_overrides") + 1]  # noqa: E731
    assert override(stages["pretrain"]) == "hidden_dropout_prob=0.05,attention_probs_dropout_prob=0.05"
    # Both fine-tuning runs get the same dropout: only the initialisation differs between them.
    assert override(stages["finetune"]) == override(stages["finetune_from_scratch"]) == (
        "hidden_dropout_prob=0.2,attention_probs_dropout_prob=0.2"
    )
