"""Convert a transformers BERT folder (e.g. bert-base-chinese, Chinese-BERT-wwm, MacBERT, a multilingual sentence
encoder) into a GLM folder.

GLM's parameters carry BERT's names under the prefix ``glm.`` instead of ``bert.``, so conversion is a renaming:

* ``bert.X`` -> ``glm.X`` (a bare ``BertModel`` checkpoint has no prefix; its keys gain ``glm.`` for a head model);
* ``LayerNorm.gamma`` / ``LayerNorm.beta`` (old TensorFlow-converted checkpoints) -> ``LayerNorm.weight`` / ``.bias``;
* ``cls.predictions.bias`` -> ``cls.predictions.decoder.bias``;
* the ``position_ids`` / ``token_type_ids`` buffers are dropped, and the decoder weight tied to the word embeddings
  is checked against them instead of stored twice.

The weights are read from ``model.safetensors`` or ``pytorch_model.bin``, sharded or not, and keep their dtype
(float32, float16 or bfloat16). Checkpoints found in the wild often lack layers the GLM head has: the pooler (sentence
encoders are saved without it), the MLM transform and bias, the NSP layer. These are initialised as BERT initialises
new layers (seeded, so converting twice gives the same folder), the MLM decoder is tied to the word embeddings, and
the command's output and the converted folder's ``README.md`` list them. A missing encoder weight or classifier
stops the conversion. Weights that belong to another BERT head (say the NSP layer of a checkpoint converted to a
masked-LM model) are dropped and listed the same way; weights GLM does not know and shape mismatches stop the
conversion with an error listing them. Nothing is written before every check passed, and the folder is assembled
next to DST and renamed into place, so DST is never left half-written.

The tokenizer files are copied, and the converted folder must tokenize like the source: through ``AutoTokenizer``
when it reads the source as its ``tokenizer.json`` says (WordPiece, Unigram/SentencePiece or BPE), else -- when
AutoTokenizer falls back on ``BertTokenizer``, which rebuilds a WordPiece pipeline and ignores the file's -- the
converted folder names ``PreTrainedTokenizerFast``, which uses ``tokenizer.json`` as it is, as transformers v4 did.

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
from dataclasses import dataclass, field

import torch
from transformers import BertConfig

from .configuration_glm import GLMConfig
from .evaluation import read_json
from .model_sources import TOKENIZER_FILES as TOKENIZER_MARKER_FILES
from .model_sources import WEIGHTS_FILES, check_weights
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
ACCEPTED = (
    "convert-bert accepts a transformers BERT folder: config.json with model_type 'bert', the weights "
    "(model.safetensors or pytorch_model.bin, sharded or not) and the tokenizer files"
)

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

# Every file a BERT folder's tokenizer can be saved as (WordPiece, a tokenizers file, BPE, SentencePiece).
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
)
# What AutoTokenizer uses for model_type "bert" when neither tokenizer_config.json nor config.json names a class.
# The tags of the converted folder's card: with a GLM config.json, they mark a folder --overwrite may replace.
CONVERSION_TAGS = ("glm_hf", "bert", "converted")
BERT_TOKENIZER_CLASS = "BertTokenizer"
BERT_TOKENIZER_CLASSES = ("BertTokenizer", "BertTokenizerFast")  # WordPiece by definition
# transformers v5 maps it onto TokenizersBackend, which runs tokenizer.json as it is.
VERBATIM_TOKENIZER_CLASS = "PreTrainedTokenizerFast"
# Chinese, English, mixed text and a pair (which exercises the pair template).
TOKENIZER_PROBES = (
    ("这家酒店的服务很好，房间也很干净。",),
    ("The room was clean, and the staff were friendly.",),
    ("这家酒店的服务很好, WiFi 速度 100M!",),
    ("质量太差了 but the price is OK，下次再来。",),
    ("房间干净吗？", "Yes, very clean."),
)
# Special tokens a verbatim tokenizer.json is given (the first of each that its vocabulary holds), so that padding,
# masking and classification find them.
SPECIAL_TOKEN_CANDIDATES = {
    "unk_token": ("[UNK]", "<unk>"),
    "pad_token": ("[PAD]", "<pad>"),
    "cls_token": ("[CLS]", "<s>"),
    "sep_token": ("[SEP]", "</s>"),
    "mask_token": ("[MASK]", "<mask>"),
}

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
# The head layers a checkpoint may lack and that can start untrained: a classifier cannot (it needs the labels).
INITIALISABLE_KEY = re.compile(
    r"^((glm\.pooler\.dense|cls\.predictions\.transform\.(dense|LayerNorm)|cls\.seq_relationship)\.(weight|bias)"
    r"|cls\.predictions\.decoder\.bias)$"
)
TIED_DECODER_KEY = "cls.predictions.decoder.weight"
WORD_EMBEDDINGS_KEY = "glm.embeddings.word_embeddings.weight"
INIT_SEED = 0


class ConversionError(ValueError):
    """The BERT checkpoint cannot be converted as asked; the message lists every offending weight or field."""


@dataclass
class ConvertedWeights:
    """A GLM model holding the checkpoint's weights, and what the checkpoint did not fill or GLM left out."""

    model: GLMPreTrainedModel
    initialised: dict[str, str] = field(default_factory=dict)  # weight -> how it was initialised
    dropped: list[str] = field(default_factory=list)  # weights of other BERT heads


@dataclass
class ConversionReport:
    """What ``convert_bert_folder`` did; ``lines()`` is what the command prints and the model card says."""

    src: str
    dst: str
    bert_architectures: str  # as the source's config.json names them
    glm_class: str
    dtype: str
    initialised: dict[str, str]
    dropped: list[str]
    tokenizer: str

    def lines(self) -> list[str]:
        lines = [f"converted {self.src} ({self.bert_architectures}) -> {self.dst} ({self.glm_class})"]
        lines.append(f"weights: {self.dtype}, the checkpoint's dtype (values copied unchanged)")
        if self.initialised:
            lines.append(
                f"initialised, not in the checkpoint ({len(self.initialised)}; train them before use, "
                f"seed {INIT_SEED}):"
            )
            lines += [f"  - {key}: {how}" for key, how in self.initialised.items()]
        else:
            lines.append("initialised: none, every weight comes from the checkpoint")
        if self.dropped:
            lines.append(f"dropped, weights of other BERT heads ({len(self.dropped)}):")
            lines += [f"  - {key}" for key in self.dropped]
        lines.append(f"tokenizer: {self.tokenizer}")
        return lines


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


def _what_the_config_is(model_type) -> str:
    """``model_type`` as a reader knows it: a GLM folder, a transformers model type, or neither."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if model_type == GLMConfig.model_type:
        return "a GLM folder already (load it as it is with AutoModel* after import glm_hf)"
    if model_type is None:
        return "a config.json that names no model_type"
    if model_type in CONFIG_MAPPING_NAMES:
        return f"a {model_type} checkpoint ({CONFIG_MAPPING_NAMES[model_type]})"
    return f"a model_type transformers does not know ({model_type!r})"


def glm_config_from_bert(bert_config: dict, source: str = "config.json") -> GLMConfig:
    """Map a BERT ``config.json`` dict (read from ``source``, named in errors) onto a ``GLMConfig`` (architecture,
    labels, special token ids)."""
    if not isinstance(bert_config, dict):
        raise ConversionError(
            f"{source}: holds a JSON {type(bert_config).__name__}, not a BERT config (an object); {ACCEPTED}"
        )
    model_type = bert_config.get("model_type")
    if model_type != "bert":
        raise ConversionError(
            f"{source}: model_type must be 'bert', got {model_type!r}: not a BERT config but "
            f"{_what_the_config_is(model_type)}; {ACCEPTED}"
        )
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


def _what_the_folder_holds(src: str) -> str:
    """For a folder without config.json: what it is instead, as far as its file names tell."""
    names = sorted(os.listdir(src))
    if not names:
        return "an empty folder"
    if any(name in names for name in WEIGHTS_FILES) or any(name.endswith(".safetensors") for name in names):
        return "weights without the config.json that says which model they belong to"
    if any(name in names for name in TOKENIZER_MARKER_FILES):
        return "a tokenizer folder, without a model"
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"a folder of {len(names)} entries ({shown}), none of them a model's"


def read_bert_config(src_as_given: str, src: str) -> dict:
    """The ``config.json`` of the BERT folder ``src``; anything that is not one is named in one sentence."""
    if not os.path.exists(src):
        raise ConversionError(
            f"src {src_as_given}: no such folder (convert-bert reads a local BERT folder; download a Hub model first, "
            "e.g. hf download bert-base-chinese --local-dir bert-base-chinese)"
        )
    if not os.path.isdir(src):
        raise ConversionError(f"src {src}: is a file, not a folder; give the folder that holds it ({ACCEPTED})")
    config_path = os.path.join(src, "config.json")
    if not os.path.isfile(config_path):
        raise ConversionError(
            f"src {src}: no config.json, so not a model checkpoint but {_what_the_folder_holds(src)}; {ACCEPTED}"
        )
    try:
        return read_json(config_path)
    except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError
        raise ConversionError(f"{config_path}: not valid JSON ({err}); re-download or re-save it") from err


def load_bert_state_dict(src: str) -> dict[str, torch.Tensor]:
    """All tensors of a BERT folder: (sharded) ``model.safetensors``, else (sharded) ``pytorch_model.bin``."""
    from safetensors.torch import load_file

    from .model_sources import SAFETENSORS_FILE, SAFETENSORS_INDEX, TORCH_FILE, TORCH_INDEX

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
    raise ConversionError(f"no weights in {src}: expected one of {', '.join(WEIGHTS_FILES)}")


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

    # Weights come from the checkpoint or from ``initialise_missing``, so transformers' init would be wasted time.
    with no_init_weights():
        model = HEADS[head][1](config)
    return model.to(dtype).eval()


def _floating_dtype(state_dict: dict[str, torch.Tensor]) -> torch.dtype:
    dtypes = {t.dtype for t in state_dict.values() if t.is_floating_point()}
    if len(dtypes) > 1:
        raise ConversionError(f"the checkpoint mixes floating dtypes {sorted(map(str, dtypes))}")
    return dtypes.pop() if dtypes else torch.float32


def initialise_missing(model: GLMPreTrainedModel, keys: Iterable[str]) -> dict[str, str]:
    """Initialise the parameters ``keys`` as ``BertPreTrainedModel._init_weights`` does (Linear weights
    normal(0, initializer_range), biases 0, LayerNorm 1 and 0), from a fixed seed; returns key -> how."""
    generator = torch.Generator().manual_seed(INIT_SEED)
    std = model.config.initializer_range
    modules = dict(model.named_modules())
    how = {}
    for key in sorted(keys):
        module_name, _, name = key.rpartition(".")
        module, parameter = modules[module_name], model.get_parameter(key)
        with torch.no_grad():
            if isinstance(module, torch.nn.LayerNorm):
                parameter.fill_(1.0 if name == "weight" else 0.0)
                how[key] = "1" if name == "weight" else "0"
            elif name == "bias":
                parameter.zero_()
                how[key] = "0"
            else:  # drawn in float32 so that half-precision checkpoints get the same values, rounded
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
                how[key] = f"normal(0, {std})"
    return how


def _check_tied_decoder(renamed: dict[str, torch.Tensor]) -> list[str]:
    """Pop a stored copy of the tied decoder; it must be the word embeddings (returns the problem, if any)."""
    decoder, embeddings = renamed.pop(TIED_DECODER_KEY), renamed.get(WORD_EMBEDDINGS_KEY)
    if embeddings is not None and not torch.equal(decoder, embeddings):
        return [
            f"{TIED_DECODER_KEY} differs from {WORD_EMBEDDINGS_KEY} but tie_word_embeddings is true "
            "(set tie_word_embeddings=false in the BERT config.json if the checkpoint is really untied)"
        ]
    return []


def convert_state_dict(bert_state_dict: dict[str, torch.Tensor], config: GLMConfig, head: str) -> ConvertedWeights:
    """A GLM model of ``head`` holding the BERT weights, with the head layers the checkpoint lacks initialised;
    raises ``ConversionError`` listing every problem."""
    bare_encoder = head == "model"
    renamed, dropped_buffers = rename_bert_state_dict(bert_state_dict, bare_encoder)
    if dropped_buffers:
        logger.info("dropping buffers GLM recomputes: %s", ", ".join(sorted(dropped_buffers)))
    model = _build_model(config, head, _floating_dtype(renamed))
    expected = model.state_dict()
    tied = config.tie_word_embeddings and TIED_DECODER_KEY in expected
    required = set(expected) - ({TIED_DECODER_KEY} if tied else set())
    problems = _check_tied_decoder(renamed) if tied and TIED_DECODER_KEY in renamed else []

    def head_model_key(key: str) -> str:  # the key as in a head model, where the encoder sits under "glm."
        return f"glm.{key}" if bare_encoder and key.startswith(BASE_MODULES) else key

    other_head, unknown = [], []
    for key in sorted(set(renamed) - required):
        (other_head if KNOWN_HEAD_KEY.match(head_model_key(key)) else unknown).append(key)
        del renamed[key]
    missing = sorted(required - set(renamed))
    mismatched = [
        f"{key}: checkpoint {tuple(renamed[key].shape)} vs GLM {tuple(expected[key].shape)}"
        for key in sorted(renamed)
        if renamed[key].shape != expected[key].shape
    ]
    if unknown:
        problems.append(_format_keys("weights GLM does not know (after renaming bert. -> glm.)", unknown))
    if not all(INITIALISABLE_KEY.match(head_model_key(key)) for key in missing):
        problems.append(_format_keys(f"weights {HEADS[head][1].__name__} needs but the checkpoint lacks", missing))
        if all(KNOWN_HEAD_KEY.match(head_model_key(key)) for key in missing):  # a new classifier was asked for
            problems.append(
                "  a classifier needs its labels: convert the checkpoint with its own head (no --head) and load the "
                "GLM folder with AutoModelForSequenceClassification / AutoModelForTokenClassification (num_labels=...)"
            )
    if mismatched:
        problems.append(_format_keys("weights whose shape does not match the config", mismatched))
    if problems:
        raise ConversionError("cannot convert the BERT checkpoint to GLM:\n" + "\n".join(problems))

    model.load_state_dict(renamed, strict=False)
    initialised = initialise_missing(model, missing)
    if tied:
        model.tie_weights()
        if "cls.predictions.decoder.bias" in initialised:  # the MLM head is new: say where its decoder comes from
            initialised[TIED_DECODER_KEY] = f"tied to {WORD_EMBEDDINGS_KEY}"
    if initialised:
        logger.warning("initialising weights the checkpoint lacks: %s", ", ".join(initialised))
    if other_head:
        logger.warning(
            "%s has no place for these weights of other BERT heads, dropping them (convert with another head, "
            "e.g. --head pretraining for the pooler and NSP layer of a pretrained BERT, to keep them): %s",
            HEADS[head][1].__name__,
            ", ".join(other_head),
        )
    return ConvertedWeights(model, initialised, other_head)


def source_tokenizer_class(src: str) -> str | None:
    """The tokenizer class the BERT folder ``src`` names (tokenizer_config.json's, else config.json's), or None
    when AutoTokenizer falls back on the model type's (BertTokenizer)."""
    for name in ("tokenizer_config.json", "config.json"):
        path = os.path.join(src, name)
        try:
            value = read_json(path).get("tokenizer_class") if os.path.isfile(path) else None
        except (ValueError, AttributeError):  # unreadable or not an object: AutoTokenizer will say so
            value = None
        if value:
            return value
    return None


def _auto_tokenizer_ids(folder: str) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return [tokenizer(*probe)["input_ids"] for probe in TOKENIZER_PROBES]


def _tokenizer_json_encoding(path: str) -> tuple[list[list[int]], str]:
    """The probe ids of a ``tokenizer.json`` run as it is, and its model kind (WordPiece, Unigram, BPE, ...)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    return [tokenizer.encode(*probe).ids for probe in TOKENIZER_PROBES], type(tokenizer.model).__name__


def _verbatim_tokenizer_config(tokenizer_config: dict, tokenizer_json: str) -> dict:
    """``tokenizer_config`` naming the class that runs ``tokenizer_json`` as it is, with the special tokens its
    vocabulary holds (kept where the config names them already)."""
    from tokenizers import Tokenizer

    vocabulary = Tokenizer.from_file(tokenizer_json).get_vocab(with_added_tokens=True)
    tokenizer_config = {**tokenizer_config, "tokenizer_class": VERBATIM_TOKENIZER_CLASS}
    for role, candidates in SPECIAL_TOKEN_CANDIDATES.items():
        present = [token for token in candidates if token in vocabulary]
        if present and not tokenizer_config.get(role):
            tokenizer_config[role] = present[0]
    return tokenizer_config


def _source_encoding(src: str, named_class: str | None) -> tuple[list[list[int]] | None, str, bool]:
    """How the source encodes the probe texts: (ids or None, whose ids, whether tokenizer.json must run verbatim).

    AutoTokenizer on the source decides. Where the folder names no tokenizer class, though, AutoTokenizer falls back
    on BertTokenizer, which in transformers v5 rebuilds a WordPiece pipeline from the vocabulary of ``tokenizer.json``
    and ignores its normalizer, pre-tokenizer and model (Unigram, BPE); transformers v4 and the tokenizers library
    ran the file as it is. So there -- and where the folder names BertTokenizer for a tokenizer.json that is not
    WordPiece -- when AutoTokenizer fails or encodes otherwise, ``tokenizer.json`` decides.
    """
    class_name = named_class or BERT_TOKENIZER_CLASS
    try:
        auto_ids, failure = _auto_tokenizer_ids(src), None
    except Exception as err:  # noqa: BLE001 - the source may not load; tokenizer.json may still say how it encodes
        auto_ids, failure = None, f"fails ({str(err).splitlines()[0][:200]})"
    reference = f"AutoTokenizer on the source ({class_name}{', which ' + failure if failure else ''})"
    tokenizer_json = os.path.join(src, "tokenizer.json")
    json_ids, json_model = None, ""
    if os.path.isfile(tokenizer_json):
        try:
            json_ids, json_model = _tokenizer_json_encoding(tokenizer_json)
        except Exception:  # noqa: BLE001 - an unreadable tokenizer.json leaves AutoTokenizer's word
            pass
    if json_ids is None or json_ids == auto_ids:
        return auto_ids, reference, False
    class_fits_file = named_class not in BERT_TOKENIZER_CLASSES or json_model == "WordPiece"
    if named_class is not None and class_fits_file and auto_ids is not None:  # the folder's choice: follow it
        return auto_ids, f"AutoTokenizer on the source ({class_name}, whose ids differ from tokenizer.json's)", False
    failure = failure or f"encodes differently from that file ({json_model})"
    reference = f"the source's tokenizer.json (AutoTokenizer reads the source as {class_name}, which {failure})"
    return json_ids, reference, True


def copy_tokenizer(src: str, dst: str) -> str:
    """Copy the tokenizer of ``src`` into ``dst`` so that it encodes alike there; returns what was done, in words.

    The converted folder's config says ``model_type: glm_hf``, which names no tokenizer, so ``tokenizer_config.json``
    always names the class. Raises ``ConversionError`` when the copy encodes the probe texts differently.
    """
    copied = [name for name in TOKENIZER_FILES if os.path.isfile(os.path.join(src, name))]
    for name in copied:
        shutil.copy2(os.path.join(src, name), os.path.join(dst, name))
    if not copied:
        logger.warning("no tokenizer files in %s: the GLM folder will hold the model only", src)
        return f"none (the source has none of {', '.join(TOKENIZER_FILES)})"
    named_class = source_tokenizer_class(src)
    expected, reference, verbatim = _source_encoding(src, named_class)
    config_path = os.path.join(dst, "tokenizer_config.json")
    tokenizer_config = read_json(config_path) if os.path.isfile(config_path) else {}
    tokenizer_config["tokenizer_class"] = named_class or BERT_TOKENIZER_CLASS
    if verbatim:
        tokenizer_config = _verbatim_tokenizer_config(tokenizer_config, os.path.join(src, "tokenizer.json"))
        logger.warning("tokenizer: following %s; the copy names %s", reference, VERBATIM_TOKENIZER_CLASS)
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(tokenizer_config, f, ensure_ascii=False, indent=2)
    if expected is None:
        logger.warning("the tokenizer of %s does not load; copied its files without a check: %s", src, reference)
        return f"{', '.join(copied)} copied unchecked: {reference}"
    check_tokenizer(dst, expected)
    return (
        f"{', '.join(copied)} copied; AutoTokenizer loads the copy as {tokenizer_config['tokenizer_class']}, with "
        f"ids identical to those of {reference} on {len(TOKENIZER_PROBES)} probe texts (Chinese, English, mixed, "
        "a pair)"
    )


def check_tokenizer(dst: str, expected: list[list[int]]) -> None:
    """The tokenizer of ``dst`` must load with AutoTokenizer and encode the probe texts as ``expected``."""
    try:
        actual = _auto_tokenizer_ids(dst)
    except Exception as err:  # noqa: BLE001
        raise ConversionError(f"the copied tokenizer does not load with AutoTokenizer: {err}") from err
    for probe, ids, expected_ids in zip(TOKENIZER_PROBES, actual, expected):
        if ids != expected_ids:
            raise ConversionError(f"the copied tokenizer encodes {probe} as {ids}, the source as {expected_ids}")


def write_conversion_card(report: ConversionReport, folder: str) -> str:
    """The converted folder's ``README.md``: where the weights come from and what was initialised or dropped."""
    from huggingface_hub import ModelCard, ModelCardData

    from .cards import TEMPLATE_DIR, write_card

    card = ModelCard.from_template(
        ModelCardData(library_name="transformers", tags=list(CONVERSION_TAGS)),
        template_path=os.path.join(TEMPLATE_DIR, "converted.md"),
        model_name=os.path.basename(report.dst),
        report=report,
        seed=INIT_SEED,
    )
    return write_card(card, folder)


def is_previous_conversion(folder: str) -> bool:
    """Whether ``folder`` is a ``convert-bert`` output: a GLM ``config.json`` and this tool's ``README.md`` card."""
    from huggingface_hub import metadata_load

    try:
        model_type = read_json(os.path.join(folder, "config.json")).get("model_type")
        card_tags = (metadata_load(os.path.join(folder, "README.md")) or {}).get("tags") or []
    except (OSError, ValueError, AttributeError):
        return False
    return model_type == GLMConfig.model_type and set(CONVERSION_TAGS) <= set(card_tags)


def _check_destination(dst: str, overwrite: bool) -> None:
    """``dst`` may be written: absent, an empty folder, or (with ``overwrite``) a previous conversion -- never a
    folder of the user's, which ``overwrite`` would delete."""
    if not os.path.lexists(dst) or (os.path.isdir(dst) and not os.path.islink(dst) and not os.listdir(dst)):
        return
    if not os.path.isdir(dst) or not is_previous_conversion(dst):
        raise FileExistsError(
            f"{dst} exists and is not a previous convert-bert output (a GLM config.json and its README.md card), "
            "the only folder --overwrite replaces; give another dst, or an empty or absent one"
        )
    if not overwrite:
        raise FileExistsError(f"{dst} holds a previous conversion; pass overwrite=True (--overwrite) to replace it")


def _check_not_nested(src: str, dst: str) -> None:
    """Writing ``dst`` must not touch ``src``: not the same folder, nor one inside the other."""
    real_src, real_dst = os.path.realpath(src), os.path.realpath(dst)
    if os.path.commonpath([real_src, real_dst]) in (real_src, real_dst):
        raise ConversionError(
            f"dst {dst} and src {src} are the same folder or one holds the other; give a dst outside the source "
            "folder (replacing it would delete the source)"
        )


def _replace(tmp_dir: str, dst: str, overwrite: bool) -> None:
    """Move the finished ``tmp_dir`` to ``dst``; an existing ``dst`` is removed only once the new one is in place."""
    _check_destination(dst, overwrite)  # again: the folder may have changed during the conversion
    if os.path.isdir(dst) and not os.path.islink(dst) and not os.listdir(dst):
        os.rmdir(dst)
    if not os.path.lexists(dst):
        os.rename(tmp_dir, dst)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.old-", dir=os.path.dirname(dst))
    os.rename(dst, os.path.join(old, "previous"))
    os.rename(tmp_dir, dst)
    shutil.rmtree(old)


def convert_bert_folder(src: str, dst: str, overwrite: bool = False, head: str | None = None) -> ConversionReport:
    """Convert the BERT folder ``src`` (config.json, weights, tokenizer files) into the GLM folder ``dst``.

    Args:
        src: a transformers BERT folder (``BertModel``, ``BertForPreTraining``, ``BertForMaskedLM``,
            ``BertForSequenceClassification`` or ``BertForTokenClassification``), with or without pooler and
            pretraining heads, weights sharded or not, in float32, float16 or bfloat16.
        dst: the GLM folder to create; must not exist or be empty unless ``overwrite``.
        overwrite: replace a ``dst`` that is a previous conversion (only after the new folder is complete); any
            other non-empty ``dst`` is refused, as is a ``dst`` that holds ``src`` or lies inside it.
        head: one of ``HEADS`` (or a BERT architecture name); default: from ``config.architectures``.

    Returns:
        What was converted, initialised and dropped, and how the tokenizer was checked; ``dst`` (absolute) is
        loadable with ``AutoModelFor*.from_pretrained`` (after ``import glm_hf``, or with ``trust_remote_code=True``)
        and ``AutoTokenizer.from_pretrained``, and its ``README.md`` says the same as the report.
    """
    src_as_given, src, dst = src, os.path.abspath(os.path.expanduser(src)), os.path.abspath(dst)
    bert_config = read_bert_config(src_as_given, src)
    config_path = os.path.join(src, "config.json")
    config = glm_config_from_bert(bert_config, config_path)
    try:
        check_weights("src", src)  # there and whole, every shard of an index
    except ValueError as err:
        raise ConversionError(str(err)) from err
    _check_not_nested(src, dst)
    _check_destination(dst, overwrite)
    head = resolve_head(bert_config, head)
    converted = convert_state_dict(load_bert_state_dict(src), config, head)

    parent = os.path.dirname(dst)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.tmp-", dir=parent)
    try:
        converted.model.save_pretrained(tmp_dir)
        report = ConversionReport(
            src=src,
            dst=dst,
            bert_architectures=", ".join(bert_config.get("architectures") or ["architectures not named"]),
            glm_class=HEADS[head][1].__name__,
            dtype=str(converted.model.dtype).removeprefix("torch."),
            initialised=converted.initialised,
            dropped=converted.dropped,
            tokenizer=copy_tokenizer(src, tmp_dir),
        )
        write_conversion_card(report, tmp_dir)
        os.chmod(tmp_dir, 0o755)  # mkdtemp creates 0700; a model folder is usually shared
        _replace(tmp_dir, dst, overwrite)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return report


def convert_bert_to_glm(src: str, dst: str, overwrite: bool = False, head: str | None = None) -> str:
    """``convert_bert_folder`` returning only the absolute path of ``dst`` (the report is logged)."""
    report = convert_bert_folder(src, dst, overwrite=overwrite, head=head)
    logger.info("%s", "\n".join(report.lines()))
    return report.dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="glm-hf convert-bert",
        description="Convert a transformers BERT folder (weights, config, tokenizer) into a GLM folder. Layers the "
        "checkpoint lacks (pooler, MLM or NSP head) are initialised and listed.",
    )
    parser.add_argument("src", help="BERT folder, e.g. a local copy of bert-base-chinese")
    parser.add_argument("dst", help="GLM folder to write (must not exist or be empty unless --overwrite)")
    parser.add_argument(
        "--head",
        choices=sorted(HEADS),
        default=None,
        help="head to convert to (default: from config.architectures of SRC); 'pretraining' adds the MLM and NSP "
        "heads a sentence encoder lacks",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a DST that is a previous conversion")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        report = convert_bert_folder(args.src, args.dst, overwrite=args.overwrite, head=args.head)
    except (ConversionError, FileExistsError) as err:
        parser.exit(2, f"glm-hf convert-bert: error: {err}\n")
    print("\n".join(report.lines()))
    print(report.dst)
    return 0


__all__ = [
    "ConversionError",
    "ConversionReport",
    "HEADS",
    "check_tokenizer",
    "convert_bert_folder",
    "convert_bert_to_glm",
    "convert_state_dict",
    "copy_tokenizer",
    "glm_config_from_bert",
    "initialise_missing",
    "load_bert_state_dict",
    "main",
]
