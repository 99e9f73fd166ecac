"""``GLMConfig``: validation names the bad field, named sizes, save/load round trip, AutoConfig."""

import json
import os

import pytest
from transformers import AutoConfig

from glm_hf import MODEL_SIZES, GLMConfig


def comparable(config) -> dict:
    """The config's fields without where it was loaded from."""
    fields = config.to_dict()
    fields.pop("_name_or_path", None)
    return fields


VALID = dict(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(hidden_size=66, num_attention_heads=4), "hidden_size"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(hidden_size=-64), "hidden_size"),
        (dict(num_hidden_layers=0), "num_hidden_layers"),
        (dict(num_attention_heads=0), "num_attention_heads"),
        (dict(intermediate_size=-1), "intermediate_size"),
        (dict(max_position_embeddings=0), "max_position_embeddings"),
        (dict(type_vocab_size=0), "type_vocab_size"),
        (dict(hidden_dropout_prob=1.0), "hidden_dropout_prob"),
        (dict(hidden_dropout_prob=-0.1), "hidden_dropout_prob"),
        (dict(attention_probs_dropout_prob=1.5), "attention_probs_dropout_prob"),
        (dict(classifier_dropout=1.0), "classifier_dropout"),
        (dict(hidden_act="swishy"), "hidden_act"),
        (dict(pad_token_id=100), "pad_token_id"),
        (dict(pad_token_id=-1), "pad_token_id"),
        (dict(initializer_range=0.0), "initializer_range"),
        (dict(layer_norm_eps=0.0), "layer_norm_eps"),
        (dict(position_embedding_init="rope"), "position_embedding_init"),
        (dict(position_embedding_type="relative_key"), "position_embedding_type"),
        (dict(position_embedding_type="rotary", hidden_size=12, num_attention_heads=4), "rotary"),
        (dict(rotary_embedding_base=1), "rotary_embedding_base"),
    ],
)
def test_invalid_values_raise_value_error_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        GLMConfig(**{**VALID, **overrides})


def test_error_messages_say_what_is_allowed():
    with pytest.raises(ValueError, match=r"divisible by num_attention_heads \(4\)"):
        GLMConfig(**{**VALID, "hidden_size": 66})
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        GLMConfig(**{**VALID, "hidden_dropout_prob": 1.0})
    with pytest.raises(ValueError, match="gelu"):  # lists the known activations
        GLMConfig(**{**VALID, "hidden_act": "swishy"})
    with pytest.raises(ValueError, match=r"vocab_size=100"):
        GLMConfig(**{**VALID, "pad_token_id": 100})


def test_edge_values_are_accepted():
    config = GLMConfig(
        **VALID, hidden_dropout_prob=0, attention_probs_dropout_prob=0.0, classifier_dropout=None, pad_token_id=None
    )
    assert config.pad_token_id is None and config.hidden_dropout_prob == 0
    assert GLMConfig(**VALID, pad_token_id=99, hidden_act="relu").hidden_act == "relu"


def test_defaults_are_bert_base_chinese():
    config = GLMConfig()
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (
        21128,
        768,
        12,
        12,
    )
    assert config.unpad_inputs is True and config.tie_word_embeddings is True
    # BERT's outputs by default: MLM logits cover every position even with labels (pretraining turns sparsity on).
    assert config.sparse_prediction is False


@pytest.mark.parametrize("size", sorted(MODEL_SIZES))
def test_from_size(size):
    config = GLMConfig.from_size(size, vocab_size=1000)
    for name, value in MODEL_SIZES[size].items():
        assert getattr(config, name) == value
    assert config.vocab_size == 1000


def test_from_size_overrides_and_errors():
    config = GLMConfig.from_size("tiny", num_hidden_layers=3, hidden_dropout_prob=0.0)
    assert config.num_hidden_layers == 3 and config.hidden_size == MODEL_SIZES["tiny"]["hidden_size"]
    with pytest.raises(ValueError, match="model_size must be one of .*'tiny'"):
        GLMConfig.from_size("huge")
    with pytest.raises(ValueError, match="num_attention_heads"):  # overrides are validated too
        GLMConfig.from_size("tiny", num_attention_heads=3)


def test_save_load_round_trip(tmp_path):
    config = GLMConfig.from_size(
        "tiny",
        vocab_size=605,
        unpad_inputs=False,
        sparse_prediction=True,
        classifier_dropout=0.2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
        problem_type="single_label_classification",
    )
    config.save_pretrained(tmp_path)
    with open(os.path.join(tmp_path, "config.json"), encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["model_type"] == "glm_hf"
    assert saved["unpad_inputs"] is False and saved["sparse_prediction"] is True

    loaded = GLMConfig.from_pretrained(tmp_path)
    assert comparable(loaded) == comparable(config)
    assert loaded.id2label == {0: "negative", 1: "positive"} and loaded.num_labels == 2


def test_auto_config(tmp_path):
    # importing glm_hf (above) registered model_type "glm_hf" with AutoConfig
    config = AutoConfig.for_model("glm_hf", **VALID)
    assert isinstance(config, GLMConfig) and config.hidden_size == 64
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is GLMConfig
    assert comparable(loaded) == comparable(config)


def test_loading_an_invalid_config_file_fails_naming_the_field(tmp_path):
    GLMConfig(**VALID).save_pretrained(tmp_path)
    path = os.path.join(tmp_path, "config.json")
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    saved["num_attention_heads"] = 5
    with open(path, "w", encoding="utf-8") as f:
        json.dump(saved, f)
    with pytest.raises(ValueError, match="num_attention_heads"):
        AutoConfig.from_pretrained(tmp_path)
