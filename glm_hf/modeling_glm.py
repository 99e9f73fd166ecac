"""PyTorch GLM: a BERT-style generative pre-trained encoder (embeddings -> Transformer encoder -> heads).

Read top-down: token layout -> embeddings -> attention -> layer -> encoder -> pretrained base -> model -> heads.

The module and parameter names are BERT's (``embeddings.word_embeddings``, ``encoder.layer.N.attention.self.query``,
``cls.predictions``, ...), so a BERT checkpoint maps onto GLM by renaming the ``bert.`` prefix (see
``glm_hf.convert_bert``). What makes it cheaper than BERT, while computing the same function on the real tokens:

* **Unpadding** (``config.unpad_inputs``): with a padded batch, the embeddings and every dense layer (Q/K/V,
  attention output, FFN, LayerNorm, dropout) run on the real tokens only, packed as ``(num_tokens, hidden)`` rows;
  only the attention product itself sees the ``(batch, heads, seq, seq)`` layout, through the standard attention
  interface and mask (on CPU this is faster than attention over one packed row with a block-diagonal mask, whose cost
  grows with the square of the *batch's* token count). The standard padding collators need no change.
* **Sparse MLM prediction** (``config.sparse_prediction``): with MLM ``labels``, the prediction head (transform and
  vocabulary decoder) runs only on the labelled positions, gathered straight from the packed rows.
* **One Q/K/V matmul**: the three projections are concatenated at call time into one ``(3 * hidden, hidden)`` matmul
  (the saved parameters keep BERT's ``query``/``key``/``value`` names and shapes).
* **[CLS]-only last layer** for sequence classification (sdpa or eager attention, no hidden states or attentions
  asked for): the last layer computes keys and values for every token but the attention query, attention output and
  feed-forward for the first token only -- all that the pooler reads.
* Gathers/scatters are ``index_select`` in both directions (the backward of advanced indexing is a slow
  accumulating ``index_put`` on CPU).

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

# Attention implementations whose mask can be cut down to the first query row (for the [CLS]-only last layer).
FIRST_TOKEN_ONLY_ATTENTION = ("sdpa", "eager")


class TokenLayout:
    """Where the rows of the encoder's ``(rows, hidden)`` states sit in the ``(batch, seq)`` grid of the inputs.

    Unpadded (``indices`` given): one row per real token, ``indices`` holding their positions in the flattened
    ``batch * seq`` grid, in order. Padded (``indices`` None): one row per grid position, the plain BERT layout.
    """

    def __init__(self, batch_size: int, seq_len: int, indices: torch.Tensor | None = None):
        self.batch_size, self.seq_len, self.indices = batch_size, seq_len, indices
        self.num_rows = batch_size * seq_len if indices is None else indices.numel()
        self.inverse = None
        if indices is not None:
            # Row of each grid position; padding points at row ``num_rows``, a zero row appended when needed.
            self.inverse = torch.full((batch_size * seq_len,), self.num_rows, dtype=torch.long, device=indices.device)
            self.inverse[indices] = torch.arange(self.num_rows, device=indices.device)

    @classmethod
    def from_attention_mask(cls, attention_mask: torch.Tensor) -> "TokenLayout":
        indices = torch.nonzero(attention_mask.reshape(-1), as_tuple=False).flatten()
        return cls(attention_mask.shape[0], attention_mask.shape[1], indices)

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
            rows = torch.cat([rows, rows.new_zeros(1, *rows.shape[1:])]).index_select(0, self.inverse)
        return rows.view(self.batch_size, self.seq_len, *rows.shape[1:])

    def gather(self, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The rows at grid ``positions`` (flat indices into ``batch * seq``); zeros at padding, as in ``to_grid``."""
        if self.indices is None:
            return rows.index_select(0, positions)
        row_index = self.inverse.index_select(0, positions)
        if bool((row_index == self.num_rows).any()):
            rows = torch.cat([rows, rows.new_zeros(1, *rows.shape[1:])])
        return rows.index_select(0, row_index)

    def first_token_positions(self, device) -> torch.Tensor:
        return torch.arange(self.batch_size, device=device) * self.seq_len

    def first_token_rows(self, device) -> torch.Tensor:
        positions = self.first_token_positions(device)
        return positions if self.indices is None else self.inverse.index_select(0, positions)

    def first_tokens_are_rows(self) -> bool:
        """Whether every sequence's position 0 has a row (always when padded; unpadded, unless left-padded)."""
        if self.indices is None:
            return True
        return bool((self.first_token_rows(self.indices.device) < self.num_rows).all())


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
        first_token_only: bool = False,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``hidden_states``: ``(rows, hidden)`` laid out as ``layout`` says. Returns ``(rows, hidden)``, or with
        ``first_token_only`` the ``(batch, hidden)`` outputs of each sequence's first token (keys: every token)."""
        if first_token_only:
            first_rows = layout.first_token_rows(hidden_states.device)
            query = self.query(hidden_states.index_select(0, first_rows))
            query = query.view(layout.batch_size, 1, self.num_attention_heads, self.attention_head_size).transpose(1, 2)
            key, value = self._project(hidden_states, layout, (self.key, self.value))
            if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4:
                attention_mask = attention_mask[:, :, :1, :]
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
        if first_token_only:
            return attn_output.reshape(layout.batch_size, -1), attn_weights
        return layout.to_rows(attn_output.reshape(layout.batch_size, layout.seq_len, -1)), attn_weights


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

    def forward(self, hidden_states, attention_mask=None, layout=None, first_token_only=False, **kwargs):
        attn_output, attn_weights = self.self(hidden_states, attention_mask, layout, first_token_only, **kwargs)
        residual = hidden_states
        if first_token_only:
            residual = hidden_states.index_select(0, layout.first_token_rows(hidden_states.device))
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

    def forward(self, hidden_states, attention_mask=None, layout=None, first_token_only=False, **kwargs):
        attention_output, attn_weights = self.attention(
            hidden_states, attention_mask, layout, first_token_only=first_token_only, **kwargs
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
        first_token_only: bool = False,
        **kwargs,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        """``first_token_only``: the last layer returns the first token's ``(batch, hidden)`` state only."""
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        last = len(self.layer) - 1
        for index, layer in enumerate(self.layer):
            hidden_states, attn_weights = layer(
                hidden_states, attention_mask, layout, first_token_only=first_token_only and index == last, **kwargs
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
    """The encoder's states before they are put back on the ``(batch, seq)`` grid (internal to the heads)."""

    layout: TokenLayout
    last_hidden_rows: torch.Tensor | None  # (rows, hidden); None when only the first tokens were computed
    first_token_states: torch.Tensor | None  # (batch, hidden) when only the first tokens were computed
    hidden_states: tuple[torch.Tensor, ...] | None  # each (rows, hidden)
    attentions: tuple[torch.Tensor, ...] | None

    def sequence_output(self) -> torch.Tensor:
        return self.layout.to_grid(self.last_hidden_rows)

    def first_tokens(self) -> torch.Tensor:
        """``(batch, hidden)``: each sequence's position-0 state (what the pooler reads)."""
        if self.first_token_states is not None:
            return self.first_token_states
        positions = self.layout.first_token_positions(self.last_hidden_rows.device)
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
        first_token_only: bool = False,
        **kwargs,
    ) -> GLMEncoding:
        """Run the encoder, keeping the states as rows (packed real tokens when unpadding); used by every head.

        ``first_token_only`` asks for the first tokens' final states only (the [CLS]-only last layer); it is applied
        when it computes the same function: sdpa/eager attention, no hidden states or attentions asked for, and
        (unpadded) a real token at position 0 of every sequence.
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
                layout = TokenLayout.from_attention_mask(attention_mask)

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

        first_token_only = (
            first_token_only
            and not output_hidden_states
            and not output_attentions
            and self.config._attn_implementation in FIRST_TOKEN_ONLY_ATTENTION
            and layout.first_tokens_are_rows()
        )
        hidden_states, all_hidden_states, all_attentions = self.encoder(
            hidden_states,
            mask,
            layout,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            first_token_only=first_token_only,
            **kwargs,
        )
        return GLMEncoding(
            layout=layout,
            last_hidden_rows=None if first_token_only else hidden_states,
            first_token_states=hidden_states if first_token_only else None,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )

    def pool(self, encoding: GLMEncoding) -> torch.Tensor | None:
        return None if self.pooler is None else self.pooler(encoding.first_tokens()[:, None])

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


def _mlm_loss_and_logits(
    predictions: "GLMLMPredictionHead", encoding: GLMEncoding, labels: torch.Tensor | None, sparse: bool
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """MLM logits and mean cross-entropy over labelled positions.

    With ``sparse`` and labels, the prediction head only sees the labelled positions, gathered from the encoder's
    rows: logits are ``(num_labelled, vocab)`` in the order of ``labels[labels != -100]``. Otherwise
    ``(batch, seq, vocab)``.
    """
    if labels is not None and sparse:
        flat_labels = labels.reshape(-1)
        positions = torch.nonzero(flat_labels != -100, as_tuple=False).flatten()
        logits = predictions(encoding.layout.gather(encoding.last_hidden_rows, positions))
        return CrossEntropyLoss()(logits.float(), flat_labels.index_select(0, positions)), logits
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
    """Encoder with the two pretraining heads: masked language modelling and next sentence prediction."""

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
        encoding = self.glm.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
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
    """Encoder with the MLM head (fill-mask, MLM-only continued pretraining)."""

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
        encoding = self.glm.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        loss, logits = _mlm_loss_and_logits(self.cls.predictions, encoding, labels, self.config.sparse_prediction)
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=encoding.grid_hidden_states(), attentions=encoding.attentions
        )


class GLMForSequenceClassification(GLMPreTrainedModel):
    """Pooled [CLS] -> dropout -> linear. ``config.problem_type``: single-label, multi-label or regression.

    Only the [CLS] state of the last layer is computed (see ``GLMModel.encode(first_token_only=True)``).
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
        encoding = self.glm.encode(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, first_token_only=True, **kwargs
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
                loss = MSELoss()(logits.float().squeeze(-1) if self.num_labels == 1 else logits.float(), labels.float())
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
