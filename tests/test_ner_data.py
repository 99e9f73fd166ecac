"""The embedded NER corpora (MSRA, People's Daily 1998) and the readers of the user's NER files."""

import json
import logging

import pytest

from glm_hf.ner_data import (
    ENTITY_TYPES,
    bio_label_names,
    bmes_to_bio,
    hash_bucket,
    load_msra_dataset,
    load_peoples_daily_dataset,
    parse_peoples_daily_line,
    read_ner_file,
    repair_bio,
)

LABELS = bio_label_names(ENTITY_TYPES)


def _entities(tokens, tags) -> list[tuple[str, str]]:
    """(text, type) of each entity of BIO tags."""
    entities = []
    for token, tag in zip(tokens, tags):
        if tag.startswith("B-"):
            entities.append([token, tag[2:]])
        elif tag.startswith("I-"):
            entities[-1][0] += token
    return [tuple(entity) for entity in entities]


def _texts(split) -> list[str]:
    return ["".join(tokens) for tokens in split["tokens"]]


@pytest.fixture(scope="module")
def msra():
    return load_msra_dataset()


@pytest.fixture(scope="module")
def peoples_daily():
    return load_peoples_daily_dataset()


def test_msra_splits_sizes_labels_and_no_leaks(msra):
    assert len(msra["test"]) == 5000
    # 50,289 training sentences less the one whose text is also a test sentence.
    assert len(msra["train"]) + len(msra["validation"]) == 50288
    assert 4500 < len(msra["validation"]) < 5600
    assert msra["train"].features["ner_tags"].feature.names == LABELS == [
        "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    train, validation, test = (set(_texts(msra[name])) for name in ("train", "validation", "test"))
    assert not test & train and not test & validation and not train & validation
    assert all(hash_bucket(text) == 9 for text in validation)
    assert all(len(token) == 1 for tokens in msra["test"]["tokens"][:200] for token in tokens), "one character a token"


def test_msra_tags_are_bio_with_whole_entities(msra):
    names = msra["test"].features["ner_tags"].feature.names
    first = msra["test"][0]
    assert len(first["tokens"]) == len(first["ner_tags"])
    for tags in msra["test"]["ner_tags"][:500]:
        tags = [names[t] for t in tags]
        assert repair_bio(tags) == (tags, 0), "no I- starts an entity"


def test_bmes_becomes_bio():
    assert [bmes_to_bio(t) for t in ["B-PER", "M-PER", "E-PER", "S-LOC", "O"]] == [
        "B-PER", "I-PER", "I-PER", "B-LOC", "O"]


def test_peoples_daily_splits_are_deterministic_and_disjoint(peoples_daily):
    texts = {name: _texts(peoples_daily[name]) for name in ("train", "validation", "test")}
    assert all(hash_bucket(text) == 9 for text in texts["test"])
    assert all(hash_bucket(text) == 8 for text in texts["validation"])
    assert not set(texts["train"]) & set(texts["test"]) and not set(texts["validation"]) & set(texts["test"])
    assert len(set(texts["train"])) == len(texts["train"]), "paragraphs are deduplicated"
    assert 15000 < len(texts["train"]) < 16000 and 1500 < len(texts["test"]) < 2500
    names = peoples_daily["train"].features["ner_tags"].feature.names
    first = peoples_daily["train"][0]
    assert len(first["tokens"]) == len(first["ner_tags"]) and names == LABELS


def test_peoples_daily_known_line():
    tokens, tags = parse_peoples_daily_line(
        "１２月/t  ３１日/t  ，/w  中共中央/nt  总书记/n  、/w  国家/n  主席/n  江/nr  泽民/nr  发表/v  讲话/n  。/w"
    )
    assert _entities(tokens, tags) == [("中共中央", "ORG"), ("江泽民", "PER")]
    assert "".join(tokens) == "１２月３１日，中共中央总书记、国家主席江泽民发表讲话。"


def test_adjacent_person_tokens_are_one_person_and_adjacent_places_are_two():
    tokens, tags = parse_peoples_daily_line("江/nr  泽民/nr  在/p  北京/ns  石景山/ns  视察/v")
    assert _entities(tokens, tags) == [("江泽民", "PER"), ("北京", "LOC"), ("石景山", "LOC")]
    assert tags[:3] == ["B-PER", "I-PER", "I-PER"] and tags[4:9] == ["B-LOC", "I-LOC", "B-LOC", "I-LOC", "I-LOC"]
    tokens, tags = parse_peoples_daily_line("新华社/nt  人民日报社/nt")
    assert _entities(tokens, tags) == [("新华社", "ORG"), ("人民日报社", "ORG")]


def test_bracketed_compound_is_one_entity_of_its_outer_tag():
    tokens, tags = parse_peoples_daily_line(
        "19980101-01-001-001/m  [中国/ns  人民/n  银行/n]nt  行长/n  [香港/ns  特别/a  行政区/n]ns  [/w  [十/m  年/q]l")
    assert _entities(tokens, tags) == [("中国人民银行", "ORG"), ("香港特别行政区", "LOC")]
    assert "".join(tokens) == "中国人民银行行长香港特别行政区[十年", "line id dropped; '[/w' is a word"
    # A compound whose outer tag is no entity is read word by word.
    tokens, tags = parse_peoples_daily_line("[北京/ns  大学生/n]l")
    assert _entities(tokens, tags) == [("北京", "LOC")]


@pytest.mark.parametrize(
    "line, message",
    [
        ("江泽民 nr", r"'江泽民' is not word/tag"),
        ("[中国/ns  银行/n", r"the bracket opened at '\[中国/ns' is never closed"),
        ("银行/n]nt", r"'银行/n\]nt' closes a bracket that was never opened"),
    ],
)
def test_malformed_peoples_daily_line_names_the_token(line, message):
    with pytest.raises(ValueError, match=r"199801\.txt: line 7: " + message):
        parse_peoples_daily_line(line, "199801.txt: line 7")


def test_repair_bio_reads_inside_tags_as_seqeval_does():
    assert repair_bio(["O", "I-PER", "I-PER", "I-LOC", "B-ORG", "I-ORG"]) == (
        ["O", "B-PER", "I-PER", "B-LOC", "B-ORG", "I-ORG"], 2)
    assert repair_bio(["I-ORG"]) == (["B-ORG"], 1)


def test_conll_reader_sentences_docstart_and_repair(tmp_path, caplog):
    path = tmp_path / "data.conll"
    path.write_text("-DOCSTART- O\n\n江 B-PER\n泽 I-PER\n\n\n\n在 O\n京 I-LOC\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="glm_hf.ner_data"):
        sentences = read_ner_file(str(path), "--train_file")
    assert [(s.tokens, s.tags) for s in sentences] == [
        (["江", "泽"], ["B-PER", "I-PER"]), (["在", "京"], ["O", "B-LOC"])]
    assert "1 I- tag(s) start an entity (first at line 9)" in caplog.text


@pytest.mark.parametrize(
    "content, message",
    [
        ("江 B-PER\n泽 I-PER 1\n", r"--train_file .*data\.conll: line 2 has 3 columns"),
        ("江\n", r"line 1 has 1 columns"),
        ("江 X-PER\n", r"line 1 has the tag 'X-PER', which is not a BIO name"),
        ("江 PER\n", r"line 1 has the tag 'PER', which is not a BIO name"),
        ("\n\n", r"holds only blank lines"),
    ],
)
def test_malformed_conll_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "data.conll"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_ner_file(str(path), "--train_file")


def test_json_lines_empty_sentence_is_skipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "data.jsonl"
    records = [{"tokens": ["北", "京"], "ner_tags": ["B-LOC", "I-LOC"]}, {"tokens": [], "ner_tags": []}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="glm_hf.ner_data"):
        sentences = read_ner_file(str(path), "--train_file")
    assert len(sentences) == 1
    assert "record 2 (line 2) is an empty sentence; skipped" in caplog.text


@pytest.mark.parametrize(
    "record, message",
    [
        ({"tokens": ["北"], "ner_tags": ["B-LOC", "O"]}, r"record 1 \(line 1\) needs 'tokens' and 'ner_tags' as lists "
                                                          "of the same length"),
        ({"words": ["北"], "ner_tags": ["B-LOC"]}, r"record 1 \(line 1\) lacks 'tokens' or 'ner_tags'"),
        ({"tokens": ["北"], "ner_tags": [3]}, r"record 1 \(line 1\) has the tag 3, which is not a BIO name"),
    ],
)
def test_malformed_json_lines_names_the_record(tmp_path, record, message):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"--train_file .*data\.jsonl: " + message):
        read_ner_file(str(path), "--train_file")


def test_pretraining_text_holds_no_validation_or_test_sentence(monkeypatch):
    from glm_hf import ner_data

    def corpus(train, validation, test):
        return {name: [(list(text), ["O"] * len(text)) for text in texts]
                for name, texts in (("train", train), ("validation", validation), ("test", test))}

    monkeypatch.setattr(ner_data, "_msra_splits", lambda: corpus(["甲一", "乙二", "丙三"], ["丁四"], ["戊五"]))
    # People's Daily's train split holds a sentence that MSRA scores: it is left out too.
    monkeypatch.setattr(ner_data, "_peoples_daily_splits", lambda: corpus(["戊五", "己六"], ["庚七"], ["辛八"]))
    assert ner_data.ner_pretraining_documents(sentences_per_document=2) == ["甲一乙二", "丙三", "己六"]
