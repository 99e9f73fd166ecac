"""The GLM model family: shapes, attention implementations, unpadding, sparse MLM, losses, saving, Trainer.

Everything runs on the tiny config (hidden 64, 2 layers) with weights perturbed away from their init values, so that
every weight matters. Run with ``pytest -s`` to see the measured eager-vs-sdpa differences.
"""

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from transformers.testing_utils import CaptureLogger

from glm_hf import (
    GLMConfig,
    GLMForMaskedLM,
    GLMForPreTraining,
    GLMForSequenceClassification,
    GLMForTokenClassification,
    GLMModel,
)
from glm_hf.modeling_glm import AUTO_MAP

HEADS = [GLMModel, GLMForPreTraining, GLMForMaskedLM, GLMForSequenceClassification, GLMForTokenClassification]
MLM_HEADS = [GLMForPreTraining, GLMForMaskedLM]
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
TEXTS = [
    "这本书写得非常好，我很喜欢。",
    "质量太差了。",
    "房间干净，服务周到，下次还会再来。",
    "物流很慢，包装也破了，客服也不理人。",
]
TEXT_PAIRS = ["推荐大家购买。", "不会再买。", "早餐也不错。", "差评。"]
SDPA_TOLERANCE = 1e-5
MEASURED_EAGER_VS_SDPA: dict[str, float] = {}


def make_model(model_class, config: GLMConfig, seed: int = 0, **overrides):
    """A seeded model in eval mode whose weights are all perturbed (LayerNorm scales != 1, biases != 0)."""
    config = copy.deepcopy(config)
    if model_class is GLMForTokenClassification:
        config.id2label = dict(NER_LABELS)
        config.label2id = {label: i for i, label in NER_LABELS.items()}
    for name, value in overrides.items():
        setattr(config, name, value)
    torch.manual_seed(seed)
    model = model_class(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model.eval()


@pytest.fixture
def batch(tiny_tokenizer):
    """A right-padded batch of sentence pairs (token types 0 and 1), with real-token mask ``real``."""
    encoded = tiny_tokenizer(TEXTS, TEXT_PAIRS, padding=True, return_tensors="pt")
    assert not bool(encoded["attention_mask"].all()) and int(encoded["token_type_ids"].max()) == 1
    return dict(encoded)


def real_positions(batch) -> torch.Tensor:
    return batch["attention_mask"].bool()


def outputs_of(output) -> dict[str, torch.Tensor]:
    """The tensors of a model output by name (hidden_states flattened to hidden_states.N)."""
    tensors = {}
    for name, value in output.items():
        if isinstance(value, tuple):
            tensors.update({f"{name}.{i}": t for i, t in enumerate(value)})
        elif value is not None:
            tensors[name] = value
    return tensors


def max_delta_at_real_tokens(first, second, real: torch.Tensor) -> float:
    first, second = outputs_of(first), outputs_of(second)
    assert first.keys() == second.keys()
    deltas = []
    for name, tensor in first.items():
        other = second[name]
        assert tensor.shape == other.shape, name
        if tensor.dim() >= 2 and tensor.shape[:2] == real.shape:
            tensor, other = tensor[real], other[real]
        deltas.append((tensor - other).abs().max().item())
    return max(deltas)


def mlm_labels(batch, every: int = 3) -> torch.Tensor:
    """MLM targets on every ``every``-th real token (not [CLS]/[SEP]), -100 elsewhere."""
    labels = torch.full_like(batch["input_ids"], -100)
    selected = real_positions(batch).clone()
    selected[:, 0] = False
    flat = selected.view(-1).nonzero().flatten()[::every]
    labels.view(-1)[flat] = batch["input_ids"].view(-1)[flat]
    return labels


# --- shapes -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", HEADS, ids=lambda c: c.__name__)
def test_output_shapes(model_class, tiny_config, batch):
    model = make_model(model_class, tiny_config)
    batch_size, seq_len = batch["input_ids"].shape
    hidden, vocab = tiny_config.hidden_size, tiny_config.vocab_size
    with torch.no_grad():
        output = model(**batch)
    expected = {
        GLMModel: {"last_hidden_state": (batch_size, seq_len, hidden), "pooler_output": (batch_size, hidden)},
        GLMForPreTraining: {
            "prediction_logits": (batch_size, seq_len, vocab),
            "seq_relationship_logits": (batch_size, 2),
        },
        GLMForMaskedLM: {"logits": (batch_size, seq_len, vocab)},
        GLMForSequenceClassification: {"logits": (batch_size, 2)},
        GLMForTokenClassification: {"logits": (batch_size, seq_len, len(NER_LABELS))},
    }[model_class]
    assert {name: tuple(tensor.shape) for name, tensor in outputs_of(output).items()} == expected


def test_base_model_zeroes_padding_positions(tiny_config, batch):
    model = make_model(GLMModel, tiny_config)
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert bool((hidden[~real_positions(batch)] == 0).all())
    assert bool((hidden[real_positions(batch)].abs().sum(-1) > 0).all())


def test_bare_model_without_pooler_and_from_embeddings(tiny_config, batch):
    model = GLMModel(tiny_config, add_pooling_layer=False).eval()
    with torch.no_grad():
        from_ids = model(**batch)
        embeds = model.get_input_embeddings()(batch["input_ids"])
        from_embeds = model(
            inputs_embeds=embeds, attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"]
        )
    assert from_ids.pooler_output is None
    assert torch.equal(from_ids.last_hidden_state, from_embeds.last_hidden_state)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model(input_ids=batch["input_ids"], inputs_embeds=embeds)


# --- attention implementations and unpadding ----------------------------------------------------------------------


@pytest.mark.parametrize("model_class", HEADS, ids=lambda c: c.__name__)
def test_eager_matches_sdpa(model_class, tiny_config, batch):
    sdpa = make_model(model_class, tiny_config)
    sdpa.set_attn_implementation("sdpa")
    eager = copy.deepcopy(sdpa)
    eager.set_attn_implementation("eager")
    assert (sdpa.config._attn_implementation, eager.config._attn_implementation) == ("sdpa", "eager")
    with torch.no_grad():
        delta = max_delta_at_real_tokens(
            sdpa(**batch, output_hidden_states=True), eager(**batch, output_hidden_states=True), real_positions(batch)
        )
    MEASURED_EAGER_VS_SDPA[model_class.__name__] = delta
    print(f"\neager vs sdpa {model_class.__name__}: max |Δ| = {delta:.3e} (fp32)")
    assert delta <= SDPA_TOLERANCE


def test_flash_attention_2_matches_eager(tiny_config, batch):
    from transformers.utils import is_flash_attn_2_available

    if not torch.cuda.is_available():
        pytest.skip("flash_attention_2 needs a CUDA GPU")
    if not is_flash_attn_2_available():
        pytest.skip("flash_attention_2 needs the flash-attn package")
    device, dtype = torch.device("cuda"), torch.bfloat16
    eager = make_model(GLMForMaskedLM, tiny_config).to(device, dtype)
    eager.set_attn_implementation("eager")
    flash = copy.deepcopy(eager)
    flash.set_attn_implementation("flash_attention_2")
    inputs = {name: tensor.to(device) for name, tensor in batch.items()}
    with torch.no_grad():
        delta = max_delta_at_real_tokens(eager(**inputs), flash(**inputs), real_positions(inputs))
    print(f"\neager vs flash_attention_2 GLMForMaskedLM: max |Δ| = {delta:.3e} (bf16)")
    assert delta <= 5e-2


@pytest.mark.parametrize("model_class", HEADS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_unpad_inputs_gives_identical_outputs(model_class, padding_side, tiny_config, tiny_tokenizer):
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.padding_side = padding_side
    batch = dict(tokenizer(TEXTS, TEXT_PAIRS, padding=True, return_tensors="pt"))
    unpadded = make_model(model_class, tiny_config, unpad_inputs=True)
    padded = make_model(model_class, tiny_config, unpad_inputs=False)
    with torch.no_grad():
        first = outputs_of(unpadded(**batch, output_hidden_states=True))
        second = outputs_of(padded(**batch, output_hidden_states=True))
    real = real_positions(batch)
    # Unpadded, attention runs in length groups (shorter key grids): the same function, rounded differently (~1e-6).
    for name, tensor in first.items():
        if tensor.dim() >= 2 and tensor.shape[:2] == real.shape:
            torch.testing.assert_close(tensor[real], second[name][real], rtol=1e-5, atol=1e-5, msg=name)
        elif padding_side == "right":
            torch.testing.assert_close(tensor, second[name], rtol=1e-5, atol=1e-5, msg=name)
        # Left-padded, position 0 is padding, not [CLS]: the pooled outputs are undefined there (as in BERT).


# --- the base model call: output_positions, hooks, hidden states in the autograd graph ---------------------------


def test_output_positions_select_the_final_states(tiny_config, batch):
    """``output_positions``: the states at those positions in row-major order, the last layer run for them alone
    (``last_hidden_state`` None); the pooler still reads [CLS]. The same values as the full computation."""
    model = make_model(GLMModel, tiny_config)
    read = torch.zeros_like(batch["attention_mask"], dtype=torch.bool)
    read[0, 3] = read[2, 1] = read[2, 5] = True
    with torch.no_grad():
        full = model(**batch)
        selected = model(**batch, output_positions=read)
    assert selected.last_hidden_state is None
    assert selected.selected_hidden_state.shape == (3, tiny_config.hidden_size)
    torch.testing.assert_close(selected.selected_hidden_state, full.last_hidden_state[read], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(selected.pooler_output, full.pooler_output, rtol=1e-5, atol=1e-5)
    assert full.selected_hidden_state is None

    # A padding position has no row: the full last layer runs and its state is the zero vector, as on the grid.
    padding = ~real_positions(batch)
    with torch.no_grad():
        with_padding = model(**batch, output_positions=read | padding)
    assert with_padding.last_hidden_state is not None
    torch.testing.assert_close(
        with_padding.selected_hidden_state, full.last_hidden_state[read | padding], rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("model_class", HEADS[1:], ids=lambda c: c.__name__)
def test_heads_call_the_base_model(model_class, tiny_config, batch):
    """Every head goes through ``self.glm(...)``: forward hooks (and PEFT wrappers) on the base model see the call,
    with the positions the head reads."""
    model = make_model(model_class, tiny_config, sparse_prediction=True)
    calls = []
    model.glm.register_forward_hook(
        lambda module, args, kwargs, output: calls.append((kwargs.get("output_positions"), output)), with_kwargs=True
    )
    labels = mlm_labels(batch) if model_class in MLM_HEADS else None
    with torch.no_grad():
        model(**batch, labels=labels) if labels is not None else model(**batch)
    assert len(calls) == 1
    output_positions, output = calls[0]
    if model_class in MLM_HEADS:
        assert torch.equal(output_positions, labels != -100)
    elif model_class is GLMForSequenceClassification:
        assert output_positions.sum(1).tolist() == [1] * len(TEXTS) and bool(output_positions[:, 0].all())
    else:
        assert output_positions is None and output.last_hidden_state is not None


@pytest.mark.parametrize("model_class", HEADS[1:], ids=lambda c: c.__name__)
def test_hidden_states_are_in_the_autograd_graph(model_class, tiny_config, batch):
    """Saliency: ``hidden_states[i].retain_grad()`` then ``loss.backward()`` gives each state's gradient -- the
    recorded states are the tensors the next layer reads -- equal to the gradient in BERT's padded computation."""
    labels = {
        GLMForPreTraining: mlm_labels(batch),
        GLMForMaskedLM: mlm_labels(batch),
        GLMForSequenceClassification: torch.tensor([0, 1, 1, 0]),
        GLMForTokenClassification: torch.where(real_positions(batch), batch["input_ids"] % len(NER_LABELS), -100),
    }[model_class]
    gradients = {}
    for unpad_inputs in (True, False):
        model = make_model(model_class, tiny_config, unpad_inputs=unpad_inputs, sparse_prediction=True)
        output = model(**batch, labels=labels, output_hidden_states=True)
        for hidden in output.hidden_states:
            hidden.retain_grad()
        output.loss.backward()
        gradients[unpad_inputs] = [hidden.grad for hidden in output.hidden_states]
    real = real_positions(batch)
    for layer, (fast, reference) in enumerate(zip(gradients[True], gradients[False])):
        assert fast is not None, f"hidden_states[{layer}] is not part of the graph"
        assert float(fast[real].abs().max()) > 0, layer
        torch.testing.assert_close(fast[real], reference[real], rtol=1e-4, atol=1e-6, msg=f"hidden_states[{layer}]")
        assert bool((fast[~real] == 0).all()), "padding positions are not computed from"


# --- MLM: sparse prediction, tied decoder ---------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", MLM_HEADS, ids=lambda c: c.__name__)
def test_sparse_prediction_equals_dense(model_class, tiny_config, batch):
    labels = mlm_labels(batch)
    sparse = make_model(model_class, tiny_config, sparse_prediction=True)
    dense = make_model(model_class, tiny_config, sparse_prediction=False)
    with torch.no_grad():
        sparse_output = sparse(**batch, labels=labels)
        dense_output = dense(**batch, labels=labels)
    logits_name = "prediction_logits" if model_class is GLMForPreTraining else "logits"
    sparse_logits, dense_logits = sparse_output[logits_name], dense_output[logits_name]
    labelled = labels != -100
    assert sparse_logits.shape == (int(labelled.sum()), tiny_config.vocab_size)
    assert dense_logits.shape == (*labels.shape, tiny_config.vocab_size)
    assert (sparse_logits - dense_logits[labelled]).abs().max() <= 1e-5
    assert abs(sparse_output.loss.item() - dense_output.loss.item()) <= 1e-5
    reference = F.cross_entropy(dense_logits[labelled], labels[labelled])
    assert abs(dense_output.loss.item() - reference.item()) <= 1e-5
    # Without labels the logits always cover every position.
    with torch.no_grad():
        assert sparse(**batch)[logits_name].shape == dense_logits.shape
    # BERT's outputs by default: (batch, seq, vocab) logits even with labels.
    default = make_model(model_class, tiny_config)
    assert default.config.sparse_prediction is False
    with torch.no_grad():
        assert torch.equal(default(**batch, labels=labels)[logits_name], dense_logits)


@pytest.mark.parametrize("model_class", MLM_HEADS, ids=lambda c: c.__name__)
def test_resize_token_embeddings_keeps_decoder_tied(model_class, tiny_config, batch, tmp_path):
    model = make_model(model_class, tiny_config)
    old_vocab = tiny_config.vocab_size
    old_embeddings = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(old_vocab + 11, mean_resizing=False)

    embeddings = model.get_input_embeddings().weight
    decoder = model.get_output_embeddings()
    assert decoder.weight is embeddings, "the MLM decoder must stay tied to the word embeddings"
    assert embeddings.shape[0] == decoder.bias.shape[0] == model.config.vocab_size == old_vocab + 11
    assert torch.equal(embeddings[:old_vocab], old_embeddings)

    new_token_batch = {**batch, "input_ids": batch["input_ids"].clone()}
    new_token_batch["input_ids"][0, 1] = old_vocab + 5
    with torch.no_grad():
        before = model(**new_token_batch)
    model.save_pretrained(tmp_path)
    reloaded = model_class.from_pretrained(tmp_path).eval()
    assert reloaded.get_output_embeddings().weight is reloaded.get_input_embeddings().weight
    assert reloaded.config.vocab_size == old_vocab + 11
    with torch.no_grad():
        after = reloaded(**new_token_batch)
    for name, tensor in outputs_of(before).items():
        assert torch.equal(tensor, outputs_of(after)[name]), name


# --- saving ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", HEADS, ids=lambda c: c.__name__)
def test_save_load_round_trip(model_class, tiny_config, batch, tmp_path):
    model = make_model(model_class, tiny_config)
    model.save_pretrained(tmp_path)

    files = sorted(os.listdir(tmp_path))
    assert files == ["config.json", "configuration_glm.py", "model.safetensors", "modeling_glm.py"]
    loaded = model_class.from_pretrained(tmp_path).eval()
    assert loaded.config.auto_map == AUTO_MAP
    assert loaded.config.architectures == [model_class.__name__]
    with torch.no_grad():
        expected, actual = outputs_of(model(**batch)), outputs_of(loaded(**batch))
    for name, tensor in expected.items():
        assert torch.equal(tensor, actual[name]), name

    if model_class in MLM_HEADS:
        assert loaded.cls.predictions.decoder.weight is loaded.glm.embeddings.word_embeddings.weight
        with safe_open(os.path.join(tmp_path, "model.safetensors"), "pt") as f:
            stored = set(f.keys())
        # The tied matrix is stored once; the decoder bias (BERT's cls.predictions.bias) is stored.
        assert "glm.embeddings.word_embeddings.weight" in stored
        assert "cls.predictions.decoder.weight" not in stored
        assert "cls.predictions.decoder.bias" in stored
        assert not any("position_ids" in key for key in stored)


# --- losses ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "problem_type, num_labels",
    [
        ("single_label_classification", 3),
        ("multi_label_classification", 3),
        ("regression", 1),
        (None, 3),  # inferred from integer labels: single label
        (None, 1),  # inferred from num_labels == 1: regression
    ],
)
def test_sequence_classification_losses(problem_type, num_labels, tiny_config, batch):
    model = make_model(GLMForSequenceClassification, tiny_config, num_labels=num_labels, problem_type=problem_type)
    generator = torch.Generator().manual_seed(0)
    batch_size = batch["input_ids"].shape[0]
    effective = problem_type or ("regression" if num_labels == 1 else "single_label_classification")
    if effective == "single_label_classification":
        labels = torch.randint(0, num_labels, (batch_size,), generator=generator)
    elif effective == "multi_label_classification":
        labels = torch.randint(0, 2, (batch_size, num_labels), generator=generator).float()
    else:
        labels = torch.randn(batch_size, generator=generator)
    with torch.no_grad():
        output = model(**batch, labels=labels)
    logits = output.logits
    reference = {
        "single_label_classification": lambda: F.cross_entropy(logits, labels),
        "multi_label_classification": lambda: F.binary_cross_entropy_with_logits(logits, labels),
        "regression": lambda: F.mse_loss(logits.squeeze(-1), labels),
    }[effective]()
    assert model.config.problem_type == effective
    assert abs(output.loss.item() - reference.item()) <= 1e-6


def test_token_classification_ignores_minus_100(tiny_config, batch):
    model = make_model(GLMForTokenClassification, tiny_config)
    labels = torch.randint(0, len(NER_LABELS), batch["input_ids"].shape, generator=torch.Generator().manual_seed(0))
    labels[~real_positions(batch)] = -100
    labels[:, 0] = -100  # [CLS]
    with torch.no_grad():
        output = model(**batch, labels=labels)
    kept = labels != -100
    reference = F.cross_entropy(output.logits[kept], labels[kept])
    assert abs(output.loss.item() - reference.item()) <= 1e-6
    # Control: the same position counts as soon as it carries a label.
    other_labels = labels.clone()
    other_labels[0, 0] = 1
    with torch.no_grad():
        assert model(**batch, labels=other_labels).loss != output.loss


def test_regression_accepts_column_labels(tiny_config, batch):
    model = make_model(GLMForSequenceClassification, tiny_config, num_labels=1, problem_type="regression")
    labels = torch.randn(batch["input_ids"].shape[0], 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = model(**batch, labels=labels)
    assert abs(output.loss.item() - F.mse_loss(output.logits.view(-1), labels.view(-1)).item()) <= 1e-6


def test_pretraining_loss_is_mlm_plus_nsp(tiny_config, batch):
    model = make_model(GLMForPreTraining, tiny_config, sparse_prediction=False)
    labels = mlm_labels(batch)
    next_sentence_label = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        both = model(**batch, labels=labels, next_sentence_label=next_sentence_label)
        mlm_only = model(**batch, labels=labels)
        nsp_only = model(**batch, next_sentence_label=next_sentence_label)
        no_labels = model(**batch)
    labelled = labels != -100
    mlm_ce = F.cross_entropy(both.prediction_logits[labelled], labels[labelled])
    nsp_ce = F.cross_entropy(both.seq_relationship_logits, next_sentence_label)
    assert abs(both.loss.item() - (mlm_ce + nsp_ce).item()) <= 1e-5
    assert abs(mlm_only.loss.item() - mlm_ce.item()) <= 1e-5
    assert abs(nsp_only.loss.item() - nsp_ce.item()) <= 1e-5
    assert no_labels.loss is None


# --- training machinery ---------------------------------------------------------------------------------------------


def _gradients(model, batch, labels, next_sentence_label) -> dict[str, torch.Tensor]:
    model.zero_grad()
    model(**batch, labels=labels, next_sentence_label=next_sentence_label).loss.backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config, batch):
    labels, next_sentence_label = mlm_labels(batch), torch.tensor([0, 1, 1, 0])
    model = make_model(GLMForPreTraining, tiny_config).train()  # dropout is 0: train mode is deterministic
    layer_calls = []
    for layer in model.glm.encoder.layer:
        # Hook a child: transformers checkpoints the layer's forward, so hooks on the layer itself stay outside it.
        layer.attention.register_forward_hook(lambda *args: layer_calls.append(1))

    reference = _gradients(model, batch, labels, next_sentence_label)
    calls_without = len(layer_calls)
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    layer_calls.clear()
    checkpointed = _gradients(model, batch, labels, next_sentence_label)

    assert calls_without == tiny_config.num_hidden_layers
    assert len(layer_calls) == 2 * tiny_config.num_hidden_layers, "each layer must be recomputed in backward"
    assert reference.keys() == checkpointed.keys()
    assert len(reference) == len(list(model.parameters()))
    for name, grad in reference.items():
        assert torch.allclose(grad, checkpointed[name], rtol=0, atol=1e-7), name


def test_hidden_states_and_attentions_on_request(tiny_config, batch):
    model = make_model(GLMForSequenceClassification, tiny_config)
    batch_size, seq_len = batch["input_ids"].shape
    with torch.no_grad():
        plain = model(**batch)
        with_hidden = model(**batch, output_hidden_states=True)
    assert plain.hidden_states is None and plain.attentions is None
    assert len(with_hidden.hidden_states) == tiny_config.num_hidden_layers + 1
    assert all(h.shape == (batch_size, seq_len, tiny_config.hidden_size) for h in with_hidden.hidden_states)

    # As BERT in transformers v5: sdpa computes no attention weights; it warns and the attentions are empty.
    from transformers.integrations import sdpa_attention

    sdpa_attention.logger.warning_once.cache_clear()
    with CaptureLogger(sdpa_attention.logger) as captured, torch.no_grad():
        sdpa_output = model(**batch, output_attentions=True)
    assert "does not support `output_attentions=True`" in captured.out
    assert sdpa_output.attentions == ()
    torch.testing.assert_close(sdpa_output.logits, plain.logits, rtol=1e-5, atol=1e-5)

    model.set_attn_implementation("eager")
    with torch.no_grad():
        with_attentions = model(**batch, output_attentions=True)
    attentions = with_attentions.attentions
    assert len(attentions) == tiny_config.num_hidden_layers
    assert all(a.shape == (batch_size, tiny_config.num_attention_heads, seq_len, seq_len) for a in attentions)
    real = real_positions(batch)
    for attention in attentions:
        query_rows = attention.permute(0, 2, 1, 3)[real]  # (real tokens, heads, keys)
        assert torch.allclose(query_rows.sum(-1), torch.ones(()), atol=1e-5)
        assert float(attention.masked_select(~real[:, None, None, :]).abs().max()) == 0.0, "padding keys get no weight"


@pytest.mark.parametrize("model_class", HEADS, ids=lambda c: c.__name__)
def test_return_dict_false_gives_tuples(model_class, tiny_config, batch):
    model = make_model(model_class, tiny_config)
    with torch.no_grad():
        as_dict = model(**batch)
        as_tuple = model(**batch, return_dict=False)
    assert isinstance(as_tuple, tuple)
    expected = tuple(value for value in as_dict.values() if value is not None)
    assert len(as_tuple) == len(expected)
    for first, second in zip(as_tuple, expected):
        assert torch.equal(first, second)

    if model_class is GLMForMaskedLM:  # the loss comes first
        labels = mlm_labels(batch)
        with torch.no_grad():
            loss, logits = model(**batch, labels=labels, return_dict=False)
            assert torch.equal(loss, model(**batch, labels=labels).loss)


def test_trainer_does_not_scale_the_loss_by_world_size(tiny_config, batch, tmp_path, monkeypatch):
    """The GLM losses are per-process means: under DDP, Trainer must not multiply them by the world size (it does
    for models whose forward takes ``**kwargs`` unless ``accepts_loss_kwargs`` is False)."""
    from accelerate import Accelerator
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to=[], average_tokens_across_devices=True
    )
    monkeypatch.setattr(Accelerator, "num_processes", property(lambda self: 2))  # pretend to be rank 0 of 2
    inputs = {**batch, "labels": mlm_labels(batch)}
    num_items_in_batch = torch.tensor(int((inputs["labels"] != -100).sum()) * 2)

    model = make_model(GLMForMaskedLM, tiny_config)
    trainer = Trainer(model=model, args=args)
    assert trainer.model_accepts_loss_kwargs is False
    with torch.no_grad():
        expected = model(**inputs).loss
        loss = trainer.compute_loss(model, dict(inputs), num_items_in_batch=num_items_in_batch)
    assert torch.allclose(loss, expected, rtol=0, atol=1e-6)

    # Control: advertising loss kwargs, the model is handed the labelled-token count of both ranks, its
    # ``loss_function`` divides the summed loss by it, and Trainer multiplies the result by the world size.
    class LossKwargsGLMForMaskedLM(GLMForMaskedLM):
        accepts_loss_kwargs = True

    control = make_model(LossKwargsGLMForMaskedLM, tiny_config)
    control_trainer = Trainer(model=control, args=args)
    assert control_trainer.model_accepts_loss_kwargs is True
    with torch.no_grad():
        halved = control(**inputs, num_items_in_batch=num_items_in_batch).loss
        scaled = control_trainer.compute_loss(control, dict(inputs), num_items_in_batch=num_items_in_batch)
    assert torch.allclose(halved, expected / 2, rtol=0, atol=1e-6)
    assert torch.allclose(scaled, expected, rtol=0, atol=1e-6)


def test_print_measured_deltas():
    """Summary for ``pytest -s`` (runs last in this module)."""
    for name, delta in MEASURED_EAGER_VS_SDPA.items():
        print(f"eager vs sdpa {name:<32} max |Δ| = {delta:.3e}")


def test_sinusoidal_position_table_starts_structured_and_loads_unchanged(tiny_config, tmp_path):
    """``position_embedding_init="sinusoidal"``: a new model's table is the sine/cosine one at the init std (nearby
    positions alike, far ones less so); a saved model reloads its trained table, not a fresh one."""
    from glm_hf.modeling_glm import sinusoidal_positions

    config = copy.deepcopy(tiny_config)
    config.position_embedding_init = "sinusoidal"
    model = GLMModel(config)
    table = model.embeddings.position_embeddings.weight.detach()
    assert torch.allclose(table, sinusoidal_positions(*table.shape, std=config.initializer_range))
    assert table.std().item() == pytest.approx(config.initializer_range, rel=1e-4)
    cosine = F.normalize(table, dim=-1) @ F.normalize(table[10], dim=-1)
    assert cosine[11] > cosine[20] > cosine[60]
    normal = GLMModel(tiny_config).embeddings.position_embeddings.weight.detach()
    assert abs((F.normalize(normal, dim=-1) @ F.normalize(normal[10], dim=-1))[11].item()) < 0.5

    with torch.no_grad():
        model.embeddings.position_embeddings.weight.mul_(3)
    model.save_pretrained(tmp_path)
    reloaded = GLMModel.from_pretrained(tmp_path)
    assert torch.equal(reloaded.embeddings.position_embeddings.weight, model.embeddings.position_embeddings.weight)


def test_rotary_attention_depends_on_distances_only(tiny_config, batch, tmp_path):
    """``position_embedding_type="rotary"``: no position table; shifting every position by the same amount changes
    nothing (only distances enter attention), reordering the tokens does; the model saves and reloads exactly; and an
    RTD generator shares every embedding the discriminator has."""
    config = copy.deepcopy(tiny_config)
    config.position_embedding_type = "rotary"
    model = make_model(GLMModel, config)
    assert model.embeddings.position_embeddings is None
    assert not any("position_embeddings" in name for name, _ in model.named_parameters())
    ids = batch["input_ids"][:1, :12]
    with torch.no_grad():
        states = model(ids).last_hidden_state
        shifted = model(ids, position_ids=torch.arange(12)[None] + 37).last_hidden_state
        swapped = model(ids[:, [0, 2, 1, *range(3, 12)]]).last_hidden_state
    assert float((states - shifted).abs().max()) <= 1e-5
    assert float((states[:, 3:] - swapped[:, 3:]).abs().max()) > 1e-3  # same tokens, two of them in another order
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.ones(1, config.max_position_embeddings + 1, dtype=torch.long))

    model.save_pretrained(tmp_path)
    reloaded = GLMModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.position_embedding_type == "rotary"
    with torch.no_grad():
        assert torch.equal(reloaded(ids).last_hidden_state, states)

    rtd = GLMForPreTraining(GLMConfig(**{**config.to_dict(), "pretraining_objective": "rtd",
                                         "generator_num_hidden_layers": 1}))
    assert rtd.generator.embeddings.word_embeddings.weight is rtd.glm.embeddings.word_embeddings.weight
    assert rtd.generator.embeddings.position_embeddings is None
