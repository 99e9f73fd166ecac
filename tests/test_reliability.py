"""A user's files are never deleted, bad input stops with one sentence naming the flag or file, and nothing
half-written is left behind (issue #10). Tiny data: each test takes seconds."""

import logging
import os
import re

import pytest

from glm_hf import main_job
from glm_hf.main_job import Stage, StageRecords, run_stage


def _touch(path, text="x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _never_run(*args, **kwargs):
    raise AssertionError("the job must not start")


# ----------------------------------------------------------------------------------------- main job: --overwrite
def test_overwrite_refuses_a_folder_with_the_users_files(tmp_path, monkeypatch):
    _touch(str(tmp_path / "thesis.tex"))
    _touch(str(tmp_path / "data" / "reviews.csv"))
    _touch(str(tmp_path / "tokenizer" / "tokenizer_config.json"))
    StageRecords(str(tmp_path)).write("tokenizer", {"status": "complete", "fingerprint": "f"})
    monkeypatch.setattr(main_job, "run_stage", _never_run)

    with pytest.raises(
        ValueError,
        match=rf"--overwrite: {re.escape(str(tmp_path))} holds entries this job did not write "
        r"\(data, thesis.tex\); nothing was removed",
    ):
        main_job.main(["--quick", "--overwrite", "--output_dir", str(tmp_path)])
    assert sorted(os.listdir(tmp_path)) == [".stages", "data", "thesis.tex", "tokenizer"]
    assert (tmp_path / "tokenizer" / "tokenizer_config.json").is_file()


def test_overwrite_removes_only_what_the_job_wrote(tmp_path, monkeypatch):
    job_dir = tmp_path / "job"
    records = StageRecords(str(job_dir))
    for name in ("tokenizer", "pretrain"):
        _touch(str(job_dir / name / "config.json"))
        records.write(name, {"status": "complete", "fingerprint": name})
    _touch(str(job_dir / main_job.RESULTS_FILE), "{}")
    seen = []

    def first_stage(stage, job_dir, *args):
        seen.append(sorted(os.listdir(job_dir)))
        raise KeyboardInterrupt

    monkeypatch.setattr(main_job, "run_stage", first_stage)
    assert main_job.main(["--quick", "--overwrite", "--output_dir", str(job_dir)]) == 130
    assert seen == [[]]  # the job started over in its own, now empty, folder


# ------------------------------------------------------------------------------- main job: unrecorded stage folders
def test_a_stage_folder_the_job_did_not_start_is_kept(tmp_path, capsys):
    job_dir = str(tmp_path)
    users_tokenizer = tmp_path / "tokenizer" / "vocab.txt"
    _touch(str(users_tokenizer), "[PAD]\n")
    stage = Stage("tokenizer", "test stage", {"vocab_size": 10}, _never_run)

    with pytest.raises(
        ValueError,
        match=rf"{re.escape(str(tmp_path / 'tokenizer'))} exists but the job has no record of writing it "
        r"\(.stages/tokenizer.json\); nothing was removed",
    ):
        run_stage(stage, job_dir, StageRecords(job_dir), {}, 1)
    assert users_tokenizer.read_text(encoding="utf-8") == "[PAD]\n"

    # One the job recorded as started (then interrupted) is still ours: removed and redone.
    calls = []

    def write():
        calls.append(1)
        _touch(str(tmp_path / "tokenizer" / "tokenizer_config.json"))
        return {}

    StageRecords(job_dir).write("tokenizer", {"status": "started", "fingerprint": "older"})
    run_stage(Stage("tokenizer", "test stage", {"vocab_size": 10}, write), job_dir, StageRecords(job_dir), {}, 1)
    assert calls == [1] and not users_tokenizer.exists()
    assert StageRecords(job_dir).read("tokenizer")["status"] == "complete"


# ------------------------------------------------------------------------------------- predict: no trained classifier
def _tiny_config(tokenizer, **kwargs):
    from glm_hf import GLMConfig

    return GLMConfig.from_size(
        "tiny", vocab_size=len(tokenizer), max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, **kwargs
    )


def test_predict_refuses_a_folder_without_a_trained_classifier(tmp_path, tiny_tokenizer):
    from glm_hf import GLMForPreTraining, GLMForSequenceClassification
    from glm_hf.cli import main as cli

    texts = tmp_path / "texts.txt"
    texts.write_text("这本书写得非常好。\n质量太差了。\n", encoding="utf-8")
    pretrained = tmp_path / "pretrain"
    GLMForPreTraining(_tiny_config(tiny_tokenizer)).save_pretrained(pretrained)
    tiny_tokenizer.save_pretrained(pretrained)
    with pytest.raises(ValueError, match=rf"--model {re.escape(str(pretrained))} holds a GLMForPreTraining model, "
                                         "not a trained text classifier"):
        cli(["predict", "--model", str(pretrained), "--input", str(texts)])

    headless = tmp_path / "headless"
    model = GLMForSequenceClassification(_tiny_config(tiny_tokenizer))
    weights = {name: value for name, value in model.state_dict().items() if not name.startswith("classifier.")}
    model.save_pretrained(headless, state_dict=weights)
    tiny_tokenizer.save_pretrained(headless)
    with pytest.raises(ValueError, match=rf"--model {re.escape(str(headless))}: its weights lack classifier.bias, "
                                         "classifier.weight"):
        cli(["predict", "--model", str(headless), "--input", str(texts)])
    assert not (tmp_path / "texts.predictions.csv").exists()


# ----------------------------------------------------------------------------------- recipes: --max_steps 0
def _write_csv(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _finetune_flags(tmp_path, tokenizer_dir, train_file, *extra):
    return [
        "--model_size", "tiny", "--tokenizer_name", tokenizer_dir, "--train_file", train_file, "--do_train",
        "--output_dir", str(tmp_path / "out"), "--max_seq_length", "32", "--per_device_train_batch_size", "4",
        "--use_cpu", "--report_to", "none", "--disable_tqdm", "true", "--run_baseline", "false", *extra,
    ]


REVIEWS = ["text,label", "这本书写得非常好,1", "质量太差了,0", "房间干净服务周到,1", "物流很慢包装破了,0"]


@pytest.mark.parametrize("max_steps", ["0", "-2"])
def test_finetuning_refuses_max_steps_0(tmp_path, tiny_tokenizer_dir, max_steps):
    from glm_hf import finetuning

    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with pytest.raises(ValueError, match=rf"--max_steps must be a positive number of optimizer steps, or -1 to train "
                                         rf"for --num_train_epochs; got {max_steps}"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", max_steps))
    assert not (tmp_path / "out").exists()


def test_pretraining_refuses_max_steps_0(tmp_path, tiny_tokenizer_dir):
    from glm_hf import pretraining

    with pytest.raises(ValueError, match="--max_steps must be a positive number of optimizer steps"):
        pretraining.main([
            "--model_size", "tiny", "--tokenizer_name", tiny_tokenizer_dir, "--dataset_name", "embedded",
            "--max_steps", "0", "--output_dir", str(tmp_path / "out"), "--use_cpu", "--report_to", "none",
        ])
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------------- fine-tuning: header lines, blank labels
def test_a_header_line_inside_a_csv_is_named(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    joined = _write_csv(tmp_path / "joined.csv", [*REVIEWS, *REVIEWS])  # two files joined with cat
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(joined)}: line 6 repeats the header "
                                         r"\['text', 'label'\]; remove it"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, joined, "--max_steps", "1"))
    tsv = tmp_path / "joined.tsv"
    tsv.write_text("text\tlabel\n好\t1\n差\t0\ntext\tlabel\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"joined.tsv: line 4 repeats the header"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, str(tsv), "--max_steps", "1"))
    assert not (tmp_path / "out").exists()


def test_a_blank_label_is_named_with_its_file_and_row(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    validation = _write_csv(tmp_path / "validation.csv", ["text,label", "很好,1", "很差,", "不错,1"])
    with pytest.raises(ValueError, match=rf"--validation_file {re.escape(validation)}: data row 2 has a blank "
                                         "'label'; give every example a label"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                        "--validation_file", validation, "--do_eval"))
    # In train it would have made the integer labels floats, read as a regression target.
    blank_in_train = _write_csv(tmp_path / "blank.csv", [*REVIEWS, "还行,"])
    with pytest.raises(ValueError, match=r"blank.csv: data row 5 has a blank 'label'"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, blank_in_train, "--max_steps", "1"))
    records = tmp_path / "train.jsonl"
    records.write_text('{"text": "很好", "label": 1}\n{"text": "很差", "label": null}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"train.jsonl: record 2 has a blank 'label'"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, str(records), "--max_steps", "1"))
    assert not (tmp_path / "out").exists()


def test_the_job_does_not_overwrite_a_results_file_it_did_not_write(tmp_path, monkeypatch):
    _touch(str(tmp_path / main_job.RESULTS_FILE), '{"mine": 1}')
    monkeypatch.setattr(main_job, "run_stage", _never_run)
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path / main_job.RESULTS_FILE))} exists but "
                                         rf"{re.escape(str(tmp_path))} holds no job records \(.stages/\)"):
        main_job.main(["--quick", "--output_dir", str(tmp_path)])
    assert (tmp_path / main_job.RESULTS_FILE).read_text(encoding="utf-8") == '{"mine": 1}'


# ---------------------------------------------------------------------------- recipes: output folders (run records)
def _folder_state(folder):
    """Every file under ``folder`` with its size and modification time: what a refused run must leave as it was."""
    return {
        os.path.relpath(os.path.join(root, name), folder): (os.path.getsize(os.path.join(root, name)),
                                                            os.stat(os.path.join(root, name)).st_mtime_ns)
        for root, _, names in os.walk(folder)
        for name in names
    }


def _checkpointing_flags(tmp_path, tokenizer_dir, train_file, *extra):
    return _finetune_flags(tmp_path, tokenizer_dir, train_file, "--max_steps", "2", "--save_steps", "1", *extra)


def test_a_run_does_not_resume_or_relabel_another_runs_checkpoint(tmp_path, tiny_tokenizer_dir, caplog):
    import json

    from glm_hf import finetuning

    out = tmp_path / "out"
    first = _write_csv(tmp_path / "train.csv", REVIEWS)
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, first))
    before = _folder_state(out)
    other_labels = _write_csv(tmp_path / "other.csv", ["text,label", "好,pos", "差,neg", "行,pos", "坏,neg"])
    with pytest.raises(ValueError, match=rf"--output_dir {re.escape(str(out))} holds another run \(labels \['0', "
                                         r"'1'\] -> \['neg', 'pos'\]; --train_file: other data\); nothing was "
                                         "written -- give another --output_dir, or pass --overwrite_output_dir"):
        finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, other_labels))
    with pytest.raises(ValueError, match=r"holds another run \(--learning_rate 5e-05 -> 0.001\)"):
        finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, first, "--learning_rate", "1e-3"))
    # Pretraining into a fine-tuning folder: another command.
    from glm_hf import pretraining

    with pytest.raises(ValueError, match=r"holds another run \(command 'finetune' -> 'pretrain'"):
        pretraining.main([
            "--model_size", "tiny", "--tokenizer_name", tiny_tokenizer_dir, "--dataset_name", "embedded",
            "--max_train_documents", "20", "--max_steps", "1", "--output_dir", str(out), "--use_cpu",
            "--report_to", "none", "--do_train",
        ])
    assert _folder_state(out) == before

    # The same command again resumes its own run; --overwrite_output_dir starts the other run over.
    with caplog.at_level("WARNING"):
        finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, first))
    assert "resuming training at" in caplog.text and "checkpoint-2" in caplog.text
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, other_labels, "--overwrite_output_dir"))
    with open(out / "config.json", encoding="utf-8") as f:
        assert json.load(f)["id2label"] == {"0": "neg", "1": "pos"}


def test_overwrite_removes_the_previous_runs_outputs_and_only_those(tmp_path, tiny_tokenizer_dir):
    import json

    from glm_hf import finetuning

    out = tmp_path / "out"
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file, "--do_predict",
                                         "--test_split_percentage", "50", "--run_baseline", "true"))
    assert {"predict_results.csv", "test_results.json", "baseline_results.json", "checkpoint-1"} <= set(
        os.listdir(out)
    )
    _touch(str(out / "notes.txt"), "mine")  # the user's, written after the run
    finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                    "--overwrite_output_dir", "--learning_rate", "1e-3", "--save_strategy", "no"))
    left = set(os.listdir(out))
    assert not left & {"predict_results.csv", "test_results.json", "baseline_results.json", "confusion_matrix.png",
                       "checkpoint-1", "checkpoint-2"}
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    with open(out / "all_results.json", encoding="utf-8") as f:
        assert not [key for key in json.load(f) if key.startswith(("test_", "baseline_"))]


def test_a_folder_with_a_model_no_run_recorded_is_refused(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    out = tmp_path / "out"
    _touch(str(out / "checkpoint-7" / "trainer_state.json"), "{}")  # e.g. a run of an older glm_hf, or not ours
    _touch(str(out / "README.md"), "my notes")
    before = _folder_state(out)
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    for extra in ([], ["--overwrite_output_dir"]):
        with pytest.raises(ValueError, match=rf"--output_dir {re.escape(str(out))} holds a model or checkpoints that "
                                             r"no glm_hf run recorded writing \(README.md, checkpoint-7; "):
            finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file, *extra))
    assert _folder_state(out) == before and sorted(os.listdir(out)) == ["README.md", "checkpoint-7"]
    # Other files of the user's are written beside, and kept.
    _touch(str(tmp_path / "mine" / "data.txt"), "keep")
    finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                    "--output_dir", str(tmp_path / "mine")))
    assert (tmp_path / "mine" / "data.txt").read_text(encoding="utf-8") == "keep"
    assert (tmp_path / "mine" / "model.safetensors").is_file()


def test_a_second_run_into_a_folder_in_use_stops_at_once(tmp_path, tiny_tokenizer_dir):
    import fcntl
    import json
    import subprocess
    import sys

    from glm_hf import finetuning
    from glm_hf.run_folder import LOCK_FILE

    out = tmp_path / "out"
    out.mkdir()
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with open(out / LOCK_FILE, "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        json.dump({"pid": 4242, "host": "node7", "started": "2026-11-30 01:00:00", "command": "glm-hf finetune A"},
                  lock)
        lock.flush()
        with pytest.raises(ValueError, match=rf"--output_dir {re.escape(str(out))} is in use by another run \(pid "
                                             r"4242 on node7, started 2026-11-30 01:00:00: glm-hf finetune A\)"):
            finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
        flags = _finetune_flags(tmp_path, tiny_tokenizer_dir, train_file)
        evaluation_only = [flag for flag in flags if flag != "--do_train"]
        with pytest.raises(ValueError, match="is in use by another run"):
            finetuning.main([*evaluation_only, "--validation_file", train_file, "--do_eval"])
    assert os.listdir(out) == [LOCK_FILE]
    # A process killed while holding the lock leaves no stale lock behind: the kernel releases it.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True);"
        " time.sleep(60)"), str(out / LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ValueError, match="is in use by another run"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
    holder.kill()
    holder.wait()
    finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
    assert (out / "model.safetensors").is_file()


@pytest.mark.parametrize("cut", ["truncated_weights", "no_trainer_state"])
def test_a_checkpoint_cut_mid_write_is_skipped(tmp_path, tiny_tokenizer_dir, caplog, cut):
    from glm_hf import finetuning

    out = tmp_path / "out"
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file))
    newest = out / "checkpoint-2"
    if cut == "truncated_weights":
        weights = newest / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        (newest / "trainer_state.json").unlink()
    with caplog.at_level("WARNING"):
        finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file))
    assert f"Skipping the incomplete checkpoint {newest}" in caplog.text
    assert f"resuming training at {out / 'checkpoint-1'}" in caplog.text
    assert (out / "model.safetensors").is_file()


def test_resume_last_names_a_folder_without_a_complete_checkpoint(tmp_path):
    from types import SimpleNamespace

    from glm_hf.training_setup import checkpoint_to_resume

    _touch(str(tmp_path / "checkpoint-3" / "model.safetensors"), "cut")
    _touch(str(tmp_path / "checkpoint-3" / "trainer_state.json"), "{}")
    args = SimpleNamespace(output_dir=str(tmp_path), do_train=True, resume_from_checkpoint="last")
    with pytest.raises(ValueError, match=rf"--resume_from_checkpoint last: {re.escape(str(tmp_path))} holds no "
                                         "complete checkpoint"):
        checkpoint_to_resume(args, logging.getLogger("test"))
    args.resume_from_checkpoint = str(tmp_path / "checkpoint-3")
    with pytest.raises(ValueError, match=r"checkpoint-3 cannot be resumed: model.safetensors is truncated or corrupt"):
        checkpoint_to_resume(args, logging.getLogger("test"))
    assert (tmp_path / "checkpoint-3" / "model.safetensors").read_text(encoding="utf-8") == "cut"


def test_a_run_that_fails_before_writing_leaves_no_record(tmp_path, tiny_tokenizer_dir, monkeypatch):
    from glm_hf import finetuning

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(finetuning, "train", out_of_memory)
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with pytest.raises(RuntimeError, match="out of memory"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
    assert not (tmp_path / "out").exists()
    _touch(str(tmp_path / "mine" / "notes.txt"), "keep")
    with pytest.raises(RuntimeError, match="out of memory"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                        "--output_dir", str(tmp_path / "mine")))
    assert sorted(os.listdir(tmp_path / "mine")) == ["_glm_run.lock", "notes.txt"]  # the lock file alone is left


def test_an_output_dir_that_is_a_file_is_named(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    _touch(str(tmp_path / "out"), "not a folder")
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with pytest.raises(ValueError, match=rf"--output_dir {re.escape(str(tmp_path / 'out'))} is a file, not a folder"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
    assert (tmp_path / "out").read_text(encoding="utf-8") == "not a folder"
