"""PyTorch GLM: a BERT-style generative pre-trained encoder (embeddings -> Transformer encoder -> heads).

Read top-down: embeddings -> attention -> layer -> encoder -> pretrained base -> model -> heads.

The module and parameter names are BERT's (``embeddings.word_embeddings``, ``encoder.layer.N.attention.self.query``,
``cls.predictions``, ...), so a BERT checkpoint maps onto GLM by renaming the ``bert.`` prefix (see
``glm_hf.convert_bert``). Two things make it cheaper than BERT while computing the same function:

* **Unpadding** (``config.unpad_inputs``): with a padded batch, the dense layers (Q/K/V, attention output, FFN) run
  on the real tokens only, packed as ``(num_tokens, hidden)``; only the attention product itself sees the padded
  ``(batch, heads, seq, seq)`` layout, through the standard attention interface and mask.
* **Sparse MLM prediction** (``config.sparse_prediction``): with MLM ``labels``, the vocabulary decoder runs only on
  the labelled positions instead of every position.

This file is copied next to every saved checkpoint (remote code), so it imports only transformers, torch and
``.configuration_glm``.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
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


@dataclass
class Unpadding:
    """Where the real tokens of a right- or left-padded ``(batch, seq)`` batch sit once flattened."""

    indices: torch.Tensor  # (num_tokens,) positions in the flattened batch * seq
    batch_size: int
    seq_len: int

    @classmethod
    def from_attention_mask(cls, attention_mask: torch.Tensor) -> "Unpadding":
        indices = torch.nonzero(attention_mask.reshape(-1), as_tuple=False).flatten()
        return cls(indices, attention_mask.shape[0], attention_mask.shape[1])

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, ...)`` -> ``(num_tokens, ...)``."""
        return padded.reshape(-1, *padded.shape[2:])[self.indices]

    def pad(self, packed: torch.Tensor) -> torch.Tensor:
        """``(num_tokens, ...)`` -> ``(batch, seq, ...)`` with zeros at the padding positions."""
        flat = packed.new_zeros(self.batch_size * self.seq_len, *packed.shape[1:])
        flat = flat.index_put((self.indices,), packed)
        return flat.view(self.batch_size, self.seq_len, *packed.shape[1:])


class GLMEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: GLMConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_ids = nn.Buffer(torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        seq_len = inputs_embeds.shape[1]
        if seq_len > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"input length {seq_len} exceeds max_position_embeddings={self.position_embeddings.num_embeddings}; "
                "truncate the inputs (e.g. tokenizer(..., truncation=True))"
            )
        if position_ids is None:
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

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        unpadding: Unpadding | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query, key, value = self.query(hidden_states), self.key(hidden_states), self.value(hidden_states)
        if unpadding is not None:  # packed (num_tokens, hidden): attention itself needs the padded layout
            query, key, value = unpadding.pad(query), unpadding.pad(key), unpadding.pad(value)
        batch_size, seq_len = query.shape[:2]
        heads_shape = (batch_size, seq_len, self.num_attention_heads, self.attention_head_size)
        query, key, value = (t.view(heads_shape).transpose(1, 2) for t in (query, key, value))

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
        attn_output = attn_output.reshape(batch_size, seq_len, -1)
        if unpadding is not None:
            attn_output = unpadding.unpad(attn_output)
        return attn_output, attn_weights


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

    def forward(self, hidden_states, attention_mask=None, unpadding=None, **kwargs):
        attn_output, attn_weights = self.self(hidden_states, attention_mask, unpadding, **kwargs)
        return self.output(attn_output, hidden_states), attn_weights


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

    def forward(self, hidden_states, attention_mask=None, unpadding=None, **kwargs):
        attention_output, attn_weights = self.attention(hidden_states, attention_mask, unpadding, **kwargs)
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
        unpadding: Unpadding | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        **kwargs,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layer:
            hidden_states, attn_weights = layer(hidden_states, attention_mask, unpadding, **kwargs)
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


def _mlm_loss_and_logits(
    predictions: GLMLMPredictionHead, sequence_output: torch.Tensor, labels: torch.Tensor | None, sparse: bool
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """MLM logits and mean cross-entropy over labelled positions.

    With ``sparse`` and labels, the decoder only sees the labelled positions: logits are
    ``(num_labelled, vocab)`` in the order of ``labels[labels != -100]``. Otherwise ``(batch, seq, vocab)``.
    """
    if labels is None:
        return None, predictions(sequence_output)
    if sparse:
        flat_labels = labels.reshape(-1)
        selected = flat_labels != -100
        logits = predictions(sequence_output.reshape(-1, sequence_output.shape[-1])[selected])
        return CrossEntropyLoss()(logits.float(), flat_labels[selected]), logits
    logits = predictions(sequence_output)
    return CrossEntropyLoss()(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1)), logits


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

        hidden_states = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask)

        unpadding = None
        if self.config.unpad_inputs and attention_mask is not None and attention_mask.dim() == 2:
            if not bool(attention_mask.all()):
                unpadding = Unpadding.from_attention_mask(attention_mask)
                hidden_states = unpadding.unpad(hidden_states)

        hidden_states, all_hidden_states, all_attentions = self.encoder(
            hidden_states,
            mask,
            unpadding,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **kwargs,
        )
        if unpadding is not None:
            hidden_states = unpadding.pad(hidden_states)
            if all_hidden_states is not None:
                all_hidden_states = tuple(unpadding.pad(h) for h in all_hidden_states)
        pooled_output = self.pooler(hidden_states) if self.pooler is not None else None
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden_states,
            pooler_output=pooled_output,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )


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
        outputs = self.glm(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        mlm_loss, prediction_logits = _mlm_loss_and_logits(
            self.cls.predictions, outputs.last_hidden_state, labels, self.config.sparse_prediction
        )
        seq_relationship_logits = self.cls.seq_relationship(outputs.pooler_output)
        loss = mlm_loss
        if next_sentence_label is not None:
            nsp_loss = CrossEntropyLoss()(seq_relationship_logits.float().view(-1, 2), next_sentence_label.view(-1))
            loss = nsp_loss if loss is None else loss + nsp_loss
        return GLMForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            seq_relationship_logits=seq_relationship_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
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
        outputs = self.glm(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        loss, logits = _mlm_loss_and_logits(
            self.cls.predictions, outputs.last_hidden_state, labels, self.config.sparse_prediction
        )
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class GLMForSequenceClassification(GLMPreTrainedModel):
    """Pooled [CLS] -> dropout -> linear. ``config.problem_type``: single-label, multi-label or regression."""

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
        outputs = self.glm(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        logits = self.classifier(self.dropout(outputs.pooler_output))

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
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
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
        outputs = self.glm(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.float().view(-1, self.num_labels), labels.view(-1))
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
    "GLMForPreTrainingOutput",
]
