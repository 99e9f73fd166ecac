"""The fast path computes the same function as the padded reference, and really skips the work it claims to skip.

Fast path (the default config plus ``sparse_prediction``, as pretraining runs it): ``unpad_inputs`` (embeddings and
dense layers on the real tokens only), ``sparse_prediction`` (MLM head on labelled tokens only), and a last layer whose
queries and feed-forward run only for the tokens an output reads ([CLS], masked tokens). Reference:
``unpad_inputs=False, sparse_prediction=False``, i.e. BERT's padded computation. Every check is in fp32 with dropout
off; the losses must agree within 1e-4 (they agree to ~1e-6), the gradients and logits within 1e-4 too.
"""

import copy

import pytest
import torch

from glm_hf import (
    GLMConfig,
    GLMForMaskedLM,
    GLMForPreTraining,
    GLMForSequenceClassification,
    GLMForTokenClassification,
    GLMModel,
)
from glm_hf.collator import DataCollatorForPreTraining
from glm_hf.modeling_glm import TokenLayout

TOLERANCE = 1e-4
# Real lengths of the test batch: much padding, the longest not first.
LENGTHS = [20, 40, 3, 37, 9, 24]


def make_batch(config: GLMConfig, lengths=LENGTHS, padding_side: str = "right", seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    batch_size, seq_len = len(lengths), max(lengths)
    input_ids = torch.randint(5, config.vocab_size, (batch_size, seq_len), generator=generator)
    attention_mask = torch.zeros(batch_size, seq_len, dtype=torch.long)
    token_type_ids = torch.zeros(batch_size, seq_len, dtype=torch.long)
    for row, length in enumerate(lengths):
        span = slice(seq_len - length, seq_len) if padding_side == "left" else slice(0, length)
        attention_mask[row, span] = 1
        token_type_ids[row, span][length // 2 :] = 1
    input_ids[attention_mask == 0] = config.pad_token_id
    if padding_side == "right":
        input_ids[:, 0] = 2  # [CLS]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def mlm_labels(batch: dict, every: int = 4) -> torch.Tensor:
    """Labels on every ``every``-th real token after the first, -100 elsewhere."""
    labels = torch.full_like(batch["input_ids"], -100)
    real = batch["attention_mask"].bool().clone()
    real[:, 0] = False
    chosen = real.view(-1).nonzero().flatten()[::every]
    labels.view(-1)[chosen] = batch["input_ids"].view(-1)[chosen]
    return labels


def fast_and_reference(model_class, config: GLMConfig, attn_implementation: str = "sdpa", **config_overrides):
    """The same weights twice: the fast path (default config + sparse prediction) and BERT's padded computation."""
    config = copy.deepcopy(config)
    config.sparse_prediction = True
    for name, value in config_overrides.items():
        setattr(config, name, value)
    if model_class in (GLMForSequenceClassification, GLMForTokenClassification):
        config.num_labels = 3
    torch.manual_seed(0)
    fast = model_class(config)
    with torch.no_grad():
        for parameter in fast.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    fast.set_attn_implementation(attn_implementation)
    reference = copy.deepcopy(fast)
    reference.config.unpad_inputs = False
    reference.config.sparse_prediction = False
    return fast.eval(), reference.eval()


@pytest.fixture
def config(tiny_tokenizer):
    return GLMConfig.from_size(
        "tiny",
        vocab_size=len(tiny_tokenizer),
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tiny_tokenizer.pad_token_id,
    )


def max_delta(first: torch.Tensor, second: torch.Tensor) -> float:
    return float((first.float() - second.float()).abs().max())


# --- the same function ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("position_embedding_type", ["absolute", "rotary"])
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pretraining_loss_and_gradients_match_the_padded_reference(
    config, attn_implementation, padding_side, position_embedding_type
):
    config.position_embedding_type = position_embedding_type
    fast, reference = fast_and_reference(GLMForPreTraining, config, attn_implementation)
    batch = make_batch(config, padding_side=padding_side)
    labels = mlm_labels(batch)
    # Left-padded, position 0 is padding, not [CLS]: NSP on it is undefined (as in BERT), so MLM alone there.
    next_sentence_label = torch.tensor([0, 1, 1, 0, 1, 0]) if padding_side == "right" else None
    losses, gradients = {}, {}
    for name, model in (("fast", fast), ("reference", reference)):
        model.train()  # dropout is 0: training mode changes nothing but is what Trainer runs
        output = model(**batch, labels=labels, next_sentence_label=next_sentence_label)
        output.loss.backward()
        losses[name] = float(output.loss.detach())
        gradients[name] = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        if name == "fast":
            assert output.prediction_logits.shape == (int((labels != -100).sum()), config.vocab_size)
    assert abs(losses["fast"] - losses["reference"]) <= TOLERANCE
    assert gradients["fast"].keys() == gradients["reference"].keys()
    if padding_side == "right":
        assert len(gradients["fast"]) == len(list(fast.parameters()))
    for name, grad in gradients["fast"].items():
        assert max_delta(grad, gradients["reference"][name]) <= TOLERANCE, name


@pytest.mark.parametrize("position_embedding_type", ["absolute", "rotary"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_masked_lm_and_classification_heads_match_the_padded_reference(config, padding_side, position_embedding_type):
    config.position_embedding_type = position_embedding_type
    batch = make_batch(config, padding_side=padding_side)
    real = batch["attention_mask"].bool()
    labels = mlm_labels(batch)

    fast, reference = fast_and_reference(GLMForMaskedLM, config)
    with torch.no_grad():
        fast_output, reference_output = fast(**batch, labels=labels), reference(**batch, labels=labels)
    assert abs(float(fast_output.loss) - float(reference_output.loss)) <= TOLERANCE
    assert max_delta(fast_output.logits, reference_output.logits[labels != -100]) <= TOLERANCE

    fast, reference = fast_and_reference(GLMForSequenceClassification, config)
    sequence_labels = torch.tensor([0, 2, 1, 1, 0, 2])
    with torch.no_grad():
        fast_output = fast(**batch, labels=sequence_labels)
        reference_output = reference(**batch, labels=sequence_labels)
    if padding_side == "right":  # left-padded, position 0 ([CLS] for BERT) is padding: the pooled output is undefined
        assert max_delta(fast_output.logits, reference_output.logits) <= TOLERANCE
        assert abs(float(fast_output.loss) - float(reference_output.loss)) <= TOLERANCE

    fast, reference = fast_and_reference(GLMForTokenClassification, config)
    token_labels = torch.where(real, batch["input_ids"] % 3, -100)
    with torch.no_grad():
        fast_output = fast(**batch, labels=token_labels)
        reference_output = reference(**batch, labels=token_labels)
    assert max_delta(fast_output.logits[real], reference_output.logits[real]) <= TOLERANCE
    assert abs(float(fast_output.loss) - float(reference_output.loss)) <= TOLERANCE

    fast, reference = fast_and_reference(GLMModel, config)
    with torch.no_grad():
        fast_output = fast(**batch, output_hidden_states=True)
        reference_output = reference(**batch, output_hidden_states=True)
    for fast_hidden, reference_hidden in zip(fast_output.hidden_states, reference_output.hidden_states):
        assert max_delta(fast_hidden[real], reference_hidden[real]) <= TOLERANCE
    assert bool((fast_output.last_hidden_state[~real] == 0).all()), "padding positions are zeros, never computed"


def test_labels_on_padding_positions_fall_back_to_the_full_last_layer(config):
    """A label on a padding position (not -100) is unusual but legal: its state is the zero vector, as in
    ``last_hidden_state``; the selected-rows shortcut must not be taken (padding has no row)."""
    fast, reference = fast_and_reference(GLMForPreTraining, config)
    batch = make_batch(config)
    labels = mlm_labels(batch)
    labels[2, -1] = 7  # sequence 2 has 3 real tokens: the last position is padding
    with torch.no_grad():
        fast_loss = fast(**batch, labels=labels).loss
        padded_unpad = copy.deepcopy(fast)
        padded_unpad.config.sparse_prediction = False
        dense_loss = padded_unpad(**batch, labels=labels).loss
    assert torch.isfinite(fast_loss)
    assert abs(float(fast_loss) - float(dense_loss)) <= TOLERANCE


# --- the work skipped is really skipped -----------------------------------------------------------------------------


def rows_seen_by(module: torch.nn.Module, run) -> list[int]:
    seen = []
    handle = module.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    try:
        run()
    finally:
        handle.remove()
    return seen


def test_dense_layers_see_real_tokens_only_and_the_last_layer_only_what_outputs_read(config):
    fast, _ = fast_and_reference(GLMForPreTraining, config)
    batch = make_batch(config)
    labels = mlm_labels(batch)
    num_real, num_labelled = int(batch["attention_mask"].sum()), int((labels != -100).sum())
    layers = fast.glm.encoder.layer

    def run():
        with torch.no_grad():
            fast(**batch, labels=labels)

    assert rows_seen_by(layers[0].intermediate.dense, run) == [num_real]
    assert rows_seen_by(layers[-1].intermediate.dense, run) == [num_labelled + len(LENGTHS)]  # + [CLS] each
    assert rows_seen_by(fast.cls.predictions.decoder, run) == [num_labelled]

    classifier, _ = fast_and_reference(GLMForSequenceClassification, config)

    def classify():
        with torch.no_grad():
            classifier(**batch)

    assert rows_seen_by(classifier.glm.encoder.layer[0].intermediate.dense, classify) == [num_real]
    assert rows_seen_by(classifier.glm.encoder.layer[-1].intermediate.dense, classify) == [len(LENGTHS)]


def test_hidden_states_request_runs_every_row_of_the_last_layer(config):
    classifier, _ = fast_and_reference(GLMForSequenceClassification, config)
    batch = make_batch(config)

    def run():
        with torch.no_grad():
            classifier(**batch, output_hidden_states=True)

    real_tokens = int(batch["attention_mask"].sum())
    assert rows_seen_by(classifier.glm.encoder.layer[-1].intermediate.dense, run) == [real_tokens]


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_token_layout_round_trip(padding_side):
    """Rows are the real tokens in order; back on the grid they land where they came from, zeros elsewhere -- also
    with a hole inside a sequence."""
    lengths = [5, 30, 1, 28, 12]
    seq_len = max(lengths) + 3
    mask = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    for row, length in enumerate(lengths):
        span = slice(seq_len - length, seq_len) if padding_side == "left" else slice(0, length)
        mask[row, span] = 1
    mask[1, 10] = 0
    layout = TokenLayout.from_attention_mask(mask)
    real = mask.bool()
    assert layout.indices.tolist() == real.view(-1).nonzero().flatten().tolist()

    grid = torch.randn(*mask.shape, 4, requires_grad=True)
    rows = layout.to_rows(grid)
    assert rows.shape == (int(mask.sum()), 4)
    back = layout.to_grid(rows)
    assert torch.equal(back[real], grid[real].detach()) and bool((back[~real] == 0).all())
    back.sum().backward()  # gradients flow to the real positions only
    assert bool((grid.grad[real] == 1).all()) and bool((grid.grad[~real] == 0).all())

    positions = torch.tensor([0, seq_len + 10, 3 * seq_len - 1])  # with a padding position (zeros, as on the grid)
    assert torch.equal(layout.gather(rows, positions), back.detach().view(-1, 4)[positions])


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_attention_length_groups_cover_every_real_token_once(padding_side):
    """Sorted by length and cut into up to 3 groups: every real token sits in exactly one group grid, in the first
    slots of its sequence's row, and the group grids hold less padding than the batch's."""
    lengths = [5, 30, 1, 28, 12, 29, 7]
    seq_len = max(lengths) + 3
    mask = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, slice(seq_len - length, seq_len) if padding_side == "left" else slice(0, length)] = 1
    layout = TokenLayout.from_attention_mask(mask, group_by_length=True)

    assert sorted(layout.indices.tolist()) == mask.view(-1).nonzero().flatten().tolist()
    groups = layout.attention_groups
    assert [(g.batch_size, g.seq_len) for g in groups] == [(3, 30), (1, 12), (3, 7)]
    assert sum(g.num_rows for g in groups) == layout.num_rows == sum(lengths)
    assert sum(g.batch_size * g.seq_len**2 for g in groups) < len(lengths) * seq_len**2
    assert groups[1].padding_mask() is None, "a group of one sequence has no padding"

    # Rows go longest sequence first; a group's grid row holds its sequence's tokens in order, then padding.
    grid = torch.arange(mask.numel()).view(*mask.shape, 1)
    rows = layout.to_rows(grid)
    for group, group_rows in zip(groups, rows.split([g.num_rows for g in groups])):
        group_grid = group.to_grid(group_rows)[..., 0]
        padding_mask = group.padding_mask()
        counts = [group.seq_len] * group.batch_size if padding_mask is None else padding_mask.sum(-1).tolist()
        for sequence_row, count in zip(group_grid, counts):
            positions = sequence_row[:count]
            assert bool((positions.diff() > 0).all()) and len(set((positions // seq_len).tolist())) == 1


# --- precision and Trainer ------------------------------------------------------------------------------------------


def test_bf16_autocast_on_cpu_trains_close_to_fp32(config):
    fast, _ = fast_and_reference(GLMForPreTraining, config)
    batch = make_batch(config)
    labels, next_sentence_label = mlm_labels(batch), torch.tensor([0, 1, 1, 0, 1, 0])
    fast.train()
    fp32_loss = fast(**batch, labels=labels, next_sentence_label=next_sentence_label).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = fast(**batch, labels=labels, next_sentence_label=next_sentence_label)
    assert output.prediction_logits.dtype == torch.bfloat16, "the matmuls must run in bf16"
    assert output.loss.dtype == torch.float32, "the loss is computed in fp32"
    output.loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in fast.parameters())
    assert abs(float(output.loss.detach()) - float(fp32_loss.detach())) <= 0.05 * float(fp32_loss.detach())


def test_trainer_with_the_pipeline_collator_trains_like_the_reference(config, tiny_tokenizer, tmp_path):
    """Normal Trainer usage (the masking collator with dynamic padding, default config): two optimizer steps move the
    weights exactly as the padded reference does."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    texts = ["这本书写得非常好，我很喜欢。", "质量太差了。", "房间干净，服务周到，下次还会再来。", "物流很慢。"]
    pairs = tiny_tokenizer(texts, texts[::-1], truncation=True, max_length=48)
    dataset = Dataset.from_dict(
        {
            "input_ids": pairs["input_ids"] * 2,
            "token_type_ids": pairs["token_type_ids"] * 2,
            "next_sentence_label": [0, 1, 1, 0] * 2,
        }
    )
    collator = DataCollatorForPreTraining(tiny_tokenizer, seed=3)
    weights = {}
    for name, model in zip(("fast", "reference"), fast_and_reference(GLMForPreTraining, config)):
        args = TrainingArguments(
            output_dir=str(tmp_path / name),
            use_cpu=True,
            report_to=[],
            per_device_train_batch_size=4,
            max_steps=2,
            learning_rate=1e-3,
            save_strategy="no",
            seed=0,
            disable_tqdm=True,
        )
        Trainer(model=model.train(), args=args, train_dataset=dataset, data_collator=collator).train()
        weights[name] = {n: p.detach().clone() for n, p in model.named_parameters()}
    for name, value in weights["fast"].items():
        assert max_delta(value, weights["reference"][name]) <= TOLERANCE, name
