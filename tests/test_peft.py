"""PEFT LoRA on GLM, with the target names BERT users write (``target_modules=["query", "value"]``).

GLM fuses the Q/K/V projections into one matmul; a projection that PEFT wraps is called as a module instead, so the
adapters take part in the forward pass (and train), and a saved adapter reloads onto a fresh base model.
"""

import copy
import os

import pytest
import torch

from glm_hf import GLMForSequenceClassification

peft = pytest.importorskip("peft", reason="peft is not installed (pip install -e '.[peft]')")
from peft import LoraConfig, PeftModel, TaskType, get_peft_model  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402

TEXTS = ["这本书写得非常好，我很喜欢。", "质量太差了。", "房间干净，服务周到，下次还会再来。", "物流很慢。"]
LABELS = torch.tensor([1, 0, 1, 0])


def test_lora_on_query_and_value_trains_saves_and_reloads(tiny_config, tiny_tokenizer, tmp_path):
    config = copy.deepcopy(tiny_config)
    config.num_labels = 2
    torch.manual_seed(0)
    GLMForSequenceClassification(config).save_pretrained(tmp_path / "base")
    model = get_peft_model(
        GLMForSequenceClassification.from_pretrained(tmp_path / "base"),
        LoraConfig(task_type=TaskType.SEQ_CLS, target_modules=["query", "value"], r=4, lora_alpha=8, lora_dropout=0.0),
    )
    wrapped = sorted(name for name, module in model.named_modules() if isinstance(module, LoraLayer))
    assert wrapped == sorted(
        f"base_model.model.glm.encoder.layer.{index}.attention.self.{projection}"
        for index in range(config.num_hidden_layers)
        for projection in ("query", "value")
    )
    batch = dict(tiny_tokenizer(TEXTS, padding=True, return_tensors="pt"))
    assert not bool(batch["attention_mask"].all()), "a padded batch: the unpadded, length-grouped path"

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()  # dropout is 0 in the tiny config
    losses = []
    for _ in range(5):
        loss = model(**batch, labels=LABELS).loss
        loss.backward()
        lora_grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
        assert all(grad is not None and float(grad.abs().max()) > 0 for grad in lora_grads), "LoRA is not in the graph"
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]

    model.eval()
    with torch.no_grad():
        trained = model(**batch).logits
        with model.disable_adapter():
            without_adapters = model(**batch).logits
    assert float((trained - without_adapters).abs().max()) > 1e-4, "the adapters change the outputs"

    model.save_pretrained(tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(os.listdir(tmp_path / "adapter"))
    fresh_base = GLMForSequenceClassification.from_pretrained(tmp_path / "base")
    reloaded = PeftModel.from_pretrained(fresh_base, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, trained)
        # Merged into the weights, the projections are plain nn.Linear again: the fused Q/K/V matmul.
        merged = reloaded.merge_and_unload()
        assert type(merged.glm.encoder.layer[0].attention.self.query) is torch.nn.Linear
        torch.testing.assert_close(merged(**batch).logits, trained, rtol=1e-5, atol=1e-5)
