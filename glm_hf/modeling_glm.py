"""PyTorch GLM: a BERT-style generative pre-trained encoder (embeddings -> Transformer encoder -> heads).

Read top-down: token layout -> embeddings -> attention -> layer -> encoder -> pretrained base -> model -> heads.

The module and parameter names are BERT's (``embeddings.word_embeddings``, ``encoder.layer.N.attention.self.query``,
``cls.predictions``, ...), so a BERT checkpoint maps onto GLM by renaming the ``bert.`` prefix (see
``glm_hf.convert_bert``), and the heads call the base model (``self.glm(...)``) as BERT's call ``self.bert(...)``.
What makes it cheaper than BERT while computing the same function on the real tokens
(``tests/test_modeling_fast_path.py`` checks each against BERT's padded computation):

* **Unpadding** (``config.unpad_inputs``): with a padded batch, the embeddings and every dense layer (Q/K/V,
  attention output, FFN, LayerNorm, dropout) run on the real tokens only, packed as ``(num_tokens, hidden)`` rows
  (:class:`TokenLayout`). Only attention needs a ``(batch, heads, seq, seq)`` grid: with sdpa or eager attention the
  sequences are sorted by length and cut into up to three groups, each attending in a grid as long as its own
  longest sequence (less attention on padding). The standard padding collators need no change.
* **Last layer for the tokens that are read** (``output_positions`` of :meth:`GLMModel.forward`,
  :class:`QuerySelection`): an MLM loss reads the masked tokens and NSP and sequence classification read [CLS]; the
  last layer computes keys and values for every token but queries, attention output and feed-forward only for those
  (sdpa/eager attention, no hidden states or attentions asked for).
* **Sparse MLM prediction** (``config.sparse_prediction``, off by default): with MLM ``labels``, the prediction head
  (transform and vocabulary decoder) runs only on the labelled tokens.
* **One Q/K/V matmul**: the three projections are concatenated at call time into one ``(3 * hidden, hidden)`` matmul;
  the saved parameters keep BERT's ``query``/``key``/``value`` names and shapes (and a PEFT LoRA layer put on
  ``query``/``value`` is called as such).
* Row gathers and scatters are ``index_select`` / ``index_copy_`` in both directions (autograd's backward of advanced
  indexing is an accumulating ``index_put`` that is slow on CPU).

Tried and not kept: one packed row with a block-diagonal mask instead of the padded grid (its attention cost grows with
the square of the batch's token count: 13x slower for a batch of 32 sentence pairs on CPU).

This file is copied next to every saved checkpoint (remote code), so it imports only transformers, torch and
``.configuration_glm``.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
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
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs, auto_docstring
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

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

# Attention implementations that take a (batch, heads, queries, keys) mask we build: the ones that may attend in
# length groups and run the last layer's queries for a few selected tokens only.
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


def _flat_positions(mask: torch.Tensor) -> torch.Tensor:
    """The flat indices (into ``batch * seq``) where a ``(batch, seq)`` mask is set, in row-major order."""
    return torch.nonzero(mask.reshape(-1), as_tuple=False).flatten()


class TokenLayout:
    """Where the rows of the encoder's ``(rows, hidden)`` states sit in the ``(batch, seq)`` grid of the inputs.

    Unpadded (``indices`` given): one row per real token, ``indices`` holding their positions in the flattened
    ``batch * seq`` grid. Padded (``indices`` None): one row per grid position, the plain BERT layout.

    ``attention_groups`` (unpadded only): the rows are ordered longest sequence first and cut into groups of similar
    length, consecutive runs of rows each laid out by its own smaller grid (a ``TokenLayout`` of the group's sequences
    x its longest length) in which they attend. Attention is permutation-invariant over the keys, so a sequence's real
    tokens simply fill the first slots of its group row, whatever the padding side.
    """

    def __init__(
        self,
        batch_size: int,
        seq_len: int,
        indices: torch.Tensor | None = None,
        attention_groups: tuple["TokenLayout", ...] | None = None,
    ):
        self.batch_size, self.seq_len, self.indices = batch_size, seq_len, indices
        self.num_rows = batch_size * seq_len if indices is None else indices.numel()
        self.attention_groups = attention_groups
        self.inverse = None
        if indices is not None:
            # Row of each grid position; padding points at row ``num_rows``, a zero row appended when needed.
            inverse = torch.full((batch_size * seq_len,), self.num_rows, dtype=torch.long, device=indices.device)
            self.inverse = inverse.index_copy_(0, indices, torch.arange(self.num_rows, device=indices.device))

    @classmethod
    def from_attention_mask(cls, attention_mask: torch.Tensor, group_by_length: bool = False) -> "TokenLayout":
        """The real tokens of a 2D mask; ``group_by_length``: ordered and grouped for attention (see class doc)."""
        batch_size, seq_len = attention_mask.shape
        indices = _flat_positions(attention_mask)
        if not group_by_length:
            return cls(batch_size, seq_len, indices)
        lengths = (attention_mask != 0).sum(1)
        order = torch.argsort(lengths, descending=True, stable=True)
        rank = torch.empty_like(order).index_copy_(0, order, torch.arange(batch_size, device=order.device))
        sequence = torch.div(indices, seq_len, rounding_mode="floor")
        indices = indices.index_select(0, torch.argsort(rank.index_select(0, sequence) * seq_len + indices % seq_len))
        sorted_lengths = lengths.index_select(0, order).tolist()
        groups = []
        for start, end in _length_groups(sorted_lengths):
            group_len, group_indices = sorted_lengths[start], None
            if sorted_lengths[end - 1] < group_len:  # some padding in the group's grid
                group_lengths = lengths.new_tensor(sorted_lengths[start:end])
                real = torch.arange(group_len, device=lengths.device)[None, :] < group_lengths[:, None]
                group_indices = _flat_positions(real)
            groups.append(cls(end - start, group_len, group_indices))
        return cls(batch_size, seq_len, indices, tuple(groups))

    @property
    def is_unpadded(self) -> bool:
        return self.indices is not None

    def padding_mask(self) -> torch.Tensor | None:
        """``(batch, seq)``, True at the positions that have a row; None when every position has one."""
        if self.indices is None:
            return None
        mask = torch.zeros(self.batch_size * self.seq_len, dtype=torch.bool, device=self.indices.device)
        return mask.index_fill_(0, self.indices, True).view(self.batch_size, self.seq_len)

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
    """The tokens whose last-layer output is read (e.g. [CLS] and the MLM-labelled tokens), and their key mask.

    The last layer computes keys and values for every token, but queries, attention output and feed-forward only for
    these rows, laid out as a ``(batch, queries)`` grid (``layout``) so that each selected token attends to every
    token of its own sequence; ``attention_mask`` is the attention implementation's ``(batch, 1, 1, seq)`` key mask
    (None without padding), the same for every query. ``positions`` are sorted, distinct grid positions, each with a
    row of ``token_layout``.
    """

    def __init__(self, token_layout: TokenLayout, positions: torch.Tensor, attention_mask: torch.Tensor | None):
        self.positions, self.attention_mask = positions, attention_mask
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
        # Rotary models have no table: position enters attention (GLMSelfAttention), not the embeddings.
        self.position_embeddings = None
        if config.position_embedding_type == "absolute":
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.max_position_embeddings = config.max_position_embeddings
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_ids = nn.Buffer(torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False)

    def check_length(self, seq_len: int) -> None:
        if seq_len > self.max_position_embeddings:
            raise ValueError(
                f"input length {seq_len} exceeds max_position_embeddings={self.max_position_embeddings}; "
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
        embeddings = inputs_embeds
        if self.position_embeddings is not None:
            embeddings = embeddings + self.position_embeddings(position_ids)
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
    **kwargs: Unpack[TransformersKwargs],
):
    """Plain softmax(QK^T * scaling + mask) V; the reference every other implementation is checked against."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


def rotary_angles(position_ids: torch.Tensor, head_size: int, base: float, dtype: torch.dtype):
    """RoPE's ``(cos, sin)`` for tokens at ``position_ids`` (any shape), each ``(*shape, 1, head_size)``: feature
    ``i`` and ``i + head_size / 2`` form a pair rotated by ``position * base ** (-2i / head_size)`` (the GPT-NeoX /
    LLaMA layout of RoFormer's rotation)."""
    frequency = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32, device=position_ids.device) / head_size)
    angles = position_ids.float()[..., None] * frequency
    angles = torch.cat([angles, angles], dim=-1)[..., None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``states`` ``(..., heads, head_size)`` rotated pairwise by the angles of ``rotary_angles``."""
    first, second = states.chunk(2, dim=-1)
    return states * cos + torch.cat([-second, first], dim=-1) * sin


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

    @staticmethod
    def _linear(hidden_states: torch.Tensor, projections: tuple[nn.Module, ...]) -> torch.Tensor:
        """The projections' outputs side by side: one matmul (weights concatenated) for plain ``nn.Linear`` layers.
        A wrapped or hooked projection (a PEFT LoRA layer, a quantized one) computes more than its ``weight``: then
        each module is called."""
        if any(type(p) is not nn.Linear or p._forward_hooks or p._forward_pre_hooks for p in projections):
            return torch.cat([p(hidden_states) for p in projections], dim=-1)
        weight = torch.cat([p.weight for p in projections]) if len(projections) > 1 else projections[0].weight
        bias = torch.cat([p.bias for p in projections]) if len(projections) > 1 else projections[0].bias
        return F.linear(hidden_states, weight, bias)

    def _rotate(self, projected: torch.Tensor, projections: tuple[nn.Module, ...], rotation) -> torch.Tensor:
        """Rotary models: the query and key parts of ``projected`` rows rotated by their tokens' positions."""
        if rotation is None:
            return projected
        parts = projected.view(projected.shape[0], len(projections), self.num_attention_heads, -1).unbind(1)
        parts = [
            apply_rotary(part, *rotation) if projection is self.query or projection is self.key else part
            for projection, part in zip(projections, parts)
        ]
        return torch.stack(parts, 1).view_as(projected)

    def _project(
        self, hidden_states: torch.Tensor, layout: TokenLayout, projections: tuple[nn.Module, ...], rotation=None
    ):
        """Several projections as one matmul, split into ``(batch, heads, seq, head_size)`` grids."""
        grid = layout.to_grid(self._rotate(self._linear(hidden_states, projections), projections, rotation))
        batch_size, seq_len = grid.shape[:2]
        grid = grid.view(batch_size, seq_len, len(projections), self.num_attention_heads, self.attention_head_size)
        return grid.permute(2, 0, 3, 1, 4).unbind(0)

    def _attend(self, query, key, value, attention_mask, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        return attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout.p if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | tuple[torch.Tensor | None, ...] | None,
        layout: TokenLayout,
        query_selection: QuerySelection | None = None,
        rotation: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``hidden_states``: ``(rows, hidden)`` laid out as ``layout`` says; ``attention_mask``: the attention
        implementation's mask for the layout's grid, or one per length group; ``rotation``: rotary models, the
        ``(cos, sin)`` of every row (:func:`rotary_angles`). Returns ``(rows, hidden)`` -- with ``query_selection``
        the outputs of the selected rows only, whose queries attend to every token -- and the attention weights where
        the implementation gives them (eager)."""
        if query_selection is not None:
            selected = hidden_states.index_select(0, query_selection.rows)
            selected_rotation = None
            if rotation is not None:
                selected_rotation = tuple(angle.index_select(0, query_selection.rows) for angle in rotation)
            (query,) = self._project(selected, query_selection.layout, (self.query,), selected_rotation)
            key, value = self._project(hidden_states, layout, (self.key, self.value), rotation)
            query_layout, attention_mask = query_selection.layout, query_selection.attention_mask
        elif layout.attention_groups is not None:
            return self._grouped_attention(hidden_states, attention_mask, layout, rotation, **kwargs), None
        else:
            query, key, value = self._project(hidden_states, layout, (self.query, self.key, self.value), rotation)
            query_layout = layout
        attn_output, attn_weights = self._attend(query, key, value, attention_mask, **kwargs)
        attn_output = attn_output.reshape(query_layout.batch_size, query_layout.seq_len, -1)
        return query_layout.to_rows(attn_output), attn_weights

    def _grouped_attention(
        self, hidden_states: torch.Tensor, group_masks: tuple, layout: TokenLayout, rotation=None, **kwargs
    ) -> torch.Tensor:
        """Attention of each length group in its own grid (``layout.attention_groups``); rows in, rows out."""
        groups = layout.attention_groups
        projections = (self.query, self.key, self.value)
        qkv = self._rotate(self._linear(hidden_states, projections), projections, rotation)
        # split (not slicing): its backward is one concatenation, not a zero-filled copy per group.
        outputs = []
        for group, group_mask, group_rows in zip(groups, group_masks, qkv.split([g.num_rows for g in groups])):
            grid = group.to_grid(group_rows)
            batch_size, seq_len = grid.shape[:2]
            grid = grid.view(batch_size, seq_len, 3, self.num_attention_heads, self.attention_head_size)
            query, key, value = grid.permute(2, 0, 3, 1, 4).unbind(0)
            attn_output, _ = self._attend(query, key, value, group_mask, **kwargs)
            outputs.append(group.to_rows(attn_output.reshape(batch_size, seq_len, -1)))
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

    def forward(self, hidden_states, attention_mask, layout, query_selection=None, rotation=None, **kwargs):
        attn_output, attn_weights = self.self(
            hidden_states, attention_mask, layout, query_selection, rotation, **kwargs
        )
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
    """One Transformer layer on the rows of ``layout``.

    ``hidden_states`` is ``(rows, hidden)``, or the ``(batch, seq, hidden)`` grid while hidden states are recorded:
    then the layer reads its input from the grid and returns its output on the grid, so that each recorded state is
    the tensor the next layer reads (part of the autograd graph, e.g. for saliency maps).
    """

    def __init__(self, config: GLMConfig):
        super().__init__()
        self.attention = GLMAttention(config)
        self.intermediate = GLMIntermediate(config)
        self.output = GLMOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | tuple | None,
        layout: TokenLayout,
        query_selection: QuerySelection | None = None,
        rotation: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        on_grid = hidden_states.dim() == 3
        rows = layout.to_rows(hidden_states) if on_grid else hidden_states
        attention_output, _ = self.attention(rows, attention_mask, layout, query_selection, rotation, **kwargs)
        layer_output = self.output(self.intermediate(attention_output), attention_output)
        return layout.to_grid(layer_output) if on_grid else layer_output


class GLMEncoder(nn.Module):
    def __init__(self, config: GLMConfig):
        super().__init__()
        self.layer = nn.ModuleList([GLMLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | tuple | None,
        layout: TokenLayout,
        query_selection: QuerySelection | None = None,
        rotation: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        """Rows (or the grid, see :class:`GLMLayer`) in, the same out; with ``query_selection`` the last layer
        returns the states of the selected rows only; ``rotation``: rotary models, the angles of every row."""
        last = len(self.layer) - 1
        for index, layer in enumerate(self.layer):
            selection = query_selection if index == last else None
            hidden_states = layer(hidden_states, attention_mask, layout, selection, rotation, **kwargs)
        return hidden_states


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


class GLMDiscriminatorHead(nn.Module):
    """ELECTRA's discriminator head: dense -> activation -> one logit per token (replaced or original)."""

    def __init__(self, config: GLMConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACT2FN[config.hidden_act] if isinstance(config.hidden_act, str) else config.hidden_act
        self.dense_prediction = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dense_prediction(self.activation(self.dense(hidden_states))).squeeze(-1)


def sinusoidal_positions(num_positions: int, dim: int, std: float) -> torch.Tensor:
    """The Transformer's table (sin on even, cos on odd features; wavelengths 2*pi .. 10000*2*pi), scaled to ``std``."""
    position = torch.arange(num_positions, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_positions, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table * (std / table.std())


def generator_config(config: GLMConfig) -> GLMConfig:
    """The RTD generator's config: the discriminator's, with ``generator_num_hidden_layers`` layers."""
    return GLMConfig(**{**config.to_dict(), "num_hidden_layers": config.generator_num_hidden_layers})


# Every embedding parameter of the RTD generator is the discriminator's (ELECTRA shares token and position
# embeddings), and its MLM decoder is the word embedding matrix.
_GENERATOR_TIED_WEIGHTS = {
    **{
        f"generator.embeddings.{name}": f"glm.embeddings.{name}"
        for name in (
            "word_embeddings.weight",
            "position_embeddings.weight",
            "token_type_embeddings.weight",
            "LayerNorm.weight",
            "LayerNorm.bias",
        )
    },
    "generator_head.decoder.weight": "glm.embeddings.word_embeddings.weight",
}


@auto_docstring
class GLMPreTrainedModel(PreTrainedModel):
    config_class = GLMConfig
    config: GLMConfig
    base_model_prefix = "glm"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GLMEmbeddings", "GLMLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    # Recorded by ``capture_outputs`` (GLMModel.forward): each layer's input/output while hidden states are asked for
    # (then on the (batch, seq, hidden) grid, see GLMLayer) and each self-attention's weights.
    _can_record_outputs = {"hidden_states": GLMLayer, "attentions": GLMSelfAttention}
    # The losses below are means over this process's batch; Trainer must not rescale them by the world size.
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, GLMEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            if module.position_embeddings is not None and self.config.position_embedding_init == "sinusoidal":
                table = module.position_embeddings.weight
                init.copy_(table, sinusoidal_positions(*table.shape, std=self.config.initializer_range))

    def save_pretrained(self, save_directory, *args, **kwargs):
        # The full auto_map (every head, not only the saved class) makes any saved folder -- save_pretrained or a
        # Trainer checkpoint -- loadable by every AutoModelFor* with trust_remote_code=True; the code files are
        # copied by transformers because the classes are registered for auto classes at the end of this module.
        self.config.auto_map = dict(AUTO_MAP)
        sharded_class = type(self)
        if sharded_class.__module__ == __name__:
            return super().save_pretrained(save_directory, *args, **kwargs)
        # FSDP2's fully_shard swaps the instance's class for a subclass defined in torch (FSDPGLMForPreTraining):
        # transformers would copy that torch file as the remote code and name it in auto_map. Saved as the GLM
        # class it is; the state dict (gathered or not) is the same either way.
        self.__class__ = next(cls for cls in sharded_class.__mro__ if cls.__module__ == __name__)
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.__class__ = sharded_class

    def _encode_for_masked_lm(self, input_ids, labels, **encoder_inputs):
        """Run ``self.glm`` for an MLM head: with ``labels`` and ``config.sparse_prediction`` only the labelled tokens
        go through the last layer's queries. Returns the encoder's output, the hidden states the head scores
        (``(num_labelled, hidden_size)`` in the order of ``labels[labels != -100]`` when sparse, else the whole
        ``last_hidden_state``) and the MLM targets in the same order (None without ``labels``)."""
        sparse = labels is not None and self.config.sparse_prediction
        labelled = labels != -100 if sparse else None
        outputs = self.glm(input_ids, output_positions=labelled, return_dict=True, **encoder_inputs)
        sequence_output = outputs.selected_hidden_state if sparse else outputs.last_hidden_state
        targets = None if labels is None else (labels[labelled] if sparse else labels)
        return outputs, sequence_output, targets


@auto_docstring(
    custom_intro="""
    Output of [`GLMModel`]: BERT's base-model output, plus the final states at the positions a head reads.
    """
)
@dataclass
class GLMModelOutput(BaseModelOutputWithPooling):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
        The last layer's hidden states; zeros at padding positions when the inputs were unpadded. None when
        `output_positions` let the last layer run for the selected positions only.
    pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        The pooler (dense + tanh) on the first token ([CLS]); None for a model built without a pooler.
    selected_hidden_state (`torch.FloatTensor` of shape `(num_selected, hidden_size)`, *optional*, returned when `output_positions` is passed):
        The last layer's hidden state at each position set in `output_positions`, in row-major order (the order of
        `labels[output_positions]`); zeros at padding positions.
    """  # noqa: E501 (auto_docstring reads each field's name, type and "returned when" from one line)

    selected_hidden_state: torch.Tensor | None = None


@auto_docstring(
    custom_intro="""
    The bare GLM encoder: embeddings, Transformer layers and (optionally) the [CLS] pooler.
    """
)
class GLMModel(GLMPreTrainedModel):
    def __init__(self, config: GLMConfig, add_pooling_layer: bool = True):
        r"""
        add_pooling_layer (`bool`, *optional*, defaults to `True`):
            Whether to add the [CLS] pooler (dense + tanh) that NSP and sequence classification read.
        """
        super().__init__(config)
        self.embeddings = GLMEmbeddings(config)
        self.encoder = GLMEncoder(config)
        self.pooler = GLMPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    @capture_outputs
    @auto_docstring
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_positions: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> GLMModelOutput:
        r"""
        output_positions (`torch.BoolTensor` of shape `(batch_size, sequence_length)`, *optional*):
            True at the positions whose final hidden state the caller reads (e.g. `labels != -100` for an MLM loss);
            their states are returned as `selected_hidden_state`. The last layer then runs its queries, attention
            output and feed-forward for those positions alone (and [CLS], which the pooler reads), and
            `last_hidden_state` is None -- where that computes the same function: sdpa or eager attention, a 2D (or
            no) attention mask, no hidden states or attentions asked for, and no padding position selected.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Specify exactly one of input_ids or inputs_embeds")
        # Read as capture_outputs reads them (it records the outputs).
        output_hidden_states = bool(kwargs.get("output_hidden_states", self.config.output_hidden_states))
        output_attentions = bool(kwargs.get("output_attentions", self.config.output_attentions))
        batch_size, seq_len = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        self.embeddings.check_length(seq_len)
        layout = self._token_layout(attention_mask, batch_size, seq_len, output_attentions)

        # The embeddings of the rows only: (1, rows) ids in, (rows, hidden) out.
        if position_ids is None:
            position_ids = self.embeddings.position_ids[:, :seq_len]
        row_positions = layout.to_rows(position_ids.expand(batch_size, seq_len))
        hidden_states = self.embeddings(
            input_ids=None if input_ids is None else layout.to_rows(input_ids)[None],
            token_type_ids=None if token_type_ids is None else layout.to_rows(token_type_ids)[None],
            position_ids=row_positions[None],
            inputs_embeds=None if inputs_embeds is None else layout.to_rows(inputs_embeds)[None],
        )[0]
        rotation = None
        if self.config.position_embedding_type == "rotary":
            head_size = self.config.hidden_size // self.config.num_attention_heads
            rotation = rotary_angles(row_positions, head_size, self.config.rotary_embedding_base, hidden_states.dtype)

        if layout.attention_groups is not None:
            layer_mask = tuple(
                self._attention_mask(group.padding_mask(), group.batch_size, group.seq_len, hidden_states)
                for group in layout.attention_groups
            )
        else:
            layer_mask = self._attention_mask(attention_mask, batch_size, seq_len, hidden_states)
        query_selection = None
        if output_positions is not None and not (output_hidden_states or output_attentions):
            query_selection = self._query_selection(layout, attention_mask, output_positions, hidden_states)
        if output_hidden_states:
            hidden_states = layout.to_grid(hidden_states)  # recorded states on the grid, see GLMLayer
        hidden_states = self.encoder(hidden_states, layer_mask, layout, query_selection, rotation, **kwargs)
        return self._model_output(hidden_states, layout, query_selection, output_positions)

    def _token_layout(self, attention_mask, batch_size: int, seq_len: int, output_attentions: bool) -> TokenLayout:
        """Unpadded when a 2D mask has padding; then in length groups where we build the masks (sdpa, eager) and no
        attention weights are returned (those keep the (batch, heads, seq, seq) shape)."""
        if not self.config.unpad_inputs or attention_mask is None or attention_mask.dim() != 2:
            return TokenLayout(batch_size, seq_len)
        if bool(attention_mask.all()):
            return TokenLayout(batch_size, seq_len)
        group_by_length = self.config._attn_implementation in SELECTED_QUERY_ATTENTION and not output_attentions
        return TokenLayout.from_attention_mask(attention_mask, group_by_length=group_by_length)

    def _attention_mask(self, padding_mask, batch_size: int, num_queries: int, like: torch.Tensor):
        """The attention implementation's mask for ``num_queries`` queries per sequence and a 2D key ``padding_mask``
        (or a ready 4D mask, returned as is)."""
        # Only the shape, dtype and device of ``inputs_embeds`` are read: a zero-size stand-in for the grid.
        stand_in = like.new_empty(batch_size, num_queries, 0)
        return create_bidirectional_mask(config=self.config, inputs_embeds=stand_in, attention_mask=padding_mask)

    def _query_selection(self, layout, attention_mask, output_positions, like) -> QuerySelection | None:
        """The last layer's queries for ``output_positions`` and [CLS] (with a pooler), or None where selecting them
        would not compute the same function (see ``forward``)."""
        if self.config._attn_implementation not in SELECTED_QUERY_ATTENTION:
            return None
        if attention_mask is not None and attention_mask.dim() != 2:
            return None
        read = output_positions.bool()
        if self.pooler is not None:
            read = read.clone()
            read[:, 0] = True
        positions = _flat_positions(read).to(like.device)
        if positions.numel() == 0:
            return None
        # A padding position has no row when unpadded: its state is then read off the grid (zeros), as is.
        if layout.is_unpadded and not bool((layout.rows_at(positions) < layout.num_rows).all()):
            return None
        return QuerySelection(layout, positions, self._attention_mask(attention_mask, layout.batch_size, 1, like))

    def _model_output(self, hidden_states, layout, query_selection, output_positions) -> GLMModelOutput:
        """The encoder's states (rows, the grid or the selected rows) as the output fields."""
        if query_selection is not None:
            last_hidden_state = None

            def states_at(positions):
                return hidden_states.index_select(0, query_selection.index_of(positions))

        else:
            last_hidden_state = hidden_states if hidden_states.dim() == 3 else layout.to_grid(hidden_states)
            flat = last_hidden_state.reshape(layout.batch_size * layout.seq_len, -1)

            def states_at(positions):
                return flat.index_select(0, positions)

        pooler_output = None
        if self.pooler is not None:
            first_tokens = torch.arange(layout.batch_size, device=hidden_states.device) * layout.seq_len
            pooler_output = self.pooler(states_at(first_tokens)[:, None])
        selected_hidden_state = None
        if output_positions is not None:
            selected_hidden_state = states_at(_flat_positions(output_positions).to(hidden_states.device))
        return GLMModelOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=pooler_output,
            selected_hidden_state=selected_hidden_state,
        )


@auto_docstring(
    custom_intro="""
    Output type of [`GLMForPreTraining`].
    """
)
@dataclass
class GLMForPreTrainingOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` or `next_sentence_label` is given):
        MLM cross-entropy + NSP cross-entropy (either alone when only its labels are given).
    prediction_logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, vocab_size)`):
        MLM scores; `(num_labelled, vocab_size)` in the order of `labels[labels != -100]` with `labels` and
        `config.sparse_prediction`.
    seq_relationship_logits (`torch.FloatTensor` of shape `(batch_size, 2)`):
        NSP scores (class 0 = segment B continues A, 1 = B is random) or SOP scores (1 = A and B swapped).
    discriminator_logits (`torch.FloatTensor` of shape `(batch_size, sequence_length)`, *optional*):
        Replaced-token detection (`pretraining_objective="rtd"`): > 0 where the discriminator calls the token
        replaced; 0 at padding.
    discriminator_labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
        What the discriminator was trained against (with `labels`, RTD): 1 where the generator's token differs from
        the original, 0 at the other real tokens, -100 at padding.
    """

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None
    discriminator_logits: torch.Tensor | None = None
    discriminator_labels: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@auto_docstring(
    custom_intro="""
    GLM with the heads of its pretraining objective (`config.pretraining_objective`): masked language modelling with
    next sentence prediction (BERT) or sentence-order prediction (ALBERT), masked language modelling alone, or
    replaced-token detection (ELECTRA: a discriminator head on every token, and a small generator that shares the
    embeddings -- or, with `generator_num_hidden_layers=0`, replacements drawn from `generator_token_probabilities`).
    Whatever the objective, `glm` is a plain GLM encoder that every other head loads for fine-tuning.
    """
)
class GLMForPreTraining(GLMPreTrainedModel):
    _tied_weights_keys = {"cls.predictions.decoder.weight": "glm.embeddings.word_embeddings.weight"}

    def __init__(self, config: GLMConfig):
        super().__init__(config)
        self.objective = config.pretraining_objective
        # Only NSP/SOP train the pooler; without them it is left out (a classifier fine-tuned later starts its own).
        self.glm = GLMModel(config, add_pooling_layer=self.objective in ("mlm_nsp", "mlm_sop"))
        if self.objective == "rtd":
            self.discriminator = GLMDiscriminatorHead(config)
            self.generator = self.generator_head = None
            if config.generator_num_hidden_layers > 0:
                self.generator = GLMModel(generator_config(config), add_pooling_layer=False)
                self.generator_head = GLMLMPredictionHead(config)
                self._tied_weights_keys = {
                    target: source for target, source in _GENERATOR_TIED_WEIGHTS.items()
                    if config.position_embedding_type == "absolute" or "position_embeddings" not in target
                }
            else:
                self._tied_weights_keys = {}
            # The statistical generator's distribution (saved with the model); uniform until set from a corpus.
            self.register_buffer(
                "generator_token_probabilities", torch.full((config.vocab_size,), 1.0 / config.vocab_size)
            )
        elif self.objective == "mlm":
            self.cls = GLMOnlyMLMHead(config)
        else:
            self.cls = GLMPreTrainingHeads(config)
        self.post_init()

    def get_output_embeddings(self):
        if self.objective == "rtd":
            return None if self.generator_head is None else self.generator_head.decoder
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        if self.objective == "rtd":
            self.generator_head.decoder = new_embeddings
        else:
            self.cls.predictions.decoder = new_embeddings

    def set_generator_distribution(self, probabilities: torch.Tensor) -> None:
        """The distribution replacements are drawn from when there is no generator network (e.g. unigram)."""
        if self.objective != "rtd" or self.generator is not None:
            raise ValueError("a token distribution replaces the generator of pretraining_objective='rtd' with "
                             "generator_num_hidden_layers=0 only")
        if probabilities.shape != self.generator_token_probabilities.shape or not bool((probabilities >= 0).all()):
            raise ValueError(f"the distribution must be {tuple(self.generator_token_probabilities.shape)} "
                             "non-negative values")
        self.generator_token_probabilities.copy_(probabilities / probabilities.sum())

    @can_return_tuple
    @auto_docstring
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        next_sentence_label: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> GLMForPreTrainingOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            MLM targets in `[0, ..., config.vocab_size - 1]`, -100 where no prediction is asked. With
            `config.sparse_prediction`, only the labelled tokens go through the last layer's queries and feed-forward
            and through the prediction head, and the logits are `(num_labelled, vocab_size)` in the order of
            `labels[labels != -100]`. RTD: the original tokens of the positions to replace (the inputs hold [MASK]
            there): the generator fills them, and the discriminator learns which tokens differ from `labels`.
        next_sentence_label (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            NSP: 0 when segment B continues segment A, 1 when B is a random segment. SOP: 1 when they are swapped.
        """
        inputs = dict(attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids)
        if self.objective == "rtd":
            if inputs_embeds is not None:
                raise ValueError("replaced-token detection replaces token ids: pass input_ids, not inputs_embeds")
            return self._replaced_token_detection(input_ids, labels, inputs, **kwargs)
        outputs, sequence_output, targets = self._encode_for_masked_lm(
            input_ids, labels, inputs_embeds=inputs_embeds, **inputs, **kwargs
        )
        if self.objective == "mlm":
            prediction_logits, seq_relationship_logits = self.cls(sequence_output), None
        else:
            prediction_logits, seq_relationship_logits = self.cls(sequence_output, outputs.pooler_output)

        loss = None
        if labels is not None:
            vocab_size = prediction_logits.shape[-1]
            loss = F.cross_entropy(prediction_logits.float().view(-1, vocab_size), targets.reshape(-1))
        if next_sentence_label is not None and seq_relationship_logits is not None:
            pair_loss = F.cross_entropy(seq_relationship_logits.float().view(-1, 2), next_sentence_label.view(-1))
            loss = pair_loss if loss is None else loss + pair_loss
        return GLMForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            seq_relationship_logits=seq_relationship_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _replaced_token_detection(self, input_ids, labels, inputs: dict, **kwargs) -> GLMForPreTrainingOutput:
        """ELECTRA: fill the positions of ``labels`` with generated tokens, then tell every token original or not.
        Without ``labels`` the discriminator scores ``input_ids`` as they are."""
        prediction_logits = generator_loss = discriminator_labels = None
        corrupted = input_ids
        if labels is not None:
            chosen = labels != -100
            originals = labels[chosen]
            if self.generator is not None:
                generated = self.generator(input_ids, output_positions=chosen, return_dict=True, **inputs)
                prediction_logits = self.generator_head(generated.selected_hidden_state)
                generator_loss = F.cross_entropy(prediction_logits.float(), originals)
                # Sampled, not the argmax: plausible but wrong tokens are what the discriminator learns from.
                with torch.no_grad():
                    temperature = self.config.generator_sampling_temperature
                    probabilities = F.softmax(prediction_logits.detach().float() / temperature, dim=-1)
                    sampled = torch.multinomial(probabilities, 1).squeeze(-1)
            else:
                probabilities = self.generator_token_probabilities ** (1 / self.config.generator_sampling_temperature)
                sampled = torch.multinomial(probabilities, originals.numel(), replacement=True)  # renormalised by it
            corrupted = input_ids.masked_scatter(chosen, sampled)
            discriminator_labels = chosen & (corrupted != labels)
            discriminator_labels = discriminator_labels.long()
            if inputs["attention_mask"] is not None:
                discriminator_labels = discriminator_labels.masked_fill(inputs["attention_mask"] == 0, -100)
        outputs = self.glm(corrupted, return_dict=True, **inputs, **kwargs)
        # The head runs on the real tokens only (padding rows of the grid are zeros and are never read).
        real = (
            torch.ones_like(corrupted, dtype=torch.bool)
            if inputs["attention_mask"] is None
            else inputs["attention_mask"].bool()
        )
        discriminator_logits = outputs.last_hidden_state.new_zeros(corrupted.shape).masked_scatter(
            real, self.discriminator(outputs.last_hidden_state[real])
        )
        loss = None
        if labels is not None:
            loss = self.config.rtd_loss_weight * F.binary_cross_entropy_with_logits(
                discriminator_logits[real].float(), discriminator_labels[real].float()
            )
            if generator_loss is not None:
                loss = loss + generator_loss
        return GLMForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            discriminator_logits=discriminator_logits,
            discriminator_labels=discriminator_labels,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


@auto_docstring(
    custom_intro="""
    GLM with the masked language modelling head (fill-mask, MLM-only continued pretraining).
    """
)
class GLMForMaskedLM(GLMPreTrainedModel):
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
    @auto_docstring
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MaskedLMOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            MLM targets in `[0, ..., config.vocab_size - 1]`, -100 where no prediction is asked. With
            `config.sparse_prediction`, only the labelled tokens go through the last layer's queries and feed-forward
            and through the prediction head, and the logits are `(num_labelled, vocab_size)` in the order of
            `labels[labels != -100]`.
        """
        outputs, sequence_output, targets = self._encode_for_masked_lm(
            input_ids,
            labels,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        logits = self.cls(sequence_output)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, targets, vocab_size=logits.shape[-1], **kwargs)
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


@auto_docstring(
    custom_intro="""
    GLM with a sequence classification/regression head on the pooled [CLS] (dropout, then linear).
    """
)
class GLMForSequenceClassification(GLMPreTrainedModel):
    def __init__(self, config: GLMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.glm = GLMModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    @auto_docstring
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, ..., config.num_labels - 1]` (cross-entropy), floats for regression
            (`config.num_labels == 1`, mean squared error) or `(batch_size, num_labels)` multi-hot floats
            (`problem_type="multi_label_classification"`, binary cross-entropy).
        """
        grid = input_ids if input_ids is not None else inputs_embeds
        mean_pooling = self.config.classifier_pooling == "mean"
        # With [CLS] pooling the classifier reads the pooled [CLS] alone: the last layer runs for [CLS] only.
        cls_position = None
        if not mean_pooling:
            cls_position = torch.zeros(grid.shape[:2], dtype=torch.bool, device=grid.device)
            cls_position[:, 0] = True
        outputs = self.glm(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_positions=cls_position,
            return_dict=True,
            **kwargs,
        )
        if mean_pooling:  # padding positions of last_hidden_state may be zeros or not: weigh by the mask
            weights = torch.ones(grid.shape[:2], device=grid.device) if attention_mask is None else attention_mask
            weights = weights.to(outputs.last_hidden_state.dtype)[..., None]
            pooled = (outputs.last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1)
        else:
            pooled = outputs.pooler_output
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


@auto_docstring(
    custom_intro="""
    GLM with a per-token classification head (NER, POS tagging).
    """
)
class GLMForTokenClassification(GLMPreTrainedModel):
    def __init__(self, config: GLMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.glm = GLMModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    @auto_docstring
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TokenClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Tag indices in `[0, ..., config.num_labels - 1]`, -100 where no tag counts (padding, [CLS], sub-words).
        """
        outputs = self.glm(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config, **kwargs)
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
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
    "GLMModelOutput",
    "GLMForPreTrainingOutput",
]
