"""benchmarks/bench_vs_bert.py: its FLOP count, its same-weights set-up, and a --quick smoke run end to end."""

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
    assert bench.peer_flops(batch, fields, "pretraining") > bench.useful_flops(batch, fields, "pretraining")


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


def test_bad_arguments_name_the_field(bench):
    with pytest.raises(ValueError, match="shapes"):
        bench.BenchmarkArguments(shapes="huge")
    with pytest.raises(ValueError, match="dtypes"):
        bench.BenchmarkArguments(dtypes="fp8")
    with pytest.raises(ValueError, match="rounds"):
        bench.BenchmarkArguments(rounds=0)


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

    result = json.loads(output.read_text())
    assert result["pretraining_speed_ratio"] > 0 and result["inference_speed_ratio"] > 0
    assert result["headline"]["recommended_dtype"] == "fp32"  # --quick times fp32 only
    rows = {(r["task"], r["dtype"]): r for r in result["rows"]}
    assert set(rows) == {("pretraining", "fp32"), ("inference", "fp32")}
    for row in rows.values():
        assert row["status"] == "ok"
        assert row["peer_tokens_per_s"] > 0 and row["ours_tokens_per_s"] > 0
        assert 0 < row["ours_mfu"] < 2 and 0 < row["peer_mfu"] < 2
        assert row["peer_peak_memory_mb"] > 0 and row["ours_peak_memory_mb"] > 0
        assert len(row["peer_step_seconds"]) == len(row["ours_step_seconds"]) == row["rounds"] * row["batches_per_round"]
    assert result["pretraining_speed_ratio"] == rows[("pretraining", "fp32")]["speed_ratio"]
    assert all(delta < 1e-4 for delta in result["same_function_check"].values())
    assert result["matmul_peak_flops"]["fp32"]["median"] > 0
