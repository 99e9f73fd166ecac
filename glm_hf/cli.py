"""``glm-hf`` command line: one subcommand per task, each implemented by a ``main(argv)`` in its own module."""

import importlib
import sys

# subcommand -> (module, one-line help). Modules are imported only when their subcommand runs (fast --help).
SUBCOMMANDS = {
    "main": ("glm_hf.main_job", "end-to-end job on embedded data: tokenizer, pretrain, fine-tune, evaluate, card"),
    "study": ("glm_hf.study", "compute study: objective x pretraining budget x seeds, table and figure"),
    "train-tokenizer": ("glm_hf.tokenization", "train a WordPiece tokenizer for Chinese"),
    "pretrain": ("glm_hf.pretraining", "pretrain GLM (MLM+NSP, MLM+SOP, MLM, replaced-token detection)"),
    "finetune": ("glm_hf.finetuning", "fine-tune GLM for text classification (single-/multi-label, regression)"),
    "finetune-ner": ("glm_hf.finetuning_ner", "fine-tune GLM for named-entity recognition (token classification)"),
    "finetune-multitask": ("glm_hf.multitask", "one encoder fine-tuned on sentiment + NER together, exported per task"),
    "ner-compare": ("glm_hf.ner_comparison", "NER on an embedded corpus: pretrained GLM, random init, character CRF"),
    "convert-bert": ("glm_hf.convert_bert", "convert a transformers BERT folder into a GLM folder"),
    "predict": ("glm_hf.predict", "batch text classification with a fine-tuned GLM folder"),
    "push": ("glm_hf.hub", "upload a model folder (weights, tokenizer, code, card) to the Hugging Face Hub"),
}


def _usage() -> str:
    lines = ["usage: glm-hf <command> [options]", "", "commands:"]
    lines += [f"  {name:<16} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run 'glm-hf <command> --help' for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        print(f"glm-hf: unknown command {command!r}; choose one of {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    status = module.main(rest)
    # The Trainer commands' main returns their metrics (a dict), which is no exit status: sys.exit would print it
    # and exit 1.
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
