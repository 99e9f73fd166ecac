"""benchmarks/bench_vs_bert.py: its FLOP count (every objective), its same-weights set-up (BERT, RoFormer, ELECTRA
peers), and a --quick smoke run end to end."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "bench_vs_bert.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_vs_bert", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_useful_flops_counts_real_tokens_and_masked_positions_only(bench):
    fields = {"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 2, "vocab_size": 10}
    attention_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    labels = torch.tensor([[-100, 5, -100, -100], [-100, -100, -100, -100]])
    batch = {"attention_mask": attention_mask, "labels": labels}
    h, f = 4, 8
    layer = 2 * (4 * h * h + 2 * h * f)  # Q, K, V, attention output, FFN per real token
    first_layer = 5 * layer + 4 * h * (3 * 3 + 2 * 2)  # 5 real tokens; attention within each sequence
    # last layer: K and V for the 5 tokens; queries + FFN for [CLS] of each sequence and the one masked token
    last_layer = 5 * 2 * 2 * h * h + 3 * 2 * (2 * h * h + 2 * h * f) + 4 * h * (2 * 3 + 1 * 2)
    heads = 2 * 2 * (h * h + 2 * h) + 1 * 2 * (h * h + h * 10)  # pooler + NSP per sequence, MLM on 1 token
    assert bench.useful_flops(batch, fields, "pretraining") == 3 * (first_layer + last_layer + heads)

    classification_last = 5 * 2 * 2 * h * h + 2 * 2 * (2 * h * h + 2 * h * f) + 4 * h * (3 + 2)
    expected = first_layer + classification_last + 2 * 2 * (h * h + 2 * h)
    assert bench.useful_flops({"attention_mask": attention_mask}, fields, "inference") == expected
    assert bench.useful_flops(batch, fields, "mlm_sop") == bench.useful_flops(batch, fields, "pretraining")

    # MLM alone (absolute or rotary positions): no pooler, so the last layer's queries are the masked token only.
    mlm_last = 5 * 2 * 2 * h * h + 1 * 2 * (2 * h * h + 2 * h * f) + 4 * h * (1 * 3)
    mlm = 3 * (first_layer + mlm_last + 1 * 2 * (h * h + h * 10))
    assert bench.useful_flops(batch, fields, "mlm") == bench.useful_flops(batch, fields, "mlm_rotary") == mlm

    # RTD: a 1-layer generator whose only layer is the last (queries for the masked token, MLM head on it), then the
    # discriminator's 2 layers and its head (dense h x h + h x 1) on every real token.
    generator = 5 * 2 * 2 * h * h + 1 * 2 * (2 * h * h + 2 * h * f) + 4 * h * 3 + 1 * 2 * (h * h + h * 10)
    discriminator = 2 * first_layer + 5 * 2 * (h * h + h)
    assert bench.useful_flops(batch, fields, "rtd") == 3 * (generator + discriminator)


def test_peer_flops_count_every_grid_position_and_the_full_decoder(bench):
    fields = {"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 2, "vocab_size": 10}
    attention_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    h, f = 4, 8
    layers = 2 * (8 * 2 * (4 * h * h + 2 * h * f) + 4 * h * 2 * 4 * 4)  # 8 grid positions, 4 x 4 attention
    heads = 2 * 2 * (h * h + 2 * h)
    assert bench.peer_flops({"attention_mask": attention_mask}, fields, "inference") == layers + heads
    mlm = 8 * 2 * (h * h + h * 10)
    assert bench.peer_flops({"attention_mask": attention_mask}, fields, "pretraining") == 3 * (layers + heads + mlm)
    labels = torch.tensor([[-100, 5, -100, -100], [-100, -100, -100, -100]])
    batch = {"attention_mask": attention_mask, "labels": labels}
    for task in bench.PRETRAINING_TASKS:
        assert bench.peer_flops(batch, fields, task) > bench.useful_flops(batch, fields, task), task
    assert bench.peer_flops(batch, fields, "mlm") == bench.peer_flops(batch, fields, "mlm_rotary") == 3 * (layers + mlm)
    generator = layers // 2 + mlm  # 1 of the 2 layers, the full decoder on every position
    assert bench.peer_flops(batch, fields, "rtd") == 3 * (generator + layers + 8 * 2 * (h * h + h))


def test_both_sides_get_the_same_weights_and_compute_the_same_function(bench, tiny_tokenizer):
    fields = bench.architecture("tiny", len(tiny_tokenizer), tiny_tokenizer.pad_token_id)
    batch = dict(tiny_tokenizer(["这本书写得非常好。", "质量太差了，不推荐。"], ["推荐。", "差评。"], padding=True,
                                return_tensors="pt"))
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, 2] = batch["input_ids"][:, 2]
    pretraining = {**batch, "labels": labels, "next_sentence_label": torch.tensor([0, 1])}
    peer, ours = bench.build_models("pretraining", fields, seed=0)
    assert type(ours).__name__ == "GLMForPreTraining" and type(peer).__name__ == "BertForPreTraining"
    assert bench.same_function_check("pretraining", peer, ours, pretraining) < 1e-5
    peer, ours = bench.build_models("inference", fields, seed=0)
    assert bench.same_function_check("inference", peer, ours, batch) < 1e-5


@pytest.mark.parametrize("task", ["mlm_sop", "mlm", "mlm_rotary", "rtd"])
def test_every_objective_row_computes_the_peers_function(bench, tiny_tokenizer, task):
    fields = bench.architecture("tiny", len(tiny_tokenizer), tiny_tokenizer.pad_token_id)
    batch = dict(tiny_tokenizer(["这本书写得非常好，推荐大家都来看看。", "质量太差了，不推荐。"], padding=True,
                                return_tensors="pt"))
    batch["input_ids"] = batch["input_ids"].clone()
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, 2:5] = batch["input_ids"][:, 2:5]
    batch["input_ids"][:, 2:5] = tiny_tokenizer.mask_token_id
    batch["labels"] = labels
    if task == "mlm_sop":
        batch["next_sentence_label"] = torch.tensor([0, 1])
    peer, ours = bench.build_models(task, fields, seed=0)
    assert ours.config.pretraining_objective == bench.PRETRAINING_TASKS[task]["objective"]
    assert bench.same_function_check(task, peer, ours, batch) < 1e-5
    if task == "mlm_rotary":
        # RoFormer's interleaved pairs and GLM's halves: without the row permutation the functions differ, and the
        # check (with sharpened attention) sees it.
        assert type(peer).__name__ == "RoFormerForMaskedLM" and ours.config.position_embedding_type == "rotary"
        index = bench.rotary_layout_index(fields["num_attention_heads"],
                                          fields["hidden_size"] // fields["num_attention_heads"])
        state = ours.state_dict()
        for key in state:
            if ".attention.self.query." in key or ".attention.self.key." in key:
                state[key] = state[key][torch.argsort(index)]
        ours.load_state_dict(state)
        assert bench.same_function_check(task, peer, ours, batch) > 1e-4
    if task == "rtd":
        # One embedding module for the generator and the discriminator (ELECTRA), the decoder tied to it.
        assert peer.generator.electra.embeddings is peer.discriminator.electra.embeddings
        assert peer.generator.generator_lm_head.weight is peer.discriminator.electra.embeddings.word_embeddings.weight
        assert peer.generator.config.num_hidden_layers == ours.config.generator_num_hidden_layers == 1
        with torch.no_grad():
            ours.discriminator.dense_prediction.bias.add_(0.01)
        assert bench.same_function_check(task, peer, ours, batch) > 1e-3


def test_bad_arguments_name_the_field(bench):
    with pytest.raises(ValueError, match="shapes"):
        bench.BenchmarkArguments(shapes="huge")
    with pytest.raises(ValueError, match="dtypes"):
        bench.BenchmarkArguments(dtypes="fp8")
    with pytest.raises(ValueError, match="rounds"):
        bench.BenchmarkArguments(rounds=0)
    with pytest.raises(ValueError, match="objectives"):
        bench.BenchmarkArguments(objectives="mlm,clm")
    assert bench.BenchmarkArguments(objectives="").objective_list == []


@pytest.mark.slow
def test_quick_run_writes_the_table_and_json(tiny_tokenizer_dir, tmp_path):
    output = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, SCRIPT, "--quick", "--threads", "1", "--tokenizer_name", tiny_tokenizer_dir,
         "--json", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "speed-up" in completed.stdout and "Headline" in completed.stdout
    for label in ("mlm_sop", "mlm packed", "mlm rotary", "rtd packed"):
        assert f"tiny   {label}" in completed.stdout, label

    result = json.loads(output.read_text())
    assert result["pretraining_speed_ratio"] > 0 and result["inference_speed_ratio"] > 0
    assert result["headline"]["recommended_dtype"] == "fp32"  # --quick times fp32 only
    rows = {(r["task"], r["dtype"]): r for r in result["rows"]}
    tasks = ("pretraining", "mlm_sop", "mlm", "mlm_rotary", "rtd", "inference")
    assert [r["task"] for r in result["rows"]] == list(tasks)  # the objective rows follow MLM + NSP
    assert set(result["same_function_check"]) == {f"tiny/{task}" for task in tasks}
    for row in rows.values():
        assert row["status"] == "ok"
        assert row["peer"]
        assert row["peer_tokens_per_s"] > 0 and row["ours_tokens_per_s"] > 0
        assert 0 < row["ours_mfu"] < 2 and 0 < row["peer_mfu"] < 2
        assert row["peer_peak_memory_mb"] > 0 and row["ours_peak_memory_mb"] > 0
        steps = row["rounds"] * row["batches_per_round"]
        assert len(row["peer_step_seconds"]) == len(row["ours_step_seconds"]) == steps
    assert result["pretraining_speed_ratio"] == rows[("pretraining", "fp32")]["speed_ratio"]
    assert all(delta < 1e-4 for delta in result["same_function_check"].values())
    assert result["matmul_peak_flops"]["fp32"]["median"] > 0


@pytest.mark.slow
def test_large_vocabulary_bench_runs_both_variants_and_prints_the_ratio():
    script = os.path.join(REPO, "benchmarks", "bench_large_vocab.py")
    out = subprocess.run([sys.executable, script, "--quick"], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    trained = next(line for line in lines if line.startswith("trained "))
    frozen = next(line for line in lines if line.startswith("frozen "))
    # 20,000 x 64 embedding rows are not trained when frozen
    trained_params, frozen_params = (int(line.split()[1].replace(",", "")) for line in (trained, frozen))
    assert trained_params - frozen_params == 20_000 * 64
    assert "frozen / trained: time" in lines[-1]
