"""The accelerate configs of recipes/accelerate/ with the pretraining recipe, on 2 CPU processes (gloo): FSDP2 trains
like DDP at the same global batch, saves folders that load with from_pretrained and as remote code, and resumes
exactly after a SIGKILL; the multi-node config runs on one machine; the DeepSpeed config is what accelerate and
DeepSpeed expect; an FSDP wrap class GLM does not have is named at start-up."""

import json
import logging
import os
import sys
import textwrap

import pytest
import torch
import yaml
from test_pretraining import REPO, base_args, corpus_dir, logged_losses, run_subprocess, tokenizer_dir  # noqa: F401
from test_remote_code import TEXTS, load_in_fresh_process

from glm_hf.training_setup import check_distributed_settings

CONFIGS = os.path.join(REPO, "recipes", "accelerate")
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]  # the `accelerate launch` of this Python
# The GPU configs on CPU: no bf16 autocast (the comparison is in fp32), a free port for each run.
ON_CPU = ["--mixed_precision", "no", "--main_process_port", "0"]
COMMON = [
    "--model_size", "tiny", "--max_steps", "10", "--learning_rate", "3e-3", "--logging_steps", "1",
    "--per_device_train_batch_size", "2", "--do_train",
]  # dropout stays on: FSDP and DDP draw the same masks, and a resume must restore each process's random state

# Runs each process of an FSDP run: the pretraining recipe, with FSDP2 on CPU and an optional SIGKILL.
FSDP_ON_CPU = """
    import os, signal, sys
    import accelerate.state
    from accelerate.utils import DistributedType
    from transformers import TrainerCallback
    from glm_hf import pretraining

    # accelerate runs FSDP on accelerators only: on CPU processes AcceleratorState keeps MULTI_CPU (DDP over gloo) and
    # drops the FSDP plugin (accelerate/state.py: MULTI_CPU is not in the device types that may become FSDP). torch's
    # fully_shard itself runs on CPU with gloo, so the plugin is put back: Trainer then takes its FSDP2 path (sharded
    # model and optimizer, gathered state dict, FSDP checkpoints) as on GPUs.
    init = accelerate.state.AcceleratorState.__init__

    def init_with_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
        init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.fsdp_plugin = fsdp_plugin
            self.distributed_type = DistributedType.FSDP
            # every later AcceleratorState() copies the type back from PartialState
            accelerate.state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    accelerate.state.AcceleratorState.__init__ = init_with_fsdp_on_cpu

    class ReportAndKill(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            print(f"rank {args.process_index} trains {type(model).__name__}", flush=True)

        # SIGKILL, as a crash or a preempted job: no cleanup, no final save.
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == int(os.environ.get("KILL_AT_STEP", "0")):
                os.kill(os.getpid(), signal.SIGKILL)

    trainer_init = pretraining.PreTrainingTrainer.__init__

    def trainer_init_with_callback(self, *args, **kwargs):
        trainer_init(self, *args, **kwargs)
        self.add_callback(ReportAndKill())

    pretraining.PreTrainingTrainer.__init__ = trainer_init_with_callback
    pretraining.main(sys.argv[1:])
"""


def load_config(name: str) -> dict:
    with open(os.path.join(CONFIGS, name), encoding="utf-8") as f:
        return yaml.safe_load(f)


def run_fsdp(tmp_path, output_dir, *extra, **env):
    script = tmp_path / "fsdp_on_cpu.py"
    script.write_text(textwrap.dedent(FSDP_ON_CPU), encoding="utf-8")
    command = [*ACCELERATE, "--config_file", os.path.join(CONFIGS, "fsdp.yaml"), *ON_CPU, str(script), *extra]
    return run_subprocess(command, REPO, **env)


@pytest.fixture(scope="module")
def fsdp_run(corpus_dir, tokenizer_dir, tmp_path_factory):  # noqa: F811 (the imported fixtures)
    """10 steps of FSDP2 through recipes/accelerate/fsdp.yaml on 2 CPU processes, checkpoints every 3 steps."""
    tmp_path = tmp_path_factory.mktemp("fsdp")
    output_dir = tmp_path / "fsdp"
    result = run_fsdp(tmp_path, output_dir, *base_args(corpus_dir, tokenizer_dir, output_dir, *COMMON,
                                                        "--save_steps", "3"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output_dir, result


def test_the_fsdp_recipe_shards_each_glm_layer_and_saves_full_weights():
    config = load_config("fsdp.yaml")
    assert config["distributed_type"] == "FSDP"
    assert config["fsdp_config"]["fsdp_version"] == 2
    assert config["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert config["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "GLMLayer"
    # ordinary model.safetensors in checkpoints and the final folder (what from_pretrained and the tests read)
    assert config["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"


@pytest.mark.slow
def test_fsdp_trains_like_ddp_and_saves_a_folder_that_loads(fsdp_run, corpus_dir, tokenizer_dir, tmp_path):  # noqa: F811
    output_dir, result = fsdp_run
    # fully_shard swaps each sharded module's class: FSDP2 really ran, not accelerate's DDP fallback
    assert "rank 0 trains FSDPGLMForPreTraining" in result.stdout
    assert "rank 1 trains FSDPGLMForPreTraining" in result.stdout

    # The reference: DDP, through the multi-node config narrowed to this one machine (2 processes x 2 examples).
    command = [
        *ACCELERATE, "--config_file", os.path.join(CONFIGS, "multi_node.yaml"), "--num_machines", "1",
        "--num_processes", "2", *ON_CPU, os.path.join(REPO, "recipes", "pretrain.py"),
        *base_args(corpus_dir, tokenizer_dir, tmp_path / "ddp", *COMMON, "--save_strategy", "no"),
    ]
    ddp = run_subprocess(command, REPO)
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    assert "world size: 2" in ddp.stdout + ddp.stderr

    fsdp_losses, ddp_losses = logged_losses(output_dir), logged_losses(tmp_path / "ddp")
    assert sorted(fsdp_losses) == sorted(ddp_losses) == list(range(1, 11))
    differences = {step: abs(fsdp_losses[step] - ddp_losses[step]) for step in fsdp_losses}
    # Same gradients up to the order of float reductions (seen: 1e-6 over 10 steps); a loss normalized over one
    # process's batch instead of the global one, or a clipped shard norm, is off by 1e-3 or more.
    assert max(differences.values()) < 1e-4, differences

    # The final folder is an ordinary GLM folder: from_pretrained here, and remote code where glm_hf is not importable.
    from transformers import AutoModelForPreTraining, AutoTokenizer

    from glm_hf import GLMForPreTraining

    with open(output_dir / "config.json", encoding="utf-8") as f:
        auto_map = json.load(f)["auto_map"]
    # GLM's own files, not torch's FSDP module that defines the sharded class (FSDPGLMForPreTraining)
    assert {value.split(".")[0] for value in auto_map.values()} == {"configuration_glm", "modeling_glm"}, auto_map
    assert auto_map["AutoModelForPreTraining"] == "modeling_glm.GLMForPreTraining"
    assert sorted(name for name in os.listdir(output_dir) if name.endswith(".py")) == [
        "configuration_glm.py", "modeling_glm.py",
    ]
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = GLMForPreTraining.from_pretrained(output_dir).eval()
    inputs = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        expected = {key: value for key, value in model(**inputs).items() if value is not None}
    assert isinstance(AutoModelForPreTraining.from_pretrained(output_dir), GLMForPreTraining)

    report = load_in_fresh_process(tmp_path, {"fsdp": (str(output_dir), "AutoModelForPreTraining")}, inputs)
    assert report["glm_hf_importable"] is False
    loaded = report["models"]["fsdp"]
    assert loaded["module"].startswith("transformers_modules.") and loaded["class"] == "GLMForPreTraining"
    for key, tensor in expected.items():
        torch.testing.assert_close(loaded["outputs"][key], tensor, rtol=0, atol=1e-7, msg=key)


@pytest.mark.slow
def test_killed_fsdp_run_resumes_from_its_last_checkpoint_to_the_same_state(fsdp_run, corpus_dir, tokenizer_dir,  # noqa: F811
                                                                            tmp_path):
    from safetensors.torch import load_file

    uninterrupted, _ = fsdp_run
    resumed = tmp_path / "resumed"
    args = base_args(corpus_dir, tokenizer_dir, resumed, *COMMON, "--save_steps", "3")
    killed = run_fsdp(tmp_path, resumed, *args, KILL_AT_STEP="5")
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr, killed.stderr[-3000:]
    # killed at step 5: the last checkpoint is 3, with the gathered weights and the optimizer state
    assert sorted(os.listdir(resumed)) == ["_glm_run.json", "_glm_run.lock", "checkpoint-3"]
    assert {"model.safetensors", "optimizer.bin", "rng_state_0.pth", "rng_state_1.pth"} <= set(
        os.listdir(resumed / "checkpoint-3")
    )

    # The same command again: the last checkpoint is found and training resumes from it, still under FSDP2.
    again = run_fsdp(tmp_path, resumed, *args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "rank 0 trains FSDPGLMForPreTraining" in again.stdout

    first, second = load_file(uninterrupted / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert first.keys() == second.keys()
    # Same state up to fp32 round-off; a skipped or repeated step at lr 3e-3 moves weights by ~1e-3.
    assert max((first[key] - second[key]).abs().max().item() for key in first) < 1e-5
    one, two = logged_losses(uninterrupted), logged_losses(resumed)
    assert sorted(two) == list(range(1, 11))
    # Steps 4-10 ran after the resume: a wrong batch, mask or dropout draw changes a loss by 1e-2 or more.
    assert max(abs(one[step] - two[step]) for step in range(4, 11)) < 1e-5


def test_the_multi_node_config_loads_with_accelerate():
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    # accelerate's own reader: an unknown or misspelt key is refused there
    config = load_config_from_file(os.path.join(CONFIGS, "multi_node.yaml"))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == "MULTI_GPU"
    assert config.num_machines == 2 and config.machine_rank == 0
    # num_processes counts every machine's processes: a whole number per machine
    assert config.num_processes % config.num_machines == 0 and config.num_processes > config.num_machines
    assert config.main_process_ip and isinstance(config.main_process_port, int)
    assert config.rdzv_backend == "static" and config.same_network is True
    assert config.use_cpu is False and config.mixed_precision == "bf16"


def test_the_deepspeed_config_is_what_accelerate_and_deepspeed_expect():
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    config = load_config_from_file(os.path.join(CONFIGS, "deepspeed_zero2.yaml"))
    assert isinstance(config, ClusterConfig) and config.distributed_type == "DEEPSPEED"
    assert set(config.deepspeed_config) == {"deepspeed_config_file", "zero3_init_flag"}
    # the path is relative to the repository root, where the yaml says to run from
    json_file = os.path.join(REPO, config.deepspeed_config["deepspeed_config_file"])
    assert os.path.isfile(json_file), json_file
    assert config.mixed_precision is None  # the json's "auto" bf16/fp16 follow --bf16/--fp16, never the yaml
    with open(json_file, encoding="utf-8") as f:
        ds = json.load(f)
    # Trainer fills the "auto" values from its flags, so that the two never disagree
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                "gradient_clipping"):
        assert ds[key] == "auto", key
    assert ds["bf16"]["enabled"] == ds["fp16"]["enabled"] == "auto"
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["zero_optimization"]["reduce_bucket_size"] == "auto"
    assert ds["zero_optimization"]["offload_optimizer"]["device"] in ("none", "cpu")
    # no "optimizer"/"scheduler" block: Trainer's --optim and --lr_scheduler_type are used
    assert "optimizer" not in ds and "scheduler" not in ds
    assert ds["zero_allow_untested_optimizer"] is True


def test_the_deepspeed_zero_settings_are_deepspeeds_own():
    # DeepSpeed's config class refuses unknown keys (pydantic extra="forbid"); a misspelt one would stop the run
    deepspeed_config = pytest.importorskip("deepspeed.runtime.zero.config")
    with open(os.path.join(CONFIGS, "deepspeed_zero2.json"), encoding="utf-8") as f:
        zero = json.load(f)["zero_optimization"]
    assert int(deepspeed_config.DeepSpeedZeroConfig(**{k: v for k, v in zero.items() if v != "auto"}).stage) == 2


@pytest.mark.parametrize(
    "environment, message",
    [
        ({"FSDP_TRANSFORMER_CLS_TO_WRAP": "BertLayer"}, "fsdp_transformer_layer_cls_to_wrap .*'BertLayer'.*GLMLayer"),
        ({"FSDP_TRANSFORMER_CLS_TO_WRAP": "GLMLayers"}, "did you mean GLMLayer"),
    ],
)
def test_an_fsdp_wrap_class_glm_lacks_names_the_setting(environment, message, monkeypatch):
    from transformers import TrainingArguments

    # what accelerate launch passes its processes for an fsdp_config with a TRANSFORMER_BASED_WRAP policy
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_AUTO_WRAP_POLICY", "TRANSFORMER_BASED_WRAP")
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to="none")
    with pytest.raises(ValueError, match=message):
        check_distributed_settings(args, logging.getLogger(__name__))
    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", "GLMLayer,Embedding")  # a GLM class and a torch.nn one
    check_distributed_settings(args, logging.getLogger(__name__))


@pytest.mark.slow
def test_a_bad_fsdp_wrap_class_stops_the_recipe_before_anything_is_written(corpus_dir, tokenizer_dir,  # noqa: F811
                                                                            tmp_path):
    config = load_config("fsdp.yaml")
    config["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] = "BertLayer"
    (tmp_path / "bad_fsdp.yaml").write_text(yaml.safe_dump(config))
    command = [
        *ACCELERATE, "--config_file", str(tmp_path / "bad_fsdp.yaml"), "--num_processes", "1", *ON_CPU,
        os.path.join(REPO, "recipes", "pretrain.py"),
        *base_args(corpus_dir, tokenizer_dir, tmp_path / "out", "--model_size", "tiny", "--max_steps", "2"),
    ]
    result = run_subprocess(command, REPO)
    assert result.returncode != 0
    assert "fsdp_transformer_layer_cls_to_wrap (accelerate config): 'BertLayer' is not a module class" in (
        result.stdout + result.stderr
    )
    assert not (tmp_path / "out").exists()
