"""``glm_hf.convert_bert``: a converted BERT computes the same function as the BERT it came from.

For each BERT head a seeded random tiny BERT is saved with the tiny Chinese tokenizer, converted, reloaded with the
Auto class and run next to the BERT on a padded batch of real review sentences. GLM zeroes the hidden states at
padding positions by design (BERT computes garbage there), so states are compared at real tokens only.
Run with ``pytest -s`` to see the measured max |Δ| per head.
"""

import functools
import json
import os
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

import glm_hf
from glm_hf import cli
from glm_hf.convert_bert import ConversionError, convert_bert_folder, convert_bert_to_glm
from glm_hf.sentiment import load_sentiment_dataset

TOLERANCE = 1e-4
SENTIMENT_LABELS = {0: "negative", 1: "positive"}
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}

# head -> (BERT class, Auto class that must load the converted folder, expected GLM class, config extras)
HEAD_CASES = {
    "model": (BertModel, AutoModel, glm_hf.GLMModel, {}),
    "pretraining": (BertForPreTraining, AutoModelForPreTraining, glm_hf.GLMForPreTraining, {}),
    "masked-lm": (BertForMaskedLM, AutoModelForMaskedLM, glm_hf.GLMForMaskedLM, {}),
    "sequence-classification": (
        BertForSequenceClassification,
        AutoModelForSequenceClassification,
        glm_hf.GLMForSequenceClassification,
        dict(id2label=SENTIMENT_LABELS, label2id={v: k for k, v in SENTIMENT_LABELS.items()}, classifier_dropout=0.0),
    ),
    "token-classification": (
        BertForTokenClassification,
        AutoModelForTokenClassification,
        glm_hf.GLMForTokenClassification,
        dict(id2label=NER_LABELS, label2id={v: k for k, v in NER_LABELS.items()}),
    ),
}
MEASURED_MAX_DELTA: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module")
def review_texts():
    """Eight real validation reviews of different lengths (starting with a Chinese character)."""
    texts = load_sentiment_dataset()["validation"]["text"]
    texts = [text for text in texts if 8 <= len(text) <= 60 and "\u4e00" <= text[0] <= "\u9fff"]
    return texts[::40][:8]


def make_bert(bert_class, tokenizer, seed: int = 0, **config_overrides):
    """A seeded random tiny BERT whose weights are all perturbed away from their init values.

    The perturbation makes every weight matter (LayerNorm scales are not all 1, biases not all 0), so a weight
    that the conversion mapped wrongly or dropped shows up in the outputs.
    """
    config_overrides = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id, **config_overrides}
    return perturbed_bert(bert_class, tiny_bert_config(**config_overrides), seed)


def tiny_bert_config(**overrides) -> BertConfig:
    return BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **overrides,
    )


def perturbed_bert(bert_class, config: BertConfig, seed: int = 0):
    torch.manual_seed(seed)
    model = bert_class(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model.eval()


def save_bert_folder(model, tokenizer, folder) -> str:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def output_deltas(bert_output, glm_output, attention_mask) -> dict[str, float]:
    """max |BERT - GLM| per output (all hidden states together), at real tokens for per-token tensors."""
    real = attention_mask.bool()
    deltas = {}
    for name in ("pooler_output", "prediction_logits", "seq_relationship_logits", "logits"):
        if getattr(bert_output, name, None) is None:
            continue
        bert_tensor, glm_tensor = getattr(bert_output, name), getattr(glm_output, name)
        assert bert_tensor.shape == glm_tensor.shape, name
        if bert_tensor.dim() == 3:
            bert_tensor, glm_tensor = bert_tensor[real], glm_tensor[real]
        deltas[name] = (bert_tensor - glm_tensor).abs().max().item()
    assert len(bert_output.hidden_states) == len(glm_output.hidden_states) == 3
    deltas["hidden_states"] = max(
        (bert_states[real] - glm_states[real]).abs().max().item()
        for bert_states, glm_states in zip(bert_output.hidden_states, glm_output.hidden_states)
    )
    return deltas


@pytest.mark.parametrize("head", list(HEAD_CASES))
def test_converted_bert_matches_bert(head, tiny_tokenizer, review_texts, tmp_path):
    bert_class, auto_class, glm_class, config_extras = HEAD_CASES[head]
    bert = make_bert(bert_class, tiny_tokenizer, seed=list(HEAD_CASES).index(head), **config_extras)
    src = save_bert_folder(bert, tiny_tokenizer, tmp_path / "bert")

    dst = convert_bert_to_glm(src, str(tmp_path / "glm"))  # head read from config.architectures

    assert dst == str(tmp_path / "glm")
    files = set(os.listdir(dst))
    assert {"config.json", "model.safetensors", "modeling_glm.py", "configuration_glm.py"} <= files
    assert {"tokenizer.json", "tokenizer_config.json"} <= files
    assert not any(name.endswith(".bin") for name in files)
    glm = auto_class.from_pretrained(dst).eval()
    assert type(glm) is glm_class
    assert glm.config.model_type == "glm_hf"
    assert glm.config.architectures == [glm_class.__name__]
    assert glm.config.id2label == bert.config.id2label
    assert glm.config.label2id == bert.config.label2id
    assert glm.config.pad_token_id == tiny_tokenizer.pad_token_id
    assert glm.config.num_attention_heads == 4 and glm.config.intermediate_size == 64
    if hasattr(glm, "cls"):
        assert glm.cls.predictions.decoder.weight is glm.glm.embeddings.word_embeddings.weight

    # sentence pairs for pretraining, so that token type embeddings and NSP are exercised
    texts, text_pairs = (review_texts[0::2], review_texts[1::2]) if head == "pretraining" else (review_texts, None)
    batch = AutoTokenizer.from_pretrained(dst)(texts, text_pairs, padding=True, return_tensors="pt")
    expected_ids = tiny_tokenizer(texts, text_pairs, padding=True, return_tensors="pt")["input_ids"]
    assert torch.equal(batch["input_ids"], expected_ids), "the tokenizer files must be copied unchanged"
    assert not bool(batch["attention_mask"].all()), "the batch must be padded"
    assert (batch["input_ids"] == tiny_tokenizer.unk_token_id).float().mean() < 0.2, "texts must be in the vocabulary"

    with torch.no_grad():
        bert_output = bert(**batch, output_hidden_states=True)
        glm_output = glm(**batch, output_hidden_states=True)
    deltas = output_deltas(bert_output, glm_output, batch["attention_mask"])
    MEASURED_MAX_DELTA[head] = deltas
    shown = ", ".join(f"{name} {delta:.2e}" for name, delta in deltas.items())
    print(f"\nconvert-bert {bert_class.__name__} -> {glm_class.__name__}: max |Δ| (fp32) {shown}")
    assert max(deltas.values()) <= TOLERANCE, deltas


def test_legacy_pytorch_bin_checkpoint(tiny_tokenizer, tiny_tokenizer_dir, review_texts, tmp_path):
    """bert-base-chinese style: pytorch_model.bin, LayerNorm gamma/beta, position_ids buffer, the MLM bias and the
    tied decoder stored twice, an NSP head although config.architectures says BertForMaskedLM."""
    bert = make_bert(BertForPreTraining, tiny_tokenizer, seed=1)
    state_dict = {}
    for key, tensor in bert.state_dict().items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        state_dict[key] = tensor.clone()
    state_dict["bert.embeddings.position_ids"] = torch.arange(128).unsqueeze(0)
    state_dict["cls.predictions.decoder.weight"] = bert.bert.embeddings.word_embeddings.weight.detach().clone()
    state_dict["cls.predictions.decoder.bias"] = bert.cls.predictions.bias.detach().clone()
    src = tmp_path / "bert-base-chinese-like"
    src.mkdir()
    bert.config.architectures = ["BertForMaskedLM"]
    bert.config.save_pretrained(src)
    torch.save(state_dict, src / "pytorch_model.bin")
    # The tokenizer as old folders have it: vocab.txt and a tokenizer_config.json that names no class.
    shutil.copy(os.path.join(tiny_tokenizer_dir, "vocab.txt"), src / "vocab.txt")
    (src / "tokenizer_config.json").write_text('{"do_lower_case": false}')

    dst = convert_bert_to_glm(str(src), str(tmp_path / "glm"))
    glm = AutoModelForMaskedLM.from_pretrained(dst).eval()
    batch = AutoTokenizer.from_pretrained(dst)(review_texts, padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], tiny_tokenizer(review_texts, padding=True, return_tensors="pt")["input_ids"])
    with torch.no_grad():
        expected = bert(**batch).prediction_logits
        logits = glm(**batch).logits
    real = batch["attention_mask"].bool()
    delta = (expected[real] - logits[real]).abs().max().item()
    print(f"\nconvert-bert legacy pytorch_model.bin -> GLMForMaskedLM: max |Δ| = {delta:.3e}")
    assert delta <= TOLERANCE

    # Converting the same folder with --head pretraining keeps the NSP layer too.
    pretraining = glm_hf.GLMForPreTraining.from_pretrained(
        convert_bert_to_glm(str(src), str(tmp_path / "glm-pt"), head="pretraining")
    ).eval()
    with torch.no_grad():
        nsp_delta = (bert(**batch).seq_relationship_logits - pretraining(**batch).seq_relationship_logits).abs().max()
    assert nsp_delta <= TOLERANCE


def test_sharded_half_precision_checkpoint(tiny_tokenizer, review_texts, tmp_path):
    """Sharded safetensors are read through their index, and the weights keep their dtype."""
    bert = make_bert(BertForTokenClassification, tiny_tokenizer, **HEAD_CASES["token-classification"][3]).half()
    bert.save_pretrained(tmp_path / "bert", max_shard_size="40KB")
    tiny_tokenizer.save_pretrained(tmp_path / "bert")
    assert "model.safetensors.index.json" in os.listdir(tmp_path / "bert")

    dst = convert_bert_to_glm(str(tmp_path / "bert"), str(tmp_path / "glm"))
    glm = AutoModelForTokenClassification.from_pretrained(dst, dtype="auto").eval()
    assert glm.dtype == torch.float16
    with safe_open(os.path.join(dst, "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(key).get_dtype() for key in weights.keys()} == {"F16"}
    batch = tiny_tokenizer(review_texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected, logits = bert.float()(**batch).logits, glm.float()(**batch).logits
    real = batch["attention_mask"].bool()
    assert (expected[real] - logits[real]).abs().max() <= TOLERANCE


def _saved_seq_classifier(tiny_tokenizer, folder) -> str:
    bert = make_bert(BertForSequenceClassification, tiny_tokenizer, **HEAD_CASES["sequence-classification"][3])
    return save_bert_folder(bert, tiny_tokenizer, folder)


def _rewrite_weights(folder: str, edit) -> None:
    path = os.path.join(folder, "model.safetensors")
    state_dict = load_file(path)
    edit(state_dict)
    save_file(state_dict, path, metadata={"format": "pt"})


def test_unknown_weights_are_listed_and_nothing_written(tiny_tokenizer, tmp_path):
    src = _saved_seq_classifier(tiny_tokenizer, tmp_path / "bert")

    def add_unknown(state_dict):
        state_dict["bert.encoder.layer.0.attention.self.distance_embedding.weight"] = torch.zeros(3, 8)
        state_dict["adapter.down.weight"] = torch.zeros(2, 2)

    _rewrite_weights(src, add_unknown)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConversionError) as error:
        convert_bert_to_glm(src, str(out / "glm"))
    message = str(error.value)
    assert "glm.encoder.layer.0.attention.self.distance_embedding.weight" in message
    assert "adapter.down.weight" in message
    assert "does not know" in message
    assert os.listdir(out) == [], "neither DST nor a temporary folder may be left behind"


def test_missing_and_mismatched_weights_are_listed_and_nothing_written(tiny_tokenizer, tmp_path):
    src = _saved_seq_classifier(tiny_tokenizer, tmp_path / "bert")

    def drop_and_reshape(state_dict):
        del state_dict["bert.encoder.layer.1.output.dense.weight"]
        del state_dict["classifier.bias"]
        state_dict["bert.pooler.dense.bias"] = torch.zeros(7)

    _rewrite_weights(src, drop_and_reshape)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConversionError) as error:
        convert_bert_to_glm(src, str(out / "glm"))
    message = str(error.value)
    assert "glm.encoder.layer.1.output.dense.weight" in message
    assert "classifier.bias" in message
    assert "glm.pooler.dense.bias: checkpoint (7,) vs GLM (32,)" in message
    assert os.listdir(out) == []


def test_head_the_checkpoint_cannot_fill_is_refused(tiny_tokenizer, tmp_path):
    """A BertForMaskedLM has neither pooler nor classifier: a sequence classifier cannot be converted from it."""
    src = save_bert_folder(make_bert(BertForMaskedLM, tiny_tokenizer), tiny_tokenizer, tmp_path / "bert")
    with pytest.raises(ConversionError) as error:
        convert_bert_to_glm(src, str(tmp_path / "glm"), head="sequence-classification")
    for key in ("glm.pooler.dense.weight", "glm.pooler.dense.bias", "classifier.weight", "classifier.bias"):
        assert key in str(error.value)
    assert not (tmp_path / "glm").exists()
    with pytest.raises(ConversionError, match="head must be one of"):
        convert_bert_to_glm(src, str(tmp_path / "glm"), head="causal-lm")


def test_bare_encoder_from_a_head_checkpoint_and_back(tiny_tokenizer, review_texts, tmp_path):
    """``--head model`` strips the heads; a BertModel converts to the encoder of any head that needs no new layer."""
    bert = make_bert(BertForSequenceClassification, tiny_tokenizer, **HEAD_CASES["sequence-classification"][3])
    src = save_bert_folder(bert, tiny_tokenizer, tmp_path / "bert")
    glm = AutoModel.from_pretrained(convert_bert_to_glm(src, str(tmp_path / "glm"), head="model")).eval()
    assert type(glm) is glm_hf.GLMModel
    batch = tiny_tokenizer(review_texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        delta = (bert.bert(**batch).pooler_output - glm(**batch).pooler_output).abs().max()
    assert delta <= TOLERANCE


def test_existing_destination_needs_overwrite(tiny_tokenizer, tmp_path):
    src = _saved_seq_classifier(tiny_tokenizer, tmp_path / "bert")
    dst = tmp_path / "glm"
    dst.mkdir()
    (dst / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="is not a previous convert-bert output"):
        convert_bert_to_glm(src, str(dst))
    assert os.listdir(dst) == ["keep.txt"]
    # --overwrite replaces only a previous conversion, never a folder of the user's.
    with pytest.raises(FileExistsError, match="is not a previous convert-bert output"):
        convert_bert_to_glm(src, str(dst), overwrite=True)
    assert os.listdir(dst) == ["keep.txt"]

    previous = tmp_path / "previous"
    convert_bert_to_glm(src, str(previous), head="model")
    (previous / "notes.txt").write_text("kept with the old conversion, removed with it")
    with pytest.raises(FileExistsError, match="holds a previous conversion; pass .*--overwrite"):
        convert_bert_to_glm(src, str(previous))
    convert_bert_to_glm(src, str(previous), overwrite=True)
    assert "notes.txt" not in os.listdir(previous) and "model.safetensors" in os.listdir(previous)
    assert sorted(os.listdir(tmp_path)) == ["bert", "glm", "previous"], "temporary folders must be cleaned up"

    empty = tmp_path / "empty"
    empty.mkdir()
    convert_bert_to_glm(src, str(empty))  # an empty folder is not "existing data"
    assert "config.json" in os.listdir(empty)


def test_overwrite_refuses_a_glm_folder_this_tool_did_not_write(tiny_tokenizer, tmp_path):
    """A GLM model saved by another recipe (its config.json says glm_hf, but no conversion card) is the user's."""
    src = _saved_seq_classifier(tiny_tokenizer, tmp_path / "bert")
    fine_tuned = tmp_path / "fine_tuned"
    glm_hf.GLMModel(glm_hf.GLMConfig.from_size("tiny", vocab_size=len(tiny_tokenizer))).save_pretrained(fine_tuned)
    (fine_tuned / "README.md").write_text("---\ntags:\n- glm_hf\n---\n# my model\n")
    before = sorted(os.listdir(fine_tuned))
    with pytest.raises(FileExistsError, match="is not a previous convert-bert output"):
        convert_bert_to_glm(src, str(fine_tuned), overwrite=True)
    assert sorted(os.listdir(fine_tuned)) == before


@pytest.mark.parametrize(
    "dst_of", [lambda src: src, lambda src: src.parent, lambda src: src / "glm"], ids=["same", "parent", "inside"]
)
def test_destination_must_not_hold_or_lie_in_the_source(tiny_tokenizer, tmp_path, dst_of):
    """``convert-bert models/bert models --overwrite`` would delete the source with the folder that holds it."""
    src = tmp_path / "models" / "bert"
    _saved_seq_classifier(tiny_tokenizer, src)
    before = sorted(os.listdir(src))
    with pytest.raises(ConversionError, match="same folder or one holds the other"):
        convert_bert_to_glm(str(src), str(dst_of(src)), overwrite=True)
    assert sorted(os.listdir(src)) == before


def test_cli(tiny_tokenizer, tmp_path, capsys):
    src = _saved_seq_classifier(tiny_tokenizer, tmp_path / "bert")
    dst = str(tmp_path / "glm")

    assert cli.main(["convert-bert", src, dst]) == 0
    assert capsys.readouterr().out.strip().endswith(dst)
    model = AutoModelForSequenceClassification.from_pretrained(dst)
    assert model.config.id2label == SENTIMENT_LABELS

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["convert-bert", src, dst])
    assert exit_info.value.code == 2
    assert "--overwrite" in capsys.readouterr().err

    assert cli.main(["convert-bert", src, dst, "--overwrite", "--head", "model"]) == 0
    assert type(AutoModel.from_pretrained(dst)) is glm_hf.GLMModel

    shutil.rmtree(dst)
    _rewrite_weights(src, lambda state_dict: state_dict.pop("bert.embeddings.LayerNorm.weight"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["convert-bert", src, dst])
    assert exit_info.value.code == 2
    assert "glm.embeddings.LayerNorm.weight" in capsys.readouterr().err
    assert not os.path.exists(dst)


# ------------------------------------------------------------------ checkpoints as they are found in the wild
def sentence_encoder(tokenizer, seed: int = 3, **config_overrides):
    """A BertModel saved without pooler, as sentence encoders are (no pooler, no MLM or NSP head)."""
    return make_bert(functools.partial(BertModel, add_pooling_layer=False), tokenizer, seed=seed, **config_overrides)


def encoder_delta(src: str, glm_encoder, batch) -> float:
    """max |Δ| of the last hidden state at real tokens: GLM vs transformers' BertModel loaded from ``src`` (which
    initialises a missing pooler itself, and which runs in float32 here, as GLM does)."""
    bert = BertModel.from_pretrained(src).float().eval()
    with torch.no_grad():
        expected = bert(**batch).last_hidden_state
        actual = glm_encoder.float()(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    return (expected[real] - actual[real]).abs().max().item()


POOLER = ["glm.pooler.dense.bias", "glm.pooler.dense.weight"]
MLM_HEAD = [
    "cls.predictions.decoder.bias",
    "cls.predictions.transform.LayerNorm.bias",
    "cls.predictions.transform.LayerNorm.weight",
    "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.dense.weight",
]
NSP_HEAD = ["cls.seq_relationship.bias", "cls.seq_relationship.weight"]
# case -> (--head, whether the BertModel has a pooler, Auto class of the converted folder, the weights it lacks)
WILD_CASES = {
    "default": (None, False, AutoModel, [key.removeprefix("glm.") for key in POOLER]),
    "masked-lm": ("masked-lm", False, AutoModelForMaskedLM, MLM_HEAD),
    "pretraining": ("pretraining", False, AutoModelForPreTraining, POOLER + MLM_HEAD + NSP_HEAD),
    "pretraining-with-pooler": ("pretraining", True, AutoModelForPreTraining, MLM_HEAD + NSP_HEAD),
}


@pytest.mark.parametrize("case", list(WILD_CASES))
def test_checkpoint_without_pooler_or_heads(case, tiny_tokenizer, review_texts, tmp_path, capsys):
    """The missing layers are initialised (seeded, as BERT does), listed in the output and the card; the encoder is
    the checkpoint's."""
    head, has_pooler, auto_class, lacking = WILD_CASES[case]
    bert = make_bert(BertModel, tiny_tokenizer) if has_pooler else sentence_encoder(tiny_tokenizer)
    src = save_bert_folder(bert, tiny_tokenizer, tmp_path / "encoder")
    assert has_pooler == any("pooler" in key for key in load_file(os.path.join(src, "model.safetensors")))
    dst = str(tmp_path / "glm")

    assert cli.main(["convert-bert", src, dst] + (["--head", head] if head else [])) == 0
    output = capsys.readouterr().out
    card = open(os.path.join(dst, "README.md"), encoding="utf-8").read()
    for key in lacking:
        assert f"  - {key}: " in output and f"| `{key}` |" in card
    assert output.count(": normal(0, 0.02)") + output.count(": 0\n") + output.count(": 1\n") == len(lacking)
    assert "weights: float32" in output and "float32" in card
    glm = auto_class.from_pretrained(dst).eval()
    if head is not None:
        assert "cls.predictions.decoder.weight: tied to glm.embeddings.word_embeddings.weight" in output
        assert glm.cls.predictions.decoder.weight is glm.glm.embeddings.word_embeddings.weight
    modules = dict(glm.named_parameters())
    for key in lacking:  # BERT's init: LayerNorm 1/0, biases 0, weights N(0, 0.02)
        value = modules[key]
        if "LayerNorm.weight" in key:
            assert bool((value == 1).all()), key
        elif key.endswith("bias"):
            assert bool((value == 0).all()), key
        else:
            assert 0.01 < value.std().item() < 0.03, key

    batch = tiny_tokenizer(review_texts, padding=True, return_tensors="pt")
    delta = encoder_delta(src, glm if head is None else glm.glm, batch)
    if has_pooler:
        with torch.no_grad():
            assert (bert(**batch).pooler_output - glm.glm(**batch).pooler_output).abs().max() <= TOLERANCE
    print(f"\nconvert-bert {case} -> {type(glm).__name__}: encoder max |Δ| = {delta:.3e}")
    assert delta <= TOLERANCE

    again = load_file(convert_bert_to_glm(src, str(tmp_path / "again"), head=head) + "/model.safetensors")
    first = load_file(os.path.join(dst, "model.safetensors"))
    assert first.keys() == again.keys() and all(torch.equal(first[key], again[key]) for key in first), (
        "converting twice must give the same weights (seeded initialisation)"
    )


def test_checkpoint_with_everything_says_nothing_was_initialised(tiny_tokenizer, tmp_path, capsys):
    src = save_bert_folder(make_bert(BertForPreTraining, tiny_tokenizer), tiny_tokenizer, tmp_path / "bert")
    assert cli.main(["convert-bert", src, str(tmp_path / "glm"), "--head", "masked-lm"]) == 0
    output = capsys.readouterr().out
    assert "initialised: none" in output
    assert "dropped, weights of other BERT heads (4):" in output and "  - glm.pooler.dense.weight" in output
    card = (tmp_path / "glm" / "README.md").read_text(encoding="utf-8")
    assert "None: every weight comes from the checkpoint" in card and "`cls.seq_relationship.weight`" in card


# Texts the tokenizers are trained on, and those (Chinese, English, mixed) they are checked on, which the probes of
# convert_bert do not include.
TRAINING_TEXTS = [
    "这家酒店的服务很好，房间也很干净。",
    "质量太差了，不推荐购买。",
    "物流很慢，包装也破了。",
    "The hotel was great and the room was clean.",
    "The staff were friendly, but the WiFi was slow.",
    "价格 OK，服务 good，下次还会再来！",
]
CHECK_TEXTS = [
    "房间很干净，服务也好。",
    "The room was clean; the price was great!",
    "酒店 WiFi 很慢, but the staff were friendly 😊",
]
CHECK_PAIR = ("服务好吗？", "Yes, the service was good.")


def build_tokenizer(kind: str):
    """A `tokenizers` tokenizer of ``kind`` (WordPiece, Unigram as SentencePiece builds it, byte-level BPE) with a
    BERT-style template."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    bert_specials, xlmr_specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], ["<pad>", "<unk>", "<s>", "</s>",
                                                                                   "<mask>"]
    if kind == "wordpiece":
        specials = bert_specials
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)  # BertTokenizer's default lowercases
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    elif kind == "unigram":
        specials = xlmr_specials
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=150, special_tokens=specials, unk_token="<unk>")
    else:
        specials = xlmr_specials
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    tokenizer.train_from_iterator((TRAINING_TEXTS + CHECK_TEXTS) * 20, trainer)
    cls, sep = specials[2], specials[3]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )
    return tokenizer


# case -> (tokenizers model, tokenizer_config.json of the source or None, whether the copy runs tokenizer.json as it
# is because AutoTokenizer reads the source as BertTokenizer, wrongly)
TOKENIZER_CASES = {
    "wordpiece-tokenizer.json-only": ("wordpiece", None, True),
    "unigram-tokenizer.json-only": ("unigram", None, True),
    "bpe-tokenizer.json-only": ("bpe", None, True),
    "unigram-BertTokenizer": ("unigram", {"tokenizer_class": "BertTokenizer"}, True),
    "unigram-XLMRobertaTokenizer": ("unigram", {"tokenizer_class": "XLMRobertaTokenizer"}, False),
    "bpe-PreTrainedTokenizerFast": ("bpe", {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>"}, False),
}


def encode_all(encode) -> list[list[int]] | None:
    """``encode`` on the check texts and pair; None when it fails (a source whose AutoTokenizer breaks)."""
    try:
        return [encode(text) for text in CHECK_TEXTS] + [encode(*CHECK_PAIR)]
    except Exception:  # noqa: BLE001
        return None


@pytest.mark.parametrize("case", list(TOKENIZER_CASES))
def test_tokenizer_of_any_kind_encodes_as_the_source(case, tmp_path):
    """A folder that names its tokenizer class encodes alike through AutoTokenizer on both folders; a bare
    tokenizer.json (which AutoTokenizer would read as BertTokenizer, wrongly) encodes as that file says."""
    from tokenizers import Tokenizer

    kind, tokenizer_config, verbatim = TOKENIZER_CASES[case]
    tokenizer = build_tokenizer(kind)
    pad_token, unk_token = ("[PAD]", "[UNK]") if kind == "wordpiece" else ("<pad>", "<unk>")
    bert = perturbed_bert(
        functools.partial(BertModel, add_pooling_layer=False),
        tiny_bert_config(vocab_size=tokenizer.get_vocab_size(), pad_token_id=tokenizer.token_to_id(pad_token)),
    )
    src = tmp_path / "bert"
    bert.save_pretrained(src)
    tokenizer.save(str(src / "tokenizer.json"))
    if tokenizer_config is not None:
        (src / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    assert sorted(os.listdir(src)) == sorted(["config.json", "model.safetensors", "tokenizer.json"]
                                             + (["tokenizer_config.json"] if tokenizer_config else []))

    report = convert_bert_folder(str(src), str(tmp_path / "glm"))

    converted = AutoTokenizer.from_pretrained(report.dst)
    ids = encode_all(lambda *text: converted(*text)["input_ids"])
    assert sum(ids, []).count(tokenizer.token_to_id(unk_token)) <= 0.1 * len(sum(ids, []))
    try:
        source = AutoTokenizer.from_pretrained(src)
        source_ids = encode_all(lambda *text: source(*text)["input_ids"])
    except Exception:  # noqa: BLE001
        source = source_ids = None
    if not verbatim:  # the folder's own class: AutoTokenizer agrees on both folders
        assert type(converted) is type(source)
        assert ids == source_ids
        assert "AutoTokenizer on the source" in report.tokenizer
    else:  # BertTokenizer (named, or what model_type bert maps to) cannot run this tokenizer.json: run it verbatim
        file_ids = encode_all(lambda *text: Tokenizer.from_file(str(src / "tokenizer.json")).encode(*text).ids)
        assert ids == file_ids, "the converted folder must encode as the source's tokenizer.json"
        assert source_ids != ids, "the case must exercise AutoTokenizer reading the source wrongly"
        assert "tokenizer.json" in report.tokenizer and "PreTrainedTokenizerFast" in report.tokenizer
        mask_token = "[MASK]" if kind == "wordpiece" else "<mask>"
        assert (converted.pad_token, converted.unk_token, converted.mask_token) == (pad_token, unk_token, mask_token)
    assert report.tokenizer in (tmp_path / "glm" / "README.md").read_text(encoding="utf-8")

    batch = converted(CHECK_TEXTS, padding=True, return_tensors="pt")
    delta = encoder_delta(str(src), AutoModel.from_pretrained(report.dst).eval(), batch)
    print(f"\nconvert-bert {case}: encoder max |Δ| = {delta:.3e}")
    assert delta <= TOLERANCE


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sharded_half_precision_values_are_exact(dtype, tiny_tokenizer, review_texts, tmp_path, capsys):
    """Every tensor of a sharded float16/bfloat16 checkpoint lands bit for bit in the converted folder, and the output
    says the dtype; the layers it lacks are initialised in that dtype."""
    bert = sentence_encoder(tiny_tokenizer).to(dtype)
    bert.save_pretrained(tmp_path / "bert", max_shard_size="40KB")
    tiny_tokenizer.save_pretrained(tmp_path / "bert")
    with open(tmp_path / "bert" / "model.safetensors.index.json", encoding="utf-8") as f:
        assert len(set(json.load(f)["weight_map"].values())) > 1, "the checkpoint must be sharded"
    dst = str(tmp_path / "glm")

    assert cli.main(["convert-bert", str(tmp_path / "bert"), dst, "--head", "pretraining"]) == 0
    dtype_name = str(dtype).removeprefix("torch.")
    assert f"weights: {dtype_name}, the checkpoint's dtype" in capsys.readouterr().out
    converted = load_file(os.path.join(dst, "model.safetensors"))
    assert {tensor.dtype for tensor in converted.values()} == {dtype}
    for key, tensor in bert.state_dict().items():
        assert torch.equal(converted[f"glm.{key}"], tensor), key
    assert "glm.pooler.dense.weight" in converted and "cls.seq_relationship.weight" in converted

    batch = tiny_tokenizer(review_texts, padding=True, return_tensors="pt")
    glm = AutoModelForPreTraining.from_pretrained(dst, dtype="auto").eval()
    assert glm.dtype == dtype
    assert encoder_delta(str(tmp_path / "bert"), glm.glm, batch) <= TOLERANCE


def _gpt2_folder(folder) -> None:
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=8)).save_pretrained(folder)


def _glm_folder(folder, tiny_config) -> None:
    glm_hf.GLMForMaskedLM(tiny_config).save_pretrained(folder)


def _weights_only(folder) -> None:
    os.makedirs(folder)
    save_file({"embeddings.word_embeddings.weight": torch.zeros(2, 2)}, os.path.join(folder, "model.safetensors"))


def _random_files(folder) -> None:
    os.makedirs(folder)
    for name in ("notes.txt", "data.csv"):
        (folder / name).write_text("x")


# a folder that is not a BERT checkpoint -> what the error says it is
NOT_BERT = {
    "gpt2": (_gpt2_folder, "got 'gpt2': not a BERT config but a gpt2 checkpoint (GPT2Config)"),
    "glm": (_glm_folder, "got 'glm_hf': not a BERT config but a GLM folder already"),
    "weights-only": (_weights_only, "no config.json, so not a model checkpoint but weights without the config.json"),
    "random": (_random_files, "no config.json, so not a model checkpoint but a folder of 2 entries (data.csv, "),
    "empty": (os.makedirs, "no config.json, so not a model checkpoint but an empty folder"),
}


@pytest.mark.parametrize("case", list(NOT_BERT))
def test_a_folder_that_is_not_bert_is_named_in_one_sentence(case, tiny_config, tmp_path, capsys):
    make, what = NOT_BERT[case]
    folder = tmp_path / case
    make(folder, tiny_config) if make is _glm_folder else make(folder)
    before = sorted(os.listdir(folder))
    capsys.readouterr()  # progress bars of saving the folder
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["convert-bert", str(folder), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert what in error
    assert "convert-bert accepts a transformers BERT folder: config.json with model_type 'bert'" in error
    assert error.count("\n") == 1, "one sentence, on one line"
    assert sorted(os.listdir(folder)) == before and not (tmp_path / "out").exists()


def test_a_tokenizer_folder_is_named(tiny_tokenizer_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["convert-bert", tiny_tokenizer_dir, str(tmp_path / "out")])
    assert "not a model checkpoint but a tokenizer folder, without a model" in capsys.readouterr().err


def test_print_measured_deltas():
    """Summary for ``pytest -s`` (runs last in this module)."""
    for head, deltas in MEASURED_MAX_DELTA.items():
        print(f"convert-bert {head:<24} max |Δ| = {max(deltas.values()):.3e}")


@pytest.mark.parametrize("objective", ["mlm", "rtd"])
def test_a_converted_sentence_encoder_continues_pretraining_with_its_own_vocabulary(
    objective, tiny_tokenizer, review_texts, tmp_path
):
    """Domain-adaptive pretraining from a checkpoint with no MLM head: the encoder and vocabulary are the
    checkpoint's, the new MLM head is tied to its embeddings, and the objectives of the pretraining recipe apply."""
    from glm_hf.pretraining import DataTrainingArguments, ModelArguments, build_model, main

    src = save_bert_folder(sentence_encoder(tiny_tokenizer), tiny_tokenizer, tmp_path / "encoder")
    dst = convert_bert_to_glm(src, str(tmp_path / "glm"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(load_sentiment_dataset()["train"]["text"][:300]) + "\n", encoding="utf-8")

    overrides = ["--config_overrides", "generator_num_hidden_layers=1"] if objective == "rtd" else []
    model = build_model(ModelArguments(model_name_or_path=dst, config_overrides=(overrides or [None])[-1]),
                        DataTrainingArguments(train_file=str(corpus), objective=objective), tiny_tokenizer)
    assert model.config.vocab_size == len(tiny_tokenizer)
    assert encoder_delta(src, model.glm.eval(), tiny_tokenizer(review_texts, padding=True, return_tensors="pt")) <= (
        TOLERANCE
    )
    decoder = model.get_output_embeddings()
    if objective == "mlm":
        assert decoder.weight is model.glm.embeddings.word_embeddings.weight
    else:  # the generator's decoder and embeddings are the discriminator's
        assert decoder.weight is model.glm.embeddings.word_embeddings.weight
        assert model.generator.embeddings.word_embeddings.weight is model.glm.embeddings.word_embeddings.weight

    output_dir = tmp_path / "adapted"
    metrics = main(["--model_name_or_path", dst, "--train_file", str(corpus), "--objective", objective,
                    "--do_train", "--do_eval", "--max_steps", "3", "--per_device_train_batch_size", "4",
                    "--max_seq_length", "32", "--max_eval_samples", "8", "--output_dir", str(output_dir),
                    "--report_to", "none", "--save_strategy", "no", *overrides])
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
    adapted = AutoModelForPreTraining.from_pretrained(str(output_dir))
    assert adapted.config.vocab_size == len(tiny_tokenizer) and adapted.config.pretraining_objective == objective
    assert AutoTokenizer.from_pretrained(str(output_dir)).get_vocab() == tiny_tokenizer.get_vocab()
