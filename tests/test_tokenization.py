"""WordPiece tokenizer training for Chinese: alphabet size, BERT special tokens, AutoTokenizer folder, UNK rate."""

import itertools
import json
import os

import pytest

from glm_hf.tokenization import SPECIAL_TOKENS, STATS_FILE, TokenizerTrainingArguments, main


@pytest.fixture(scope="module")
def news_file(tmp_path_factory):
    """300 People's Daily articles, one per blank-line separated block: about 2,500 distinct characters."""
    from glm_hf.corpora import peoples_daily_documents

    path = tmp_path_factory.mktemp("news") / "news.txt"
    with open(path, "w", encoding="utf-8") as f:
        for sentences in itertools.islice(peoples_daily_documents(), 300):
            f.write("\n".join(sentences) + "\n\n")
    return str(path)


@pytest.fixture(scope="module")
def trained_dir(news_file, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("tokenizers") / "tok")
    assert main(["--train_file", news_file, "--vocab_size", "4000", "--output_dir", output_dir]) == 0
    return output_dir


def _stats(folder):
    with open(os.path.join(folder, STATS_FILE), encoding="utf-8") as f:
        return json.load(f)


def test_saves_a_bert_tokenizer_folder_that_autotokenizer_loads(trained_dir):
    from transformers import AutoTokenizer, BertTokenizer

    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    assert isinstance(tokenizer, BertTokenizer)
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == SPECIAL_TOKENS
    assert (tokenizer.pad_token_id, tokenizer.mask_token_id) == (0, 4)
    assert 2000 < len(tokenizer) <= 4000  # fewer when min_frequency leaves nothing to merge

    encoded = tokenizer("中国人民。", "新年讲话")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    # CJK characters are split: one token per character, never a multi-character piece.
    assert tokens == ["[CLS]", "中", "国", "人", "民", "。", "[SEP]", "新", "年", "讲", "话", "[SEP]"]
    assert encoded["token_type_ids"] == [0] * 7 + [1] * 5
    leftovers = [name for name in os.listdir(os.path.dirname(trained_dir)) if name.startswith(".tokenizer-")]
    assert not leftovers, "the staging folder must be renamed into place"


def test_alphabet_covers_chinese_and_unk_rate_is_reported(trained_dir, news_file, capsys):
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(trained_dir).get_vocab()
    cjk = [token for token in vocab if len(token) == 1 and "\u4e00" <= token <= "\u9fff"]
    assert len(cjk) > 1500  # well past the 1,000 characters tokenizers keeps by default
    stats = _stats(trained_dir)
    assert stats["held_out"]["tokens"] > 1000
    assert stats["held_out"]["unk_rate"] < 0.01


def test_small_alphabet_shows_up_as_unknown_characters(news_file, tmp_path, capsys):
    output_dir = str(tmp_path / "small_alphabet")
    assert main(["--train_file", news_file, "--vocab_size", "4000", "--limit_alphabet", "500",
                 "--output_dir", output_dir]) == 0
    printed = capsys.readouterr().out
    assert "UNK rate on held-out text" in printed
    assert _stats(output_dir)["held_out"]["unk_rate"] > 0.05


def test_cli_subcommand_and_output_dir_protection(news_file, tmp_path):
    from glm_hf.cli import main as cli_main

    output_dir = tmp_path / "tok"
    assert cli_main(["train-tokenizer", "--train_file", news_file, "--vocab_size", "1000",
                     "--max_train_documents", "50", "--output_dir", str(output_dir)]) == 0
    assert _stats(str(output_dir))["train_corpus"]["documents"] == 50
    with pytest.raises(FileExistsError, match="overwrite_output_dir"):
        main(["--train_file", news_file, "--vocab_size", "1000", "--output_dir", str(output_dir)])
    assert main(["--train_file", news_file, "--vocab_size", "1000", "--max_train_documents", "20",
                 "--output_dir", str(output_dir), "--overwrite_output_dir"]) == 0
    assert _stats(str(output_dir))["train_corpus"]["documents"] == 20


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="exactly one of --dataset_name"):
        TokenizerTrainingArguments(output_dir="x")
    with pytest.raises(ValueError, match="vocab_size"):
        TokenizerTrainingArguments(output_dir="x", train_file="a.txt", vocab_size=3)
    with pytest.raises(ValueError, match="document_separator"):
        TokenizerTrainingArguments(output_dir="x", train_file="a.txt", document_separator="page")
