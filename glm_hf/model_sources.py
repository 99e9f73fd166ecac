"""Where a config, tokenizer or model is read from: a folder on this machine, or a Hub id that transformers
downloads. Every command that loads one goes through :func:`from_pretrained`, so that a path that does not exist, a
folder without the files asked for, a weights file cut short, or a Hub that cannot be reached stops with one sentence
naming the flag and the path -- transformers would say "Repo id must be in the form ...", retry the network for half
a minute, or report "incomplete metadata" without naming a file.

A Hub id (``name`` or ``org/name``) still goes to the Hub when no folder of that name exists, as in transformers.
"""

import json
import os
import zipfile

SAFETENSORS_FILE, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
TORCH_FILE, TORCH_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
# In the order transformers prefers them.
WEIGHTS_FILES = (SAFETENSORS_FILE, SAFETENSORS_INDEX, TORCH_FILE, TORCH_INDEX)
# Any one of these makes a folder a tokenizer folder (WordPiece, BPE, SentencePiece, or a tokenizers file).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6


def looks_like_a_path(source: str) -> bool:
    """A Hub id is ``name`` or ``org/name``; anything else can only mean a file or folder on this machine."""
    return (
        source.startswith(("/", ".", "~"))
        or source.count("/") > 1
        or source.endswith(("/", os.sep))
        or (os.sep != "/" and os.sep in source)
    )


def local_path(flag: str, source: str) -> str | None:
    """``source`` as a path when it exists here (``~`` expanded); None for a Hub id; a path that does not exist is
    refused before the Hub is asked about a name it cannot hold."""
    path = os.path.expanduser(source)
    if os.path.exists(path):
        return path
    if looks_like_a_path(source):
        raise ValueError(f"{flag} {source}: no such folder")
    return None


def check_folder(flag: str, path: str, what: str = "model") -> None:
    """``path`` must be a folder holding a ``what`` (``config``, ``tokenizer`` or ``model``, weights included)."""
    if not os.path.isdir(path):
        if what == "config" and path.endswith(".json"):  # AutoConfig also reads a config.json given directly
            return
        raise ValueError(f"{flag} {path}: is a file, not a folder; give the folder that holds it")
    if what == "tokenizer":
        if not any(os.path.isfile(os.path.join(path, name)) for name in TOKENIZER_FILES):
            raise ValueError(
                f"{flag} {path}: no tokenizer in the folder (none of {', '.join(TOKENIZER_FILES)}); "
                "give the folder a tokenizer was saved to (save_pretrained, glm-hf train-tokenizer)"
            )
        return
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"{flag} {path}: no config.json in the folder, so not a model folder (save it with "
                         "save_pretrained)")
    if what == "model":
        check_weights(flag, path)


def check_weights(flag: str, folder: str) -> None:
    """The weights file transformers would read from ``folder`` is there and whole (every shard of an index).

    Only headers and archive directories are read, not the tensors."""
    name = next((name for name in WEIGHTS_FILES if os.path.isfile(os.path.join(folder, name))), None)
    if name is None:
        raise ValueError(
            f"{flag} {folder}: the folder has config.json but no weights file (one of {', '.join(WEIGHTS_FILES)}); "
            "copy the weights in, or re-save the model"
        )
    path = os.path.join(folder, name)
    if name.endswith(".index.json"):
        try:
            with open(path, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{flag} {path} is cut short or corrupt ({err}); re-download or re-save it") from err
        for shard in shards:
            shard_path = os.path.join(folder, shard)
            if not os.path.isfile(shard_path):
                raise ValueError(f"{flag} {path} lists {shard}, which is missing from the folder; copy it in or "
                                 "re-save the model")
            _check_weights_file(flag, shard_path)
    else:
        _check_weights_file(flag, path)


def _check_weights_file(flag: str, path: str) -> None:
    problem = weights_file_problem(path)
    if problem is not None:
        raise ValueError(f"{flag} {path} is cut short or corrupt ({problem}); re-download or re-save it")


def weights_file_problem(path: str) -> str | None:
    """Why the weights file ``path`` is cut short or corrupt, or None: an empty file, a safetensors header that does
    not parse or names more bytes than there are, a zip archive (torch.save) without its directory. A torch file of
    the pre-zip format has no such check and passes."""
    if os.path.getsize(path) == 0:
        return "the file is empty"
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError, safe_open

        try:  # parses the header and checks that the file is as long as it says
            with safe_open(path, framework="pt"):
                pass
        except SafetensorError as err:
            return str(err)
        return None
    with open(path, "rb") as f:
        is_zip = f.read(4) == ZIP_MAGIC
    if is_zip:  # a cut archive loses its directory, which is at the end
        try:
            zipfile.ZipFile(path).close()
        except zipfile.BadZipFile as err:
            return str(err)
    return None


def _hub_failure(flag: str, source: str, error: BaseException) -> str | None:
    """One sentence for a Hub id that could not be loaded, or None when the failure is something else."""
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    while error is not None:
        if isinstance(error, LocalEntryNotFoundError):
            return (
                f"{flag} {source}: no such folder, and the Hugging Face Hub could not be reached to download it as "
                "a Hub id (offline or HF_HUB_OFFLINE set, and no copy in the cache); check the path, or connect"
            )
        if isinstance(error, RevisionNotFoundError):
            return f"{flag} {source}: the Hub repository has no such revision (branch, tag or commit)"
        if isinstance(error, RepositoryNotFoundError):
            return (
                f"{flag} {source}: no such folder, and no model of that name on the Hugging Face Hub (a private or "
                "gated one needs a token: hf auth login)"
            )
        error = error.__cause__ or error.__context__
    return None


def from_pretrained(auto_class, flag: str, source: str, **kwargs):
    """``auto_class.from_pretrained(source, **kwargs)`` (AutoConfig, AutoTokenizer or an AutoModel* class), with a
    bad ``source`` -- given as ``flag`` -- turned into one sentence before anything is loaded."""
    from transformers import AutoConfig, AutoTokenizer

    what = "config" if auto_class is AutoConfig else "tokenizer" if auto_class is AutoTokenizer else "model"
    path = local_path(flag, source)
    if path is not None:
        check_folder(flag, path, what)
        return auto_class.from_pretrained(path, **kwargs)
    try:
        return auto_class.from_pretrained(source, **kwargs)
    except OSError as err:
        message = _hub_failure(flag, source, err)
        if message is None:
            raise
        raise ValueError(message) from err
