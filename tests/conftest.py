"""Shared fixtures: a small real Chinese vocabulary and tiny GLM configs (hidden 64, 2 layers) that fit CI."""

import os
from collections import Counter

import pytest

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SAMPLE_TEXTS = [
    "这本书写得非常好，我很喜欢。",
    "质量太差了，不推荐购买。",
    "房间干净，服务周到，下次还会再来。",
    "物流很慢，包装也破了。",
    "中共中央总书记发表新年讲话。",
    "北京今天天气晴朗。",
]


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A BERT WordPiece tokenizer folder whose vocabulary is the 600 most common characters of the review data."""
    from transformers import BertTokenizer

    from glm_hf.sentiment import load_sentiment_dataset

    texts = load_sentiment_dataset()["train"]["text"][:3000] + SAMPLE_TEXTS
    counts = Counter(ch for text in texts for ch in text if not ch.isspace())
    vocab = SPECIAL_TOKENS + [ch for ch, _ in counts.most_common(600)]
    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    vocab_file = os.path.join(folder, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    # v5: the vocabulary is passed as ``vocab=``; ``vocab_file=`` would be silently ignored.
    tokenizer = BertTokenizer(vocab=vocab_file, do_lower_case=False, tokenize_chinese_chars=True)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture
def tiny_config(tiny_tokenizer):
    from glm_hf import GLMConfig

    return GLMConfig.from_size(
        "tiny",
        vocab_size=len(tiny_tokenizer),
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tiny_tokenizer.pad_token_id,
    )


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory, tiny_tokenizer_dir):
    """A (randomly initialised) GLMForPreTraining folder, as the pretraining recipe leaves it (fine-tuning tests)."""
    import torch
    from transformers import AutoTokenizer

    from glm_hf import GLMConfig, GLMForPreTraining

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    folder = tmp_path_factory.mktemp("pretrain")
    torch.manual_seed(0)
    config = GLMConfig.from_size(
        "tiny", vocab_size=len(tokenizer), max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id
    )
    GLMForPreTraining(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
