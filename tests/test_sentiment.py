import hashlib
import re

from glm_hf.sentiment import load_sentiment_dataset, sentiment_data_stats, split_of


def test_splits_follow_the_hash_rule_and_never_share_a_text():
    dataset = load_sentiment_dataset()
    for name, split in dataset.items():
        assert all(split_of(text) == name for text in split["text"][:500])
    squeeze = lambda text: re.sub(r"\s+", "", text)  # noqa: E731 - near-duplicates differing only in spaces
    train = {squeeze(text) for text in dataset["train"]["text"]}
    for name in ("validation", "test"):
        assert not any(squeeze(text) in train for text in dataset[name]["text"]), name
    bucket = int(hashlib.sha1("这本书很好".encode()).hexdigest(), 16) % 10
    assert split_of("这本书很好") == {8: "validation", 9: "test"}.get(bucket, "train")


def test_duplicates_and_conflicting_texts_are_removed():
    dataset = load_sentiment_dataset()
    texts = [text for split in dataset.values() for text in split["text"]]
    assert len(texts) == len(set(texts))
    stats = sentiment_data_stats()
    assert stats["conflicting_texts_dropped"] > 0
    assert sum(size["total"] for size in stats["split_sizes"].values()) == len(texts)
    assert stats["raw_lines"]["negative"] > stats["unique_texts"]["negative"]
    assert set(dataset["train"].features["label"].names) == {"negative", "positive"}


def test_digest_follows_the_cleaned_data(monkeypatch):
    from glm_hf import sentiment

    digest = sentiment.sentiment_data_digest()
    assert sentiment.sentiment_data_digest() == digest and len(digest) == 16
    examples, stats = sentiment._clean_examples()
    sentiment.sentiment_data_digest.cache_clear()
    # One text cleaned differently (e.g. a whitespace rule): same sizes, new digest.
    changed = ((examples[0][0] + "!", examples[0][1]),) + examples[1:]
    monkeypatch.setattr(sentiment, "_clean_examples", lambda: (changed, stats))
    try:
        assert sentiment.sentiment_data_digest() != digest
    finally:
        sentiment.sentiment_data_digest.cache_clear()
