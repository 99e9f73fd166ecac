"""``glm-hf ner-compare``: on one embedded NER corpus and one split, the three rows the README reports -- a pretrained
GLM fine-tuned, the same architecture fine-tuned from a random initialisation (same tokenizer, steps, learning rate
and seed), and the character CRF baseline -- with entity F1 overall and per type, and wall-clock times.

It writes, into ``--output_dir`` (a folder it created, or one holding its marker; any other non-empty folder is
refused and nothing in it is touched):

- ``glm_pretrained/`` and ``glm_random_init/``: ordinary ``finetune-ner`` outputs (model, metrics, predictions);
- ``ner_comparison.json``: the settings, every row's validation/test metrics and seconds;
- ``ner_comparison.png``: test F1 per entity type and overall, one bar per row.

A row already finished with the same settings is read back, so an interrupted comparison resumes.
"""

import logging
import os
import time
from dataclasses import asdict, dataclass, field

from .evaluation import read_json, save_png, write_json, write_text
from .ner_baseline import CRFBaselineConfig, run_crf_baseline
from .ner_data import EMBEDDED_NER_DATASETS, ENTITY_TYPES, embedded_ner_description, load_embedded_ner_dataset
from .run_folder import as_json
from .study import claim_folder

logger = logging.getLogger(__name__)

MARKER = ".glm_hf_ner_comparison.json"
RESULTS_FILE = "ner_comparison.json"
FIGURE_FILE = "ner_comparison.png"
ROW_FILE = "row.json"
GLM_ROWS = ("glm_pretrained", "glm_random_init")


@dataclass
class NerComparisonSettings:
    output_dir: str = field(metadata={"help": "Comparison folder (created; a rerun resumes)."})
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A pretrained GLM folder (its tokenizer and config also shape the random-init row). Default: "
                  "pretrain one in-domain first (see --pretrain_steps)."},
    )
    pretrain_steps: int = field(
        default=900,
        metadata={"help": "Without --model_name_or_path: MLM steps of the in-domain pretraining (the training "
                  "sentences of both embedded NER corpora, none of their validation or test text)."},
    )
    pretrain_model_size: str = field(default="mini", metadata={"help": "GLM size of the in-domain pretraining."})
    dataset_name: str = field(default="msra", metadata={"help": f"One of {list(EMBEDDED_NER_DATASETS)}."})
    max_train_samples: int | None = field(
        default=10000, metadata={"help": "Training sentences (the first N of the split) for every row; 0: all."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Validation sentences (default: all)."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Test sentences (default: all)."})
    max_steps: int = field(default=600, metadata={"help": "Fine-tuning steps of both GLM rows."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Fine-tuning batch size."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Fine-tuning peak learning rate of both GLM rows."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per window."})
    seed: int = field(default=0, metadata={"help": "Fine-tuning seed of both GLM rows."})
    crf_max_iterations: int = field(default=100, metadata={"help": "L-BFGS iterations of the CRF baseline."})

    def __post_init__(self):
        if self.dataset_name not in EMBEDDED_NER_DATASETS:
            raise ValueError(f"--dataset_name must be one of {list(EMBEDDED_NER_DATASETS)}, got {self.dataset_name!r}")
        for name in ("max_steps", "per_device_train_batch_size", "crf_max_iterations", "pretrain_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.model_name_or_path is not None and not os.path.isfile(
            os.path.join(self.model_name_or_path, "config.json")
        ):
            raise ValueError(f"--model_name_or_path {self.model_name_or_path!r} is not a model folder (no config.json)")
        if self.max_train_samples == 0:
            self.max_train_samples = None


def _glm_row(settings: NerComparisonSettings, row: str, report=print) -> dict:
    """Fine-tune one GLM row with ``finetune_ner`` (or read back a finished one with the same settings)."""
    from .finetuning import ModelArguments
    from .finetuning_ner import NerDataArguments, finetune_ner
    from .run_folder import RecipeTrainingArguments

    row_dir = os.path.join(os.path.abspath(settings.output_dir), row)
    record = finished_row(row_dir, settings)
    if record is not None:
        report(f"{row}: finished before, read back")
        return record
    pretrained = settings.model_name_or_path
    model_args = (ModelArguments(model_name_or_path=pretrained) if row == "glm_pretrained"
                  else ModelArguments(config_name=pretrained, tokenizer_name=pretrained))
    data_args = NerDataArguments(
        dataset_name=settings.dataset_name, max_seq_length=settings.max_seq_length,
        max_train_samples=settings.max_train_samples, max_eval_samples=settings.max_eval_samples,
        max_predict_samples=settings.max_predict_samples, return_entity_level_metrics=True,
    )
    training_args = RecipeTrainingArguments(
        output_dir=row_dir, overwrite_output_dir=True, do_train=True, do_eval=True, do_predict=True,
        max_steps=settings.max_steps, per_device_train_batch_size=settings.per_device_train_batch_size,
        per_device_eval_batch_size=2 * settings.per_device_train_batch_size, learning_rate=settings.learning_rate,
        warmup_steps=0.06, weight_decay=0.01, logging_steps=max(1, settings.max_steps // 40), save_strategy="no",
        eval_strategy="no", report_to="none", seed=settings.seed, dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    report(f"{row}: fine-tuning {settings.max_steps} steps")
    start = time.perf_counter()
    metrics = finetune_ner(model_args, data_args, training_args)
    record = {"settings": _as_json(settings), "seconds": round(time.perf_counter() - start, 1),
              "metrics": {key: value for key, value in metrics.items() if key.startswith(("eval_", "test_", "train_"))}}
    write_json(record, os.path.join(row_dir, ROW_FILE))
    return record


def _as_json(settings: NerComparisonSettings) -> dict:
    return as_json(asdict(settings))


def finished_row(row_dir: str, settings: NerComparisonSettings) -> dict | None:
    """The record of a row finished with these settings, or None."""
    record_path = os.path.join(row_dir, ROW_FILE)
    if not os.path.isfile(record_path):
        return None
    record = read_json(record_path)
    return record if record.get("settings") == _as_json(settings) else None


def _crf_row(settings: NerComparisonSettings, report=print) -> dict:
    row_dir = os.path.join(os.path.abspath(settings.output_dir), "crf")
    record = finished_row(row_dir, settings)
    if record is not None:
        report("crf: finished before, read back")
        return record
    from .finetuning_ner import limit_splits

    # The same sentences as the GLM rows (finetune_ner selects them the same way).
    raw = limit_splits(load_embedded_ner_dataset(settings.dataset_name), settings.max_train_samples,
                       settings.max_eval_samples, settings.max_predict_samples)
    report(f"crf: training on {len(raw['train'])} sentences")
    result = run_crf_baseline(raw, CRFBaselineConfig(max_iterations=settings.crf_max_iterations))
    metrics = {key: value for key, value in result.items() if key.startswith(("eval_", "test_"))}
    record = {"settings": _as_json(settings), "seconds": result["seconds"], "metrics": metrics, "c1": result["c1"],
              "c2": result["c2"], "validation_f1_by_regularisation": result["validation_f1_by_regularisation"],
              "description": result["description"]}
    os.makedirs(row_dir, exist_ok=True)
    write_json(record, os.path.join(row_dir, ROW_FILE))
    return record


# The in-domain pretraining: the recipe the sentiment study found best (MLM alone on packed text, 30 % masking,
# rotary positions, no dropout), on the NER corpora's training text.
IN_DOMAIN_OVERRIDES = ("hidden_dropout_prob=0.0,attention_probs_dropout_prob=0.0,position_embedding_type=rotary,"
                       "position_embedding_init=sinusoidal")


def pretrain_in_domain(settings: NerComparisonSettings, report=print) -> str:
    """Train a tokenizer and pretrain a GLM (MLM) on :func:`ner_pretraining_documents` into ``output_dir/pretrain``
    (read back when finished with the same settings); returns the folder."""
    from .ner_data import ner_pretraining_documents
    from .pretraining import DataTrainingArguments, ModelArguments, pretrain
    from .run_folder import RecipeTrainingArguments
    from .tokenization import TokenizerTrainingArguments, train_tokenizer

    root = os.path.abspath(settings.output_dir)
    pretrain_dir, record_path = os.path.join(root, "pretrain"), os.path.join(root, "pretraining.json")
    wanted = {"steps": settings.pretrain_steps, "model_size": settings.pretrain_model_size,
              "config_overrides": IN_DOMAIN_OVERRIDES}
    if os.path.isfile(record_path):
        record = read_json(record_path)
        if record.get("settings") == wanted and os.path.isfile(os.path.join(pretrain_dir, "config.json")):
            report("pretraining: finished before, read back")
            return pretrain_dir
    corpus_path = os.path.join(root, "pretraining_corpus.txt")
    documents = ner_pretraining_documents()
    write_text("\n".join(documents) + "\n", corpus_path)
    report(f"pretraining: a tokenizer and {settings.pretrain_steps} MLM steps on {len(documents)} documents")
    tokenizer_dir = os.path.join(root, "tokenizer")
    train_tokenizer(TokenizerTrainingArguments(output_dir=tokenizer_dir, train_file=corpus_path,
                                               overwrite_output_dir=True))
    start = time.perf_counter()
    metrics = pretrain(
        ModelArguments(model_size=settings.pretrain_model_size, tokenizer_name=tokenizer_dir,
                       config_overrides=IN_DOMAIN_OVERRIDES),
        DataTrainingArguments(train_file=corpus_path, objective="mlm", max_seq_length=128, mlm_probability=0.3,
                              max_eval_samples=500),
        RecipeTrainingArguments(
            output_dir=pretrain_dir, overwrite_output_dir=True, do_train=True, do_eval=True,
            max_steps=settings.pretrain_steps, per_device_train_batch_size=32, per_device_eval_batch_size=64,
            learning_rate=1e-3, warmup_steps=0.06, weight_decay=0.01,
            logging_steps=max(1, settings.pretrain_steps // 40), save_strategy="no", report_to="none", seed=0,
            dataloader_num_workers=0, dataloader_pin_memory=False,
        ),
    )
    write_json({"settings": wanted, "documents": len(documents), "seconds": round(time.perf_counter() - start, 1),
                "eval": {key: value for key, value in metrics.items() if key.startswith("eval_")}}, record_path)
    return pretrain_dir


def run_comparison(settings: NerComparisonSettings, report=print) -> dict:
    output_dir = os.path.abspath(settings.output_dir)
    claim_folder(output_dir, MARKER, "glm-hf ner-compare")
    if settings.model_name_or_path is None:
        settings.model_name_or_path = pretrain_in_domain(settings, report)
    rows = {row: _glm_row(settings, row, report) for row in GLM_ROWS}
    rows["crf"] = _crf_row(settings, report)
    results = {"settings": asdict(settings), "data": embedded_ner_description(settings.dataset_name), "rows": rows}
    write_json(results, os.path.join(output_dir, RESULTS_FILE))
    plot_comparison(results, os.path.join(output_dir, FIGURE_FILE))
    return results


ROW_LABELS = {"glm_pretrained": "GLM pretrained", "glm_random_init": "GLM random init", "crf": "character CRF"}


def comparison_table(results: dict) -> str:
    """Markdown: one line per row with test precision / recall / F1, F1 per entity type, and minutes."""
    header = ("| model | test precision | test recall | test F1 | " + " | ".join(f"{kind} F1" for kind in ENTITY_TYPES)
              + " | validation F1 | minutes |")
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for row, record in results["rows"].items():
        metrics = record["metrics"]
        per_type = [f"{metrics.get(f'test_{kind}_f1', float('nan')):.4f}" for kind in ENTITY_TYPES]
        lines.append(
            f"| {ROW_LABELS[row]} | {metrics['test_precision']:.4f} | {metrics['test_recall']:.4f} | "
            f"{metrics['test_f1']:.4f} | " + " | ".join(per_type)
            + f" | {metrics['eval_f1']:.4f} | {record['seconds'] / 60:.1f} |"
        )
    return "\n".join(lines)


def plot_comparison(results: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*ENTITY_TYPES, "overall"]
    figure, axes = plt.subplots(figsize=(7.5, 4.0), dpi=120)
    width = 0.8 / len(results["rows"])
    for index, (row, record) in enumerate(results["rows"].items()):
        metrics = record["metrics"]
        values = [metrics.get(f"test_{kind}_f1", 0.0) for kind in ENTITY_TYPES] + [metrics["test_f1"]]
        axes.bar([g + index * width for g in range(len(groups))], values, width, label=ROW_LABELS[row])
    axes.set_xticks([g + width * (len(results["rows"]) - 1) / 2 for g in range(len(groups))], groups)
    axes.set_ylim(0, 1)
    axes.set_ylabel("test entity F1")
    axes.set_title(f"NER on {results['settings']['dataset_name']}: pretrained GLM, random init, CRF")
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return save_png(plt, figure, path)


def main(argv: list[str] | None = None) -> int:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(NerComparisonSettings)
    parser.prog = "glm-hf ner-compare"
    (settings,) = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.WARNING)
    results = run_comparison(settings)
    print(comparison_table(results))
    print(f"\nResults: {os.path.join(settings.output_dir, RESULTS_FILE)}")
    print(f"Figure:  {os.path.join(settings.output_dir, FIGURE_FILE)}")
    return 0
