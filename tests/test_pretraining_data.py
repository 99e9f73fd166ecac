"""NSP sentence pairs: BERT's recipe, balanced labels, true continuations, determinism; jieba word flags."""

import itertools

import numpy as np
import pytest
from datasets import Dataset

from glm_hf.pretraining_data import (
    create_nsp_examples,
    nsp_example_stats,
    tokenize_documents,
    word_continuation_flags,
)

CLS, SEP = 2, 3


class IdTokenizer:
    """The little of a tokenizer that create_nsp_examples needs; token ids are chosen by the test."""

    cls_token_id, sep_token_id = CLS, SEP

    def get_vocab(self):
        return {"[CLS]": CLS, "[SEP]": SEP, "，": 4}


def coded_documents(sentence_counts, seed=0, min_len=3, max_len=12):
    """Documents whose sentence k of document d is made of the token ``1000 * (d + 1) + k``, repeated."""
    rng = np.random.default_rng(seed)
    rows = []
    for d, count in enumerate(sentence_counts):
        rows.append([[1000 * (d + 1) + k] * int(rng.integers(min_len, max_len)) for k in range(count)])
    return Dataset.from_dict({"sentence_ids": rows})


def segments(example):
    ids = example["input_ids"]
    first_sep = ids.index(SEP)
    return ids[1:first_sep], ids[first_sep + 1 : -1]


@pytest.fixture(scope="module")
def mixed_examples():
    """Long documents (news-like) and one-sentence documents (review-like)."""
    counts = [12] * 60 + [1] * 150 + [2] * 60
    return create_nsp_examples(coded_documents(counts), IdTokenizer(), max_seq_length=40, seed=3)


def test_pairs_have_bert_layout_and_fit_max_seq_length(mixed_examples):
    for example in mixed_examples:
        ids, types = example["input_ids"], example["token_type_ids"]
        assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 2
        assert len(ids) <= 40
        a, b = segments(example)
        assert a and b
        assert types == [0] * (len(a) + 2) + [1] * (len(b) + 1)


def test_labels_are_balanced_on_short_and_long_documents(mixed_examples):
    stats = nsp_example_stats(mixed_examples)
    assert stats["examples"] > 300
    assert abs(stats["random_next_rate"] - 0.5) < 0.05
    # BERT's recipe would make every one-sentence document a random pair; here they are balanced too.
    short = [e for e in mixed_examples if segments(e)[0][0] // 1000 - 1 >= 60]
    assert abs(np.mean([e["next_sentence_label"] for e in short]) - 0.5) < 0.08


def test_true_continuations_follow_a_in_the_same_document_random_ones_do_not(mixed_examples):
    for example in mixed_examples:
        a, b = segments(example)
        a_docs, b_docs = {t // 1000 for t in a}, {t // 1000 for t in b}
        assert len(a_docs) == 1 and len(b_docs) == 1
        if example["next_sentence_label"] == 0:
            assert a_docs == b_docs
            assert max(a) <= min(b)  # B starts where A ends (a lone sentence is cut in two: same code)
        else:
            assert a_docs != b_docs


def test_short_sequence_probability_and_truncation():
    documents = coded_documents([30] * 40, min_len=10, max_len=20)
    full = create_nsp_examples(documents, IdTokenizer(), max_seq_length=64, short_seq_prob=0.0, seed=1)
    lengths = [len(ids) for ids in full["input_ids"]]
    assert max(lengths) == 64 and np.mean(lengths) > 50
    short = create_nsp_examples(documents, IdTokenizer(), max_seq_length=64, short_seq_prob=1.0, seed=1)
    assert np.mean([len(ids) for ids in short["input_ids"]]) < np.mean(lengths) - 10


def test_deterministic_for_a_seed_and_any_num_proc():
    documents = coded_documents([5] * 40 + [1] * 40)
    first = create_nsp_examples(documents, IdTokenizer(), max_seq_length=32, seed=7, load_from_cache_file=False)
    again = create_nsp_examples(documents, IdTokenizer(), max_seq_length=32, seed=7, num_proc=2,
                                load_from_cache_file=False)
    other = create_nsp_examples(documents, IdTokenizer(), max_seq_length=32, seed=8, load_from_cache_file=False)
    assert first.to_dict() == again.to_dict()
    assert first["input_ids"] != other["input_ids"]


def test_bad_options_name_the_field():
    documents = coded_documents([3, 3])
    with pytest.raises(ValueError, match="max_seq_length"):
        create_nsp_examples(documents, IdTokenizer(), max_seq_length=4)
    with pytest.raises(ValueError, match="nsp_probability"):
        create_nsp_examples(documents, IdTokenizer(), nsp_probability=1.0)


def test_word_continuation_flags_follow_the_segmentation():
    text = "我爱北京天安门abc"
    offsets = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 9), (9, 10)]  # "ab" "##c" style pieces
    words = ["我", "爱", "北京", "天安门", "abc"]
    assert word_continuation_flags(text, offsets, words) == [0, 0, 0, 1, 0, 1, 1, 0, 1]


def test_tokenize_documents_with_jieba_words(tiny_tokenizer):
    import jieba

    documents = Dataset.from_dict(
        {
            "sentences": [["我们喜欢这家酒店。", "服务很好！"], ["   "], ["中华人民共和国成立了。"]],
            "source": ["a", "b", "c"],
        }
    )
    tokenized = tokenize_documents(documents, tiny_tokenizer, whole_word_mask=True, load_from_cache_file=False)
    assert len(tokenized) == 2  # the document with nothing to tokenize is dropped
    sentence = "中华人民共和国成立了。"
    ids = tokenized[1]["sentence_ids"][0]
    flags = tokenized[1]["sentence_word_continuation"][0]
    assert ids == tiny_tokenizer(sentence, add_special_tokens=False)["input_ids"]
    # The tiny tokenizer has one token per character: a token continues a word unless it starts a jieba word.
    expected = [int(i > 0) for word in jieba.lcut(sentence) for i in range(len(word))]
    assert len(ids) == len(sentence) and flags == expected
    assert 1 in flags and flags[0] == 0
    assert list(itertools.chain(*tokenized[0]["sentence_ids"])) == tiny_tokenizer(
        "我们喜欢这家酒店。服务很好！", add_special_tokens=False
    )["input_ids"]


# -- sentence-order prediction ---------------------------------------------------------------------------------


def test_sop_pairs_are_both_from_one_document_and_label_1_means_swapped():
    counts = [12] * 30 + [1] * 60
    examples = create_nsp_examples(coded_documents(counts), IdTokenizer(), max_seq_length=40, seed=3,
                                   sentence_task="sop", load_from_cache_file=False)
    labels = np.array(examples["next_sentence_label"])
    assert 0.35 < labels.mean() < 0.65
    ordered_labels = []
    for example in examples:
        a, b = segments(example)
        assert {t // 1000 for t in a} == {t // 1000 for t in b}  # never another document
        if max(a) < min(b) or max(b) < min(a):  # segments of different sentences: their order is visible
            assert (max(a) < min(b)) == (example["next_sentence_label"] == 0)
            ordered_labels.append(example["next_sentence_label"])
    assert len(ordered_labels) > 20 and 0 < np.mean(ordered_labels) < 1


def test_sentence_task_is_checked():
    with pytest.raises(ValueError, match="sentence_task must be one of"):
        create_nsp_examples(coded_documents([3]), IdTokenizer(), sentence_task="nap")


# -- packing ------------------------------------------------------------------------------------------------------


def test_packed_windows_hold_every_token_once_in_order():
    from glm_hf.pretraining_data import create_packed_examples

    documents = coded_documents([5, 1, 3, 8, 1, 1, 2])
    packed = create_packed_examples(documents, IdTokenizer(), max_seq_length=16, load_from_cache_file=False)
    stream = []
    for ids in packed["input_ids"]:
        assert ids[0] == CLS and ids[-1] == SEP and len(ids) <= 16
        stream.extend(ids[1:-1])
    expected = [t for sentences in documents["sentence_ids"] for t in [*(t for s in sentences for t in s), SEP]]
    assert stream == expected
    assert all(len(ids) == 16 for ids in packed["input_ids"][:-1])  # no padding but in the last window


def test_packing_never_mixes_corpora_and_keeps_word_flags_aligned():
    from glm_hf.pretraining_data import create_packed_examples

    documents = coded_documents([4, 4, 4, 4])
    documents = documents.add_column("source", ["news", "reviews", "news", "reviews"])
    flags = [[[int(i > 0) for i in range(len(s))] for s in doc] for doc in documents["sentence_ids"]]
    documents = documents.add_column("sentence_word_continuation", flags)
    packed = create_packed_examples(documents, IdTokenizer(), max_seq_length=12, load_from_cache_file=False)
    for example in packed:
        documents_seen = {t // 1000 for t in example["input_ids"] if t >= 1000}
        assert documents_seen <= {1, 3} if example["source"] == "news" else documents_seen <= {2, 4}
        assert len(example["word_continuation"]) == len(example["input_ids"])
        assert example["word_continuation"][:2] == [0, 0] and example["word_continuation"][-1] == 0
    assert nsp_example_stats(packed)["sources"] == {
        "news": sum(s == "news" for s in packed["source"]), "reviews": sum(s == "reviews" for s in packed["source"])
    }
