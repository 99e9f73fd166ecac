"""Share a GLM folder on the Hugging Face Hub: ``glm-hf push DIR --repo_id NAME``.

One commit uploads the model (config and weights), the tokenizer, the modelling code (``modeling_glm.py``,
``configuration_glm.py``, so that ``trust_remote_code=True`` loads the model without glm_hf installed), the model
card and the run's plots and metrics. Trainer checkpoints, logs and temporary files stay local. Nothing in ``DIR``
is modified: a missing code file or ``auto_map`` is added to the upload only, and the card's "how to load" snippet
is rewritten from the local folder name to the Hub repo id.
"""

import argparse
import fnmatch
import json
import os
import re
import sys

from huggingface_hub import CommitOperationAdd, HfApi

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
CODE_FILES = ("configuration_glm.py", "modeling_glm.py")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
# Trainer state, checkpoints, TensorBoard logs, hidden and temporary files are not part of a shared model.
IGNORE_PATTERNS = ("checkpoint-*", "runs", "_*", ".*", "*.tmp", "*.lock", "training_args.bin", "__pycache__")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glm-hf push",
        description="Upload a GLM model folder (weights, tokenizer, code, card, plots) to the Hugging Face Hub.",
    )
    parser.add_argument("folder", help="model folder written by save_pretrained / the glm-hf recipes")
    parser.add_argument("--repo_id", required=True, help="Hub repository, 'user/name' or 'org/name'")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the cached login)")
    parser.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    parser.add_argument("--commit_message", default=None, help="commit message")
    parser.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")
    return parser


def _ignored(relative_path: str) -> bool:
    parts = relative_path.split("/")
    return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in IGNORE_PATTERNS)


def check_model_folder(folder: str) -> dict:
    """The folder's config; a clear error when it is not a complete GLM model folder."""
    if not os.path.isdir(folder):
        raise ValueError(f"folder {folder!r} does not exist")
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise ValueError(f"{folder!r} has no config.json: not a model folder (save it with save_pretrained)")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    if config.get("model_type") != "glm_hf":
        raise ValueError(
            f"{folder!r} holds a {config.get('model_type')!r} model; glm-hf push uploads GLM (glm_hf) models"
        )
    if not any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHT_FILES):
        raise ValueError(f"{folder!r} has no weights (one of {', '.join(WEIGHT_FILES)})")
    if not any(os.path.isfile(os.path.join(folder, name)) for name in TOKENIZER_FILES[:2]):
        raise ValueError(
            f"{folder!r} has no tokenizer (tokenizer.json or vocab.txt): save the tokenizer beside the model"
        )
    return config


def _rewrite_card(text: str, folder: str, repo_id: str) -> str:
    """Point the card's loading snippets (``from_pretrained("x")``, ``model="x"``, ``--model x``) at ``repo_id``.

    ``x`` is rewritten when it names the pushed folder: its name, or a path (relative to the working directory or to
    the folder) that resolves to it.
    """
    folder = os.path.realpath(folder)

    def names_folder(value: str) -> bool:
        if value == os.path.basename(folder):
            return True
        return any(os.path.realpath(os.path.join(base, value)) == folder for base in (os.getcwd(), folder))

    def replace(match: re.Match) -> str:
        return f"{match.group(1)}{repo_id}{match.group(3)}" if names_folder(match.group(2)) else match.group(0)

    text = re.sub(r'(from_pretrained\(\s*["\'])([^"\']+)(["\'])', replace, text)
    text = re.sub(r'(model=["\'])([^"\']+)(["\'])', replace, text)
    return re.sub(r"(--model )(\S+)(\s)", replace, text)


def commit_operations(folder: str, repo_id: str) -> list[CommitOperationAdd]:
    """What one commit uploads: the folder's files (minus IGNORE_PATTERNS), with code, auto_map and card fixed up."""
    config = check_model_folder(folder)
    operations, present = [], set()
    for root, directories, files in os.walk(folder):
        relative_root = os.path.relpath(root, folder).replace(os.sep, "/")
        directories[:] = sorted(
            d for d in directories if not _ignored(d if relative_root == "." else f"{relative_root}/{d}")
        )
        for name in sorted(files):
            relative = f"{relative_root}/{name}" if relative_root != "." else name
            if _ignored(relative):
                continue
            present.add(relative)
            path = os.path.join(root, name)
            if relative == "README.md":
                with open(path, encoding="utf-8") as f:
                    card = _rewrite_card(f.read(), folder, repo_id)
                operations.append(CommitOperationAdd(path_in_repo=relative, path_or_fileobj=card.encode("utf-8")))
            elif relative == "config.json" and not config.get("auto_map"):
                from .modeling_glm import AUTO_MAP

                fixed = {**config, "auto_map": dict(AUTO_MAP)}
                operations.append(
                    CommitOperationAdd(
                        path_in_repo=relative, path_or_fileobj=(json.dumps(fixed, indent=2) + "\n").encode("utf-8")
                    )
                )
            else:
                operations.append(CommitOperationAdd(path_in_repo=relative, path_or_fileobj=path))
    # A folder saved before the code was shipped with checkpoints: add the code so trust_remote_code works.
    for name in CODE_FILES:
        if name not in present:
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.path.join(PACKAGE_DIR, name)))
    if "README.md" not in present:
        print(f"warning: {folder} has no model card (README.md); the repository will have none", file=sys.stderr)
    return operations


def push_folder(
    folder: str,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
):
    """Create ``repo_id`` if needed and upload ``folder`` in one commit; returns the ``CommitInfo``."""
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", repo_id):
        raise ValueError(f"repo_id must look like 'user/name' (letters, digits, '-', '_', '.'), got {repo_id!r}")
    operations = commit_operations(folder, repo_id)
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    return api.create_commit(
        repo_id=getattr(repo_url, "repo_id", None) or repo_id,
        operations=operations,
        commit_message=commit_message or f"Upload GLM model from {os.path.basename(os.path.normpath(folder))}",
        revision=revision,
        create_pr=create_pr,
        repo_type="model",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commit = push_folder(
        args.folder,
        args.repo_id,
        token=args.token,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        create_pr=args.create_pr,
    )
    print(f"Pushed {args.folder} to {args.repo_id}: {getattr(commit, 'commit_url', commit)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
