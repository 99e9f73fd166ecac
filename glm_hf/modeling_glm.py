"""PyTorch GLM: a BERT-style generative pre-trained encoder (embeddings -> Transformer encoder -> heads).

Read top-down: token layout -> embeddings -> attention -> layer -> encoder -> pretrained base -> model -> heads.

The module and parameter names are BERT's (``embeddings.word_embeddings``, ``encoder.layer.N.attention.self.query``,
``cls.predictions``, ...), so a BERT checkpoint maps onto GLM by renaming the ``bert.`` prefix (see
``glm_hf.convert_bert``). What makes it cheaper than BERT while computing the same function on the real tokens
(``tests/test_modeling_fast_path.py`` checks each against BERT's padded computation):

* **Unpadding** (``config.unpad_inputs``): with a padded batch, the embeddings and every dense layer (Q/K/V,
  attention output, FFN, LayerNorm, dropout) run on the real tokens only, packed as ``(num_tokens, hidden)`` rows
  (:class:`TokenLayout`). Only attention needs a ``(batch, heads, seq, seq)`` grid: with sdpa or eager attention the
  sequences are sorted by length and cut into up to three groups, each attending in a grid as long as its own
  longest sequence (less attention on padding). The standard padding collators need no change.
* **Sparse MLM prediction** (``config.sparse_prediction``): with MLM ``labels``, the prediction head (transform and
  vocabulary decoder) runs only on the labelled tokens.
* **Last layer for the tokens that are read** (:class:`QuerySelection`): an MLM loss reads the masked tokens and NSP
  and sequence classification read [CLS]; the last layer computes keys and values for every token but queries,
  attention output and feed-forward only for those (sdpa/eager attention, no hidden states or attentions asked for).
* **One Q/K/V matmul**: the three projections are concatenated at call time into one ``(3 * hidden, hidden)`` matmul;
  the saved parameters keep BERT's ``query``/``key``/``value`` names and shapes.
* Row gathers and scatters are ``index_select`` / ``index_copy_`` in both directions (autograd's backward of advanced
  indexing is an accumulating ``index_put`` that is slow on CPU).

Tried and not kept: one packed row with a block-diagonal mask instead of the padded grid (its attention cost grows with
the square of the batch's token count: 13x slower for a batch of 32 sentence pairs on CPU).

This file is copied next to every saved checkpoint (remote code), so it imports only transformers, torch and
``.configuration_glm``.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_glm import GLMConfig

# Written into every saved config.json so that each head loads with ``trust_remote_code=True`` from the folder alone.
AUTO_MAP = {
    "AutoConfig": "configuration_glm.GLMConfig",
    "AutoModel": "modeling_glm.GLMModel",
    "AutoModelForPreTraining": "modeling_glm.GLMForPreTraining",
    "AutoModelForMaskedLM": "modeling_glm.GLMForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_glm.GLMForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_glm.GLMForTokenClassification",
}

# Attention implementations that take a (batch, heads, queries, keys) mask, so that the last layer may run the queries
# of a few selected tokens only (see QuerySelection).
SELECTED_QUERY_ATTENTION = ("sdpa", "eager")


class _ScatterRows(torch.autograd.Function):
    """``rows`` written into a zero ``(num_positions, ...)`` tensor at ``indices`` (distinct); backward: a gather.

    Autograd's own backward for the alternatives (advanced-index assignment, gathering from a zero row) accumulates
    into repeated indices, which is slow on CPU.
    """

    @staticmethod
    def forward(ctx, rows: torch.Tensor, indices: torch.Tensor, num_positions: int) -> torch.Tensor:
        ctx.save_for_backward(indices)
        return rows.new_zeros(num_positions, *rows.shape[1:]).index_copy_(0, indices, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (indices,) = ctx.saved_tensors
        return grad.index_select(0, indices), None, None


@dataclass
class AttentionGroup:
    """Sequences of similar length attending in a grid of their own: ``num_rows`` consecutive rows of the token
    layout, laid out by ``layout`` (the group's sequences x its longest length), with key-padding ``mask``."""

    num_rows: int
    layout: "TokenLayout"
    mask: torch.Tensor | None


class TokenLayout:
    """Where the rows of the encoder's ``(rows, hidden)`` states sit in the ``(batch, seq)`` grid of the inputs.

    Unpadded (``indices`` given): one row per real token, ``indices`` holding their positions in the flattened
    ``batch * seq`` grid. Padded (``indices`` None): one row per grid position, the plain BERT layout.

    ``attention_groups`` (unpadded only): the rows are ordered longest sequence first and cut into groups of similar
    length, each attending in its own smaller grid; attention is permutation-invariant over the keys, so a sequence's
    real tokens simply fill the first slots of its group row, whatever the padding side.
    """

    def __init__(self, batch_size: int, seq_len: int, indices: torch.Tensor | None = None):
        self.batch_size, self.seq_len, self.indices = batch_size, seq_len, indices
        self.num_rows = batch_size * seq_len if indices is None else indices.numel()
        self.inverse = None
        self.attention_groups: list[AttentionGroup] | None = None
        if indices is not None:
            # Row of each grid position; padding points at row ``num_rows``, a zero row appended when needed.
            self.inverse = torch.full((batch_size * seq_len,), self.num_rows, dtype=torch.long, device=indices.device)
            self.inverse[indices] = torch.arange(self.num_rows, device=indices.device)

    @classmethod
    def from_attention_mask(cls, attention_mask: torch.Tensor, group_by_length: bool = False) -> "TokenLayout":
        """The real tokens of a 2D mask; ``group_by_length``: ordered and grouped for attention (see class doc)."""
        batch_size, seq_len = attention_mask.shape
        indices = torch.nonzero(attention_mask.reshape(-1), as_tuple=False).flatten()
        if not group_by_length:
            return cls(batch_size, seq_len, indices)
        lengths = (attention_mask != 0).sum(1)
        order = torch.argsort(lengths, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(batch_size, device=order.device)
        sequence = torch.div(indices, seq_len, rounding_mode="floor")
        indices = indices.index_select(0, torch.argsort(rank.index_select(0, sequence) * seq_len + indices % seq_len))
        layout = cls(batch_size, seq_len, indices)
        layout.attention_groups = []
        sorted_lengths = lengths.index_select(0, order).tolist()
        for start, end in _length_groups(sorted_lengths):
            group_lengths = lengths.new_tensor(sorted_lengths[start:end])
            group_len = sorted_lengths[start]
            key_mask = torch.arange(group_len, device=lengths.device)[None, :] < group_lengths[:, None]
            group_indices = None
            if not bool(key_mask.all()):
                group_indices = torch.nonzero(key_mask.reshape(-1), as_tuple=False).flatten()
            group = AttentionGroup(sum(sorted_lengths[start:end]), cls(end - start, group_len, group_indices), None)
            group.mask = key_mask  # a 2D mask, turned into the attention implementation's mask by GLMModel
            layout.attention_groups.append(group)
        return layout

    @property
    def is_unpadded(self) -> bool:
        return self.indices is not None

    def to_rows(self, grid: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, ...)`` -> ``(rows, ...)``."""
        flat = grid.reshape(self.batch_size * self.seq_len, *grid.shape[2:])
        return flat if self.indices is None else flat.index_select(0, self.indices)

    def to_grid(self, rows: torch.Tensor) -> torch.Tensor:
        """``(rows, ...)`` -> ``(batch, seq, ...)``; unpadded, the padding positions are zeros."""
        if self.indices is not None:
            rows = _ScatterRows.apply(rows, self.indices, self.batch_size * self.seq_len)
        return rows.view(self.batch_size, self.seq_len, *rows.shape[1:])

    def rows_at(self, positions: torch.Tensor) -> torch.Tensor:
        """The row of each grid position (flat index into ``batch * seq``); ``num_rows`` for padding (unpadded)."""
        return positions if self.indices is None else self.inverse.index_select(0, positions)

    def gather(self, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The rows at grid ``positions``; zeros at padding, as in ``to_grid``."""
        row_index = self.rows_at(positions)
        if self.indices is not None and bool((row_index == self.num_rows).any()):
            rows = torch.cat([rows, rows.new_zeros(1, *rows.shape[1:])])
        return rows.index_select(0, row_index)

    def first_token_positions(self, device) -> torch.Tensor:
        """The grid position of each sequence's first token (what the pooler reads)."""
        return torch.arange(self.batch_size, device=device) * self.seq_len


def _length_groups(sorted_lengths: list[int], max_groups: int = 3, ratio: float = 0.7) -> list[tuple[int, int]]:
    """Cut lengths sorted longest first into at most ``max_groups`` runs; a run ends where the length falls to
    ``ratio`` of its first (a group's attention costs its sequences x its longest length squared)."""
    bounds, start = [], 0
    for index, length in enumerate(sorted_lengths):
        if index > start and length <= ratio * sorted_lengths[start] and len(bounds) < max_groups - 1:
            bounds.append((start, index))
            start = index
    bounds.append((start, len(sorted_lengths)))
    return bounds


class QuerySelection:
    """The tokens whose last-layer output a head reads (e.g. [CLS] and the MLM-labelled tokens).

    The last layer computes keys and values for every token, but queries, attention output and feed-forward only for
    these rows, laid out as a ``(batch, queries)`` grid (``layout``) so that each selected token attends to every
    token of its own sequence. ``positions`` are sorted, distinct grid positions, each with a row of ``token_layout``.
    """

    def __init__(self, token_layout: TokenLayout, positions: torch.Tensor):
        self.positions = positions
        self.rows = token_layout.rows_at(positions)
        sequence = torch.div(positions, token_layout.seq_len, rounding_mode="floor")
        counts = torch.bincount(sequence, minlength=token_layout.batch_size)
        num_queries = max(int(counts.max()), 1)
        first_of_sequence = torch.cumsum(counts, 0) - counts
        slot = torch.arange(positions.numel(), device=positions.device) - first_of_sequence.index_select(0, sequence)
        indices = None if positions.numel() == token_layout.batch_size * num_queries else sequence * num_queries + slot
        self.layout = TokenLayout(token_layout.batch_size, num_queries, indices)

    def index_of(self, positions: torch.Tensor) -> torch.Tensor:
        """Where each of ``positions`` (all selected) sits among the selected rows."""
        return torch.searchsorted(self.positions, positions)


class GLMEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout.

    Works on any ``(..., length)`` shape when ``position_ids`` are given; GLMModel calls it on the packed real tokens.
    """

    def __init__(self, config: GLMConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_ids = nn.Buffer(torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False)

    def check_length(self, seq_len: int) -> None:
        if seq_len > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"input length {seq_len} exceeds max_position_embeddings={self.position_embeddings.num_embeddings}; "
                "truncate the inputs (e.g. tokenizer(..., truncation=True))"
            )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        if position_ids is None:
            seq_len = inputs_embeds.shape[1]
            self.check_length(seq_len)
            position_ids = self.position_ids[:, :seq_len]
        embeddings = inputs_embeds + self.position_embeddings(position_ids)
        if token_type_ids is None:
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
):
    """Plain softmax(QK^T * scaling + mask) V; the reference every other implementation is checked against."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class GLMSelfAttention(nn.Module):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.attention_head_size**-0.5
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        # An encoder: SDPA and flash attention must not apply a causal mask.
        self.is_causal = False

    def _project(self, hidden_states: torch.Tensor, layout: TokenLayout, projections: tuple[nn.Linear, ...]):
        """Several projections as one matmul (weights concatenated), split into ``(batch, heads, seq, head_size)``."""
        weight = torch.cat([p.weight for p in projections]) if len(projections) > 1 else projections[0].weight
        bias = torch.cat([p.bias for p in projections]) if len(projections) > 1 else projections[0].bias
        grid = layout.to_grid(F.linear(hidden_states, weight, bias))
        batch_size, seq_len = grid.shape[:2]
        grid = grid.view(batch_size, seq_len, len(projections), self.num_attention_heads, self.attention_head_size)
        return grid.permute(2, 0, 3, 1, 4).unbind(0)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        layout: TokenLayout | None = None,
        query_selection: QuerySelection | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``hidden_states``: ``(rows, hidden)`` laid out as ``layout`` says. Returns ``(rows, hidden)``, or with
        ``query_selection`` the outputs of the selected rows only (their queries attend to every token)."""
        if query_selection is not None:
            (query,) = self._project(hidden_states.index_select(0, query_selection.rows), query_selection.layout, (self.query,))
            key, value = self._project(hidden_states, layout, (self.key, self.value))
            if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4:
                # A bidirectional padding mask is the same for every query: keep one row, broadcast over queries.
                attention_mask = attention_mask[:, :, :1, :]
        elif layout.attention_groups is not None:
            return self._grouped_attention(hidden_states, layout, **kwargs), None
        else:
            query, key, value = self._project(hidden_states, layout, (self.query, self.key, self.value))

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout.p if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        query_layout = layout if query_selection is None else query_selection.layout
        attn_output = attn_output.reshape(query_layout.batch_size, query_layout.seq_len, -1)
        return query_layout.to_rows(attn_output), attn_weights

    def _grouped_attention(self, hidden_states: torch.Tensor, layout: TokenLayout, **kwargs) -> torch.Tensor:
        """Attention of each length group in its own grid (``layout.attention_groups``); rows in, rows out."""
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        groups = layout.attention_groups
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        qkv = F.linear(hidden_states, weight, bias)
        # split (not slicing): its backward is one concatenation, not a zero-filled copy per group.
        outputs = []
        for group, group_rows in zip(groups, qkv.split([g.num_rows for g in groups])):
            grid = group.layout.to_grid(group_rows)
            batch_size, seq_len = grid.shape[:2]
            grid = grid.view(batch_size, seq_len, 3, self.num_attention_heads, self.attention_head_size)
            query, key, value = grid.permute(2, 0, 3, 1, 4).unbind(0)
            attn_output, _ = attention_interface(
                self,
                query,
                key,
                value,
                group.mask,
                dropout=self.dropout.p if self.training else 0.0,
                scaling=self.scaling,
                **kwargs,
            )
            outputs.append(group.layout.to_rows(attn_output.reshape(batch_size, seq_len, -1)))
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]


class GLMSelfOutput(nn.Module):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class GLMAttention(nn.Module):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.self = GLMSelfAttention(config)
        self.output = GLMSelfOutput(config)

    def forward(self, hidden_states, attention_mask=None, layout=None, query_selection=None, **kwargs):
        attn_output, attn_weights = self.self(hidden_states, attention_mask, layout, query_selection, **kwargs)
        residual = hidden_states if query_selection is None else hidden_states.index_select(0, query_selection.rows)
        return self.output(attn_output, residual), attn_weights


class GLMIntermediate(nn.Module):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class GLMOutput(nn.Module):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class GLMLayer(GradientCheckpointingLayer):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.attention = GLMAttention(config)
        self.intermediate = GLMIntermediate(config)
        self.output = GLMOutput(config)

    def forward(self, hidden_states, attention_mask=None, layout=None, query_selection=None, **kwargs):
        attention_output, attn_weights = self.attention(
            hidden_states, attention_mask, layout, query_selection=query_selection, **kwargs
        )
        layer_output = self.output(self.intermediate(attention_output), attention_output)
        return layer_output, attn_weights


class GLMEncoder(nn.Module):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.layer = nn.ModuleList([GLMLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        layout: TokenLayout | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        query_selection: QuerySelection | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        """With ``query_selection``, the last layer returns the states of the selected rows only."""
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        last = len(self.layer) - 1
        for index, layer in enumerate(self.layer):
            hidden_states, attn_weights = layer(
                hidden_states,
                attention_mask,
                layout,
                query_selection=query_selection if index == last else None,
                **kwargs,
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (attn_weights,)
        return hidden_states, all_hidden_states, all_attentions


class GLMPooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence vector used by NSP and sequence classification."""

    def __init__(self, config: GLMConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class GLMPredictionHeadTransform(nn.Module):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class GLMLMPredictionHead(nn.Module):
    """Transform, then a vocabulary decoder whose weight is tied to the word embeddings (bias kept apart)."""

    def __init__(self, config: GLMConfig):
        super().__init__()
        self.transform = GLMPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class GLMOnlyMLMHead(nn.Module):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.predictions = GLMLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


class GLMPreTrainingHeads(nn.Module):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.predictions = GLMLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence_output: torch.Tensor, pooled_output: torch.Tensor):
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


class GLMPreTrainedModel(PreTrainedModel):
    config_class = GLMConfig
    config: GLMConfig
    base_model_prefix = "glm"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GLMEmbeddings", "GLMLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    # The losses below are means over this process's batch; Trainer must not rescale them by the world size.
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, GLMEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))

    def save_pretrained(self, save_directory, *args, **kwargs):
        # The full auto_map (every head, not only the saved class) makes any saved folder -- save_pretrained or a
        # Trainer checkpoint -- loadable by every AutoModelFor* with trust_remote_code=True; the code files are
        # copied by transformers because the classes are registered for auto classes at the end of this module.
        self.config.auto_map = dict(AUTO_MAP)
        return super().save_pretrained(save_directory, *args, **kwargs)


@dataclass
class GLMEncoding:
    """The encoder's states before they are put back on the ``(batch, seq)`` grid (internal to the heads).

    Either ``last_hidden_rows`` (every row) or, with a ``query_selection``, ``selected_states`` (the selected rows).
    """

    layout: TokenLayout
    last_hidden_rows: torch.Tensor | None
    query_selection: QuerySelection | None = None
    selected_states: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None  # each (rows, hidden)
    attentions: tuple[torch.Tensor, ...] | None = None

    def sequence_output(self) -> torch.Tensor:
        """``(batch, seq, hidden)``, zeros at padding when unpadded."""
        if self.last_hidden_rows is None:
            raise RuntimeError("the encoder computed the selected rows only; ask for no output_positions")
        return self.layout.to_grid(self.last_hidden_rows)

    def states_at(self, positions: torch.Tensor) -> torch.Tensor:
        """``(len(positions), hidden)``: the final states at grid ``positions`` (flat indices into batch * seq)."""
        if self.query_selection is not None:
            return self.selected_states.index_select(0, self.query_selection.index_of(positions))
        return self.layout.gather(self.last_hidden_rows, positions)

    def grid_hidden_states(self) -> tuple[torch.Tensor, ...] | None:
        if self.hidden_states is None:
            return None
        return tuple(self.layout.to_grid(h) for h in self.hidden_states)


class GLMModel(GLMPreTrainedModel):
    """The bare encoder: embeddings, Transformer layers and (optionally) the [CLS] pooler."""

    def __init__(self, config: GLMConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = GLMEmbeddings(config)
        self.encoder = GLMEncoder(config)
        self.pooler = GLMPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def encode(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_positions: torch.Tensor | None = None,
        **kwargs,
    ) -> GLMEncoding:
        """Run the encoder, keeping the states as rows (the packed real tokens when unpadding); used by every head.

        ``output_positions`` (flat indices into ``batch * seq``): the only positions whose final states the caller
        reads. The last layer then runs its queries, attention output and feed-forward on those tokens alone --
        applied when that computes the same function: sdpa or eager attention, a 2D (or no) attention mask, no hidden
        states or attentions asked for, and (unpadded) no padding position among them.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Specify exactly one of input_ids or inputs_embeds")
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        if output_attentions and self.config._attn_implementation != "eager":
            raise ValueError(
                f"output_attentions=True needs attn_implementation='eager', got "
                f"{self.config._attn_implementation!r}; load with attn_implementation='eager'"
            )
        grid = input_ids if input_ids is not None else inputs_embeds
        batch_size, seq_len = grid.shape[:2]
        self.embeddings.check_length(seq_len)

        layout = TokenLayout(batch_size, seq_len)
        if self.config.unpad_inputs and attention_mask is not None and attention_mask.dim() == 2:
            if not bool(attention_mask.all()):
                # Length groups for attention where the mask is ours to build (sdpa, eager) and no attention
                # weights are returned (those keep the (batch, heads, seq, seq) shape).
                group_by_length = self.config._attn_implementation in SELECTED_QUERY_ATTENTION and not output_attentions
                layout = TokenLayout.from_attention_mask(attention_mask, group_by_length=group_by_length)

        # The embeddings of the rows only: (1, rows) ids in, (rows, hidden) out.
        if position_ids is None:
            position_ids = self.embeddings.position_ids[:, :seq_len]
        position_ids = position_ids.expand(batch_size, seq_len)
        hidden_states = self.embeddings(
            input_ids=None if input_ids is None else layout.to_rows(input_ids)[None],
            token_type_ids=None if token_type_ids is None else layout.to_rows(token_type_ids)[None],
            position_ids=layout.to_rows(position_ids)[None],
            inputs_embeds=None if inputs_embeds is None else layout.to_rows(inputs_embeds)[None],
        )[0]
        # Only shape, dtype and device of ``inputs_embeds`` are read: a zero-size stand-in for the grid.
        mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=hidden_states.new_empty(batch_size, seq_len, 0),
            attention_mask=attention_mask,
        )
        for group in layout.attention_groups or ():
            group.mask = create_bidirectional_mask(
                config=self.config,
                inputs_embeds=hidden_states.new_empty(group.layout.batch_size, group.layout.seq_len, 0),
                attention_mask=group.mask,
            )

        query_selection = None
        if (
            output_positions is not None
            and output_positions.numel() > 0
            and not output_hidden_states
            and not output_attentions
            and self.config._attn_implementation in SELECTED_QUERY_ATTENTION
            and (attention_mask is None or attention_mask.dim() == 2)
        ):
            positions = torch.unique(output_positions.reshape(-1))  # sorted
            if not layout.is_unpadded or bool((layout.rows_at(positions) < layout.num_rows).all()):
                query_selection = QuerySelection(layout, positions)

        hidden_states, all_hidden_states, all_attentions = self.encoder(
            hidden_states,
            mask,
            layout,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            query_selection=query_selection,
            **kwargs,
        )
        return GLMEncoding(
            layout=layout,
            last_hidden_rows=None if query_selection is not None else hidden_states,
            query_selection=query_selection,
            selected_states=hidden_states if query_selection is not None else None,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )

    def pool(self, encoding: GLMEncoding) -> torch.Tensor | None:
        """The pooler on each sequence's first token ([CLS]); None without a pooler."""
        if self.pooler is None:
            return None
        first = encoding.states_at(encoding.layout.first_token_positions(self.pooler.dense.weight.device))
        return self.pooler(first[:, None])

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        encoding = self.encode(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        return BaseModelOutputWithPooling(
            last_hidden_state=encoding.sequence_output(),
            pooler_output=self.pool(encoding),
            hidden_states=encoding.grid_hidden_states(),
            attentions=encoding.attentions,
        )


def _labelled_positions(labels: torch.Tensor) -> torch.Tensor:
    """Flat positions (into ``batch * seq``) of the MLM labels that are not -100, in order."""
    return torch.nonzero(labels.reshape(-1) != -100, as_tuple=False).flatten()


def _mlm_loss_and_logits(
    predictions: "GLMLMPredictionHead", encoding: GLMEncoding, labels: torch.Tensor | None, sparse: bool
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """MLM logits and mean cross-entropy over labelled positions.

    With ``sparse`` and labels, the prediction head only sees the labelled positions: logits are
    ``(num_labelled, vocab)`` in the order of ``labels[labels != -100]``. Otherwise ``(batch, seq, vocab)``.
    """
    if labels is not None and sparse:
        positions = _labelled_positions(labels)
        logits = predictions(encoding.states_at(positions))
        return CrossEntropyLoss()(logits.float(), labels.reshape(-1).index_select(0, positions)), logits
    logits = predictions(encoding.sequence_output())
    if labels is None:
        return None, logits
    return CrossEntropyLoss()(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1)), logits


@dataclass
class GLMForPreTrainingOutput(ModelOutput):
    """Output of [`GLMForPreTraining`].

    loss: MLM cross-entropy + NSP cross-entropy (MLM alone when only ``labels`` is given).
    prediction_logits: ``(batch, seq, vocab)``, or ``(num_labelled, vocab)`` with ``labels`` and sparse prediction.
    seq_relationship_logits: ``(batch, 2)``; class 0 = B continues A, 1 = B is random.
    """

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class GLMForPreTraining(GLMPreTrainedModel):
    """Encoder with the two pretraining heads: masked language modelling and next sentence prediction.

    With MLM ``labels`` and ``config.sparse_prediction``, only [CLS] and the labelled tokens go through the last
    layer's queries and feed-forward and through the prediction head: all that the loss and the outputs read.
    """

    _tied_weights_keys = {"cls.predictions.decoder.weight": "glm.embeddings.word_embeddings.weight"}

    def __init__(self, config: GLMConfig):
        super().__init__(config)
        self.glm = GLMModel(config)
        self.cls = GLMPreTrainingHeads(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        next_sentence_label: torch.Tensor | None = None,
        **kwargs,
    ) -> GLMForPreTrainingOutput:
        r"""
        labels: ``(batch, seq)`` MLM targets, -100 where no prediction is asked.
        next_sentence_label: ``(batch,)``, 0 when segment B continues A, 1 when B is random.
        """
        output_positions = None
        if labels is not None and self.config.sparse_prediction:
            grid = input_ids if input_ids is not None else inputs_embeds
            first = torch.arange(grid.shape[0], device=grid.device) * grid.shape[1]
            output_positions = torch.cat([first, _labelled_positions(labels).to(grid.device)])
        encoding = self.glm.encode(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_positions=output_positions,
            **kwargs,
        )
        mlm_loss, prediction_logits = _mlm_loss_and_logits(
            self.cls.predictions, encoding, labels, self.config.sparse_prediction
        )
        seq_relationship_logits = self.cls.seq_relationship(self.glm.pool(encoding))
        loss = mlm_loss
        if next_sentence_label is not None:
            nsp_loss = CrossEntropyLoss()(seq_relationship_logits.float().view(-1, 2), next_sentence_label.view(-1))
            loss = nsp_loss if loss is None else loss + nsp_loss
        return GLMForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            seq_relationship_logits=seq_relationship_logits,
            hidden_states=encoding.grid_hidden_states(),
            attentions=encoding.attentions,
        )


class GLMForMaskedLM(GLMPreTrainedModel):
    """Encoder with the MLM head (fill-mask, MLM-only continued pretraining).

    With ``labels`` and ``config.sparse_prediction``, only the labelled tokens go through the last layer's queries
    and feed-forward and through the prediction head.
    """

    _tied_weights_keys = {"cls.predictions.decoder.weight": "glm.embeddings.word_embeddings.weight"}

    def __init__(self, config: GLMConfig):
        super().__init__(config)
        self.glm = GLMModel(config, add_pooling_layer=False)
        self.cls = GLMOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        output_positions = None
        if labels is not None and self.config.sparse_prediction:
            output_positions = _labelled_positions(labels)
        encoding = self.glm.encode(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_positions=output_positions,
            **kwargs,
        )
        loss, logits = _mlm_loss_and_logits(self.cls.predictions, encoding, labels, self.config.sparse_prediction)
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=encoding.grid_hidden_states(), attentions=encoding.attentions
        )


class GLMForSequenceClassification(GLMPreTrainedModel):
    """Pooled [CLS] -> dropout -> linear. ``config.problem_type``: single-label, multi-label or regression.

    Only [CLS] goes through the last layer's queries and feed-forward: all that the pooler reads.
    """

    def __init__(self, config: GLMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.glm = GLMModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        grid = input_ids if input_ids is not None else inputs_embeds
        encoding = self.glm.encode(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_positions=torch.arange(grid.shape[0], device=grid.device) * grid.shape[1],
            **kwargs,
        )
        logits = self.classifier(self.dropout(self.glm.pool(encoding)))

        loss = None
        if labels is not None:
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                if self.num_labels == 1:  # labels of shape (batch,) or (batch, 1)
                    loss = MSELoss()(logits.float().view(-1), labels.float().view(-1))
                else:
                    loss = MSELoss()(logits.float(), labels.float())
            elif self.config.problem_type == "single_label_classification":
                loss = CrossEntropyLoss()(logits.float().view(-1, self.num_labels), labels.view(-1))
            else:
                loss = BCEWithLogitsLoss()(logits.float(), labels.float())
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoding.grid_hidden_states(), attentions=encoding.attentions
        )


class GLMForTokenClassification(GLMPreTrainedModel):
    """Per-token linear head (NER, POS); labels -100 are ignored."""

    def __init__(self, config: GLMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.glm = GLMModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> TokenClassifierOutput:
        encoding = self.glm.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        logits = self.classifier(self.dropout(encoding.sequence_output()))
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.float().view(-1, self.num_labels), labels.view(-1))
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoding.grid_hidden_states(), attentions=encoding.attentions
        )


# Saving any of these classes copies this file and configuration_glm.py into the folder (see save_pretrained).
GLMConfig.register_for_auto_class()
for _auto_class, _name in AUTO_MAP.items():
    if _auto_class != "AutoConfig":
        globals()[_name.split(".")[1]].register_for_auto_class(_auto_class)

__all__ = [
    "GLMPreTrainedModel",
    "GLMModel",
    "GLMForPreTraining",
    "GLMForMaskedLM",
    "GLMForSequenceClassification",
    "GLMForTokenClassification",
    "GLMForPreTrainingOutput",
]
