"""Hub sharing, offline: Trainer --push_to_hub and `glm-hf push` against a fake HfApi that stores commits in a folder;
the pushed files then load in a fresh process where glm_hf cannot be imported (trust_remote_code=True)."""

import concurrent.futures
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from huggingface_hub import CommitInfo, RepoUrl
from huggingface_hub.utils import filter_repo_objects

from glm_hf import GLMConfig, GLMForSequenceClassification

TEXTS = ["这本书写得非常好，我很喜欢。", "质量太差了，不推荐购买。"]

LOAD_WITHOUT_GLM_HF = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class BlockGlmHf(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "glm_hf" or name.startswith("glm_hf."):
                raise ImportError("glm_hf is blocked in this process")

    sys.meta_path.insert(0, BlockGlmHf())
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    repo, texts = sys.argv[1], json.loads(sys.argv[2])
    tokenizer = AutoTokenizer.from_pretrained(repo, trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(repo, trust_remote_code=True).eval()
    assert "glm_hf" not in sys.modules
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    print(json.dumps({"module": type(model).__module__, "logits": logits.tolist(),
                      "labels": [model.config.id2label[i] for i in range(model.config.num_labels)]}))
    """
)


class FakeHfApi:
    """Records create_repo / create_commit / upload_folder and writes each commit's files under ``root/<repo_id>``."""

    def __init__(self, root):
        self.root = root
        self.calls = []

    def _repo(self, repo_id):
        return os.path.join(self.root, repo_id)

    def _commit(self, repo_id, message, run_as_future):
        number = sum(1 for call in self.calls if call[0] in ("create_commit", "upload_folder"))
        info = CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{number:040x}",
            commit_message=message,
            commit_description="",
            oid=f"{number:040x}",
        )
        if run_as_future:
            future = concurrent.futures.Future()
            future.set_result(info)
            return future
        return info

    def create_repo(self, repo_id, token=None, private=None, exist_ok=False, repo_type=None, **kwargs):
        self.calls.append(("create_repo", repo_id, {"private": private, "exist_ok": exist_ok}))
        os.makedirs(self._repo(repo_id), exist_ok=True)
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, commit_message, run_as_future=False, **kwargs):
        self.calls.append(("create_commit", repo_id, [op.path_in_repo for op in operations]))
        for operation in operations:
            target = os.path.join(self._repo(repo_id), operation.path_in_repo)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            source = operation.path_or_fileobj
            if isinstance(source, (str, os.PathLike)):
                shutil.copyfile(source, target)
            else:
                data = source if isinstance(source, bytes) else source.read()
                with open(target, "wb") as f:
                    f.write(data)
        return self._commit(repo_id, commit_message, run_as_future)

    def upload_folder(
        self,
        repo_id,
        folder_path,
        commit_message=None,
        run_as_future=False,
        path_in_repo=None,
        allow_patterns=None,
        ignore_patterns=None,
        **kwargs,
    ):
        files = [
            os.path.relpath(os.path.join(root, name), folder_path).replace(os.sep, "/")
            for root, _, names in os.walk(folder_path)
            for name in names
        ]
        kept = list(filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        self.calls.append(("upload_folder", repo_id, kept))
        for relative in kept:
            target = os.path.join(self._repo(repo_id), path_in_repo or "", relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(folder_path, relative), target)
        return self._commit(repo_id, commit_message, run_as_future)


@pytest.fixture
def fake_api(tmp_path, monkeypatch):
    import transformers.utils.hub

    import glm_hf.hub

    api = FakeHfApi(str(tmp_path / "hub"))
    monkeypatch.setattr(transformers.utils.hub, "_hf_api", api)  # what Trainer.push_to_hub uses
    monkeypatch.setattr(glm_hf.hub, "HfApi", lambda token=None: api)  # what glm-hf push uses
    return api


def load_in_fresh_process(folder, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules_cache")}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_GLM_HF, folder, json.dumps(TEXTS, ensure_ascii=False)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def local_logits(folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits


@pytest.mark.slow
def test_trainer_push_to_hub(tmp_path, fake_api, tiny_tokenizer_dir):
    from glm_hf.finetuning import main as finetune

    with open(tmp_path / "reviews.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "sentiment"])
        writer.writerows((f"{'好' if i % 2 else '差'}评第{i}条", "pos" if i % 2 else "neg") for i in range(60))
    output_dir = tmp_path / "sentiment"
    finetune(
        [
            "--model_size",
            "tiny",
            "--tokenizer_name",
            tiny_tokenizer_dir,
            "--train_file",
            str(tmp_path / "reviews.csv"),
            "--text_column_names",
            "review",
            "--label_column_name",
            "sentiment",
            "--do_train",
            "--do_predict",
            "--max_steps",
            "4",
            "--per_device_train_batch_size",
            "8",
            "--max_seq_length",
            "32",
            "--report_to",
            "none",
            "--save_strategy",
            "steps",
            "--save_steps",
            "2",
            "--dataloader_pin_memory",
            "False",
            "--push_to_hub",
            "--hub_model_id",
            "someone/glm-sentiment-test",
            "--output_dir",
            str(output_dir),
        ]
    )
    assert fake_api.calls[0][:2] == ("create_repo", "someone/glm-sentiment-test")
    uploads = [call for call in fake_api.calls if call[0] == "upload_folder"]
    assert len(uploads) >= 2  # checkpoint pushes during training, then the final one
    final_files = set(uploads[-1][2])
    assert {
        "README.md",
        "config.json",
        "model.safetensors",
        "modeling_glm.py",
        "configuration_glm.py",
        "tokenizer.json",
        "test_results.json",
        "confusion_matrix.png",
    } <= final_files
    assert not any(name.startswith("checkpoint-") for name in final_files)

    repo = os.path.join(fake_api.root, "someone/glm-sentiment-test")
    card = open(os.path.join(repo, "README.md"), encoding="utf-8").read()
    assert "## How to use" in card and "model-index" in card  # glm_hf's card, not Trainer's generic one
    assert 'model="someone/glm-sentiment-test"' in card

    loaded = load_in_fresh_process(repo, tmp_path)
    assert loaded["module"].startswith("transformers_modules") and loaded["labels"] == ["neg", "pos"]
    assert torch.allclose(torch.tensor(loaded["logits"]), local_logits(str(output_dir)), atol=1e-5)


@pytest.fixture
def model_folder(tmp_path, tiny_tokenizer):
    """A fine-tuned-like folder with a card, plus things that must not be uploaded."""
    from glm_hf.cards import write_finetuned_card

    folder = tmp_path / "my-glm"
    torch.manual_seed(0)
    config = GLMConfig.from_size(
        "tiny",
        vocab_size=len(tiny_tokenizer),
        max_position_embeddings=64,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    GLMForSequenceClassification(config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    write_finetuned_card(
        str(folder),
        base_model=None,
        dataset_name="embedded-sentiment",
        dataset_description="d",
        data_stats={},
        problem_type="single_label_classification",
        label_names=["negative", "positive"],
        training_args={},
        results=[{"name": "GLM", "metrics": {"accuracy": 0.8, "macro_f1": 0.79}}],
    )
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "optimizer.pt").write_bytes(b"x")
    (folder / "training_args.bin").write_bytes(b"x")
    (folder / ".README.md.123.tmp").write_text("half-written")
    return folder


@pytest.mark.slow
def test_glm_hf_push(tmp_path, fake_api, model_folder):
    from glm_hf.cli import main as cli

    stdout = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, stdout
    try:
        assert cli(["push", str(model_folder), "--repo_id", "someone/my-glm", "--private"]) == 0
    finally:
        sys.stdout = sys_stdout
    assert "https://huggingface.co/someone/my-glm/commit/" in stdout.getvalue()
    assert fake_api.calls[0] == ("create_repo", "someone/my-glm", {"private": True, "exist_ok": True})
    ((_, repo_id, files),) = [call for call in fake_api.calls if call[0] == "create_commit"]
    assert repo_id == "someone/my-glm"
    # Model, tokenizer, code and card; not the checkpoint, training_args.bin or the temporary file.
    assert sorted(files) == [
        "README.md",
        "config.json",
        "configuration_glm.py",
        "model.safetensors",
        "modeling_glm.py",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    repo = os.path.join(fake_api.root, "someone/my-glm")
    card = open(os.path.join(repo, "README.md"), encoding="utf-8").read()
    assert 'model="someone/my-glm"' in card and "--model someone/my-glm" in card
    assert 'model="my-glm"' in (model_folder / "README.md").read_text(encoding="utf-8")  # local card untouched

    loaded = load_in_fresh_process(repo, tmp_path)
    assert loaded["labels"] == ["negative", "positive"]
    assert torch.allclose(torch.tensor(loaded["logits"]), local_logits(str(model_folder)), atol=1e-5)


@pytest.mark.slow
def test_push_adds_missing_code_and_auto_map(tmp_path, fake_api, model_folder):
    from glm_hf.hub import push_folder

    for name in ("modeling_glm.py", "configuration_glm.py"):
        os.remove(model_folder / name)
    config = json.loads((model_folder / "config.json").read_text())
    config.pop("auto_map")
    (model_folder / "config.json").write_text(json.dumps(config))
    commit = push_folder(str(model_folder), "someone/old-folder")
    assert commit.commit_url.startswith("https://")
    repo = os.path.join(fake_api.root, "someone/old-folder")
    pushed_config = json.load(open(os.path.join(repo, "config.json")))
    assert (
        pushed_config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_glm.GLMForSequenceClassification"
    )
    assert "auto_map" not in json.loads((model_folder / "config.json").read_text())  # local folder untouched
    loaded = load_in_fresh_process(repo, tmp_path)
    assert torch.allclose(torch.tensor(loaded["logits"]), local_logits(str(model_folder)), atol=1e-5)


def test_push_rejects_incomplete_folders(tmp_path, fake_api, model_folder):
    from glm_hf.hub import push_folder

    with pytest.raises(ValueError, match="repo_id must look like 'user/name'"):
        push_folder(str(model_folder), "not a repo")
    os.remove(model_folder / "tokenizer.json")
    with pytest.raises(ValueError, match="has no tokenizer"):
        push_folder(str(model_folder), "someone/x")
    with pytest.raises(ValueError, match="has no config.json"):
        push_folder(str(tmp_path), "someone/x")
    assert fake_api.calls == []  # nothing was created or uploaded
