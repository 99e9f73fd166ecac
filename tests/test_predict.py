"""glm-hf predict: batch prediction from text, CSV and JSON lines files through the text-classification pipeline."""

import csv
import json

import pytest
import torch

from glm_hf import GLMConfig, GLMForSequenceClassification
from glm_hf.cli import main as cli

TEXTS = ["这本书写得非常好，我很喜欢。", "质量太差了，不推荐购买。", "房间干净，服务周到。"]


def _classifier_dir(folder, tokenizer, **config_kwargs):
    torch.manual_seed(0)
    config = GLMConfig.from_size(
        "tiny",
        vocab_size=len(tokenizer),
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        **config_kwargs,
    )
    model = GLMForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def sentiment_model(tmp_path_factory, tiny_tokenizer):
    folder = tmp_path_factory.mktemp("sentiment_model")
    model = _classifier_dir(
        folder,
        tiny_tokenizer,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
        problem_type="single_label_classification",
    )
    return str(folder), model


def _rows(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_text_file_scores_match_the_model(tmp_path, sentiment_model, tiny_tokenizer):
    folder, model = sentiment_model
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS[:2]) + "\n\n" + TEXTS[2] + "\n", encoding="utf-8")  # blank lines skipped
    assert cli(["predict", "--model", folder, "--input", str(source), "--batch_size", "2"]) == 0

    rows = _rows(tmp_path / "texts.predictions.csv")
    assert [row["text"] for row in rows] == TEXTS
    assert list(rows[0]) == ["text", "predicted_label", "score", "score_negative", "score_positive"]
    with torch.no_grad():
        inputs = tiny_tokenizer(TEXTS, padding=True, return_tensors="pt")
        expected = model(**inputs).logits.softmax(-1)
    for row, probabilities in zip(rows, expected):
        assert float(row["score_negative"]) == pytest.approx(float(probabilities[0]), abs=1e-5)
        assert float(row["score_positive"]) == pytest.approx(float(probabilities[1]), abs=1e-5)
        assert row["predicted_label"] == ("positive" if probabilities[1] > probabilities[0] else "negative")
        assert float(row["score"]) == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_csv_and_json_lines_keep_their_columns(tmp_path, sentiment_model):
    folder, _ = sentiment_model
    with open(tmp_path / "in.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "comment"])
        writer.writerows([(i, text) for i, text in enumerate(TEXTS)])
    output = tmp_path / "out" / "pred.csv"
    cli(
        [
            "predict",
            "--model",
            folder,
            "--input",
            str(tmp_path / "in.csv"),
            "--text_column",
            "comment",
            "--output",
            str(output),
        ]
    )
    rows = _rows(output)
    assert [row["id"] for row in rows] == ["0", "1", "2"] and rows[1]["comment"] == TEXTS[1]

    with open(tmp_path / "in.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": text, "tags": ["a", "b"]}, ensure_ascii=False) + "\n" for text in TEXTS)
    cli(["predict", "--model", folder, "--input", str(tmp_path / "in.jsonl")])
    rows = _rows(tmp_path / "in.predictions.csv")
    assert rows[0]["tags"] == "a,b" and rows[2]["text"] == TEXTS[2]


def test_regression_and_multi_label_models(tmp_path, tiny_tokenizer):
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS), encoding="utf-8")

    regression = _classifier_dir(tmp_path / "reg", tiny_tokenizer, num_labels=1, problem_type="regression")
    cli(["predict", "--model", str(tmp_path / "reg"), "--input", str(source), "--output", str(tmp_path / "r.csv")])
    with torch.no_grad():
        value = regression(**tiny_tokenizer(TEXTS[:1], return_tensors="pt")).logits[0, 0]
    rows = _rows(tmp_path / "r.csv")
    assert list(rows[0]) == ["text", "prediction"]
    assert float(rows[0]["prediction"]) == pytest.approx(float(value), rel=1e-4)  # raw value, no sigmoid

    _classifier_dir(
        tmp_path / "multi",
        tiny_tokenizer,
        id2label={0: "hotel", 1: "book"},
        label2id={"hotel": 0, "book": 1},
        problem_type="multi_label_classification",
    )
    cli(
        [
            "predict",
            "--model",
            str(tmp_path / "multi"),
            "--input",
            str(source),
            "--output",
            str(tmp_path / "m.csv"),
            "--threshold",
            "0.01",
        ]
    )
    rows = _rows(tmp_path / "m.csv")
    assert list(rows[0]) == ["text", "predicted_labels", "score_hotel", "score_book"]
    assert rows[0]["predicted_labels"] == "hotel,book"  # independent sigmoids, all above the low threshold


def test_clear_errors(tmp_path, sentiment_model):
    folder, _ = sentiment_model
    (tmp_path / "in.csv").write_text("id,comment\n1,好\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no text/sentence column .* columns are \['id', 'comment'\]"):
        cli(["predict", "--model", folder, "--input", str(tmp_path / "in.csv")])
    with pytest.raises(ValueError, match=r"--text_column='body' is not a column"):
        cli(["predict", "--model", folder, "--input", str(tmp_path / "in.csv"), "--text_column", "body"])
    with pytest.raises(ValueError, match="--input must end with one of"):
        cli(["predict", "--model", folder, "--input", str(tmp_path / "in.xlsx")])
    with pytest.raises(ValueError, match=r"--max_length must be in \[2, 64\]"):
        (tmp_path / "t.txt").write_text("好\n", encoding="utf-8")
        cli(["predict", "--model", folder, "--input", str(tmp_path / "t.txt"), "--max_length", "100"])
    assert not (tmp_path / "t.predictions.csv").exists()  # nothing half-written
