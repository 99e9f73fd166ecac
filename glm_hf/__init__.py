"""glm_hf: a BERT-style generative pre-trained encoder (GLM) for the Hugging Face stack.

Importing the package registers the GLM classes with the transformers Auto classes, so
``AutoModelForSequenceClassification.from_pretrained(folder)`` works without ``trust_remote_code``.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_glm import MODEL_SIZES, GLMConfig
from .modeling_glm import (
    GLMForMaskedLM,
    GLMForPreTraining,
    GLMForPreTrainingOutput,
    GLMForSequenceClassification,
    GLMForTokenClassification,
    GLMModel,
    GLMPreTrainedModel,
)

__version__ = "0.1.0"

AutoConfig.register(GLMConfig.model_type, GLMConfig, exist_ok=True)
for _auto, _model in (
    (AutoModel, GLMModel),
    (AutoModelForPreTraining, GLMForPreTraining),
    (AutoModelForMaskedLM, GLMForMaskedLM),
    (AutoModelForSequenceClassification, GLMForSequenceClassification),
    (AutoModelForTokenClassification, GLMForTokenClassification),
):
    _auto.register(GLMConfig, _model, exist_ok=True)

__all__ = [
    "GLMConfig",
    "MODEL_SIZES",
    "GLMPreTrainedModel",
    "GLMModel",
    "GLMForPreTraining",
    "GLMForPreTrainingOutput",
    "GLMForMaskedLM",
    "GLMForSequenceClassification",
    "GLMForTokenClassification",
]
