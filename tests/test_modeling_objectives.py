"""The pretraining objectives of GLMForPreTraining (MLM + NSP/SOP, MLM, replaced-token detection) and mean pooling:
shapes and losses, the fast path on padded batches, shared generator embeddings, save/load, and reload as remote code
in a fresh process without glm_hf."""


import pytest
import torch
from test_remote_code import TEXTS, load_in_fresh_process

from glm_hf import GLMConfig, GLMForPreTraining, GLMForSequenceClassification, GLMModel

OBJECTIVES = {
    "mlm_nsp": {},
    "mlm_sop": {"pretraining_objective": "mlm_sop"},
    "mlm": {"pretraining_objective": "mlm"},
    "rtd_generator": {"pretraining_objective": "rtd", "generator_num_hidden_layers": 1},
    "rtd_unigram": {"pretraining_objective": "rtd"},
}


def _config(tiny_tokenizer, **overrides):
    return GLMConfig.from_size(
        "tiny", vocab_size=len(tiny_tokenizer), max_position_embeddings=128, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, pad_token_id=tiny_tokenizer.pad_token_id, sparse_prediction=True,
        **overrides,
    )


def _masked_batch(tiny_tokenizer, seed=0):
    """The sample texts padded, every 4th real non-special token masked (labels: the originals)."""
    batch = dict(tiny_tokenizer(TEXTS, padding=True, return_tensors="pt"))
    labels = torch.full_like(batch["input_ids"], -100)
    special = torch.isin(batch["input_ids"], torch.tensor(tiny_tokenizer.all_special_ids))
    chosen = (torch.arange(labels.shape[1])[None] % 4 == 1) & ~special & batch["attention_mask"].bool()
    labels[chosen] = batch["input_ids"][chosen]
    batch["input_ids"] = batch["input_ids"].masked_fill(chosen, tiny_tokenizer.mask_token_id)
    return batch, labels


@pytest.mark.parametrize("name", OBJECTIVES)
def test_each_objective_trains_its_heads(name, tiny_tokenizer):
    torch.manual_seed(0)
    model = GLMForPreTraining(_config(tiny_tokenizer, **OBJECTIVES[name]))
    batch, labels = _masked_batch(tiny_tokenizer)
    pair_labels = torch.tensor([0, 1, 0, 1]) if name in ("mlm_nsp", "mlm_sop") else None
    output = model(**batch, labels=labels, next_sentence_label=pair_labels)
    output.loss.backward()
    assert torch.isfinite(output.loss)
    num_masked = int((labels != -100).sum())
    if name.startswith("rtd"):
        targets = output.discriminator_labels
        assert output.discriminator_logits.shape == labels.shape
        assert bool((targets[batch["attention_mask"] == 0] == -100).all())
        assert bool((targets[(labels == -100) & (batch["attention_mask"] == 1)] == 0).all())  # untouched tokens
        assert int(targets.clamp(min=0).sum()) <= num_masked
        assert (output.prediction_logits is None) == (name == "rtd_unigram")
        assert model.glm.embeddings.word_embeddings.weight.grad is not None
    else:
        assert output.prediction_logits.shape == (num_masked, len(tiny_tokenizer))
        assert (output.seq_relationship_logits is None) == (name == "mlm")


def test_rtd_generator_shares_the_embeddings_and_saves_them_once(tiny_tokenizer, tmp_path):
    model = GLMForPreTraining(_config(tiny_tokenizer, **OBJECTIVES["rtd_generator"]))
    shared = model.glm.embeddings
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"):
        assert getattr(model.generator.embeddings, name).weight is getattr(shared, name).weight
    assert model.generator_head.decoder.weight is shared.word_embeddings.weight
    assert len(model.generator.encoder.layer) == 1 and len(model.glm.encoder.layer) == 2
    model.save_pretrained(tmp_path)
    reloaded = GLMForPreTraining.from_pretrained(tmp_path)
    assert reloaded.generator.embeddings.word_embeddings.weight is reloaded.glm.embeddings.word_embeddings.weight
    for key, value in model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key


def test_rtd_unigram_distribution_is_saved_and_checked(tiny_tokenizer, tmp_path):
    model = GLMForPreTraining(_config(tiny_tokenizer, **OBJECTIVES["rtd_unigram"]))
    probabilities = torch.zeros(len(tiny_tokenizer))
    probabilities[10:20] = 2.0
    model.set_generator_distribution(probabilities)
    batch, labels = _masked_batch(tiny_tokenizer)
    torch.manual_seed(0)
    output = model(**batch, labels=labels)
    replaced = (output.discriminator_labels == 1)
    filled = model.glm.embeddings.word_embeddings  # the corrupted ids are not returned: check via the sampler
    assert int(replaced.sum()) > 0 and filled is not None
    model.save_pretrained(tmp_path)
    reloaded = GLMForPreTraining.from_pretrained(tmp_path)
    assert torch.equal(reloaded.generator_token_probabilities, probabilities / probabilities.sum())
    with pytest.raises(ValueError, match="non-negative values"):
        model.set_generator_distribution(torch.ones(3))
    with pytest.raises(ValueError, match="generator_num_hidden_layers=0 only"):
        GLMForPreTraining(_config(tiny_tokenizer)).set_generator_distribution(probabilities)


@pytest.mark.parametrize("generator_layers", [1, 0])
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_rtd_replacements_are_sampled_at_the_generator_temperature(generator_layers, temperature, tiny_tokenizer,
                                                                     monkeypatch):
    """Replacements come from the generator's distribution raised to 1/T (softmax of logits / T), network or table."""
    sampled_from = []
    multinomial = torch.multinomial

    def recording_multinomial(probabilities, *args, **kwargs):
        sampled_from.append(probabilities / probabilities.sum(-1, keepdim=True))
        return multinomial(probabilities, *args, **kwargs)

    monkeypatch.setattr(torch, "multinomial", recording_multinomial)
    torch.manual_seed(0)
    model = GLMForPreTraining(_config(tiny_tokenizer, pretraining_objective="rtd",
                                      generator_num_hidden_layers=generator_layers,
                                      generator_sampling_temperature=temperature))
    table = torch.rand(len(tiny_tokenizer)) ** 4
    if generator_layers == 0:
        model.set_generator_distribution(table)
    batch, labels = _masked_batch(tiny_tokenizer)
    output = model(**batch, labels=labels)
    if generator_layers:
        expected = torch.softmax(output.prediction_logits.detach().float() / temperature, dim=-1)
    else:
        expected = (table / table.sum()) ** (1 / temperature)
        expected = expected / expected.sum()
    torch.testing.assert_close(sampled_from[-1], expected)
    with pytest.raises(ValueError, match="generator_sampling_temperature must be > 0, got 0"):
        _config(tiny_tokenizer, pretraining_objective="rtd", generator_sampling_temperature=0)


def test_rtd_discriminator_on_a_padded_batch_equals_each_sequence_alone(tiny_tokenizer):
    """The fast path (unpadded encoder, head on real tokens only) computes what each sequence alone gives."""
    torch.manual_seed(0)
    model = GLMForPreTraining(_config(tiny_tokenizer, **OBJECTIVES["rtd_unigram"])).eval()
    batch = dict(tiny_tokenizer(TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        padded = model(**batch).discriminator_logits
        for row, text in enumerate(TEXTS):
            alone = model(**tiny_tokenizer([text], return_tensors="pt")).discriminator_logits[0]
            length = alone.shape[0]
            torch.testing.assert_close(padded[row, :length], alone, atol=1e-5, rtol=1e-5)
            assert bool((padded[row, length:] == 0).all())


def test_mean_pooling_reads_the_real_tokens_only(tiny_tokenizer):
    torch.manual_seed(0)
    model = GLMForSequenceClassification(_config(tiny_tokenizer, classifier_pooling="mean", num_labels=2)).eval()
    batch = dict(tiny_tokenizer(TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        logits = model(**batch).logits
        hidden = GLMModel.forward(model.glm, **batch).last_hidden_state
        mask = batch["attention_mask"][..., None].float()
        torch.testing.assert_close(logits, model.classifier((hidden * mask).sum(1) / mask.sum(1)))
        for row, text in enumerate(TEXTS):
            alone = model(**tiny_tokenizer([text], return_tensors="pt")).logits[0]
            torch.testing.assert_close(logits[row], alone, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="classifier_pooling must be one of"):
        _config(tiny_tokenizer, classifier_pooling="max")


@pytest.mark.slow
def test_objectives_reload_as_remote_code_without_glm_hf(tiny_tokenizer, tmp_path):
    """Every objective's head (and a mean-pooling classifier) loads through the Auto classes in a fresh process where
    glm_hf cannot be imported, with bit-identical outputs."""
    inputs = dict(tiny_tokenizer(TEXTS, padding=True, return_tensors="pt"))
    cases, expected = {}, {}
    saved = {name: (GLMForPreTraining, overrides, "AutoModelForPreTraining") for name, overrides in OBJECTIVES.items()}
    saved["mean_pooling"] = (GLMForSequenceClassification, {"classifier_pooling": "mean"},
                             "AutoModelForSequenceClassification")
    for seed, (name, (model_class, overrides, auto_class)) in enumerate(saved.items()):
        torch.manual_seed(seed)
        model = model_class(_config(tiny_tokenizer, **overrides)).eval()
        with torch.no_grad():
            expected[name] = {k: v for k, v in model(**inputs).items() if v is not None}
        model.save_pretrained(tmp_path / name)
        cases[name] = (str(tmp_path / name), auto_class)
    report = load_in_fresh_process(tmp_path, cases, inputs)
    assert report["glm_hf_importable"] is False
    for name, outputs in expected.items():
        loaded = report["models"][name]
        assert loaded["module"].startswith("transformers_modules."), name
        assert loaded["outputs"].keys() == outputs.keys(), name
        for key, tensor in outputs.items():
            # Exact, up to fp32 round-off: with the generator's tied embeddings the child has been seen 1e-9 off
            # (a different memory layout of the loaded tensors); a wrong weight would be off by 1e-2.
            torch.testing.assert_close(loaded["outputs"][key], tensor, rtol=0, atol=1e-7, msg=f"{name}: {key}")
