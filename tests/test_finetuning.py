"""The fine-tuning recipe: unprepared CSVs with only flags, multi-label, regression, random init, HF-style outputs."""

import csv
import json
import os
import random
import sys

import pytest
import torch

from glm_hf import GLMForPreTraining
from glm_hf.finetuning import main as finetune

FAST_FLAGS = [
    "--max_seq_length",
    "48",
    "--per_device_train_batch_size",
    "16",
    "--per_device_eval_batch_size",
    "32",
    "--report_to",
    "none",
    "--save_strategy",
    "no",
    "--logging_steps",
    "2",
    "--dataloader_pin_memory",
    "False",
    "--seed",
    "0",
]


def _write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _synthetic_reviews(n, seed=0):
    """Separable reviews: the label is which of 好/差 the text holds, among filler characters."""
    rng = random.Random(seed)
    filler = list("这个东西房间服务质量价格速度包装酒店书电脑")
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.sample(filler, 6)
        words.insert(rng.randrange(7), "好" if positive else "差")
        rows.append((f"r{i}", "".join(words), "好评" if positive else "差评", rng.choice([3, 4, 5])))
    return rows


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_unprepared_csv_with_only_flags(tmp_path, pretrained_dir, monkeypatch):
    """A CSV with its own column names and string labels, no validation/test files: carved out, trained, scored."""
    # The TF-IDF baseline is the study layer's (the main job's), not the general recipe's.
    monkeypatch.delitem(sys.modules, "glm_hf.baseline", raising=False)
    data = _write_csv(tmp_path / "my_reviews.csv", ["id", "review", "sentiment", "stars"], _synthetic_reviews(400))
    output_dir = tmp_path / "out"
    metrics = finetune(
        [
            "--model_name_or_path",
            pretrained_dir,
            "--train_file",
            data,
            "--text_column_names",
            "review",
            "--label_column_name",
            "sentiment",
            "--do_train",
            "--do_eval",
            "--do_predict",
            "--max_steps",
            "60",
            "--learning_rate",
            "2e-3",
            "--warmup_steps",
            "0.1",
            "--output_dir",
            str(output_dir),
            *FAST_FLAGS,
        ]
    )
    files = set(os.listdir(output_dir))
    assert {
        "train_results.json",
        "eval_results.json",
        "test_results.json",
        "all_results.json",
        "trainer_state.json",
        "predict_results.csv",
        "confusion_matrix.png",
        "loss_curve.png",
        "README.md",
        "config.json",
        "model.safetensors",
        "modeling_glm.py",
        "tokenizer.json",
    } <= files
    assert "glm_hf.baseline" not in sys.modules and "baseline_results.json" not in files

    test_results = _read(output_dir / "test_results.json")
    for key in (
        "test_accuracy",
        "test_macro_f1",
        "test_macro_precision",
        "test_macro_recall",
        "test_f1_好评",
        "test_f1_差评",
        "test_loss",
        "test_samples",
    ):
        assert key in test_results, key
    assert test_results["test_samples"] == 40  # 10% of 400 held out for test (and 10% of the rest for validation)
    assert _read(output_dir / "eval_results.json")["eval_samples"] == 36
    assert test_results["test_accuracy"] >= 0.9, "the tiny model should learn a one-character rule"
    all_results = _read(output_dir / "all_results.json")
    assert all_results["test_accuracy"] == test_results["test_accuracy"] == metrics["test_accuracy"]
    assert "train_loss" in all_results and not [key for key in all_results if key.startswith("baseline_")]

    config = _read(output_dir / "config.json")
    assert config["id2label"] == {"0": "好评", "1": "差评"} and config["problem_type"] == "single_label_classification"

    with open(output_dir / "predict_results.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "review", "label", "predicted_label", "score", "score_好评", "score_差评"]
    assert len(rows) == 40
    accuracy = sum(row["label"] == row["predicted_label"] for row in rows) / len(rows)
    assert accuracy == pytest.approx(test_results["test_accuracy"])
    assert float(rows[0]["score_好评"]) + float(rows[0]["score_差评"]) == pytest.approx(1.0, abs=1e-5)

    card = (output_dir / "README.md").read_text(encoding="utf-8")
    assert f"{test_results['test_accuracy']:.4f}".rstrip("0") in card and "TF-IDF" not in card
    assert "my_reviews.csv" in card and "held out at random" in card

    # The saved folder is a usable text-classification model.
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(output_dir))
    assert classifier("东西好")[0]["label"] in ("好评", "差评")


def test_multi_label_json_lines_with_text_pair_and_random_init(tmp_path, tiny_tokenizer_dir):
    rng = random.Random(1)
    rows = []
    for i in range(120):
        tags = [tag for tag in ("酒店", "服务", "价格") if rng.random() < 0.5]
        rows.append({"title": f"第{i}条", "body": "".join(tags) or "一般", "tags": tags})
    for split, part in (("train", rows[:80]), ("dev", rows[80:100]), ("test", rows[100:])):
        with open(tmp_path / f"{split}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in part)
    output_dir = tmp_path / "multi"
    finetune(
        [
            "--model_size",
            "tiny",
            "--tokenizer_name",
            tiny_tokenizer_dir,
            "--train_file",
            str(tmp_path / "train.jsonl"),
            "--validation_file",
            str(tmp_path / "dev.jsonl"),
            "--test_file",
            str(tmp_path / "test.jsonl"),
            "--text_column_names",
            "title,body",
            "--label_column_name",
            "tags",
            "--do_train",
            "--do_eval",
            "--do_predict",
            "--max_steps",
            "6",
            "--output_dir",
            str(output_dir),
            *FAST_FLAGS,
        ]
    )
    config = _read(output_dir / "config.json")
    assert config["problem_type"] == "multi_label_classification"
    assert sorted(config["label2id"]) == ["价格", "服务", "酒店"]
    test_results = _read(output_dir / "test_results.json")
    assert {"test_accuracy", "test_micro_f1", "test_macro_f1", "test_f1_酒店"} <= test_results.keys()
    with open(output_dir / "predict_results.csv", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == ["index", "title", "body", "label", "predicted_labels", "score_价格", "score_服务", "score_酒店"]
    card = (output_dir / "README.md").read_text(encoding="utf-8")
    assert "random initialisation" in card and "micro-F1" in card


def test_regression_from_float_labels(tmp_path, pretrained_dir):
    rows = [(text, float(stars) + 0.5) for _, text, _, stars in _synthetic_reviews(60)]
    train = _write_csv(tmp_path / "train.csv", ["text", "score"], rows[:40])
    test = _write_csv(tmp_path / "test.csv", ["text", "score"], rows[40:])
    output_dir = tmp_path / "reg"
    finetune(
        [
            "--model_name_or_path",
            pretrained_dir,
            "--train_file",
            train,
            "--test_file",
            test,
            "--label_column_name",
            "score",
            "--do_train",
            "--do_predict",
            "--max_steps",
            "4",
            "--output_dir",
            str(output_dir),
            *FAST_FLAGS,
        ]
    )
    config = _read(output_dir / "config.json")
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
    test_results = _read(output_dir / "test_results.json")
    assert {"test_mse", "test_pearsonr"} <= test_results.keys()
    with open(output_dir / "predict_results.csv", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == ["index", "text", "label", "prediction"]


def test_pretrained_encoder_weights_are_used(tmp_path, pretrained_dir):
    """Fine-tuning from a pretraining folder starts from its encoder, with a new classifier head."""
    from transformers import AutoTokenizer

    from glm_hf.finetuning import ModelArguments, TaskSpec, build_config_and_model

    tokenizer = AutoTokenizer.from_pretrained(pretrained_dir)
    task = TaskSpec(["text"], "label", "single_label_classification", ["neg", "pos"])
    _, model, label2id = build_config_and_model(ModelArguments(model_name_or_path=pretrained_dir), task, tokenizer, 48)
    pretrained = GLMForPreTraining.from_pretrained(pretrained_dir)
    name = "glm.encoder.layer.1.attention.self.query.weight"
    assert torch.equal(model.state_dict()[name], pretrained.state_dict()[name])
    assert label2id == {"neg": 0, "pos": 1} and model.config.id2label == {0: "neg", 1: "pos"}


def test_clear_errors(tmp_path, pretrained_dir):
    data = _write_csv(
        tmp_path / "d.csv", ["review", "sentiment"], [(f"文本{i}", "好" if i % 2 else "差") for i in range(20)]
    )
    base = [
        "--model_name_or_path",
        pretrained_dir,
        "--train_file",
        data,
        "--do_train",
        "--output_dir",
        str(tmp_path / "o"),
        *FAST_FLAGS,
    ]
    with pytest.raises(ValueError, match=r"label_column_name='stars' is not a column .*\['review', 'sentiment'\]"):
        finetune(base + ["--text_column_names", "review", "--label_column_name", "stars"])
    with pytest.raises(ValueError, match=r"no default text column found; columns are \['review2'"):
        finetune(
            [
                "--model_name_or_path",
                pretrained_dir,
                "--do_train",
                "--output_dir",
                str(tmp_path / "o"),
                "--train_file",
                _write_csv(tmp_path / "e.csv", ["review2", "label"], [("a", 1), ("b", 0)]),
            ]
        )
    with pytest.raises(ValueError, match="train_file must end with one of"):
        finetune(["--model_name_or_path", pretrained_dir, "--train_file", str(tmp_path / "d.xlsx"), "--do_train",
                  "--output_dir", str(tmp_path / "o")])
    unseen = _write_csv(tmp_path / "t.csv", ["review", "sentiment"], [("文本", "中")])
    with pytest.raises(ValueError, match=r"label '中' in the test split is not among the training labels"):
        finetune(
            base
            + [
                "--text_column_names",
                "review",
                "--label_column_name",
                "sentiment",
                "--test_file",
                unseen,
                "--do_predict",
            ]
        )
    with pytest.raises(SystemExit):  # argparse: invalid choice for --model_size
        finetune(
            [
                "--model_size",
                "huge",
                "--tokenizer_name",
                pretrained_dir,
                "--train_file",
                data,
                "--do_train",
                "--text_column_names",
                "review",
                "--label_column_name",
                "sentiment",
                "--output_dir",
                str(tmp_path / "o"),
            ]
        )


def test_both_recipes_check_where_the_model_comes_from_the_same_way(tiny_tokenizer_dir):
    from glm_hf import finetuning, pretraining

    for recipe in (finetuning, pretraining):
        with pytest.raises(ValueError, match=r"^give --model_name_or_path \(a GLM checkpoint to start from\), or "
                                             r"--model_size \(tiny/mini/small/medium/base\) or --config_name"):
            recipe.ModelArguments(tokenizer_name="tok")
        for other in ("model_name_or_path", "config_name"):
            with pytest.raises(ValueError, match=rf"^give either --model_size \(a random initialisation\) or "
                                                 rf"--{other}, not both$"):
                recipe.ModelArguments(model_size="tiny", tokenizer_name="tok", **{other: "m"})
        # Flags meet argparse's choices first; a .json arguments file or a caller meets this check.
        with pytest.raises(ValueError, match=r"^model_size must be one of \['base', 'medium'"):
            recipe.ModelArguments(model_size="huge", tokenizer_name="tok")
        with pytest.raises(ValueError, match="^from a random initialisation, give --tokenizer_name"):
            recipe.ModelArguments(config_name="c")
        with pytest.raises(SystemExit):  # argparse: invalid choice for --model_size
            recipe.main(["--model_size", "huge", "--tokenizer_name", tiny_tokenizer_dir, "--dataset_name", "x",
                         "--output_dir", "o"])
        assert recipe.ModelArguments(model_name_or_path="m").tokenizer_source == ("--model_name_or_path", "m")
    # Fine-tuning reads a checkpoint's config and may change it; pretraining loads a checkpoint as it is.
    finetuning.ModelArguments(model_name_or_path="m", config_name="c", config_overrides="hidden_dropout_prob=0")
    with pytest.raises(ValueError, match="^--config_name applies to models trained from scratch, not "
                                         "--model_name_or_path"):
        pretraining.ModelArguments(model_name_or_path="m", config_name="x")
    # ... except for the settings of the heads the objective adds, which leave the checkpoint's function unchanged.
    message = (r"^--config_overrides hidden_size: a --model_name_or_path checkpoint is loaded with its own config; "
               r"only the settings of the heads .* \(generator_num_")
    with pytest.raises(ValueError, match=message):
        pretraining.ModelArguments(model_name_or_path="m", config_overrides="rtd_loss_weight=9,hidden_size=2")
    pretraining.ModelArguments(model_name_or_path="m", config_overrides="generator_num_hidden_layers=1")


def test_the_removed_run_baseline_flag_points_to_the_main_job(tmp_path, pretrained_dir, capsys):
    pointer = ("--run_baseline was removed: the fine-tuning recipe no longer scores a TF-IDF baseline; 'glm-hf main' "
               "reports it beside GLM")
    flags = ["--model_name_or_path", pretrained_dir, "--dataset_name", "embedded-sentiment", "--do_train",
             "--output_dir", str(tmp_path / "out")]
    for removed in (["--run_baseline", "false"], ["--run-baseline=true"]):
        with pytest.raises(SystemExit) as stopped:
            finetune(flags + removed)
        assert stopped.value.code == 2 and f"error: {pointer}" in capsys.readouterr().err
    arguments_file = tmp_path / "args.json"
    arguments_file.write_text(json.dumps({"model_name_or_path": pretrained_dir, "output_dir": str(tmp_path / "out"),
                                          "dataset_name": "embedded-sentiment", "run_baseline": True}))
    with pytest.raises(SystemExit):
        finetune([str(arguments_file)])
    assert f"error: {arguments_file}: run_baseline was removed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_config_overrides_apply_to_pretrained_and_new_models(pretrained_dir, tiny_tokenizer):
    from glm_hf.finetuning import ModelArguments, TaskSpec, build_config_and_model

    task = TaskSpec(text_columns=["text"], label_column="label", problem_type="single_label_classification",
                    label_names=["negative", "positive"])
    overrides = "hidden_dropout_prob=0.0,attention_probs_dropout_prob=0.25"
    for model_args in (
        ModelArguments(model_name_or_path=str(pretrained_dir), config_overrides=overrides),
        ModelArguments(model_size="tiny", tokenizer_name=str(pretrained_dir), config_overrides=overrides),
    ):
        config, model, _ = build_config_and_model(model_args, task, tiny_tokenizer, max_seq_length=32)
        assert (config.hidden_dropout_prob, config.attention_probs_dropout_prob) == (0.0, 0.25)
        assert model.config.attention_probs_dropout_prob == 0.25

    bad = ModelArguments(model_name_or_path=str(pretrained_dir), config_overrides="hidden_dropout_prob=1.5")
    with pytest.raises(ValueError, match="hidden_dropout_prob"):
        build_config_and_model(bad, task, tiny_tokenizer, max_seq_length=32)


def test_reinitialising_the_top_layers_and_pooler_of_a_loaded_model(tmp_path):
    """Loaded weights are marked initialised in transformers v5: re-initialising them must still draw them anew."""
    import torch

    from glm_hf import GLMConfig, GLMForSequenceClassification
    from glm_hf.finetuning import reinitialize_top

    model = GLMForSequenceClassification(GLMConfig.from_size("tiny", vocab_size=300, num_labels=2))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    model.save_pretrained(tmp_path)
    loaded = GLMForSequenceClassification.from_pretrained(tmp_path)
    kept = loaded.glm.encoder.layer[0].attention.self.query.weight.clone()
    reinitialize_top(loaded, 1, pooler=True)
    top = loaded.glm.encoder.layer[1]
    assert abs(float(top.attention.self.query.weight.mean())) < 0.01  # drawn anew around 0, not around 1
    assert torch.equal(top.output.LayerNorm.weight, torch.ones_like(top.output.LayerNorm.weight))
    assert abs(float(loaded.glm.pooler.dense.weight.mean())) < 0.01
    assert torch.equal(loaded.glm.encoder.layer[0].attention.self.query.weight, kept)
    with pytest.raises(ValueError, match="reinit_top_layers must be in \\[0, 2\\]"):
        reinitialize_top(loaded, 3, pooler=False)


def test_a_fine_tuned_head_is_reinitialised_when_its_labels_differ(tmp_path, tiny_tokenizer, caplog):
    """Two labels either way: loading the head of other labels would give its rows to the data's, so it is drawn
    anew; the same labels (in any order) keep the head and its mapping."""
    from glm_hf import GLMConfig, GLMForSequenceClassification
    from glm_hf.finetuning import ModelArguments, TaskSpec, build_config_and_model

    config = GLMConfig.from_size("tiny", vocab_size=len(tiny_tokenizer), max_position_embeddings=64,
                                 id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1},
                                 problem_type="single_label_classification")
    model = GLMForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.fill_(1.0)
    model.save_pretrained(tmp_path / "sentiment")
    model_args = ModelArguments(model_name_or_path=str(tmp_path / "sentiment"))

    def build(label_names):
        task = TaskSpec(["text"], "label", "single_label_classification", label_names)
        return build_config_and_model(model_args, task, tiny_tokenizer, max_seq_length=32)

    _, same, label2id = build(["pos", "neg"])
    assert label2id == {"neg": 0, "pos": 1}
    assert torch.equal(same.classifier.weight, torch.ones_like(same.classifier.weight))
    with caplog.at_level("WARNING"):
        _, other, label2id = build(["sports", "politics"])
    assert label2id == {"sports": 0, "politics": 1} and "re-initialised" in caplog.text
    assert abs(float(other.classifier.weight.detach().mean())) < 0.01, "a new head, not the sentiment rows"


def test_frozen_word_embeddings_stay_as_they_were_and_peak_memory_is_reported(tmp_path, pretrained_dir):
    """--freeze_word_embeddings (large vocabularies): the embedding matrix is not trained, the rest is."""
    from safetensors.torch import load_file

    data = _write_csv(tmp_path / "reviews.csv", ["id", "review", "sentiment", "stars"], _synthetic_reviews(64))
    output_dir = tmp_path / "out"
    metrics = finetune(["--model_name_or_path", pretrained_dir, "--train_file", data, "--text_column_names", "review",
                        "--label_column_name", "sentiment", "--do_train", "--max_steps", "3", "--learning_rate",
                        "1e-2", "--freeze_word_embeddings", "--output_dir", str(output_dir), *FAST_FLAGS])
    before = load_file(os.path.join(pretrained_dir, "model.safetensors"))
    after = load_file(str(output_dir / "model.safetensors"))
    name = "glm.embeddings.word_embeddings.weight"
    assert torch.equal(before[name], after[name])
    layer = "glm.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before[layer], after[layer])
    assert metrics["peak_rss_mb"] > 0
