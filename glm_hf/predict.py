"""Batch prediction with a fine-tuned GLM folder: ``glm-hf predict --model DIR --input FILE``.

Inputs: a text file (one text per line), CSV/TSV (``--text_column``, optionally ``--text_pair_column``) or JSON /
JSON lines. The model runs through the transformers ``text-classification`` pipeline, in batches, with a progress
bar; a folder without a trained classifier (a pretraining checkpoint, say) is refused. The output CSV (``--output``,
default ``<input>.predictions.csv``) holds the input columns, the predicted label and its score, and the score of
every label (multi-label: every label over ``--threshold``; regression: the value).
"""

import argparse
import csv
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence

from .data_files import DEFAULT_ENCODING, builder_kwargs, check_data_file, check_encoding_name, text_encoding

INPUT_FORMATS = (".txt", ".csv", ".tsv", ".json", ".jsonl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glm-hf predict", description="Batch text classification with a fine-tuned GLM folder or Hub id."
    )
    parser.add_argument("--model", required=True, help="fine-tuned model folder (or Hub id) with its tokenizer")
    parser.add_argument("--input", required=True, help=f"texts to classify: {', '.join(INPUT_FORMATS)}")
    parser.add_argument("--output", help="output CSV (default: <input>.predictions.csv; '-' for stdout)")
    parser.add_argument("--text_column", default=None, help="text column of CSV/JSON input (default: text or sentence)")
    parser.add_argument("--text_pair_column", default=None, help="second text column, for sentence-pair models")
    parser.add_argument(
        "--encoding", default=DEFAULT_ENCODING, help="encoding of --input, e.g. gbk (UTF-8 with a BOM reads as UTF-8)"
    )
    parser.add_argument("--batch_size", type=int, default=32, help="texts per forward pass")
    parser.add_argument(
        "--max_length",
        type=int,
        default=None,
        help="truncate inputs to this many tokens "
        "(default: the tokenizer's model_max_length, capped by the model's positions)",
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="multi-label models: the score a label needs")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: best available)")
    parser.add_argument("--trust_remote_code", action="store_true", help="run a Hub model's own code")
    return parser


def read_inputs(
    path: str, text_column: str | None, text_pair_column: str | None, encoding: str = DEFAULT_ENCODING
) -> tuple[list[dict], list[str], str]:
    """The rows of ``path`` (checked first: :func:`glm_hf.data_files.check_data_file`), the columns to echo, and the
    text column actually used."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in INPUT_FORMATS:
        raise ValueError(f"--input must end with one of {', '.join(INPUT_FORMATS)}, got {path!r}")
    check_data_file(path, "--input", check_encoding_name(encoding))
    if extension == ".txt":
        if text_pair_column:
            raise ValueError("--text_pair_column needs CSV or JSON input (a .txt input is one text per line)")
        with open(path, encoding=text_encoding(encoding)) as f:
            rows = [{"text": line.rstrip("\r\n")} for line in f if line.strip()]
        return rows, ["text"], "text"

    import datasets

    builder = "csv" if extension in (".csv", ".tsv") else "json"
    kwargs = builder_kwargs(path, encoding)
    dataset = datasets.load_dataset(builder, data_files={"input": path}, split="input", **kwargs)
    columns = list(dataset.column_names)
    if text_column is None:
        text_column = next((name for name in ("text", "sentence", "sentence1", "review") if name in columns), None)
        if text_column is None:
            raise ValueError(f"--text_column not given and no text/sentence column in {path}; columns are {columns}")
    for flag, name in (("--text_column", text_column), ("--text_pair_column", text_pair_column)):
        if name is not None and name not in columns:
            raise ValueError(f"{flag}={name!r} is not a column of {path}; columns are {columns}")
    return dataset.to_list(), columns, text_column


def load_classifier(model: str, device: str | None = None, trust_remote_code: bool = False):
    """A ``text-classification`` pipeline for a GLM folder; regression models output raw values. A folder without a
    trained classifier (a pretraining checkpoint, or weights that lack the head) is refused: its head would be drawn
    at random and its labels mean nothing."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, pipeline

    import glm_hf  # noqa: F401  (registers the GLM classes with the Auto classes)

    from .model_sources import from_pretrained

    config = from_pretrained(AutoConfig, "--model", model, trust_remote_code=trust_remote_code)
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise ValueError(
            f"--model {model} holds a {', '.join(architectures)} model, not a trained text classifier "
            "(...ForSequenceClassification): fine-tune it first (glm-hf finetune --model_name_or_path ...)"
        )
    classifier, loading = from_pretrained(
        AutoModelForSequenceClassification, "--model", model, config=config, trust_remote_code=trust_remote_code,
        output_loading_info=True,
    )
    if loading["missing_keys"]:
        missing = sorted(loading["missing_keys"])
        raise ValueError(
            f"--model {model}: its weights lack {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}, so "
            "those would be random and the predictions meaningless; give a fine-tuned classifier folder"
        )
    function_to_apply = "none" if getattr(config, "problem_type", None) == "regression" else None
    return pipeline(
        "text-classification",
        model=classifier,
        tokenizer=from_pretrained(AutoTokenizer, "--model", model, trust_remote_code=trust_remote_code),
        device=device,
        trust_remote_code=trust_remote_code,
        function_to_apply=function_to_apply,
    )


def _max_length(classifier, requested: int | None) -> int:
    limit = getattr(classifier.model.config, "max_position_embeddings", None) or 512
    model_max = classifier.tokenizer.model_max_length
    default = min(limit, model_max if model_max and model_max < 1_000_000 else limit)
    if requested is None:
        return default
    if requested < 2 or requested > limit:
        raise ValueError(f"--max_length must be in [2, {limit}] (the model's positions), got {requested}")
    return requested


def classify(
    classifier,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    progress: bool = True,
) -> Iterable[list[dict]]:
    """For each text, every label's ``{"label", "score"}``, best first (a generator, in input order)."""
    from tqdm.auto import tqdm

    inputs = texts if text_pairs is None else [{"text": a, "text_pair": b} for a, b in zip(texts, text_pairs)]
    outputs = classifier(
        _as_iterable(inputs),
        batch_size=batch_size,
        top_k=None,
        truncation=True,
        max_length=_max_length(classifier, max_length),
    )
    yield from tqdm(outputs, total=len(texts), desc="Predicting", unit="text", disable=not progress)


def _as_iterable(inputs):
    # A generator makes the pipeline stream in batches instead of materialising every output first.
    yield from inputs


def prediction_columns(scores: list[dict], problem_type: str | None, label_order: list[str], threshold: float) -> dict:
    by_label = {item["label"]: item["score"] for item in scores}
    if problem_type == "regression":
        return {"prediction": f"{scores[0]['score']:.6g}"}
    columns = {}
    if problem_type == "multi_label_classification":
        columns["predicted_labels"] = ",".join(label for label in label_order if by_label[label] > threshold)
    else:
        columns["predicted_label"] = scores[0]["label"]
        columns["score"] = f"{scores[0]['score']:.6f}"
    columns.update({f"score_{label}": f"{by_label[label]:.6f}" for label in label_order})
    return columns


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {args.batch_size}")
    if not 0 < args.threshold < 1:
        raise ValueError(f"--threshold must be in (0, 1), got {args.threshold}")
    rows, columns, text_column = read_inputs(args.input, args.text_column, args.text_pair_column, args.encoding)
    classifier = load_classifier(args.model, args.device, args.trust_remote_code)
    config = classifier.model.config
    problem_type = getattr(config, "problem_type", None)
    label_order = [config.id2label[i] for i in range(config.num_labels)]

    texts = ["" if row[text_column] is None else str(row[text_column]) for row in rows]
    pairs = None
    if args.text_pair_column:
        pairs = ["" if row[args.text_pair_column] is None else str(row[args.text_pair_column]) for row in rows]

    output = args.output or f"{os.path.splitext(args.input)[0]}.predictions.csv"
    to_stdout = output == "-"
    if to_stdout:
        handle, staging = None, None
        stream = sys.stdout
    else:
        folder = os.path.dirname(os.path.abspath(output))
        os.makedirs(folder, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=".predictions.", suffix=".tmp", dir=folder)
        stream = os.fdopen(handle, "w", encoding="utf-8", newline="")
    try:
        writer = None
        predictions = classify(classifier, texts, pairs, args.batch_size, args.max_length, progress=not to_stdout)
        for row, scores in zip(rows, predictions):
            record = {
                name: ",".join(map(str, row[name])) if isinstance(row[name], list) else row[name] for name in columns
            }
            record.update(prediction_columns(scores, problem_type, label_order, args.threshold))
            if writer is None:
                writer = csv.DictWriter(stream, fieldnames=list(record))
                writer.writeheader()
            writer.writerow(record)
        if not to_stdout:
            stream.close()
            os.replace(staging, output)
            print(f"{len(rows)} predictions written to {output}", file=sys.stderr)
    finally:
        if staging is not None and os.path.exists(staging):
            if not stream.closed:
                stream.close()
            os.remove(staging)
    return 0


if __name__ == "__main__":
    sys.exit(main())
