"""Convert a transformers BERT folder (e.g. bert-base-chinese, Chinese-BERT-wwm, MacBERT) into a GLM folder.

GLM's parameters carry BERT's names under the prefix ``glm.`` instead of ``bert.``, so conversion is a renaming:

* ``bert.X`` -> ``glm.X`` (a bare ``BertModel`` checkpoint has no prefix; its keys gain ``glm.`` for a head model);
* ``LayerNorm.gamma`` / ``LayerNorm.beta`` (old TensorFlow-converted checkpoints) -> ``LayerNorm.weight`` / ``.bias``;
* ``cls.predictions.bias`` -> ``cls.predictions.decoder.bias``;
* the ``position_ids`` / ``token_type_ids`` buffers are dropped, and the decoder weight tied to the word embeddings
  is checked against them instead of stored twice.

Weights that belong to another BERT head than the one converted (say the NSP layer of a checkpoint converted to a
masked-LM model) are dropped with a warning; weights GLM does not know, weights the head needs but the checkpoint
lacks, and shape mismatches stop the conversion with an error listing them. Nothing is written before every check
passed, and the folder is assembled next to DST and renamed into place, so DST is never left half-written.

Command line::

    glm-hf convert-bert path/to/bert-base-chinese path/to/glm-base-chinese [--head masked-lm] [--overwrite]
"""

import argparse
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable

import torch
from transformers import BertConfig

from .configuration_glm import GLMConfig
from .evaluation import read_json
from .model_sources import check_folder
from .modeling_glm import (
    GLMForMaskedLM,
    GLMForPreTraining,
    GLMForSequenceClassification,
    GLMForTokenClassification,
    GLMModel,
    GLMPreTrainedModel,
)

logger = logging.getLogger(__name__)

# head name -> (BERT architecture, GLM class)
HEADS: dict[str, tuple[str, type[GLMPreTrainedModel]]] = {
    "model": ("BertModel", GLMModel),
    "pretraining": ("BertForPreTraining", GLMForPreTraining),
    "masked-lm": ("BertForMaskedLM", GLMForMaskedLM),
    "sequence-classification": ("BertForSequenceClassification", GLMForSequenceClassification),
    "token-classification": ("BertForTokenClassification", GLMForTokenClassification),
}
HEAD_OF_BERT_ARCHITECTURE = {bert_name: head for head, (bert_name, _) in HEADS.items()}

# BertConfig fields that GLMConfig has under the same name and meaning.
ARCHITECTURE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
    "classifier_dropout",
    "tie_word_embeddings",
)
# Fine-tuning / special-token fields kept when the BERT config sets them.
OPTIONAL_FIELDS = ("id2label", "label2id", "problem_type", "bos_token_id", "eos_token_id", "sep_token_id")

TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
# What AutoTokenizer uses for model_type "bert"; written into tokenizer_config.json when it names no class.
BERT_TOKENIZER_CLASS = "BertTokenizer"
TOKENIZER_PROBE = "这家酒店的服务很好, WiFi 速度 100M!"
SAFETENSORS_FILE, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
TORCH_FILE, TORCH_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"

# Buffers some transformers versions saved with the weights; GLM recomputes them.
BUFFER_KEY = re.compile(r"^embeddings\.(position_ids|token_type_ids)$")
BASE_MODULES = ("embeddings.", "encoder.", "pooler.")
# Every parameter of any BERT head, in GLM naming relative to the head model ("glm." for the encoder).
KNOWN_HEAD_KEY = re.compile(
    r"^(glm\.pooler\.dense"
    r"|cls\.predictions\.transform\.(dense|LayerNorm)"
    r"|cls\.predictions\.decoder"
    r"|cls\.seq_relationship"
    r"|classifier)\.(weight|bias)$"
)
TIED_DECODER_KEY = "cls.predictions.decoder.weight"
WORD_EMBEDDINGS_KEY = "glm.embeddings.word_embeddings.weight"


class ConversionError(ValueError):
    """The BERT checkpoint cannot be converted as asked; the message lists every offending weight or field."""


def _format_keys(title: str, keys: Iterable[str]) -> str:
    keys = sorted(keys)
    return f"{title} ({len(keys)}):\n" + "\n".join(f"  - {key}" for key in keys)


def resolve_head(bert_config: dict, head: str | None) -> str:
    """The head to convert to: ``head`` if given, else the first supported entry of ``config.architectures``."""
    if head is not None:
        if head in HEADS:
            return head
        if head in HEAD_OF_BERT_ARCHITECTURE:  # also accept "BertForMaskedLM" etc.
            return HEAD_OF_BERT_ARCHITECTURE[head]
        raise ConversionError(f"head must be one of {sorted(HEADS)}, got {head!r}")
    architectures = bert_config.get("architectures") or []
    for architecture in architectures:
        if architecture in HEAD_OF_BERT_ARCHITECTURE:
            return HEAD_OF_BERT_ARCHITECTURE[architecture]
    raise ConversionError(
        f"cannot tell the head from config.architectures={architectures!r}: supported BERT architectures are "
        f"{sorted(HEAD_OF_BERT_ARCHITECTURE)}; pass head= (--head) with one of {sorted(HEADS)}"
    )


def glm_config_from_bert(bert_config: dict, source: str = "config.json") -> GLMConfig:
    """Map a BERT ``config.json`` dict (read from ``source``, named in errors) onto a ``GLMConfig`` (architecture,
    labels, special token ids)."""
    if not isinstance(bert_config, dict):
        raise ConversionError(f"{source}: holds a JSON {type(bert_config).__name__}, not a BERT config (an object)")
    model_type = bert_config.get("model_type")
    if model_type != "bert":
        raise ConversionError(f"{source}: model_type must be 'bert', got {model_type!r}: not a BERT config")
    position_embedding_type = bert_config.get("position_embedding_type", "absolute")
    if position_embedding_type != "absolute":
        raise ConversionError(
            f"{source}: position_embedding_type must be 'absolute' (BERT's relative kinds have no GLM counterpart), "
            f"got {position_embedding_type!r}"
        )
    for flag in ("is_decoder", "add_cross_attention"):
        if bert_config.get(flag):
            raise ConversionError(f"{source}: {flag} must be false: GLM is a bidirectional encoder, got true")
    try:
        # BertConfig fills in BERT's defaults for fields an old config.json leaves out (GLM's defaults may differ).
        bert = BertConfig.from_dict(bert_config)
        fields = {name: getattr(bert, name) for name in ARCHITECTURE_FIELDS}
        for name in OPTIONAL_FIELDS:
            value = bert_config.get(name)
            if value is not None:
                fields[name] = value
        if "id2label" not in fields and bert_config.get("num_labels") is not None:
            fields["num_labels"] = bert_config["num_labels"]
        return GLMConfig(**fields)
    except (ValueError, TypeError, AttributeError) as err:  # a field of the wrong type or value
        raise ConversionError(f"{source} cannot be mapped onto GLMConfig: {err}") from err


def load_bert_state_dict(src: str) -> dict[str, torch.Tensor]:
    """All tensors of a BERT folder: (sharded) ``model.safetensors``, else (sharded) ``pytorch_model.bin``."""
    from safetensors.torch import load_file

    def shard_files(index_name: str) -> list[str]:
        weight_map = read_json(os.path.join(src, index_name))["weight_map"]
        return sorted(set(weight_map.values()))

    def torch_load(path: str) -> dict[str, torch.Tensor]:
        # weights_only: a checkpoint is data, never code to execute.
        return torch.load(path, map_location="cpu", weights_only=True)

    for single, index, load in (
        (SAFETENSORS_FILE, SAFETENSORS_INDEX, load_file),
        (TORCH_FILE, TORCH_INDEX, torch_load),
    ):
        if os.path.isfile(os.path.join(src, single)):
            files = [single]
        elif os.path.isfile(os.path.join(src, index)):
            files = shard_files(index)
        else:
            continue
        state_dict = {}
        for name in files:
            state_dict.update(load(os.path.join(src, name)))
        return state_dict
    raise ConversionError(
        f"no weights in {src}: expected one of {SAFETENSORS_FILE}, {SAFETENSORS_INDEX}, {TORCH_FILE}, {TORCH_INDEX}"
    )


def rename_bert_state_dict(
    bert_state_dict: dict[str, torch.Tensor], bare_encoder: bool
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """BERT names -> GLM names. Returns the renamed tensors and the dropped buffer names.

    ``bare_encoder``: name the encoder weights as in ``GLMModel`` (no ``glm.`` prefix) instead of a head model.
    Raises ``ConversionError`` when two source tensors land on one GLM name with different values.
    """
    renamed: dict[str, torch.Tensor] = {}
    dropped_buffers = []
    for key, tensor in bert_state_dict.items():
        base_key = key[len("bert.") :] if key.startswith("bert.") else key
        if BUFFER_KEY.match(base_key):
            dropped_buffers.append(key)
            continue
        base_key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", base_key)
        base_key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", base_key)
        if base_key == "cls.predictions.bias":
            base_key = "cls.predictions.decoder.bias"
        if base_key.startswith(BASE_MODULES):
            new_key = base_key if bare_encoder else f"glm.{base_key}"
        else:
            new_key = base_key
        if new_key in renamed:
            # Old checkpoints store the MLM bias twice (cls.predictions.bias and .decoder.bias, one shared tensor).
            if not torch.equal(renamed[new_key], tensor):
                raise ConversionError(f"two different tensors in the checkpoint map onto {new_key!r}")
            continue
        renamed[new_key] = tensor
    return renamed, dropped_buffers


def _build_model(config: GLMConfig, head: str, dtype: torch.dtype) -> GLMPreTrainedModel:
    from transformers.initialization import no_init_weights

    # Every weight is overwritten by the checkpoint, so random initialisation would be wasted time.
    with no_init_weights():
        model = HEADS[head][1](config)
    return model.to(dtype).eval()


def _floating_dtype(state_dict: dict[str, torch.Tensor]) -> torch.dtype:
    dtypes = {t.dtype for t in state_dict.values() if t.is_floating_point()}
    if len(dtypes) > 1:
        raise ConversionError(f"the checkpoint mixes floating dtypes {sorted(map(str, dtypes))}")
    return dtypes.pop() if dtypes else torch.float32


def convert_state_dict(
    bert_state_dict: dict[str, torch.Tensor], config: GLMConfig, head: str
) -> GLMPreTrainedModel:
    """A GLM model of ``head`` holding the BERT weights; raises ``ConversionError`` listing every problem."""
    bare_encoder = head == "model"
    renamed, dropped_buffers = rename_bert_state_dict(bert_state_dict, bare_encoder)
    if dropped_buffers:
        logger.info("dropping buffers GLM recomputes: %s", ", ".join(sorted(dropped_buffers)))
    model = _build_model(config, head, _floating_dtype(renamed))
    expected = model.state_dict()
    tied = config.tie_word_embeddings and TIED_DECODER_KEY in expected
    required = set(expected) - ({TIED_DECODER_KEY} if tied else set())

    problems = []
    if tied and TIED_DECODER_KEY in renamed:
        # The decoder shares the word embeddings: a stored copy must be that same matrix.
        decoder, embeddings = renamed.pop(TIED_DECODER_KEY), renamed.get(WORD_EMBEDDINGS_KEY)
        if embeddings is not None and not torch.equal(decoder, embeddings):
            problems.append(
                f"{TIED_DECODER_KEY} differs from {WORD_EMBEDDINGS_KEY} but tie_word_embeddings is true "
                "(set tie_word_embeddings=false in the BERT config.json if the checkpoint is really untied)"
            )

    def is_head_weight(key: str) -> bool:
        return bool(KNOWN_HEAD_KEY.match(f"glm.{key}" if bare_encoder and key.startswith(BASE_MODULES) else key))

    other_head, unknown = [], []
    for key in sorted(set(renamed) - required):
        (other_head if is_head_weight(key) else unknown).append(key)
        del renamed[key]
    missing = sorted(required - set(renamed))
    mismatched = [
        f"{key}: checkpoint {tuple(renamed[key].shape)} vs GLM {tuple(expected[key].shape)}"
        for key in sorted(renamed)
        if renamed[key].shape != expected[key].shape
    ]
    if unknown:
        problems.append(_format_keys("weights GLM does not know (after renaming bert. -> glm.)", unknown))
    if missing:
        problems.append(_format_keys(f"weights {HEADS[head][1].__name__} needs but the checkpoint lacks", missing))
        if all(is_head_weight(key) for key in missing):  # only head layers lack: a new head was asked for
            problems.append(
                "  to add layers the checkpoint lacks, convert it with its own head (no --head) and load the GLM "
                "folder with the wanted AutoModelFor* class, which initialises the new layers"
            )
    if mismatched:
        problems.append(_format_keys("weights whose shape does not match the config", mismatched))
    if problems:
        raise ConversionError("cannot convert the BERT checkpoint to GLM:\n" + "\n".join(problems))
    if other_head:
        logger.warning(
            "%s has no place for these weights of other BERT heads, dropping them (convert with another head, "
            "e.g. --head pretraining for the pooler and NSP layer of a pretrained BERT, to keep them): %s",
            HEADS[head][1].__name__,
            ", ".join(other_head),
        )

    model.load_state_dict(renamed, strict=False)
    if tied:
        model.tie_weights()
    return model


def copy_tokenizer_files(src: str, dst: str) -> list[str]:
    """Copy the tokenizer files of ``src`` into ``dst``; returns the names copied.

    Old BERT folders (bert-base-chinese, hfl/*) have a ``tokenizer_config.json`` without ``tokenizer_class``, or none
    at all; AutoTokenizer then falls back on the model type, which for ``glm_hf`` names no tokenizer. So the class BERT
    would have used is written in.
    """
    copied = [name for name in TOKENIZER_FILES if os.path.isfile(os.path.join(src, name))]
    for name in copied:
        shutil.copy2(os.path.join(src, name), os.path.join(dst, name))
    if not copied:
        logger.warning("no tokenizer files in %s: the GLM folder will hold the model only", src)
        return copied
    config_path = os.path.join(dst, "tokenizer_config.json")
    tokenizer_config = read_json(config_path) if os.path.isfile(config_path) else {}
    if not tokenizer_config.get("tokenizer_class"):
        tokenizer_config["tokenizer_class"] = BERT_TOKENIZER_CLASS
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(tokenizer_config, f, ensure_ascii=False, indent=2)
    return copied


def check_tokenizer(src: str, dst: str) -> None:
    """The tokenizer of ``dst`` must load with AutoTokenizer and encode like the one of ``src``."""
    from transformers import AutoTokenizer

    try:
        expected = AutoTokenizer.from_pretrained(src)(TOKENIZER_PROBE)["input_ids"]
    except Exception as err:  # noqa: BLE001 - a broken source tokenizer does not make the weights wrong
        logger.warning("the tokenizer of %s does not load (%s); copied its files without a check", src, err)
        return
    try:
        actual = AutoTokenizer.from_pretrained(dst)(TOKENIZER_PROBE)["input_ids"]
    except Exception as err:  # noqa: BLE001
        raise ConversionError(f"the copied tokenizer does not load with AutoTokenizer: {err}") from err
    if actual != expected:
        raise ConversionError(f"the copied tokenizer encodes {TOKENIZER_PROBE!r} as {actual}, BERT's as {expected}")


def _replace(tmp_dir: str, dst: str, overwrite: bool) -> None:
    """Move the finished ``tmp_dir`` to ``dst``; an existing ``dst`` is removed only once the new one is in place."""
    if os.path.isdir(dst) and not os.path.islink(dst) and not os.listdir(dst):
        os.rmdir(dst)
    if not os.path.lexists(dst):
        os.rename(tmp_dir, dst)
        return
    if not overwrite:
        raise FileExistsError(f"{dst} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.old-", dir=os.path.dirname(dst))
    os.rename(dst, os.path.join(old, "previous"))
    os.rename(tmp_dir, dst)
    shutil.rmtree(old)


def convert_bert_to_glm(src: str, dst: str, overwrite: bool = False, head: str | None = None) -> str:
    """Convert the BERT folder ``src`` (config.json, weights, tokenizer files) into the GLM folder ``dst``.

    Args:
        src: a transformers BERT folder (``BertModel``, ``BertForPreTraining``, ``BertForMaskedLM``,
            ``BertForSequenceClassification`` or ``BertForTokenClassification``).
        dst: the GLM folder to create; must not exist or be empty unless ``overwrite``.
        overwrite: replace a non-empty ``dst`` (only after the new folder is complete).
        head: one of ``HEADS`` (or a BERT architecture name); default: from ``config.architectures``.

    Returns:
        The absolute path of ``dst``, loadable with ``AutoModelFor*.from_pretrained`` (after ``import glm_hf``, or
        with ``trust_remote_code=True``) and ``AutoTokenizer.from_pretrained``.
    """
    src_as_given, src, dst = src, os.path.abspath(os.path.expanduser(src)), os.path.abspath(dst)
    if not os.path.exists(src):
        raise ConversionError(
            f"src {src_as_given}: no such folder (convert-bert reads a local BERT folder; download a Hub model first, "
            "e.g. hf download bert-base-chinese --local-dir bert-base-chinese)"
        )
    try:
        check_folder("src", src, "model")  # config.json, and weights that are there and whole
    except ValueError as err:
        raise ConversionError(str(err)) from err
    if src == dst:
        raise ConversionError("dst must differ from src")
    if os.path.lexists(dst) and not overwrite and not (os.path.isdir(dst) and not os.listdir(dst)):
        raise FileExistsError(f"{dst} exists and is not empty; pass overwrite=True (--overwrite) to replace it")

    config_path = os.path.join(src, "config.json")
    try:
        bert_config = read_json(config_path)
    except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError
        raise ConversionError(f"{config_path}: not valid JSON ({err}); re-download or re-save it") from err
    config = glm_config_from_bert(bert_config, config_path)
    head = resolve_head(bert_config, head)
    model = convert_state_dict(load_bert_state_dict(src), config, head)

    parent = os.path.dirname(dst)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.tmp-", dir=parent)
    try:
        model.save_pretrained(tmp_dir)
        if copy_tokenizer_files(src, tmp_dir):
            check_tokenizer(src, tmp_dir)
        os.chmod(tmp_dir, 0o755)  # mkdtemp creates 0700; a model folder is usually shared
        _replace(tmp_dir, dst, overwrite)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    logger.info("converted %s (%s) -> %s (%s)", src, HEADS[head][0], dst, HEADS[head][1].__name__)
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="glm-hf convert-bert",
        description="Convert a transformers BERT folder (weights, config, tokenizer) into a GLM folder.",
    )
    parser.add_argument("src", help="BERT folder, e.g. a local copy of bert-base-chinese")
    parser.add_argument("dst", help="GLM folder to write (must not exist or be empty unless --overwrite)")
    parser.add_argument(
        "--head",
        choices=sorted(HEADS),
        default=None,
        help="head to convert to (default: from config.architectures of SRC)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty DST")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        dst = convert_bert_to_glm(args.src, args.dst, overwrite=args.overwrite, head=args.head)
    except (ConversionError, FileExistsError) as err:
        parser.exit(2, f"glm-hf convert-bert: error: {err}\n")
    print(dst)
    return 0


__all__ = [
    "ConversionError",
    "HEADS",
    "check_tokenizer",
    "convert_bert_to_glm",
    "convert_state_dict",
    "copy_tokenizer_files",
    "glm_config_from_bert",
    "load_bert_state_dict",
    "main",
]
