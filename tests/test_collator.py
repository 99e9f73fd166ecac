"""Masking collator: rates, 80/10/10, special tokens, padding, determinism, whole-word masking."""

import numpy as np
import pytest
import torch
from datasets import Dataset

from glm_hf.collator import DataCollatorForPreTraining, MaskingEpochCallback, mask_dataset


def random_examples(tokenizer, count, seed=0, min_len=20, max_len=100):
    """[CLS] A [SEP] B [SEP] examples of random non-special tokens."""
    rng = np.random.default_rng(seed)
    ordinary = np.array(sorted(set(range(len(tokenizer))) - set(tokenizer.all_special_ids)))
    examples = []
    for _ in range(count):
        a, b = rng.choice(ordinary, int(rng.integers(min_len, max_len))), rng.choice(ordinary, int(rng.integers(5, 30)))
        cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        examples.append({
            "input_ids": [cls, *a.tolist(), sep, *b.tolist(), sep],
            "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1),
            "next_sentence_label": int(rng.integers(2)),
        })
    return examples


def collate_all(collator, examples, batch_size=32):
    """(original ids, masked ids, labels) of every real token, concatenated over all batches."""
    originals, masked, labels = [], [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = collator(chunk)
        for row, example in enumerate(chunk):
            n = len(example["input_ids"])
            originals.append(np.asarray(example["input_ids"]))
            masked.append(batch["input_ids"][row, :n].numpy())
            labels.append(batch["labels"][row, :n].numpy())
    return np.concatenate(originals), np.concatenate(masked), np.concatenate(labels)


def test_masking_rates_and_80_10_10(tiny_tokenizer):
    collator = DataCollatorForPreTraining(tiny_tokenizer)
    original, masked, labels = collate_all(collator, random_examples(tiny_tokenizer, 600))
    maskable = ~np.isin(original, tiny_tokenizer.all_special_ids)
    selected = labels != -100
    assert abs(selected.sum() / maskable.sum() - 0.15) < 0.005
    assert (labels[selected] == original[selected]).all()
    to_mask = (masked[selected] == tiny_tokenizer.mask_token_id).mean()
    kept = (masked[selected] == original[selected]).mean()
    replaced = 1 - to_mask - kept
    assert abs(to_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(replaced - 0.1) < 0.02
    assert (masked[~selected] == original[~selected]).all()  # nothing else changes
    targets, inputs = original[selected], masked[selected]
    random_tokens = inputs[(inputs != targets) & (inputs != tiny_tokenizer.mask_token_id)]
    assert not np.isin(random_tokens, tiny_tokenizer.all_special_ids).any()


def test_mlm_probability_is_configurable(tiny_tokenizer):
    collator = DataCollatorForPreTraining(
        tiny_tokenizer, mlm_probability=0.3, mask_replace_prob=1.0, random_replace_prob=0
    )
    original, masked, labels = collate_all(collator, random_examples(tiny_tokenizer, 200))
    maskable = ~np.isin(original, tiny_tokenizer.all_special_ids)
    assert abs((labels != -100).sum() / maskable.sum() - 0.3) < 0.01
    assert (masked[labels != -100] == tiny_tokenizer.mask_token_id).all()


def test_special_and_pad_tokens_are_never_masked_and_padding_is_dynamic(tiny_tokenizer):
    examples = random_examples(tiny_tokenizer, 5, min_len=3, max_len=40)
    examples[2]["input_ids"][3] = tiny_tokenizer.unk_token_id
    collator = DataCollatorForPreTraining(tiny_tokenizer, mlm_probability=0.9, pad_to_multiple_of=8)
    batch = collator(examples)
    longest = max(len(e["input_ids"]) for e in examples)
    assert batch["input_ids"].shape[1] == -(-longest // 8) * 8
    assert (batch["labels"] != -100).sum() > 0.8 * sum(len(e["input_ids"]) - 3 for e in examples)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
        assert (batch["input_ids"][row, n:] == tiny_tokenizer.pad_token_id).all()
        assert (batch["labels"][row, n:] == -100).all()
        for position, token in enumerate(example["input_ids"]):
            if token in tiny_tokenizer.all_special_ids:  # [CLS], [SEP], [UNK]: kept and never a target
                assert batch["input_ids"][row, position] == token
                assert batch["labels"][row, position] == -100
        assert batch["token_type_ids"][row, :n].tolist() == example["token_type_ids"]
    assert batch["next_sentence_label"].tolist() == [e["next_sentence_label"] for e in examples]
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label"}


def test_masks_depend_on_seed_epoch_and_example_not_on_the_batch(tiny_tokenizer):
    examples = random_examples(tiny_tokenizer, 8)
    collator = DataCollatorForPreTraining(tiny_tokenizer, seed=1)
    together = collator(examples)
    alone = collator([examples[5]])
    n = len(examples[5]["input_ids"])
    assert torch.equal(together["labels"][5, :n], alone["labels"][0, :n])
    assert torch.equal(together["input_ids"][5, :n], alone["input_ids"][0, :n])

    MaskingEpochCallback(collator).on_epoch_begin(None, type("State", (), {"epoch": 1.0})(), None)
    assert collator.epoch == 1
    assert not torch.equal(collator(examples)["labels"], together["labels"])
    other_seed = DataCollatorForPreTraining(tiny_tokenizer, seed=2)
    assert not torch.equal(other_seed(examples)["labels"], together["labels"])


def test_premasked_examples_are_only_padded(tiny_tokenizer):
    examples = Dataset.from_list(random_examples(tiny_tokenizer, 10))
    collator = DataCollatorForPreTraining(tiny_tokenizer)
    masked = mask_dataset(examples, collator)
    assert "labels" in masked.column_names
    collator.set_epoch(5)  # a fixed evaluation set does not change with the epoch
    batch = collator([masked[i] for i in range(4)])
    for row in range(4):
        n = len(masked[row]["input_ids"])
        assert batch["labels"][row, :n].tolist() == masked[row]["labels"]
        assert batch["input_ids"][row, :n].tolist() == masked[row]["input_ids"]


def test_whole_word_masking_masks_whole_jieba_words(tiny_tokenizer):
    """The word_continuation flags are jieba's words (see test_pretraining_data); masking keeps them whole."""
    from glm_hf.pretraining_data import create_nsp_examples, tokenize_documents

    texts = [
        "这家酒店的服务非常好，房间干净整洁。早餐品种丰富，交通也很方便。",
        "笔记本电脑的质量太差了，屏幕有坏点。客服态度恶劣，不推荐购买。",
        "中华人民共和国国务院发布了新的规定。北京市政府积极响应。",
    ] * 20
    documents = Dataset.from_dict({"sentences": [[t[: t.index("。") + 1], t[t.index("。") + 1 :]] for t in texts],
                                   "source": ["test"] * len(texts)})
    tokenized = tokenize_documents(documents, tiny_tokenizer, whole_word_mask=True, load_from_cache_file=False)
    examples = create_nsp_examples(tokenized, tiny_tokenizer, max_seq_length=48, seed=0, load_from_cache_file=False)
    collator = DataCollatorForPreTraining(tiny_tokenizer, whole_word_mask=True)
    features = [examples[i] for i in range(len(examples))]
    batch = collator(features)  # examples of different lengths: dynamic padding

    multi_char_words_masked = 0
    for row, feature in enumerate(features):
        ids, flags = feature["input_ids"], feature["word_continuation"]
        labels = batch["labels"][row, : len(ids)].tolist()
        # A word starts at each flag 0; its special tokens ([UNK] of an unknown character) cannot be targets.
        word_of = np.cumsum([flag == 0 for flag in flags])
        words = {}
        for position, token in enumerate(ids):
            if token not in tiny_tokenizer.all_special_ids:
                words.setdefault(word_of[position], []).append(position)
        words = list(words.values())
        for word in words:
            chosen = [labels[p] != -100 for p in word]
            assert all(chosen) or not any(chosen), f"word at {word} partly masked: {chosen}"
            multi_char_words_masked += len(word) > 1 and all(chosen)
    assert multi_char_words_masked > 10
    selected = (batch["labels"] != -100).sum().item()
    maskable = sum(sum(t not in tiny_tokenizer.all_special_ids for t in f["input_ids"]) for f in features)
    assert 0.10 < selected / maskable <= 0.16  # whole words never overshoot the 15% budget by much


def test_bad_arguments_name_the_field(tiny_tokenizer):
    with pytest.raises(ValueError, match="mlm_probability"):
        DataCollatorForPreTraining(tiny_tokenizer, mlm_probability=0)
    with pytest.raises(ValueError, match="mask_replace_prob"):
        DataCollatorForPreTraining(tiny_tokenizer, mask_replace_prob=0.95, random_replace_prob=0.1)
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        DataCollatorForPreTraining(tiny_tokenizer, pad_to_multiple_of=0)
    collator = DataCollatorForPreTraining(tiny_tokenizer, whole_word_mask=True)
    with pytest.raises(ValueError, match="word_continuation"):
        collator(random_examples(tiny_tokenizer, 2))


def test_masking_rate_schedule_is_linear_in_the_step(tiny_tokenizer):
    from types import SimpleNamespace

    from glm_hf.collator import MaskingRateCallback

    collator = DataCollatorForPreTraining(tiny_tokenizer, mlm_probability=0.4)
    callback = MaskingRateCallback(collator, 0.4, 0.2)
    for step, rate in ((0, 0.4), (50, 0.3), (100, 0.2), (120, 0.2)):
        callback.on_step_end(None, SimpleNamespace(global_step=step, max_steps=100), None)
        assert collator.mlm_probability == pytest.approx(rate)
    ids = tiny_tokenizer("这本书写得非常好，我很喜欢。质量太差了，不推荐购买。")["input_ids"]
    collator.mlm_probability = 0.4
    high = (collator.mask_example(ids)[1] != -100).sum()
    collator.mlm_probability = 0.2
    assert (collator.mask_example(ids)[1] != -100).sum() < high


def test_unigram_distribution_ignores_special_tokens(tiny_tokenizer):
    from glm_hf.collator import unigram_distribution

    ids = tiny_tokenizer(["好好好", "差"])["input_ids"]  # with [CLS] and [SEP]
    probabilities = unigram_distribution(ids, tiny_tokenizer)
    assert probabilities.shape == (len(tiny_tokenizer),)
    assert probabilities[tiny_tokenizer.convert_tokens_to_ids("好")] == pytest.approx(0.75)
    assert probabilities[tiny_tokenizer.cls_token_id] == 0 and probabilities.sum() == pytest.approx(1)
