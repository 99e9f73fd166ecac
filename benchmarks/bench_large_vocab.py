"""Large vocabularies: what ``--freeze_word_embeddings`` saves when fine-tuning a model whose embedding matrix is most
of its weights (a 250k-piece multilingual vocabulary), measured in the same run against training them.

Each variant runs in a fresh process (peak RSS is per process): a randomly initialised GLM of the chosen shape with
``--vocab_size`` rows, classification fine-tuning steps through ``Trainer`` (AdamW, fp32) on random token ids drawn
from the first ``--used_rows`` rows (a Chinese corpus touches a few thousand pieces of such a vocabulary). Printed:
seconds per step, peak RSS, trained parameters, and the ratios frozen / trained.

    .venv/bin/python benchmarks/bench_large_vocab.py                 # 250k x 384, 6 layers: ~2 min on 2 cores
    .venv/bin/python benchmarks/bench_large_vocab.py --quick          # smoke run
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def run_variant(args: argparse.Namespace, frozen: bool) -> dict:
    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from glm_hf import GLMConfig, GLMForSequenceClassification
    from glm_hf.training_setup import freeze_word_embeddings, peak_memory_mb

    torch.manual_seed(0)
    config = GLMConfig(vocab_size=args.vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.layers,
                       num_attention_heads=args.hidden_size // 64, intermediate_size=4 * args.hidden_size,
                       num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = GLMForSequenceClassification(config)
    if frozen:
        freeze_word_embeddings(model)
    generator = torch.Generator().manual_seed(0)
    rows = args.batch_size * (args.steps + 2)
    data = Dataset.from_dict({
        "input_ids": torch.randint(5, args.used_rows, (rows, args.seq_len), generator=generator).tolist(),
        "labels": torch.randint(0, 2, (rows,), generator=generator).tolist(),
    })
    step_times = []

    class Timer(Trainer):
        def training_step(self, *a, **k):
            start = time.perf_counter()
            loss = super().training_step(*a, **k)
            step_times.append(time.perf_counter() - start)
            return loss

    with tempfile.TemporaryDirectory() as output_dir:
        trainer = Timer(model=model, train_dataset=data, args=TrainingArguments(
            output_dir=output_dir, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
            learning_rate=1e-4, report_to="none", save_strategy="no", logging_steps=args.steps,
            dataloader_num_workers=0, use_cpu=True, disable_tqdm=True))
        trainer.train()
    timed = step_times[2:] or step_times  # the first steps allocate the optimizer states
    return {"frozen": frozen, "seconds_per_step": sum(timed) / len(timed),
            "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "parameters": model.num_parameters(), **peak_memory_mb()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab_size", type=int, default=250_000)
    parser.add_argument("--used_rows", type=int, default=8000)
    parser.add_argument("--hidden_size", type=int, default=384)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="a 20k x 64 model, 4 steps")
    parser.add_argument("--variant", choices=("frozen", "trained"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.vocab_size, args.used_rows, args.hidden_size, args.layers, args.steps = 20_000, 2000, 64, 2, 4
    if args.variant:  # a child process: one variant, its result as JSON on the last line
        print(json.dumps(run_variant(args, args.variant == "frozen")))
        return 0
    results = {}
    for variant in ("trained", "frozen"):
        argv = [a for a in sys.argv[1:] if a != "--quick"] + (["--quick"] if args.quick else [])
        out = subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--variant", variant],
                             capture_output=True, text=True, check=True)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    trained, frozen = results["trained"], results["frozen"]
    print(f"vocab {args.vocab_size:,} x hidden {args.hidden_size}, {args.layers} layers, batch {args.batch_size} x "
          f"{args.seq_len}, fp32, {os.cpu_count()} CPUs")
    print(f"{'embeddings':<12} {'trained params':>15} {'s/step':>8} {'peak RSS MiB':>13}")
    for name, row in results.items():
        print(f"{name:<12} {row['trained_parameters']:>15,} {row['seconds_per_step']:>8.3f} "
              f"{row['peak_rss_mb']:>13.0f}")
    print(f"frozen / trained: time {frozen['seconds_per_step'] / trained['seconds_per_step']:.2f}x, "
          f"peak RSS {frozen['peak_rss_mb'] / trained['peak_rss_mb']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
