"""Configuration of the GLM encoder family (BERT-compatible fields, model_type ``glm_hf``)."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

# Named sizes for pretraining from scratch; ``base`` is bert-base shaped.
MODEL_SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256),
    "mini": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "small": dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048),
    "medium": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=2048),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def check_model_size(size: str) -> None:
    """The one check of a named size (``GLMConfig.from_size``, the recipes and the main job use it)."""
    if size not in MODEL_SIZES:
        raise ValueError(f"model_size must be one of {sorted(MODEL_SIZES)}, got {size!r}")


def check_choice(name: str, value, allowed) -> None:
    """The one check of a setting with a fixed set of values: the error names the setting and what is allowed."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


PRETRAINING_OBJECTIVES = ("mlm_nsp", "mlm_sop", "mlm", "rtd")
CLASSIFIER_POOLING = ("cls", "mean")
POSITION_EMBEDDING_INITS = ("normal", "sinusoidal")
POSITION_EMBEDDING_TYPES = ("absolute", "rotary")


@strict
class GLMConfig(PreTrainedConfig):
    r"""Configuration for [`GLMModel`] and its heads.

    The fields are BERT's, so a ``BertConfig`` maps onto it one to one (see ``glm_hf.convert_bert``). Two fields are
    GLM's own:

    - ``unpad_inputs`` (default True): run the embeddings and the encoder's dense layers on the real (non-padding)
      tokens only, and (sdpa/eager attention) attention in groups of sequences of similar length. Only speed changes:
      the outputs at real tokens are the same, and padding positions of ``last_hidden_state`` are zeros.
    - ``sparse_prediction`` (default False, as BERT): when MLM ``labels`` are given, run the MLM head only on the
      positions with a label (and the last layer's queries and feed-forward only on those and [CLS]); the returned
      MLM ``logits`` / ``prediction_logits`` are then of shape ``(num_labelled_tokens, vocab_size)`` in the order of
      ``labels[labels != -100]`` instead of ``(batch_size, seq_len, vocab_size)``. Without labels the logits always
      cover every position. Turn it on for pretraining: the same loss for less work.

    Pretraining and fine-tuning choices:

    - ``pretraining_objective``: the heads of [`GLMForPreTraining`]: ``"mlm_nsp"`` (BERT's MLM + next sentence
      prediction, the default), ``"mlm_sop"`` (MLM + ALBERT's sentence-order prediction: the same two-way head, label
      1 = segments swapped), ``"mlm"`` (MLM alone) or ``"rtd"`` (ELECTRA's replaced-token detection).
    - ``generator_num_hidden_layers`` (``rtd``): layers of the small MLM generator that fills the masked positions; it
      shares the discriminator's embeddings, so its width is the discriminator's. 0: no generator network -- the
      replacements are drawn from ``generator_token_probabilities`` (e.g. the corpus's unigram distribution).
    - ``rtd_loss_weight`` (``rtd``): weight of the discriminator's loss against the generator's MLM loss (ELECTRA: 50).
    - ``generator_sampling_temperature`` (``rtd``): replacements are sampled from the generator's distribution raised
      to ``1 / T`` and renormalised (softmax of logits / T): 1 samples it as it is (ELECTRA); above 1 flattens it, so a
      generator that has learned the unigram distribution still makes replacements the discriminator can tell apart.
    - ``classifier_pooling``: what [`GLMForSequenceClassification`] reads: ``"cls"`` (the pooler on [CLS], BERT) or
      ``"mean"`` (the mean of the last layer over the real tokens).
    - ``position_embedding_init``: how a new model's learned position embeddings start: ``"normal"`` (BERT:
      N(0, initializer_range)) or ``"sinusoidal"`` (the Transformer's sine/cosine table, rescaled to the same std).
      Only the start differs; the embeddings are learned either way, so BERT checkpoints convert unchanged. Why:
      from a random table, small models trained from scratch sit for hundreds of steps at the unigram stage (the
      table gets no consistent gradient until attention uses position, and attention cannot use position before
      the table has structure); the sinusoidal table gives neighbouring positions related vectors from step 0.
    - ``position_embedding_type``: ``"absolute"`` (BERT: a learned table added to the word embeddings) or
      ``"rotary"`` (RoFormer / RoPE, Su et al. 2021: no table; each head's queries and keys are rotated by their
      token's position, so attention scores depend on the distance between tokens only; ``rotary_embedding_base`` sets
      the wavelengths). Why: a head can attend to its neighbours from its biases alone, with no table to learn first.

    Sequence classification always runs the last layer's queries and feed-forward for [CLS] only (the pooler reads
    nothing else), unless hidden states or attentions are asked for; the heads name the positions they read with
    ``GLMModel.forward(output_positions=...)``.

    Example:

    ```python
    >>> from glm_hf import GLMConfig, GLMForPreTraining
    >>> model = GLMForPreTraining(GLMConfig.from_size("mini", vocab_size=8000))
    ```
    """

    model_type = "glm_hf"

    vocab_size: int = 21128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    classifier_dropout: float | int | None = None
    tie_word_embeddings: bool = True
    unpad_inputs: bool = True
    sparse_prediction: bool = False
    pretraining_objective: str = "mlm_nsp"
    generator_num_hidden_layers: int = 0
    rtd_loss_weight: float | int = 50.0
    generator_sampling_temperature: float | int = 1.0
    classifier_pooling: str = "cls"
    position_embedding_init: str = "normal"
    position_embedding_type: str = "absolute"
    rotary_embedding_base: float | int = 10000.0

    @classmethod
    def from_size(cls, size: str, **kwargs) -> "GLMConfig":
        """A config of one of the named sizes (``tiny``, ``mini``, ``small``, ``medium``, ``base``)."""
        check_model_size(size)
        return cls(**{**MODEL_SIZES[size], **kwargs})

    def __post_init__(self, **kwargs):
        # Checked here (and not only in the ``@strict`` validator) so that users get a plain ``ValueError``.
        self.validate_architecture()
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Bad values raise ``ValueError`` naming the field and what is allowed; also run before saving."""
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if value is None and name == "classifier_dropout":
                continue
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
        if isinstance(self.hidden_act, str) and self.hidden_act not in ACT2FN:
            raise ValueError(f"hidden_act must be one of {sorted(ACT2FN)}, got {self.hidden_act!r}")
        if not self.initializer_range > 0:
            raise ValueError(f"initializer_range must be > 0, got {self.initializer_range!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        check_choice("pretraining_objective", self.pretraining_objective, PRETRAINING_OBJECTIVES)
        layers = self.generator_num_hidden_layers
        if isinstance(layers, bool) or not isinstance(layers, int) or not 0 <= layers <= self.num_hidden_layers:
            raise ValueError(
                f"generator_num_hidden_layers must be an integer in [0, num_hidden_layers={self.num_hidden_layers}] "
                f"(ELECTRA's generator is smaller than its discriminator), got {layers!r}"
            )
        for name in ("rtd_loss_weight", "generator_sampling_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        check_choice("classifier_pooling", self.classifier_pooling, CLASSIFIER_POOLING)
        check_choice("position_embedding_init", self.position_embedding_init, POSITION_EMBEDDING_INITS)
        check_choice("position_embedding_type", self.position_embedding_type, POSITION_EMBEDDING_TYPES)
        head_size = self.hidden_size // self.num_attention_heads
        if self.position_embedding_type == "rotary" and head_size % 2:
            raise ValueError(
                "position_embedding_type='rotary' rotates pairs of features: hidden_size / num_attention_heads "
                f"must be even, got {head_size}"
            )
        if not self.rotary_embedding_base > 1:
            raise ValueError(f"rotary_embedding_base must be > 1, got {self.rotary_embedding_base!r}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"pad_token_id must be None or in [0, vocab_size={self.vocab_size}), got {self.pad_token_id!r}"
            )


__all__ = ["GLMConfig", "MODEL_SIZES"]
