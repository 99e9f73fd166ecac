"""Peak memory of ``glm-hf pretrain`` with ``--streaming`` and without, on text corpora of growing size.

    .venv/bin/python benchmarks/bench_streaming_memory.py                         # 10MB,100MB
    .venv/bin/python benchmarks/bench_streaming_memory.py --sizes 10MB,100MB,1GB  # in-memory skipped above 100MB

Each corpus is one plain text file, one document per line: 2-12 sentences drawn at random (seeded) from the
embedded corpora (People's Daily 1998-01 and the train reviews, :mod:`glm_hf.corpora`), written until the file has
the size asked for; it is kept in ``--work_dir`` for the next run. Each (size, mode) is one pretraining run in its
own process (tiny GLM, ``--objective mlm``, ``--max_steps`` steps, no evaluation, a fresh datasets cache that is
deleted afterwards), whose peak resident memory is read with ``os.wait4`` (the child and the processes it waited
for). The corpora and the tokenizer are made in a child process too: Linux keeps a process's peak RSS across fork
and exec, so a child forked from a large parent would report the parent's peak. The in-memory path reads, tokenizes
and packs the whole corpus before its first step (Arrow files on disk, memory-mapped); the streaming path reads only
the documents its steps use.
"""

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def parse_size(text: str) -> int:
    text = text.strip().upper()
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def embedded_sentences() -> list[str]:
    from glm_hf.corpora import load_review_corpus, peoples_daily_documents

    sentences = [s for document in peoples_daily_documents() for s in document]
    sentences += [s for document in load_review_corpus()["sentences"] for s in document]
    return sentences


def write_corpus(path: str, size: int, sentences: list[str], seed: int = 0) -> None:
    """Documents of 2-12 random sentences, one per line, until ``size`` bytes."""
    rng = np.random.default_rng(seed)
    written = 0
    with open(path + ".part", "w", encoding="utf-8") as f:
        while written < size:
            lengths = rng.integers(2, 13, size=1000)
            picks = rng.integers(len(sentences), size=int(lengths.sum()))
            bounds = np.cumsum(lengths)[:-1]
            lines = ["".join(sentences[i] for i in document) + "\n" for document in np.split(picks, bounds)]
            block = "".join(lines)
            f.write(block)
            written += len(block.encode("utf-8"))
    os.replace(path + ".part", path)


def char_tokenizer(folder: str, sentences: list[str]) -> str:
    """A WordPiece vocabulary of the 3,000 most common characters (enough for a memory benchmark; fast to make)."""
    from transformers import BertTokenizer

    if not os.path.exists(os.path.join(folder, "tokenizer_config.json")):
        counts = collections.Counter(ch for sentence in sentences[:200000] for ch in sentence if not ch.isspace())
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [ch for ch, _ in counts.most_common(3000)]
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
        tokenizer = BertTokenizer(vocab=os.path.join(folder, "vocab.txt"), do_lower_case=False)
        tokenizer.save_pretrained(folder)
    return folder


def run_pretraining(corpus: str, tokenizer: str, work_dir: str, streaming: bool, steps: int) -> dict:
    """One pretraining run in a child process: its peak RSS (MiB), wall time (s) and return code."""
    name = f"{os.path.splitext(os.path.basename(corpus))[0]}-{'stream' if streaming else 'memory'}"
    output_dir, cache = os.path.join(work_dir, "runs", name), os.path.join(work_dir, "cache", name)
    shutil.rmtree(output_dir, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    args = [
        *("--tokenizer_name", tokenizer, "--train_file", corpus, "--output_dir", output_dir),
        *"--model_size tiny --objective mlm --max_seq_length 128 --per_device_train_batch_size 8".split(),
        *f"--max_steps {steps} --do_train --save_strategy no --use_cpu --report_to none --disable_tqdm true".split(),
        *"--document_separator line --overwrite_output_dir".split(),
        *(["--streaming", "--streaming_eval_documents", "0"] if streaming else ["--validation_split_percentage", "0"]),
    ]
    env = {
        **os.environ,
        "HF_DATASETS_CACHE": cache,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    start = time.time()
    with open(output_dir + ".log", "w") as log:
        child = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "recipes", "pretrain.py"), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.time() - start
    cache_bytes = sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(cache) for n in names)
    shutil.rmtree(cache, ignore_errors=True)
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "datasets_cache_mb": round(cache_bytes / 2**20, 1),
        "seconds": round(seconds, 1),
        "returncode": os.waitstatus_to_exitcode(status),
        "log": output_dir + ".log",
    }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10MB,100MB", help="corpus sizes, e.g. 10MB,100MB,1GB")
    parser.add_argument("--in_memory_limit", default="100MB", help="larger corpora skip the in-memory path")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--work_dir", default=os.path.join(REPO, "runs", "bench_streaming"))
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    tokenizer = os.path.join(args.work_dir, "tokenizer")
    rows = []
    for size_text in args.sizes.split(","):
        size = parse_size(size_text)
        corpus = os.path.join(args.work_dir, f"corpus-{size_text.strip()}.txt")
        if not os.path.exists(corpus) or not os.path.exists(os.path.join(tokenizer, "tokenizer_config.json")):
            started = time.time()
            subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--prepare", corpus, str(size), tokenizer],
                check=True,
                env={**os.environ, "PYTHONPATH": REPO},
            )
            print(f"wrote {corpus} ({os.path.getsize(corpus) / 2**20:.0f} MiB) in {time.time() - started:.0f} s")
        for streaming in (True, False):
            row = {"size": size_text.strip(), "mode": "streaming" if streaming else "in-memory"}
            if not streaming and size > parse_size(args.in_memory_limit):
                row["skipped"] = f"above --in_memory_limit {args.in_memory_limit} (reads the whole corpus first)"
            else:
                row.update(run_pretraining(corpus, tokenizer, args.work_dir, streaming, args.steps))
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| corpus | mode | peak RSS (MiB) | datasets cache (MiB) | wall (s) |\n|---|---|---|---|---|")
    for row in rows:
        peak = row.get("peak_rss_mb", "-") if row.get("returncode", 0) == 0 else f"failed ({row['log']})"
        wall = row.get("seconds", row.get("skipped"))
        print(f"| {row['size']} | {row['mode']} | {peak} | {row.get('datasets_cache_mb', '-')} | {wall} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return rows


def prepare(corpus: str, size: int, tokenizer: str) -> None:
    sentences = embedded_sentences()
    char_tokenizer(tokenizer, sentences)
    if not os.path.exists(corpus):
        write_corpus(corpus, size, sentences)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--prepare"]:
        prepare(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
