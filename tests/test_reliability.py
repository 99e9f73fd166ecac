"""A user's files are never deleted, bad input stops with one sentence naming the flag or file, and nothing
half-written is left behind (issue #10). Tiny data: each test takes seconds."""

import os
import re

import pytest

from glm_hf import main_job
from glm_hf.main_job import Stage, StageRecords, run_stage


def _touch(path, text="x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _never_run(*args, **kwargs):
    raise AssertionError("the job must not start")


# ----------------------------------------------------------------------------------------- main job: --overwrite
def test_overwrite_refuses_a_folder_with_the_users_files(tmp_path, monkeypatch):
    _touch(str(tmp_path / "thesis.tex"))
    _touch(str(tmp_path / "data" / "reviews.csv"))
    _touch(str(tmp_path / "tokenizer" / "tokenizer_config.json"))
    StageRecords(str(tmp_path)).write("tokenizer", {"status": "complete", "fingerprint": "f"})
    monkeypatch.setattr(main_job, "run_stage", _never_run)

    with pytest.raises(
        ValueError,
        match=rf"--overwrite: {re.escape(str(tmp_path))} holds entries this job did not write "
        r"\(data, thesis.tex\); nothing was removed",
    ):
        main_job.main(["--quick", "--overwrite", "--output_dir", str(tmp_path)])
    assert sorted(os.listdir(tmp_path)) == [".stages", "data", "thesis.tex", "tokenizer"]
    assert (tmp_path / "tokenizer" / "tokenizer_config.json").is_file()


def test_overwrite_removes_only_what_the_job_wrote(tmp_path, monkeypatch):
    job_dir = tmp_path / "job"
    records = StageRecords(str(job_dir))
    for name in ("tokenizer", "pretrain"):
        _touch(str(job_dir / name / "config.json"))
        records.write(name, {"status": "complete", "fingerprint": name})
    _touch(str(job_dir / main_job.RESULTS_FILE), "{}")
    seen = []

    def first_stage(stage, job_dir, *args):
        seen.append(sorted(os.listdir(job_dir)))
        raise KeyboardInterrupt

    monkeypatch.setattr(main_job, "run_stage", first_stage)
    assert main_job.main(["--quick", "--overwrite", "--output_dir", str(job_dir)]) == 130
    assert seen == [[]]  # the job started over in its own, now empty, folder


# ------------------------------------------------------------------------------- main job: unrecorded stage folders
def test_a_stage_folder_the_job_did_not_start_is_kept(tmp_path, capsys):
    job_dir = str(tmp_path)
    users_tokenizer = tmp_path / "tokenizer" / "vocab.txt"
    _touch(str(users_tokenizer), "[PAD]\n")
    stage = Stage("tokenizer", "test stage", {"vocab_size": 10}, _never_run)

    with pytest.raises(
        ValueError,
        match=rf"{re.escape(str(tmp_path / 'tokenizer'))} exists but the job has no record of writing it "
        r"\(.stages/tokenizer.json\); nothing was removed",
    ):
        run_stage(stage, job_dir, StageRecords(job_dir), {}, 1)
    assert users_tokenizer.read_text(encoding="utf-8") == "[PAD]\n"

    # One the job recorded as started (then interrupted) is still ours: removed and redone.
    calls = []

    def write():
        calls.append(1)
        _touch(str(tmp_path / "tokenizer" / "tokenizer_config.json"))
        return {}

    StageRecords(job_dir).write("tokenizer", {"status": "started", "fingerprint": "older"})
    run_stage(Stage("tokenizer", "test stage", {"vocab_size": 10}, write), job_dir, StageRecords(job_dir), {}, 1)
    assert calls == [1] and not users_tokenizer.exists()
    assert StageRecords(job_dir).read("tokenizer")["status"] == "complete"


# ------------------------------------------------------------------------------------- predict: no trained classifier
def _tiny_config(tokenizer, **kwargs):
    from glm_hf import GLMConfig

    return GLMConfig.from_size(
        "tiny", vocab_size=len(tokenizer), max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, **kwargs
    )


def test_predict_refuses_a_folder_without_a_trained_classifier(tmp_path, tiny_tokenizer):
    from glm_hf import GLMForPreTraining, GLMForSequenceClassification
    from glm_hf.cli import main as cli

    texts = tmp_path / "texts.txt"
    texts.write_text("这本书写得非常好。\n质量太差了。\n", encoding="utf-8")
    pretrained = tmp_path / "pretrain"
    GLMForPreTraining(_tiny_config(tiny_tokenizer)).save_pretrained(pretrained)
    tiny_tokenizer.save_pretrained(pretrained)
    with pytest.raises(ValueError, match=rf"--model {re.escape(str(pretrained))} holds a GLMForPreTraining model, "
                                         "not a trained text classifier"):
        cli(["predict", "--model", str(pretrained), "--input", str(texts)])

    headless = tmp_path / "headless"
    model = GLMForSequenceClassification(_tiny_config(tiny_tokenizer))
    weights = {name: value for name, value in model.state_dict().items() if not name.startswith("classifier.")}
    model.save_pretrained(headless, state_dict=weights)
    tiny_tokenizer.save_pretrained(headless)
    with pytest.raises(ValueError, match=rf"--model {re.escape(str(headless))}: its weights lack classifier.bias, "
                                         "classifier.weight"):
        cli(["predict", "--model", str(headless), "--input", str(texts)])
    assert not (tmp_path / "texts.predictions.csv").exists()


# ----------------------------------------------------------------------------------- recipes: --max_steps 0
def _write_csv(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _finetune_flags(tmp_path, tokenizer_dir, train_file, *extra):
    return [
        "--model_size", "tiny", "--tokenizer_name", tokenizer_dir, "--train_file", train_file, "--do_train",
        "--output_dir", str(tmp_path / "out"), "--max_seq_length", "32", "--per_device_train_batch_size", "4",
        "--use_cpu", "--report_to", "none", "--disable_tqdm", "true", "--run_baseline", "false", *extra,
    ]


REVIEWS = ["text,label", "这本书写得非常好,1", "质量太差了,0", "房间干净服务周到,1", "物流很慢包装破了,0"]


@pytest.mark.parametrize("max_steps", ["0", "-2"])
def test_finetuning_refuses_max_steps_0(tmp_path, tiny_tokenizer_dir, max_steps):
    from glm_hf import finetuning

    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with pytest.raises(ValueError, match=rf"--max_steps must be a positive number of optimizer steps, or -1 to train "
                                         rf"for --num_train_epochs; got {max_steps}"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", max_steps))
    assert not (tmp_path / "out").exists()


def test_pretraining_refuses_max_steps_0(tmp_path, tiny_tokenizer_dir):
    from glm_hf import pretraining

    with pytest.raises(ValueError, match="--max_steps must be a positive number of optimizer steps"):
        pretraining.main([
            "--model_size", "tiny", "--tokenizer_name", tiny_tokenizer_dir, "--dataset_name", "embedded",
            "--max_steps", "0", "--output_dir", str(tmp_path / "out"), "--use_cpu", "--report_to", "none",
        ])
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------------- fine-tuning: header lines, blank labels
def test_a_header_line_inside_a_csv_is_named(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    joined = _write_csv(tmp_path / "joined.csv", [*REVIEWS, *REVIEWS])  # two files joined with cat
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(joined)}: line 6 repeats the header "
                                         r"\['text', 'label'\]; remove it"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, joined, "--max_steps", "1"))
    tsv = tmp_path / "joined.tsv"
    tsv.write_text("text\tlabel\n好\t1\n差\t0\ntext\tlabel\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"joined.tsv: line 4 repeats the header"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, str(tsv), "--max_steps", "1"))
    assert not (tmp_path / "out").exists()


def test_a_blank_label_is_named_with_its_file_and_row(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    validation = _write_csv(tmp_path / "validation.csv", ["text,label", "很好,1", "很差,", "不错,1"])
    with pytest.raises(ValueError, match=rf"--validation_file {re.escape(validation)}: data row 2 has a blank "
                                         "'label'; give every example a label"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                        "--validation_file", validation, "--do_eval"))
    # In train it would have made the integer labels floats, read as a regression target.
    blank_in_train = _write_csv(tmp_path / "blank.csv", [*REVIEWS, "还行,"])
    with pytest.raises(ValueError, match=r"blank.csv: data row 5 has a blank 'label'"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, blank_in_train, "--max_steps", "1"))
    records = tmp_path / "train.jsonl"
    records.write_text('{"text": "很好", "label": 1}\n{"text": "很差", "label": null}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"train.jsonl: record 2 has a blank 'label'"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, str(records), "--max_steps", "1"))
    assert not (tmp_path / "out").exists()


def test_the_job_does_not_overwrite_a_results_file_it_did_not_write(tmp_path, monkeypatch):
    _touch(str(tmp_path / main_job.RESULTS_FILE), '{"mine": 1}')
    monkeypatch.setattr(main_job, "run_stage", _never_run)
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path / main_job.RESULTS_FILE))} exists but "
                                         rf"{re.escape(str(tmp_path))} holds no job records \(.stages/\)"):
        main_job.main(["--quick", "--output_dir", str(tmp_path)])
    assert (tmp_path / main_job.RESULTS_FILE).read_text(encoding="utf-8") == '{"mine": 1}'


# ---------------------------------------------------------- data files: empty, not UTF-8, mixed types, broken lines
# Every recipe checks its files with glm_hf.data_files before datasets reads them: one sentence naming flag and file.
def _write_bytes(path, data: bytes):
    path.write_bytes(data)
    return str(path)


def _pretrain_flags(tmp_path, tokenizer_dir, train_file, *extra):
    return [
        "--model_size", "tiny", "--tokenizer_name", tokenizer_dir, "--train_file", train_file, "--max_steps", "1",
        "--max_seq_length", "32", "--output_dir", str(tmp_path / "out"), "--use_cpu", "--report_to", "none",
        "--disable_tqdm", "true", *extra,
    ]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", r"is empty"),
        ("header.csv", b"text,label\n", r"holds only its header line \['text', 'label'\] and no data rows"),
        ("header_bom.tsv", "text\tlabel\n\n".encode("utf-8-sig"), r"holds only its header line"),
        ("empty.jsonl", b"\n\n", r"holds no JSON records"),
        ("empty.json", b"[]", r"holds no JSON records"),
    ],
    ids=["empty csv", "csv header only", "tsv header with a BOM", "blank json lines", "empty json list"],
)
def test_finetuning_names_a_data_file_without_rows(tmp_path, tiny_tokenizer_dir, name, content, message):
    from glm_hf import finetuning

    path = _write_bytes(tmp_path / name, content)
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(path)} {message}"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, path, "--max_steps", "1"))
    assert not (tmp_path / "out").exists()


def test_finetuning_refuses_a_file_whose_texts_are_all_blank(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    blank = _write_csv(tmp_path / "validation.csv", ["text,label", " ,1", ",0"])
    with pytest.raises(ValueError, match=rf"--validation_file {re.escape(blank)}: the text column\(s\) \['text'\] are "
                                         r"blank in all 2 data rows"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                        "--validation_file", blank, "--do_eval"))
    assert not (tmp_path / "out").exists()


def test_a_gbk_file_is_named_with_its_line_and_read_with_encoding(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    text = "\n".join(REVIEWS) + "\n"
    gbk = _write_bytes(tmp_path / "train.csv", text.encode("gbk"))
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(gbk)} is not UTF-8 text: line 2 has the byte 0xd5, "
                                         rf".*iconv -f GBK -t UTF-8 {re.escape(gbk)} > .*train.utf8.csv\) or name its "
                                         r"encoding with --encoding gbk"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, gbk, "--max_steps", "1"))
    assert not (tmp_path / "out").exists() and sorted(os.listdir(tmp_path)) == ["train.csv"]  # no copy left behind

    # --encoding gbk reads it (the csv builder decodes it), and UTF-8 with a BOM needs no flag.
    raw, _ = finetuning.load_raw_datasets(
        finetuning.DataTrainingArguments(train_file=gbk, encoding="gbk"), finetuning.ModelArguments()
    )
    assert raw["train"]["text"][0] == "这本书写得非常好" and raw["train"].column_names == ["text", "label"]
    bom = _write_bytes(tmp_path / "bom.csv", text.encode("utf-8-sig"))
    raw, _ = finetuning.load_raw_datasets(finetuning.DataTrainingArguments(train_file=bom), finetuning.ModelArguments())
    assert raw["train"].column_names == ["text", "label"] and raw["train"]["label"] == [1, 0, 1, 0]
    with pytest.raises(ValueError, match=r"--encoding 'gbk2' is not an encoding Python knows"):
        finetuning.DataTrainingArguments(train_file=gbk, encoding="gbk2")


def test_mixed_label_types_in_json_lines_are_named(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    records = tmp_path / "train.jsonl"
    records.write_text('{"text": "很好", "label": 1}\n{"text": "很差", "label": "0"}\n{"text": "好", "label": "pos"}\n',
                       encoding="utf-8")
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(str(records))}: record 2 \(line 2\) has 'label' "
                                         r"'0' \(a string\) but record 1 \(line 1\) has 1 \(a number\); write every "
                                         "'label' the same way"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, str(records), "--max_steps", "1"))
    assert not (tmp_path / "out").exists()


def test_a_broken_json_line_is_named(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    records = tmp_path / "train.jsonl"
    records.write_text('{"text": "很好", "label": 1}\n\n{"text": "很差", label: 0}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(str(records))}: line 3 is not a JSON record"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, str(records), "--max_steps", "1"))
    assert not (tmp_path / "out").exists()
    # One pretty-printed JSON list of records is no JSON lines file, and still fine.
    pretty = tmp_path / "list.json"
    pretty.write_text('[\n {"text": "很好", "label": 1},\n {"text": "很差", "label": 0}\n]\n', encoding="utf-8")
    raw, _ = finetuning.load_raw_datasets(finetuning.DataTrainingArguments(train_file=str(pretty)),
                                          finetuning.ModelArguments())
    assert raw["train"]["label"] == [1, 0]


def test_a_missing_file_or_column_names_its_flag(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning, pretraining

    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    missing = str(tmp_path / "missing.csv")
    with pytest.raises(FileNotFoundError, match=rf"--validation_file {re.escape(missing)}: no such file"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--validation_file", missing))
    with pytest.raises(FileNotFoundError, match=rf"--train_file {re.escape(missing)}: no such file"):
        pretraining.main(_pretrain_flags(tmp_path, tiny_tokenizer_dir, missing))
    reviews = _write_csv(tmp_path / "reviews.csv", ["review2,label", "很好,1", "很差,0"])
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(reviews)}: no default text column found; columns "
                                         r"are \['review2', 'label'\]; name the text column\(s\) with "
                                         "--text_column_names"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, reviews, "--max_steps", "1"))
    with pytest.raises(ValueError, match=rf"--text_column_name 'body' is not a column of --train_file "
                                         rf"{re.escape(reviews)}; its columns are \['review2', 'label'\]"):
        pretraining.main(_pretrain_flags(tmp_path, tiny_tokenizer_dir, reviews, "--text_column_name", "body"))
    assert not (tmp_path / "out").exists()


def test_pretraining_names_a_corpus_that_gives_no_text(tmp_path, tiny_tokenizer_dir):
    from glm_hf import pretraining

    for name, content, message in (
        ("empty.txt", b"", "is empty"),
        ("blank.txt", b"\n \n\n", "holds only blank lines"),
        ("gbk.txt", "第一篇。\n第二篇。\n".encode("gbk"), "is not UTF-8 text: line 1 has the byte 0xb5"),
    ):
        path = _write_bytes(tmp_path / name, content)
        with pytest.raises(ValueError, match=rf"--train_file {re.escape(path)} {message}"):
            pretraining.main(_pretrain_flags(tmp_path, tiny_tokenizer_dir, path))
    blank_texts = _write_csv(tmp_path / "blank.csv", ["id,text", "1, ", "2,"])
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(blank_texts)} gives no documents"):
        pretraining.main(_pretrain_flags(tmp_path, tiny_tokenizer_dir, blank_texts))
    # Sentence order needs documents of two tokens or more: one-character lines give no pair.
    short = _write_csv(tmp_path / "short.txt", ["好", "差", "行", "对"])
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(short)} gives no training examples: 4 document\(s\)"
                                         r" have tokens, but --objective mlm_sop .* or --objective mlm"):
        pretraining.main(_pretrain_flags(tmp_path, tiny_tokenizer_dir, short, "--validation_split_percentage", "0",
                                         "--objective", "mlm_sop"))
    assert not (tmp_path / "out").exists()


def test_pretraining_and_the_tokenizer_trainer_read_gbk_with_encoding(tmp_path):
    from glm_hf.corpora import load_documents
    from glm_hf.tokenization import main as train_tokenizer

    gbk = _write_bytes(tmp_path / "corpus.txt", "第一篇。还是第一篇。\n第二篇！\n".encode("gbk"))
    documents = load_documents(train_file=gbk, validation_split_percentage=0, encoding="gbk")
    assert documents["train"]["sentences"] == [["第一篇。", "还是第一篇。"], ["第二篇！"]]
    bom = _write_bytes(tmp_path / "bom.txt", "第一篇。\n".encode("utf-8-sig"))
    assert load_documents(train_file=bom, validation_split_percentage=0)["train"]["sentences"] == [["第一篇。"]]
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(gbk)} is not UTF-8 text"):
        train_tokenizer(["--train_file", gbk, "--output_dir", str(tmp_path / "tok")])
    empty = _write_bytes(tmp_path / "empty.txt", b"")
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(empty)} is empty"):
        train_tokenizer(["--train_file", empty, "--output_dir", str(tmp_path / "tok")])
    assert sorted(os.listdir(tmp_path)) == ["bom.txt", "corpus.txt", "empty.txt"]


def test_a_csv_row_with_an_unquoted_comma_is_named(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    # On the first data row pandas would silently make "这本书" an index and train on the text "很好" labelled 1.
    for lines, line_number in ((["text,label", "这本书,很好,1", "质量差,0"], 2), ([*REVIEWS, "房间,干净,1"], 6)):
        path = _write_csv(tmp_path / "train.csv", lines)
        with pytest.raises(ValueError, match=rf"--train_file {re.escape(path)}: line {line_number} has 3 fields but "
                                             r"the header \['text', 'label'\] has 2; put a text that holds the "
                                             "delimiter ',' in double quotes"):
            finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, path, "--max_steps", "1"))
    assert not (tmp_path / "out").exists()


def test_a_training_file_too_small_to_hold_out_a_split_is_named(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    one_row = _write_csv(tmp_path / "train.csv", REVIEWS[:2])
    with pytest.raises(ValueError, match=rf"--train_file {re.escape(one_row)} has 1 example\(s\) left: too few to hold "
                                         r"out the validation split \(--validation_split_percentage 10\); give a "
                                         "--validation_file"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, one_row, "--max_steps", "1", "--do_eval"))
    assert not (tmp_path / "out").exists()


def test_predict_checks_its_input_file_the_same_way(tmp_path):
    from glm_hf.cli import main as cli
    from glm_hf.predict import read_inputs

    model = str(tmp_path / "model")  # never loaded: the input is read first
    gbk = _write_bytes(tmp_path / "texts.txt", "这本书写得非常好。\n质量太差了。\n".encode("gbk"))
    with pytest.raises(ValueError, match=rf"--input {re.escape(gbk)} is not UTF-8 text: line 1 .*--encoding gbk"):
        cli(["predict", "--model", model, "--input", gbk])
    assert read_inputs(gbk, None, None, "gbk")[0] == [{"text": "这本书写得非常好。"}, {"text": "质量太差了。"}]
    empty = _write_bytes(tmp_path / "empty.csv", b"text\n")
    with pytest.raises(ValueError, match=rf"--input {re.escape(empty)} holds only its header line"):
        cli(["predict", "--model", model, "--input", empty])
    assert sorted(os.listdir(tmp_path)) == ["empty.csv", "texts.txt"]  # no predictions file, empty or not
