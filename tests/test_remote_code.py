"""Saved GLM folders load with ``trust_remote_code=True`` where ``glm_hf`` is not installed.

Every head is saved here (and a Trainer checkpoint is written by a 2-step Trainer run); then a fresh Python process in
which ``import glm_hf`` is blocked, with its own empty ``HF_MODULES_CACHE`` and the Hub offline, loads each folder
with the matching ``AutoModelFor*`` class and runs it on fixed inputs. Its outputs must be bit-identical to the
outputs of the models in this process.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from glm_hf import (
    GLMConfig,
    GLMForMaskedLM,
    GLMForPreTraining,
    GLMForSequenceClassification,
    GLMForTokenClassification,
    GLMModel,
)
from glm_hf.modeling_glm import AUTO_MAP

pytestmark = pytest.mark.slow  # every test reads what a fresh interpreter loaded

# name -> (class saved here, Auto class the fresh process loads the folder with)
CASES = {
    "model": (GLMModel, "AutoModel"),
    "pretraining": (GLMForPreTraining, "AutoModelForPreTraining"),
    "masked-lm": (GLMForMaskedLM, "AutoModelForMaskedLM"),
    "sequence-classification": (GLMForSequenceClassification, "AutoModelForSequenceClassification"),
    "token-classification": (GLMForTokenClassification, "AutoModelForTokenClassification"),
}
TEXTS = ["这本书写得非常好，我很喜欢。", "质量太差了。", "房间干净，服务周到，下次还会再来。", "物流很慢。"]
LABELS = [1, 0, 1, 0]

# Runs in the fresh process: block glm_hf, load every folder with trust_remote_code, save the outputs.
CHILD_SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys


    class BlockGlmHf(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "glm_hf" or name.startswith("glm_hf."):
                raise ImportError(f"{name} is blocked in this process")
            return None


    sys.meta_path.insert(0, BlockGlmHf())
    try:
        import glm_hf  # noqa: F401

        glm_hf_importable = True
    except ImportError:
        glm_hf_importable = False

    import torch
    import transformers

    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(spec["num_threads"])
    inputs = torch.load(spec["inputs"])
    report = {"glm_hf_importable": glm_hf_importable, "models": {}}
    for name, (folder, auto_class) in spec["cases"].items():
        model = getattr(transformers, auto_class).from_pretrained(folder, trust_remote_code=True).eval()
        with torch.no_grad():
            output = model(**inputs)
        report["models"][name] = {
            "module": type(model).__module__,
            "class": type(model).__name__,
            "file": sys.modules[type(model).__module__].__file__,
            "outputs": {key: value for key, value in output.items() if value is not None},
        }
    report["glm_hf_in_sys_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "glm_hf")
    torch.save(report, spec["report"])
    """
)


def load_in_fresh_process(root, cases: dict[str, tuple[str, str]], inputs: dict) -> dict:
    """Load each case (name -> (folder, Auto class)) with ``trust_remote_code=True`` in a fresh Python process where
    glm_hf cannot be imported, run it on ``inputs``; returns the child's report (outputs, classes, importability)."""
    torch.save(inputs, root / "inputs.pt")
    spec = {
        "cases": cases,
        "inputs": str(root / "inputs.pt"),
        "report": str(root / "report.pt"),
        "num_threads": torch.get_num_threads(),  # same thread count: same kernels, so bit-identical results
    }
    (root / "spec.json").write_text(json.dumps(spec))
    (root / "child.py").write_text(CHILD_SCRIPT)
    modules = str(root / "hf_modules")
    env = {**os.environ, "HF_MODULES_CACHE": modules, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [sys.executable, str(root / "child.py"), str(root / "spec.json")],
        cwd=str(root),  # not the repository root, so glm_hf is not importable from the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return torch.load(root / "report.pt", weights_only=False)


def _perturbed(model_class, config, seed):
    torch.manual_seed(seed)
    model = model_class(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model.eval()


def _outputs(model, inputs) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {key: value for key, value in model.eval()(**inputs).items() if value is not None}


@pytest.fixture(scope="module")
def remote_code_run(tiny_tokenizer, tmp_path_factory):
    """Save all heads and a Trainer checkpoint, load them in a process without glm_hf; return both sides."""
    root = tmp_path_factory.mktemp("remote_code")
    config = GLMConfig.from_size(
        "tiny",
        vocab_size=len(tiny_tokenizer),
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tiny_tokenizer.pad_token_id,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    inputs = dict(tiny_tokenizer(TEXTS, padding=True, return_tensors="pt"))
    expected, cases = {}, {}
    for seed, (name, (model_class, auto_class)) in enumerate(CASES.items()):
        model = _perturbed(model_class, config, seed)
        folder = str(root / name)
        model.save_pretrained(folder)
        tiny_tokenizer.save_pretrained(folder)
        expected[name] = _outputs(model, inputs)
        cases[name] = (folder, auto_class)
        if name == "sequence-classification":
            expected["base-of-sequence-classification"] = _outputs(model.glm, inputs)
            cases["base-of-sequence-classification"] = (folder, "AutoModel")
    # Rotary position embeddings: the rotation lives in the copied modeling file too.
    rotary = _perturbed(GLMForPreTraining, GLMConfig(**{**config.to_dict(), "position_embedding_type": "rotary"}), 5)
    rotary.save_pretrained(str(root / "pretraining-rotary"))
    expected["pretraining-rotary"] = _outputs(rotary, inputs)
    cases["pretraining-rotary"] = (str(root / "pretraining-rotary"), "AutoModelForPreTraining")

    # A Trainer checkpoint: written by Trainer._save_checkpoint, not by us.
    train_dataset = Dataset.from_dict({"text": TEXTS, "label": LABELS}).map(
        lambda batch: tiny_tokenizer(batch["text"]), batched=True, remove_columns=["text"]
    )
    args = TrainingArguments(
        output_dir=str(root / "trainer"),
        max_steps=2,
        save_strategy="steps",
        save_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        use_cpu=True,
        report_to=[],
        disable_tqdm=True,
        logging_strategy="no",
        seed=0,
    )
    trainer = Trainer(
        model=_perturbed(GLMForSequenceClassification, config, seed=7),
        args=args,
        train_dataset=train_dataset,
        data_collator=DataCollatorWithPadding(tiny_tokenizer),
    )
    trainer.train()
    checkpoint = str(root / "trainer" / "checkpoint-2")
    expected["trainer-checkpoint"] = _outputs(trainer.model, inputs)
    cases["trainer-checkpoint"] = (checkpoint, "AutoModelForSequenceClassification")

    report = load_in_fresh_process(root, cases, inputs)
    modules_cache = root / "hf_modules"
    return {"expected": expected, "report": report, "cases": cases, "modules_cache": str(modules_cache)}


def test_glm_hf_was_not_importable_in_the_fresh_process(remote_code_run):
    assert remote_code_run["report"]["glm_hf_importable"] is False
    assert remote_code_run["report"]["glm_hf_in_sys_modules"] == []


@pytest.mark.parametrize(
    "name", [*CASES, "base-of-sequence-classification", "pretraining-rotary", "trainer-checkpoint"]
)
def test_remote_code_outputs_are_identical(remote_code_run, name):
    loaded = remote_code_run["report"]["models"][name]
    expected_class = {
        **{case: model_class.__name__ for case, (model_class, _) in CASES.items()},
        "base-of-sequence-classification": "GLMModel",
        "pretraining-rotary": "GLMForPreTraining",
        "trainer-checkpoint": "GLMForSequenceClassification",
    }[name]
    assert loaded["class"] == expected_class
    # The class comes from the code copied next to the weights, imported as a transformers dynamic module.
    assert loaded["module"].startswith("transformers_modules.") and loaded["module"].endswith(".modeling_glm")
    assert os.path.realpath(loaded["file"]).startswith(os.path.realpath(remote_code_run["modules_cache"]))

    expected = remote_code_run["expected"][name]
    assert loaded["outputs"].keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(loaded["outputs"][key], tensor), f"{name}: {key} differs"


def test_trainer_checkpoint_carries_code_and_full_auto_map(remote_code_run):
    checkpoint = remote_code_run["cases"]["trainer-checkpoint"][0]
    files = set(os.listdir(checkpoint))
    assert {"config.json", "model.safetensors", "modeling_glm.py", "configuration_glm.py"} <= files
    assert not any(name.endswith(".bin") and name.startswith("pytorch_model") for name in files)
    with open(os.path.join(checkpoint, "config.json"), encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["auto_map"] == AUTO_MAP
    assert saved["id2label"] == {"0": "negative", "1": "positive"}
