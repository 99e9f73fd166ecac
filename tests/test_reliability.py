"""A user's files are never deleted, bad input stops with one sentence naming the flag or file, and nothing
half-written is left behind (issue #10). Tiny data: each test takes seconds."""

import logging
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
        "--use_cpu", "--report_to", "none", "--disable_tqdm", "true", *extra,
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
    model_args = finetuning.ModelArguments(model_size="tiny", tokenizer_name=tiny_tokenizer_dir)
    raw, _ = finetuning.load_raw_datasets(finetuning.DataTrainingArguments(train_file=gbk, encoding="gbk"), model_args)
    assert raw["train"]["text"][0] == "这本书写得非常好" and raw["train"].column_names == ["text", "label"]
    bom = _write_bytes(tmp_path / "bom.csv", text.encode("utf-8-sig"))
    raw, _ = finetuning.load_raw_datasets(finetuning.DataTrainingArguments(train_file=bom), model_args)
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
    model_args = finetuning.ModelArguments(model_size="tiny", tokenizer_name=tiny_tokenizer_dir)
    raw, _ = finetuning.load_raw_datasets(finetuning.DataTrainingArguments(train_file=str(pretty)), model_args)
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


# ------------------------------------------------------------------ model sources: paths, weights files, Hub ids
def _snapshot(folder):
    """Every file under ``folder`` with its size and modification time, to show that nothing was changed."""
    paths = [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]
    return {path: (os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in paths}


def _glm_folder(path, tokenizer, model_class_name="GLMForPreTraining"):
    import glm_hf

    getattr(glm_hf, model_class_name)(_tiny_config(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def _finetune_from(tmp_path, train_file, *model_flags):
    return [
        *model_flags, "--train_file", train_file, "--do_train", "--output_dir", str(tmp_path / "out"),
        "--max_seq_length", "32", "--max_steps", "1", "--use_cpu", "--report_to", "none",
    ]


@pytest.mark.parametrize(
    "flag, missing",
    [("--model_name_or_path", "{tmp}/no_such_model"), ("--tokenizer_name", "./no_such_tokenizer"),
     ("--config_name", "no/such/config"), ("--model_name_or_path", "no_such_model/")],
)
def test_finetuning_names_a_model_path_that_does_not_exist(tmp_path, tiny_tokenizer_dir, flag, missing):
    from glm_hf import finetuning

    missing = missing.format(tmp=tmp_path)
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    model_flags = {"--model_name_or_path": [flag, missing, "--tokenizer_name", tiny_tokenizer_dir],
                   "--tokenizer_name": ["--model_size", "tiny", flag, missing],
                   "--config_name": [flag, missing, "--tokenizer_name", tiny_tokenizer_dir]}[flag]
    with pytest.raises(ValueError, match=rf"^{flag} {re.escape(missing)}: no such folder$"):
        finetuning.main(_finetune_from(tmp_path, train_file, *model_flags))
    assert sorted(os.listdir(tmp_path)) == ["train.csv"]


def test_pretraining_predict_and_convert_name_a_model_path_that_does_not_exist(tmp_path, capsys):
    from glm_hf import pretraining
    from glm_hf.cli import main as cli

    missing = str(tmp_path / "no_such_model")
    with pytest.raises(ValueError, match=rf"^--model_name_or_path {re.escape(missing)}: no such folder$"):
        pretraining.main(["--model_name_or_path", missing, "--dataset_name", "embedded", "--max_steps", "1",
                          "--output_dir", str(tmp_path / "out"), "--use_cpu", "--report_to", "none"])
    texts = tmp_path / "texts.txt"
    texts.write_text("很好\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^--model {re.escape(missing)}: no such folder$"):
        cli(["predict", "--model", missing, "--input", str(texts)])
    with pytest.raises(SystemExit) as exit_info:
        cli(["convert-bert", missing, str(tmp_path / "glm")])
    assert exit_info.value.code == 2
    assert f"src {missing}: no such folder" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["texts.txt"]


def test_a_folder_without_the_files_asked_for_is_named(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=rf"^--tokenizer_name {re.escape(str(empty))}: no tokenizer in the folder"):
        finetuning.main(_finetune_from(tmp_path, train_file, "--model_size", "tiny", "--tokenizer_name", str(empty)))
    # A tokenizer folder given as the model: transformers would say "Unrecognized model ... should have a model_type".
    with pytest.raises(ValueError, match=rf"^--model_name_or_path {re.escape(tiny_tokenizer_dir)}: no config.json in "
                                         "the folder, so not a model folder"):
        finetuning.main(_finetune_from(tmp_path, train_file, "--model_name_or_path", tiny_tokenizer_dir))
    assert sorted(os.listdir(tmp_path)) == ["empty", "train.csv"] and os.listdir(empty) == []


def test_a_hub_id_that_cannot_be_reached_says_so(tmp_path, tiny_tokenizer_dir, monkeypatch):
    import huggingface_hub.constants

    from glm_hf import finetuning

    # Offline mode: the Hub is not reached (as on a machine without network), and the test does not wait on retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with pytest.raises(ValueError, match=r"^--model_name_or_path someone/glm-not-cached: no such folder, and the "
                                         r"Hugging Face Hub could not be reached to download it as a Hub id"):
        finetuning.main(_finetune_from(tmp_path, train_file, "--model_name_or_path", "someone/glm-not-cached",
                                       "--tokenizer_name", tiny_tokenizer_dir))
    assert sorted(os.listdir(tmp_path)) == ["train.csv"]


@pytest.mark.parametrize("damage", ["truncated", "empty", "missing"])
def test_a_weights_file_cut_short_or_missing_is_named(tmp_path, tiny_tokenizer, damage):
    from glm_hf import finetuning

    model_dir = _glm_folder(tmp_path / "model", tiny_tokenizer)
    weights = os.path.join(model_dir, "model.safetensors")
    if damage == "missing":
        os.remove(weights)
        expected = rf"--model_name_or_path {re.escape(model_dir)}: the folder has config.json but no weights file"
    else:
        with open(weights, "r+b") as f:
            f.truncate(0 if damage == "empty" else os.path.getsize(weights) // 2)
        expected = rf"--model_name_or_path {re.escape(weights)} is cut short or corrupt \(.+\); re-download or re-save"
    before = _snapshot(model_dir)
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with pytest.raises(ValueError, match=expected):
        finetuning.main(_finetune_from(tmp_path, train_file, "--model_name_or_path", model_dir))
    assert _snapshot(model_dir) == before
    assert not (tmp_path / "out").exists()


def test_predict_push_and_convert_refuse_a_weights_file_cut_short(tmp_path, tiny_tokenizer, monkeypatch, capsys):
    import torch
    from safetensors.torch import save_file

    from glm_hf import hub
    from glm_hf.cli import main as cli

    classifier = _glm_folder(tmp_path / "classifier", tiny_tokenizer, "GLMForSequenceClassification")
    weights = os.path.join(classifier, "model.safetensors")
    with open(weights, "r+b") as f:
        f.truncate(100)
    texts = tmp_path / "texts.txt"
    texts.write_text("很好\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^--model {re.escape(weights)} is cut short or corrupt"):
        cli(["predict", "--model", classifier, "--input", str(texts)])
    monkeypatch.setattr(hub, "HfApi", _never_run)
    with pytest.raises(ValueError, match=rf"{re.escape(weights)} is cut short or corrupt"):
        cli(["push", classifier, "--repo_id", "someone/glm"])

    bert = tmp_path / "bert"
    bert.mkdir()
    save_file({"embeddings.word_embeddings.weight": torch.zeros(2, 2)}, str(bert / "model.safetensors"))
    for text, problem in [('{"model_type": "bert",', "not valid JSON"),
                          ('{"model_type": "glm_hf"}', "model_type must be 'bert', got 'glm_hf': not a BERT config"),
                          ("[1, 2]", "holds a JSON list, not a BERT config")]:
        (bert / "config.json").write_text(text, encoding="utf-8")
        with pytest.raises(SystemExit) as exit_info:
            cli(["convert-bert", str(bert), str(tmp_path / "glm")])
        assert exit_info.value.code == 2
        assert f"{bert / 'config.json'}: {problem}" in capsys.readouterr().err
    assert not (tmp_path / "glm").exists() and not (tmp_path / "texts.predictions.csv").exists()


# ------------------------------------------------------------------------------------------ --config_overrides
@pytest.mark.parametrize(
    "overrides, message",
    [
        ("hiden_size=64", r"--config_overrides: cannot set 'hiden_size' on the glm_hf config \(did you mean "
                          r"hidden_size\?\); valid keys are attention_probs_dropout_prob, .*hidden_size, "),
        ("hidden_dropout_prob=0.1,hidden_size", r"--config_overrides: 'hidden_size' is not key=value; give "
                                                r"comma-separated pairs"),
        ("num_hidden_layers=two", r"--config_overrides: num_hidden_layers takes an integer, got 'two'"),
        ("hidden_dropout_prob=high", r"--config_overrides: hidden_dropout_prob takes a number, got 'high'"),
        ("tie_word_embeddings=maybe", r"--config_overrides: tie_word_embeddings takes true or false, got 'maybe'"),
        ("to_dict=1", r"--config_overrides: cannot set 'to_dict' on the glm_hf config"),
    ],
)
def test_a_bad_config_override_names_the_key_and_what_it_takes(tmp_path, tiny_tokenizer_dir, overrides, message):
    from glm_hf import finetuning

    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with pytest.raises(ValueError, match=f"^{message}"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                        "--config_overrides", overrides))
    assert not (tmp_path / "out").exists()


def test_a_config_override_of_an_unset_setting_is_read_as_a_value(tiny_config):
    import logging

    from glm_hf.training_setup import apply_config_overrides

    # transformers' update_from_string refuses settings whose default is None ("You can only update int, float...").
    apply_config_overrides(tiny_config, "classifier_dropout=0.2,problem_type=regression,", logging.getLogger(__name__))
    assert (tiny_config.classifier_dropout, tiny_config.problem_type) == (0.2, "regression")


# ----------------------------------------------------------------------------- glm-hf push: links, predictions
class _RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: records what would be committed; nothing reaches the network."""

    commits = []

    def __init__(self, token=None):
        pass

    def create_repo(self, repo_id, **kwargs):
        return None

    def create_commit(self, repo_id, operations, **kwargs):
        type(self).commits.append(sorted(operation.path_in_repo for operation in operations))
        return "commit"


@pytest.fixture
def recording_hub(monkeypatch):
    from glm_hf import hub

    monkeypatch.setattr(_RecordingHfApi, "commits", [])
    monkeypatch.setattr(hub, "HfApi", _RecordingHfApi)
    return _RecordingHfApi


def test_push_refuses_a_link_to_a_file_outside_the_folder(tmp_path, tiny_tokenizer, recording_hub):
    from glm_hf.cli import main as cli

    folder = _glm_folder(tmp_path / "model", tiny_tokenizer, "GLMForSequenceClassification")
    secret = tmp_path / "home" / "notes.txt"
    _touch(str(secret), "private")
    os.symlink(secret, os.path.join(folder, "notes.txt"))
    with pytest.raises(ValueError, match=rf"^{re.escape(os.path.join(folder, 'notes.txt'))} is a symbolic link to "
                                         rf"{re.escape(str(secret))}, outside {re.escape(folder)}: glm-hf push does "
                                         "not upload files from outside the folder"):
        cli(["push", folder, "--repo_id", "someone/glm"])
    os.remove(os.path.join(folder, "notes.txt"))
    os.symlink(tmp_path / "home", os.path.join(folder, "extra"))  # a linked folder, the same
    with pytest.raises(ValueError, match=r"extra is a symbolic link to .*home, outside"):
        cli(["push", folder, "--repo_id", "someone/glm"])
    assert recording_hub.commits == []

    os.remove(os.path.join(folder, "extra"))
    os.symlink(os.path.join(folder, "gone.json"), os.path.join(folder, "dangling.json"))
    with pytest.raises(ValueError, match=r"dangling.json is a symbolic link to .*gone.json, which does not exist"):
        cli(["push", folder, "--repo_id", "someone/glm"])
    os.remove(os.path.join(folder, "dangling.json"))
    assert recording_hub.commits == []

    # A link that stays inside the folder is uploaded as the file it points to.
    os.symlink(os.path.join(folder, "config.json"), os.path.join(folder, "config_copy.json"))
    assert cli(["push", folder, "--repo_id", "someone/glm"]) == 0
    assert "config_copy.json" in recording_hub.commits[0]
    assert secret.read_text(encoding="utf-8") == "private"


def test_push_leaves_out_the_test_predictions_unless_asked(tmp_path, tiny_tokenizer, recording_hub, capsys):
    from glm_hf.cli import main as cli

    folder = _glm_folder(tmp_path / "model", tiny_tokenizer, "GLMForSequenceClassification")
    _touch(os.path.join(folder, "predict_results.csv"), "text,label,predicted_label\n这本书写得非常好,1,1\n")
    before = _snapshot(folder)
    assert cli(["push", folder, "--repo_id", "someone/glm"]) == 0
    assert "predict_results.csv" not in recording_hub.commits[0]
    assert "left out predict_results.csv (every test text with its prediction); pass --include_predictions" in (
        capsys.readouterr().err
    )
    assert cli(["push", folder, "--repo_id", "someone/glm", "--include_predictions"]) == 0
    assert "predict_results.csv" in recording_hub.commits[1]
    assert _snapshot(folder) == before


# ---------------------------------------------------------------------------- recipes: output folders (run records)
def _folder_state(folder):
    """Every file under ``folder`` with its size and modification time: what a refused run must leave as it was."""
    return {
        os.path.relpath(os.path.join(root, name), folder): (os.path.getsize(os.path.join(root, name)),
                                                            os.stat(os.path.join(root, name)).st_mtime_ns)
        for root, _, names in os.walk(folder)
        for name in names
    }


def _checkpointing_flags(tmp_path, tokenizer_dir, train_file, *extra):
    return _finetune_flags(tmp_path, tokenizer_dir, train_file, "--max_steps", "2", "--save_steps", "1", *extra)


def test_a_run_does_not_resume_or_relabel_another_runs_checkpoint(tmp_path, tiny_tokenizer_dir, caplog):
    import json

    from glm_hf import finetuning

    out = tmp_path / "out"
    first = _write_csv(tmp_path / "train.csv", REVIEWS)
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, first))
    before = _folder_state(out)
    other_labels = _write_csv(tmp_path / "other.csv", ["text,label", "好,pos", "差,neg", "行,pos", "坏,neg"])
    with pytest.raises(ValueError, match=rf"--output_dir {re.escape(str(out))} holds another run \(labels \['0', "
                                         r"'1'\] -> \['neg', 'pos'\]; --train_file: other data\); nothing was "
                                         "written -- give another --output_dir, or pass --overwrite_output_dir"):
        finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, other_labels))
    with pytest.raises(ValueError, match=r"holds another run \(--learning_rate 5e-05 -> 0.001\)"):
        finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, first, "--learning_rate", "1e-3"))
    # Pretraining into a fine-tuning folder: another command.
    from glm_hf import pretraining

    with pytest.raises(ValueError, match=r"holds another run \(command 'finetune' -> 'pretrain'"):
        pretraining.main([
            "--model_size", "tiny", "--tokenizer_name", tiny_tokenizer_dir, "--dataset_name", "embedded",
            "--max_train_documents", "20", "--max_steps", "1", "--output_dir", str(out), "--use_cpu",
            "--report_to", "none", "--do_train",
        ])
    assert _folder_state(out) == before

    # The same command again resumes its own run; --overwrite_output_dir starts the other run over.
    with caplog.at_level("WARNING"):
        finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, first))
    assert "resuming training at" in caplog.text and "checkpoint-2" in caplog.text
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, other_labels, "--overwrite_output_dir"))
    with open(out / "config.json", encoding="utf-8") as f:
        assert json.load(f)["id2label"] == {"0": "neg", "1": "pos"}


def test_overwrite_removes_the_previous_runs_outputs_and_only_those(tmp_path, tiny_tokenizer_dir):
    import json

    from glm_hf import finetuning

    out = tmp_path / "out"
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file, "--do_predict",
                                         "--test_split_percentage", "50"))
    assert {"predict_results.csv", "test_results.json", "confusion_matrix.png", "checkpoint-1"} <= set(os.listdir(out))
    _touch(str(out / "notes.txt"), "mine")  # the user's, written after the run
    finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                    "--overwrite_output_dir", "--learning_rate", "1e-3", "--save_strategy", "no"))
    left = set(os.listdir(out))
    assert not left & {"predict_results.csv", "test_results.json", "confusion_matrix.png", "checkpoint-1",
                       "checkpoint-2"}
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    with open(out / "all_results.json", encoding="utf-8") as f:
        assert not [key for key in json.load(f) if key.startswith("test_")]


def test_a_folder_with_a_model_no_run_recorded_is_refused(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    out = tmp_path / "out"
    _touch(str(out / "checkpoint-7" / "trainer_state.json"), "{}")  # e.g. a run of an older glm_hf, or not ours
    _touch(str(out / "README.md"), "my notes")
    before = _folder_state(out)
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    for extra in ([], ["--overwrite_output_dir"]):
        with pytest.raises(ValueError, match=rf"--output_dir {re.escape(str(out))} holds a model or checkpoints that "
                                             r"no glm_hf run recorded writing \(README.md, checkpoint-7; "):
            finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file, *extra))
    assert _folder_state(out) == before and sorted(os.listdir(out)) == ["README.md", "checkpoint-7"]
    # Other files of the user's are written beside, and kept.
    _touch(str(tmp_path / "mine" / "data.txt"), "keep")
    finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                    "--output_dir", str(tmp_path / "mine")))
    assert (tmp_path / "mine" / "data.txt").read_text(encoding="utf-8") == "keep"
    assert (tmp_path / "mine" / "model.safetensors").is_file()


def test_a_second_run_into_a_folder_in_use_stops_at_once(tmp_path, tiny_tokenizer_dir):
    import fcntl
    import json
    import subprocess
    import sys

    from glm_hf import finetuning
    from glm_hf.run_folder import LOCK_FILE

    out = tmp_path / "out"
    out.mkdir()
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with open(out / LOCK_FILE, "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        json.dump({"pid": 4242, "host": "node7", "started": "2026-11-30 01:00:00", "command": "glm-hf finetune A"},
                  lock)
        lock.flush()
        with pytest.raises(ValueError, match=rf"--output_dir {re.escape(str(out))} is in use by another run \(pid "
                                             r"4242 on node7, started 2026-11-30 01:00:00: glm-hf finetune A\)"):
            finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
        flags = _finetune_flags(tmp_path, tiny_tokenizer_dir, train_file)
        evaluation_only = [flag for flag in flags if flag != "--do_train"]
        with pytest.raises(ValueError, match="is in use by another run"):
            finetuning.main([*evaluation_only, "--validation_file", train_file, "--do_eval"])
    assert os.listdir(out) == [LOCK_FILE]
    # A process killed while holding the lock leaves no stale lock behind: the kernel releases it.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True);"
        " time.sleep(60)"), str(out / LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ValueError, match="is in use by another run"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
    holder.kill()
    holder.wait()
    finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
    assert (out / "model.safetensors").is_file()


@pytest.mark.parametrize("cut", ["truncated_weights", "no_trainer_state"])
def test_a_checkpoint_cut_mid_write_is_skipped(tmp_path, tiny_tokenizer_dir, caplog, cut):
    from glm_hf import finetuning

    out = tmp_path / "out"
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file))
    newest = out / "checkpoint-2"
    if cut == "truncated_weights":
        weights = newest / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        (newest / "trainer_state.json").unlink()
    with caplog.at_level("WARNING"):
        finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file))
    assert f"Skipping the incomplete checkpoint {newest}" in caplog.text
    assert f"resuming training at {out / 'checkpoint-1'}" in caplog.text
    assert (out / "model.safetensors").is_file()


def test_resume_last_names_a_folder_without_a_complete_checkpoint(tmp_path):
    from types import SimpleNamespace

    from glm_hf.training_setup import checkpoint_to_resume

    _touch(str(tmp_path / "checkpoint-3" / "model.safetensors"), "cut")
    _touch(str(tmp_path / "checkpoint-3" / "trainer_state.json"), "{}")
    args = SimpleNamespace(output_dir=str(tmp_path), do_train=True, resume_from_checkpoint="last")
    with pytest.raises(ValueError, match=rf"--resume_from_checkpoint last: {re.escape(str(tmp_path))} holds no "
                                         "complete checkpoint"):
        checkpoint_to_resume(args, logging.getLogger("test"))
    args.resume_from_checkpoint = str(tmp_path / "checkpoint-3")
    with pytest.raises(ValueError, match=r"checkpoint-3 cannot be resumed: model.safetensors is truncated or corrupt"):
        checkpoint_to_resume(args, logging.getLogger("test"))
    assert (tmp_path / "checkpoint-3" / "model.safetensors").read_text(encoding="utf-8") == "cut"


def test_a_run_that_fails_before_writing_leaves_no_record(tmp_path, tiny_tokenizer_dir, monkeypatch):
    from glm_hf import finetuning

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(finetuning, "train_and_save", out_of_memory)
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with pytest.raises(RuntimeError, match="out of memory"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
    assert not (tmp_path / "out").exists()
    _touch(str(tmp_path / "mine" / "notes.txt"), "keep")
    with pytest.raises(RuntimeError, match="out of memory"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                        "--output_dir", str(tmp_path / "mine")))
    assert sorted(os.listdir(tmp_path / "mine")) == ["_glm_run.lock", "notes.txt"]  # the lock file alone is left


def test_an_output_dir_that_is_a_file_is_named(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    _touch(str(tmp_path / "out"), "not a folder")
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    with pytest.raises(ValueError, match=rf"--output_dir {re.escape(str(tmp_path / 'out'))} is a file, not a folder"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
    assert (tmp_path / "out").read_text(encoding="utf-8") == "not a folder"


def _scoring_flags(model_flags, output_dir, *extra):
    """An evaluation-only fine-tuning command (no --do_train)."""
    return [*model_flags, "--output_dir", str(output_dir), "--max_seq_length", "32", "--use_cpu", "--report_to",
            "none", "--disable_tqdm", "true", *extra]


def test_an_evaluation_only_run_does_not_write_over_another_runs_results(tmp_path, tiny_tokenizer_dir):
    import json
    import shutil

    from glm_hf import finetuning

    out, test_file = tmp_path / "out", _write_csv(tmp_path / "test.csv", REVIEWS)
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1", "--save_steps", "1",
                                    "--test_file", test_file, "--do_predict"))
    other_model = tmp_path / "b"
    shutil.copytree(out, other_model, ignore=shutil.ignore_patterns("_glm_run.*", "checkpoint-*"))
    before = _folder_state(out)
    predict_b = ["--model_name_or_path", str(other_model), "--test_file", test_file, "--do_predict"]
    with pytest.raises(ValueError, match=rf"--output_dir {re.escape(str(out))} holds another run \(finetune of "
                                         rf"'tiny'\), whose results scoring '{re.escape(str(other_model))}' would "
                                         r"replace; nothing was written -- give another --output_dir"):
        finetuning.main(_scoring_flags(predict_b, out))
    # Nor the model the run started from (here a fresh 'tiny'): its scores would pass for the fine-tuned model's.
    with pytest.raises(ValueError, match=r"holds another run \(finetune of 'tiny'\), whose results scoring 'tiny'"):
        finetuning.main(_scoring_flags(["--model_size", "tiny", "--tokenizer_name", tiny_tokenizer_dir,
                                        "--test_file", test_file, "--do_predict"], out))
    assert _folder_state(out) == before
    # The run's own model, or a checkpoint of it, is scored into its folder, and the record owns the results.
    for model in (out, out / "checkpoint-1"):
        finetuning.main(_scoring_flags(["--model_name_or_path", str(model), "--test_file", test_file,
                                        "--do_predict"], out))
    with open(out / "_glm_run.json", encoding="utf-8") as f:
        assert {"test_results.json", "predict_results.csv"} <= set(json.load(f)["outputs"])
    # Without a record: results already there are refused by name; a folder without results is written.
    mine = tmp_path / "mine"
    _touch(str(mine / "test_results.json"), "{}")
    _touch(str(mine / "notes.txt"), "keep")
    with pytest.raises(ValueError, match=rf"--output_dir {re.escape(str(mine))} already holds results that no "
                                         r"glm_hf run recorded writing \(test_results.json; no _glm_run.json\), "
                                         "which this run would replace; nothing was written -- give another"):
        finetuning.main(_scoring_flags(predict_b, mine))
    assert sorted(os.listdir(mine)) == ["notes.txt", "test_results.json"]
    (mine / "test_results.json").unlink()
    finetuning.main(_scoring_flags(predict_b, mine))
    assert (mine / "predict_results.csv").is_file() and (mine / "notes.txt").read_text(encoding="utf-8") == "keep"


def test_a_file_the_user_adds_during_a_run_is_not_the_runs_to_remove(tmp_path, tiny_tokenizer_dir, monkeypatch):
    import json

    from glm_hf import finetuning

    out, train_file = tmp_path / "out", _write_csv(tmp_path / "train.csv", REVIEWS)
    train = finetuning.train_and_save

    def train_while_the_user_writes(trainer, resume_from_checkpoint, **extra_metrics):
        _touch(str(out / "notes.txt"), "mine")
        return train(trainer, resume_from_checkpoint, **extra_metrics)

    monkeypatch.setattr(finetuning, "train_and_save", train_while_the_user_writes)
    finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
    with open(out / "_glm_run.json", encoding="utf-8") as f:
        outputs = json.load(f)["outputs"]
    assert "notes.txt" not in outputs and {"modeling_glm.py", "model.safetensors", "README.md"} <= set(outputs)
    monkeypatch.setattr(finetuning, "train_and_save", train)
    finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1",
                                    "--overwrite_output_dir", "--learning_rate", "1e-3"))
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_overwrite_with_resume_latest_is_refused_before_anything_is_removed(tmp_path, tiny_tokenizer_dir):
    from glm_hf import finetuning

    out, train_file = tmp_path / "out", _write_csv(tmp_path / "train.csv", REVIEWS)
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file))
    before = _folder_state(out)
    with pytest.raises(ValueError, match=rf"^--overwrite_output_dir removes the checkpoints in {re.escape(str(out))} "
                                         r"that --resume_from_checkpoint latest would resume from; give one of the "
                                         "two$"):
        finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file, "--overwrite_output_dir",
                                             "--resume_from_checkpoint", "latest"))
    assert _folder_state(out) == before


def test_overwrite_spares_only_the_checkpoint_resumed_by_path(tmp_path, tiny_tokenizer_dir):
    import shutil

    from glm_hf import finetuning

    out, train_file = tmp_path / "out", _write_csv(tmp_path / "train.csv", REVIEWS)
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file))
    # Another run's checkpoint-1 is no reason to keep this folder's checkpoint-1 ...
    other = tmp_path / "other"
    shutil.copytree(out, other)
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file, "--overwrite_output_dir",
                                         "--resume_from_checkpoint", str(other / "checkpoint-1")))
    assert not (out / "checkpoint-1").exists() and (out / "checkpoint-2").is_dir()
    # ... while this folder's own, however the path is spelt, is kept to resume from.
    (tmp_path / "link").symlink_to(out)
    finetuning.main(_checkpointing_flags(tmp_path, tiny_tokenizer_dir, train_file, "--overwrite_output_dir",
                                         "--resume_from_checkpoint", str(tmp_path / "link" / "checkpoint-2"),
                                         "--max_steps", "3"))
    assert (out / "checkpoint-2" / "trainer_state.json").is_file() and (out / "checkpoint-3").is_dir()


def test_a_failed_evaluation_only_run_leaves_no_new_folder(tmp_path, tiny_tokenizer_dir, monkeypatch):
    from glm_hf import finetuning

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(finetuning, "evaluate_and_predict", out_of_memory)
    validation_file = _write_csv(tmp_path / "validation.csv", REVIEWS)
    flags = ["--model_size", "tiny", "--tokenizer_name", tiny_tokenizer_dir, "--validation_file", validation_file,
             "--do_eval"]
    with pytest.raises(RuntimeError, match="out of memory"):
        finetuning.main(_scoring_flags(flags, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_run_that_cannot_remove_its_new_folder_keeps_its_error(tmp_path, tiny_tokenizer_dir, monkeypatch):
    from glm_hf import finetuning
    from glm_hf.run_folder import LOCK_FILE

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(finetuning, "train_and_save", out_of_memory)
    train_file = _write_csv(tmp_path / "train.csv", REVIEWS)
    # Another run creates its lock file the moment this one removed its own: the folder stays, the error is kept.
    rmdir = os.rmdir

    def another_run_locks_the_folder(path):
        _touch(os.path.join(path, LOCK_FILE), "{}")
        rmdir(path)

    monkeypatch.setattr(os, "rmdir", another_run_locks_the_folder)
    with pytest.raises(RuntimeError, match="out of memory"):
        finetuning.main(_finetune_flags(tmp_path, tiny_tokenizer_dir, train_file, "--max_steps", "1"))
    assert os.listdir(tmp_path / "out") == [LOCK_FILE]


@pytest.mark.parametrize("weights", ["pre_zip_torch_file", "whole_zip", "cut_zip", "empty"])
def test_a_checkpoint_and_a_model_folder_judge_a_weights_file_alike(tmp_path, weights):
    import torch

    from glm_hf.model_sources import check_weights
    from glm_hf.run_folder import incomplete_checkpoint_reason

    checkpoint = tmp_path / "checkpoint-1"
    _touch(str(checkpoint / "trainer_state.json"), "{}")
    path = checkpoint / "pytorch_model.bin"
    state = {"weight": torch.arange(1000.0)}
    if weights == "empty":
        path.write_bytes(b"")
    else:
        torch.save(state, path, _use_new_zipfile_serialization=weights != "pre_zip_torch_file")
    if weights == "cut_zip":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    reason = incomplete_checkpoint_reason(str(checkpoint))
    try:
        check_weights("--model_name_or_path", str(checkpoint))
        problem = None
    except ValueError as error:
        problem = str(error)
    whole = weights in ("pre_zip_torch_file", "whole_zip")
    assert (reason is None) == whole and (problem is None) == whole
    if not whole:
        assert reason.startswith("pytorch_model.bin is truncated or corrupt (")
