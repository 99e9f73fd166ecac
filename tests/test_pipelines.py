"""transformers pipelines on saved GLM folders (``model=`` the folder path, tokenizer read from the folder)."""

import math

import pytest
import torch
from transformers import pipeline

from glm_hf import GLMConfig, GLMForMaskedLM, GLMForSequenceClassification, GLMForTokenClassification

SENTIMENT_LABELS = {0: "negative", 1: "positive"}
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def _save(model_class, tiny_tokenizer, folder, id2label=None, seed=0):
    config = GLMConfig.from_size(
        "tiny",
        vocab_size=len(tiny_tokenizer),
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tiny_tokenizer.pad_token_id,
    )
    if id2label is not None:
        config.id2label = dict(id2label)
        config.label2id = {label: i for i, label in id2label.items()}
    torch.manual_seed(seed)
    model = model_class(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return str(folder), model


def test_fill_mask(tiny_tokenizer, tmp_path):
    folder, _ = _save(GLMForMaskedLM, tiny_tokenizer, tmp_path / "mlm")
    fill_mask = pipeline("fill-mask", model=folder)
    assert type(fill_mask.model) is GLMForMaskedLM

    text = f"这本书写得非{fill_mask.tokenizer.mask_token}好。"
    top = fill_mask(text, top_k=5)
    everything = fill_mask(text, top_k=len(tiny_tokenizer))
    assert len(top) == 5
    assert [p["token"] for p in top] == [p["token"] for p in everything[:5]]
    scores = [p["score"] for p in everything]
    assert scores == sorted(scores, reverse=True)
    assert math.isclose(sum(scores), 1.0, abs_tol=1e-4), "the scores are a softmax over the whole vocabulary"
    assert 0 < sum(p["score"] for p in top) < 1
    vocab = tiny_tokenizer.get_vocab()
    for prediction in top:
        assert vocab[prediction["token_str"]] == prediction["token"]
        # the sequence is the text with the predicted token in place of [MASK] (decoding spaces the characters)
        filled = text.replace(fill_mask.tokenizer.mask_token, prediction["token_str"])
        assert prediction["sequence"].replace(" ", "") == filled


def test_text_classification(tiny_tokenizer, tmp_path):
    folder, model = _save(GLMForSequenceClassification, tiny_tokenizer, tmp_path / "sentiment", SENTIMENT_LABELS)
    classifier = pipeline("text-classification", model=folder)
    texts = ["房间干净，服务周到，下次还会再来。", "质量太差了，不推荐购买。"]

    best = classifier(texts)
    assert [set(result) for result in best] == [{"label", "score"}] * 2
    assert all(result["label"] in {"negative", "positive"} for result in best)

    all_scores = classifier(texts, top_k=None)
    for text, scores in zip(texts, all_scores):
        assert sorted(s["label"] for s in scores) == ["negative", "positive"]
        assert math.isclose(sum(s["score"] for s in scores), 1.0, abs_tol=1e-6)
        # the pipeline's probabilities are the model's softmax
        inputs = tiny_tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            probabilities = model.eval()(**inputs).logits.softmax(-1)[0]
        for s in scores:
            assert s["score"] == pytest.approx(probabilities[model.config.label2id[s["label"]]].item(), abs=1e-6)


def test_token_classification(tiny_tokenizer, tmp_path):
    folder, _ = _save(GLMForTokenClassification, tiny_tokenizer, tmp_path / "ner", NER_LABELS)
    ner = pipeline("token-classification", model=folder)
    text = "北京今天天气晴朗。"

    # The pipeline leaves out "O"; a random model tags most characters with something else.
    entities = ner(text)
    assert entities, "expected some non-O predictions from a random model"
    for entity in entities:
        assert entity["entity"] in {"B-PER", "I-PER", "B-LOC", "I-LOC"}
        assert text[entity["start"] : entity["end"]] == entity["word"]
        assert 0 < entity["score"] <= 1

    groups = ner(text, aggregation_strategy="simple")
    assert groups and all(group["entity_group"] in {"PER", "LOC"} for group in groups)
    for group in groups:
        assert text[group["start"] : group["end"]] == group["word"].replace(" ", "")
