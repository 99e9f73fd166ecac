"""Multi-task fine-tuning: task-sampled batches, one shared encoder, per-task losses, and exports that load as
ordinary single-task folders."""

import json
import os

import numpy as np
import pytest
import torch

from glm_hf.multitask import (
    MultiTaskDataArguments,
    MultiTaskGLM,
    TaskBatchSampler,
    TaskCollator,
    finetune_multitask,
    main,
    task_probabilities,
)


def test_task_probabilities_go_from_proportional_to_uniform():
    assert np.allclose(task_probabilities([100, 300], 1.0), [0.25, 0.75])
    assert np.allclose(task_probabilities([100, 400], 2.0), [1 / 3, 2 / 3])
    assert np.allclose(task_probabilities([10, 10**6], 1e9), [0.5, 0.5])  # no overflow at a huge temperature


def test_batches_hold_one_task_follow_the_probabilities_and_repeat_exactly():
    sizes = [10, 30]
    sampler = TaskBatchSampler(sizes, batch_size=4, num_batches=2000, temperature=1.0, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2000
    tasks = []
    for batch in batches:
        assert len(batch) == 4
        in_first = [index < sizes[0] for index in batch]
        assert all(in_first) or not any(in_first)
        tasks.append(0 if in_first[0] else 1)
    assert abs(np.mean(tasks) - 0.75) < 0.04
    # Each task's examples are all used before any repeats: the first 10 of task 0's indices are a permutation.
    first_task_indices = [i for batch in batches if batch[0] < sizes[0] for i in batch][:8]
    assert len(set(first_task_indices)) == 8
    assert batches == list(TaskBatchSampler(sizes, 4, 2000, 1.0, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_a_batch_of_two_tasks_is_refused():
    collate = TaskCollator([lambda items: {"n": len(items)}, lambda items: {"n": len(items)}])
    assert collate([(1, {}), (1, {})])["task_ids"].tolist() == [1, 1]
    with pytest.raises(ValueError, match="must hold one task"):
        collate([(0, {}), (1, {})])


def test_bad_temperature_names_the_flag():
    with pytest.raises(ValueError, match="--task_sampling_temperature must be > 0"):
        MultiTaskDataArguments(task_sampling_temperature=0)


def _joint_model(tiny_config):
    from glm_hf import GLMForSequenceClassification, GLMForTokenClassification

    torch.manual_seed(0)
    return MultiTaskGLM({
        "sentiment": GLMForSequenceClassification(tiny_config.__class__(**{**tiny_config.to_dict(), "num_labels": 2})),
        "ner": GLMForTokenClassification(tiny_config.__class__(**{**tiny_config.to_dict(), "num_labels": 7})),
    })


def test_one_encoder_is_shared_stored_once_and_exported_exactly(tiny_config):
    model = _joint_model(tiny_config)
    assert model.tasks["ner"].glm is model.glm and model.tasks["sentiment"].glm is model.glm
    keys = list(model.state_dict())
    assert not any(key.startswith("tasks.") and ".glm." in key for key in keys)
    assert any(key.startswith("glm.encoder.") for key in keys)

    batch = {"input_ids": torch.randint(5, 100, (2, 9)), "attention_mask": torch.ones(2, 9, dtype=torch.long)}
    ner_before = model(task_ids=torch.tensor([1, 1]), **batch).logits.detach()
    # A step on the sentiment task moves the encoder the NER head reads.
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model(task_ids=torch.tensor([0, 0]), labels=torch.tensor([0, 1]), **batch).loss.backward()
    optimizer.step()
    model.eval()
    ner_after = model(task_ids=torch.tensor([1, 1]), **batch).logits.detach()
    assert not torch.allclose(ner_before, ner_after)
    for task, task_id in (("sentiment", 0), ("ner", 1)):
        exported = model.export(task).eval()
        assert type(exported) is type(model.tasks[task]) and "glm" in exported._modules
        joint = model(task_ids=torch.tensor([task_id] * 2), **batch).logits
        torch.testing.assert_close(exported(**batch).logits, joint, rtol=0, atol=0)


@pytest.mark.slow
def test_joint_training_logs_each_task_and_exports_folders_pipelines_load(pretrained_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, pipeline

    output_dir = tmp_path / "multitask"
    results = main([
        "--model_name_or_path", pretrained_dir, "--output_dir", str(output_dir), "--do_train", "--max_steps", "6",
        "--per_device_train_batch_size", "4", "--classification_max_train_samples", "40",
        "--ner_max_train_samples", "40", "--max_eval_samples", "8", "--max_predict_samples", "8",
        "--logging_steps", "3", "--max_seq_length", "32", "--task_sampling_temperature", "1e9", "--report_to", "none",
    ])
    assert set(results["tasks"]) == {"sentiment", "ner"}
    assert 0 <= results["tasks"]["sentiment"]["test_accuracy"] <= 1 and 0 <= results["tasks"]["ner"]["test_f1"] <= 1
    assert results["task_probabilities"] == pytest.approx({"sentiment": 0.5, "ner": 0.5}, abs=1e-6)
    state = json.loads((output_dir / "trainer_state.json").read_text())
    logged = {key for entry in state["log_history"] for key in entry if key.startswith("loss_")}
    assert logged == {"loss_sentiment", "loss_ner"}
    assert (output_dir / "task_loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((output_dir / "multitask_results.json").read_text())["tasks"]["ner"]["test_f1"] >= 0

    sentiment_dir, ner_dir = str(output_dir / "sentiment_model"), str(output_dir / "ner_model")
    for folder, pipeline_tag in ((sentiment_dir, "text-classification"), (ner_dir, "token-classification")):
        card = open(os.path.join(folder, "README.md"), encoding="utf-8").read()
        assert f"pipeline_tag: {pipeline_tag}" in card and "Trained jointly with" in card
    classifier = AutoModelForSequenceClassification.from_pretrained(sentiment_dir, trust_remote_code=True)
    tagger = AutoModelForTokenClassification.from_pretrained(ner_dir, trust_remote_code=True)
    assert classifier.config.num_labels == 2 and set(tagger.config.label2id) >= {"O", "B-PER", "I-LOC"}
    assert pipeline("text-classification", model=sentiment_dir, trust_remote_code=True)("质量很好")[0]["label"]
    assert isinstance(pipeline("token-classification", model=ner_dir, trust_remote_code=True,
                               aggregation_strategy="simple")("北京今天天气晴朗"), list)
    # The run folder is a run of its own: a second, different run into it is refused.
    with pytest.raises(ValueError, match="holds another run"):
        finetune_multitask(*_args(pretrained_dir, output_dir, seed=1))
    assert os.path.isdir(sentiment_dir)


def _args(pretrained_dir, output_dir, seed):
    from glm_hf.finetuning import ModelArguments
    from glm_hf.run_folder import RecipeTrainingArguments

    return (ModelArguments(model_name_or_path=pretrained_dir),
            MultiTaskDataArguments(classification_max_train_samples=40, ner_max_train_samples=40, max_eval_samples=8,
                                   max_predict_samples=8, max_seq_length=32),
            RecipeTrainingArguments(output_dir=str(output_dir), do_train=True, max_steps=2, seed=seed,
                                    per_device_train_batch_size=4, report_to="none"))
