"""Share a GLM folder on the Hugging Face Hub: ``glm-hf push DIR --repo_id NAME``.

One commit uploads the model (config and weights), the tokenizer, the modelling code (``modeling_glm.py``,
``configuration_glm.py``, so that ``trust_remote_code=True`` loads the model without glm_hf installed), the model
card and the run's plots and metrics. Trainer checkpoints, logs and temporary files stay local, and so does the test
set's ``predict_results.csv`` (every test text with its prediction) unless ``--include_predictions`` is given.
A symbolic link that points outside ``DIR`` stops the push (it would upload a file from elsewhere on the machine).
Nothing in ``DIR`` is modified: a missing code file or ``auto_map`` is added to the upload only, and the card's "how
to load" snippet is rewritten from the local folder name to the Hub repo id.
"""

import argparse
import fnmatch
import json
import os
import re
import sys

from huggingface_hub import CommitOperationAdd, HfApi

from .model_sources import WEIGHTS_FILES, check_weights

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
CODE_FILES = ("configuration_glm.py", "modeling_glm.py")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
# Trainer state, checkpoints, TensorBoard logs, hidden and temporary files are not part of a shared model.
IGNORE_PATTERNS = ("checkpoint-*", "runs", "_*", ".*", "*.tmp", "*.lock", "training_args.bin", "__pycache__")
# The fine-tuning recipe's test-set predictions: every test text, which a public model repository should not carry
# unless asked (the data may be private even when the model is not).
PREDICTIONS_FILE = "predict_results.csv"


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
    parser.add_argument(
        "--include_predictions",
        action="store_true",
        help=f"also upload {PREDICTIONS_FILE}, which holds every test text (left out by default)",
    )
    parser.epilog = (
        "Symbolic links inside FOLDER that point outside it are refused (the push would upload files from elsewhere "
        "on the machine): replace them with copies. Linked folders are not followed."
    )
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
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{config_path} is not valid JSON ({err}); re-save the model") from err
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} holds a JSON {type(config).__name__}, not a model config; re-save the model")
    if config.get("model_type") != "glm_hf":
        raise ValueError(
            f"{folder!r} holds a {config.get('model_type')!r} model; glm-hf push uploads GLM (glm_hf) models"
        )
    if not any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHTS_FILES):
        raise ValueError(f"{folder!r} has no weights (one of {', '.join(WEIGHTS_FILES)})")
    check_weights("glm-hf push:", folder)  # a file cut short would be published as the model
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


def _refuse_outside_link(folder: str, path: str) -> None:
    """A symbolic link in the folder must point inside it: following one would publish a file from elsewhere on the
    machine (a home directory, a private data set) under the model's name."""
    if not os.path.islink(path):
        return
    target, inside = os.path.realpath(path), os.path.realpath(folder)
    if os.path.commonpath([target, inside]) != inside:
        raise ValueError(
            f"{path} is a symbolic link to {target}, outside {folder}: glm-hf push does not upload files from outside "
            "the folder; replace the link with a copy of what it points to, or remove it"
        )
    if not os.path.exists(target):
        raise ValueError(f"{path} is a symbolic link to {target}, which does not exist; remove the link")


def commit_operations(folder: str, repo_id: str, include_predictions: bool = False) -> list[CommitOperationAdd]:
    """What one commit uploads: the folder's files (minus IGNORE_PATTERNS and, unless ``include_predictions``, the
    test predictions), with code, auto_map and card fixed up; a link that points outside the folder stops it."""
    config = check_model_folder(folder)
    operations, present, left_out = [], set(), []
    for root, directories, files in os.walk(folder):  # linked folders are listed but not followed
        relative_root = os.path.relpath(root, folder).replace(os.sep, "/")
        directories[:] = sorted(
            d for d in directories if not _ignored(d if relative_root == "." else f"{relative_root}/{d}")
        )
        for name in directories:
            _refuse_outside_link(folder, os.path.join(root, name))
        for name in sorted(files):
            relative = f"{relative_root}/{name}" if relative_root != "." else name
            if _ignored(relative):
                continue
            path = os.path.join(root, name)
            _refuse_outside_link(folder, path)
            if name == PREDICTIONS_FILE and not include_predictions:
                left_out.append(relative)
                continue
            present.add(relative)
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
    for relative in left_out:
        print(
            f"note: left out {relative} (every test text with its prediction); pass --include_predictions to "
            "upload it",
            file=sys.stderr,
        )
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
    include_predictions: bool = False,
):
    """Create ``repo_id`` if needed and upload ``folder`` in one commit; returns the ``CommitInfo``."""
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", repo_id):
        raise ValueError(f"repo_id must look like 'user/name' (letters, digits, '-', '_', '.'), got {repo_id!r}")
    operations = commit_operations(folder, repo_id, include_predictions=include_predictions)
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
        include_predictions=args.include_predictions,
    )
    print(f"Pushed {args.folder} to {args.repo_id}: {getattr(commit, 'commit_url', commit)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
