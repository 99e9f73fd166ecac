"""The NER recipe: CoNLL/JSON lines files with flags only, embedded corpora, windows, malformed input, pipeline."""

import json
import os

import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from glm_hf import GLMForTokenClassification
from glm_hf.finetuning_ner import main as finetune_ner
from glm_hf.finetuning_ner import window_bounds

FAST_FLAGS = [
    "--max_seq_length", "32", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
    "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1", "--dataloader_pin_memory", "False",
    "--seed", "0", "--max_steps", "2", "--learning_rate", "1e-3",
]
# Sentences of people, places and organisations (characters the tiny vocabulary mostly holds).
SENTENCES = [
    [("江泽民", "PER"), ("在", None), ("北京", "LOC"), ("发表讲话。", None)],
    [("中共中央", "ORG"), ("总书记", None), ("江泽民", "PER"), ("来到", None), ("香港", "LOC"), ("。", None)],
    [("我在", None), ("北京", "LOC"), ("买了一本书，很好。", None)],
    [("新华社", "ORG"), ("记者报道，", None), ("邓小平", "PER"), ("同志", None)],
]


def _conll_lines(sentence) -> list[str]:
    lines = []
    for text, kind in sentence:
        lines += [f"{ch} {'O' if kind is None else ('B-' if i == 0 else 'I-') + kind}" for i, ch in enumerate(text)]
    return lines


def _write_conll(path, sentences, repeat=1) -> str:
    blocks = ["\n".join(_conll_lines(sentence)) for sentence in sentences * repeat]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def conll_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conll")
    return (_write_conll(folder / "train.conll", SENTENCES, repeat=10),
            _write_conll(folder / "dev.conll", SENTENCES[:2]), _write_conll(folder / "test.conll", SENTENCES[2:]))


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, pretrained_dir, conll_files):
    """A GLMForTokenClassification folder trained two steps on the CoNLL files, with flags only."""
    output_dir = str(tmp_path_factory.mktemp("ner") / "run")
    train, dev, test = conll_files
    metrics = finetune_ner([
        "--model_name_or_path", pretrained_dir, "--train_file", train, "--validation_file", dev, "--test_file", test,
        "--do_train", "--do_eval", "--do_predict", "--return_entity_level_metrics", "--output_dir", output_dir,
        *FAST_FLAGS,
    ])
    return output_dir, metrics


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_conll_files_with_flags_only(trained_dir, conll_files):
    output_dir, metrics = trained_dir
    config = _read(os.path.join(output_dir, "config.json"))
    assert config["architectures"] == ["GLMForTokenClassification"]
    labels = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert config["label2id"] == {label: i for i, label in enumerate(labels)}
    assert {int(i): label for i, label in config["id2label"].items()} == dict(enumerate(labels))
    for name in ("train_results.json", "eval_results.json", "test_results.json", "all_results.json"):
        assert os.path.isfile(os.path.join(output_dir, name)), name
    test_results = _read(os.path.join(output_dir, "test_results.json"))
    for key in ("test_precision", "test_recall", "test_f1", "test_accuracy", "test_PER_f1", "test_LOC_number"):
        assert key in test_results and key in metrics, key
    assert test_results["test_samples"] == 2 and test_results["test_LOC_number"] == 1
    assert _read(os.path.join(output_dir, "train_results.json"))["train_samples"] == 40, "sentences, not windows"
    assert test_results["test_PER_number"] == 1 and test_results["test_ORG_number"] == 1
    # The predictions file reads back as CoNLL: the test tokens, one predicted BIO tag each.
    from glm_hf.ner_data import read_ner_file

    predicted = read_ner_file(os.path.join(output_dir, "predict_results.conll"), "--test_file")
    expected = read_ner_file(conll_files[2], "--test_file")
    assert [s.tokens for s in predicted] == [s.tokens for s in expected]


def test_the_fine_tuned_folder_has_a_card_with_types_confusion_and_loss_curve(trained_dir):
    output_dir, metrics = trained_dir
    for name in ("README.md", "entity_confusion.png", "loss_curve.png"):
        assert os.path.isfile(os.path.join(output_dir, name)), name
    with open(os.path.join(output_dir, "README.md"), encoding="utf-8") as f:
        card = f.read()
    assert "pipeline_tag: token-classification" in card and "aggregation_strategy=\"simple\"" in card
    for kind in ("PER", "LOC", "ORG"):
        assert f"| {kind} |" in card
    assert "| **overall** |" in card and "![Training loss](loss_curve.png)" in card and "entity_confusion.png" in card


def test_entity_type_confusion_pairs_spans_and_counts_misses_and_spurious_entities():
    from glm_hf.finetuning_ner import entity_type_confusion

    true = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG", "B-LOC", "O"]]
    references, predictions = entity_type_confusion(predicted, true, ["LOC", "ORG", "PER"])
    # PER found as PER; LOC read as ORG; ORG missed (none); a spurious LOC where there is no entity.
    assert sorted(zip(references, predictions)) == sorted([(2, 2), (0, 1), (1, 3), (3, 0)])


def test_saved_folder_loads_and_tags_whole_entities_in_a_pipeline(trained_dir):
    from transformers import pipeline

    output_dir, _ = trained_dir
    model = GLMForTokenClassification.from_pretrained(output_dir)
    model.classifier.weight.data.zero_()
    # A zero classifier weight leaves the bias alone to choose: B-PER at every character.
    model.classifier.bias.data = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 4.0])
    tagger = pipeline("token-classification", model=model, tokenizer=output_dir, aggregation_strategy="simple")
    text = "江泽民在北京"
    entities = tagger(text)
    assert entities, "the pipeline returns entities"
    for entity in entities:
        assert set(entity) >= {"entity_group", "score", "word", "start", "end"}
        assert entity["entity_group"] in {"PER", "LOC", "ORG"}
        assert text[entity["start"]:entity["end"]].replace(" ", "") == entity["word"].replace(" ", "")
    # "simple" groups a B- and the I- tags that follow it into one entity spanning several characters.
    model.classifier.bias.data = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0])  # every character I-PER
    whole = pipeline("token-classification", model=model, tokenizer=output_dir, aggregation_strategy="simple")(text)
    assert [(e["entity_group"], e["start"], e["end"]) for e in whole] == [("PER", 0, len(text))]


def test_random_init_on_an_embedded_corpus_slice(tmp_path, tiny_tokenizer_dir):
    output_dir = str(tmp_path / "run")
    metrics = finetune_ner([
        "--model_size", "tiny", "--tokenizer_name", tiny_tokenizer_dir, "--dataset_name", "peoples_daily",
        "--max_train_samples", "40", "--max_eval_samples", "20", "--do_train", "--do_eval",
        "--output_dir", output_dir, *FAST_FLAGS,
    ])
    assert metrics["eval_samples"] == 20 and metrics["eval_windows"] > 20, "People's Daily paragraphs need windows"
    precision, recall = metrics["eval_precision"], metrics["eval_recall"]
    harmonic_mean = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    assert metrics["eval_f1"] == pytest.approx(harmonic_mean), "F1 is the harmonic mean of the sentences' scores"
    config = _read(os.path.join(output_dir, "config.json"))
    assert config["id2label"]["0"] == "O" and len(config["id2label"]) == 7


def test_json_lines_with_named_columns(tmp_path, pretrained_dir):
    records = []
    for sentence in SENTENCES * 5:
        pairs = [line.split() for line in _conll_lines(sentence)]
        records.append({"chars": [p[0] for p in pairs], "tags": [p[1] for p in pairs]})
    records.append({"chars": [], "tags": []})  # an empty sentence: skipped with a warning
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    metrics = finetune_ner([
        "--model_name_or_path", pretrained_dir, "--train_file", str(path), "--text_column_name", "chars",
        "--label_column_name", "tags", "--do_train", "--output_dir", str(tmp_path / "run"), *FAST_FLAGS,
    ])
    assert metrics["train_samples"] == len(SENTENCES) * 5, "the empty record is skipped"


def test_windows_cover_every_word_once_and_keep_entities_whole():
    tags = ["O", "B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    bounds = window_bounds([1] * len(tags), tags, capacity=3)
    assert [i for start, end in bounds for i in range(start, end)] == list(range(len(tags)))
    for start, end in bounds:
        assert end - start <= 3
        assert end == len(tags) or not tags[end].startswith("I-"), (start, end)
    # An entity longer than a window is cut (there is no other way), still covering each word once.
    long = ["B-ORG"] + ["I-ORG"] * 6
    assert window_bounds([1] * 7, long, capacity=3) == [(0, 3), (3, 6), (6, 7)]
    # A word longer than a window fills one alone.
    assert window_bounds([1, 5, 1], None, capacity=3) == [(0, 1), (1, 2), (2, 3)]


def _windows_of(tokenizer, split: str, tags: list[str]) -> list[int]:
    """The first word of each window of one 12-character sentence tagged ``tags``, tokenized as ``split``."""
    from types import SimpleNamespace

    from transformers import TrainingArguments

    from glm_hf.finetuning_ner import tokenize_ner_splits
    from glm_hf.ner_data import ner_features

    labels = ["O", "B-PER", "I-PER"]
    raw = DatasetDict({split: Dataset.from_dict(
        {"tokens": [list("江泽民在北京江泽民在北京")], "ner_tags": [[labels.index(t) for t in tags]]},
        features=ner_features(labels))})
    data_args = SimpleNamespace(max_seq_length=7, pad_to_max_length=False, label_all_tokens=False,
                                preprocessing_num_workers=None, overwrite_cache=True)
    label2id = {label: i for i, label in enumerate(labels)}
    return tokenize_ner_splits(raw, tokenizer, label2id, data_args, TrainingArguments("unused"))[split]["first_word"]


def test_only_training_windows_are_cut_by_the_reference_tags(tiny_tokenizer):
    """Five characters per window; a person on characters 3-5 moves a training cut to before it, but a validation or
    test cut is where the length puts it, whatever the tags (the true spans must not steer inference)."""
    person = ["O", "O", "O", "B-PER", "I-PER", "I-PER"] + ["O"] * 6
    assert _windows_of(tiny_tokenizer, "train", person) == [0, 3, 8]
    for split in ("validation", "test"):
        by_length = _windows_of(tiny_tokenizer, split, ["O"] * 12)
        assert _windows_of(tiny_tokenizer, split, person) == by_length == [0, 5, 10]


def test_long_sentence_is_windowed_not_cut(tmp_path, trained_dir):
    output_dir, _ = trained_dir
    sentence = SENTENCES[1] * 6  # 90 characters: several 32-token windows
    test = _write_conll(tmp_path / "long.conll", [sentence])
    metrics = finetune_ner([
        "--model_name_or_path", output_dir, "--test_file", test, "--do_predict",
        "--output_dir", str(tmp_path / "predict"), *FAST_FLAGS,
    ])
    assert metrics["test_windows"] >= 3
    from glm_hf.ner_data import read_ner_file

    predicted = read_ner_file(str(tmp_path / "predict" / "predict_results.conll"), "--test_file")
    assert len(predicted) == 1 and len(predicted[0].tokens) == sum(len(text) for text, _ in sentence)


@pytest.mark.parametrize(
    "content, message",
    [
        ("江 B-PER\n泽 I-PER extra\n", r"--train_file .*bad\.conll: line 2 has 3 columns"),
        ("江 B-PER\n泽 X-PER\n", r"--train_file .*bad\.conll: line 2 has the tag 'X-PER', which is not a BIO name"),
        ("江 S-PER\n", r"line 1 has the tag 'S-PER', which is not a BIO name; .*convert BIOES/BMES"),
    ],
)
def test_malformed_training_file_names_file_and_line(tmp_path, pretrained_dir, content, message):
    path = tmp_path / "bad.conll"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        finetune_ner(["--model_name_or_path", pretrained_dir, "--train_file", str(path), "--do_train",
                      "--output_dir", str(tmp_path / "run"), *FAST_FLAGS])
    assert not os.path.exists(tmp_path / "run"), "bad input leaves nothing behind"


def test_test_label_unseen_in_train_is_refused(tmp_path, pretrained_dir, conll_files):
    test = tmp_path / "test.conll"
    test.write_text("北 B-LOC\n京 I-LOC\n\n奥 B-MISC\n运 I-MISC\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"--test_file .*test\.conll: line 4 has the tag 'B-MISC', whose type is "
                                         r"not in --train_file"):
        finetune_ner(["--model_name_or_path", pretrained_dir, "--train_file", conll_files[0], "--test_file",
                      str(test), "--do_train", "--do_predict", "--output_dir", str(tmp_path / "run"), *FAST_FLAGS])


@pytest.mark.parametrize("label_all_tokens", [False, True])
def test_sub_tokens_and_dropped_words_are_aligned(tiny_tokenizer, label_all_tokens):
    """A word of several tokens tags its first (and with --label_all_tokens every, B- as I-) sub-token; a word the
    tokenizer drops (a zero-width space) is read as [UNK], so it keeps its tag."""
    from types import SimpleNamespace

    from transformers import TrainingArguments

    from glm_hf.finetuning_ner import tokenize_ner_splits
    from glm_hf.ner_data import ner_features

    labels = ["O", "B-ORG", "I-ORG"]
    raw = DatasetDict({"test": Dataset.from_dict(
        {"tokens": [["北京大学", "\u200b", "好"]], "ner_tags": [[1, 2, 0]]}, features=ner_features(labels))})
    data_args = SimpleNamespace(max_seq_length=32, pad_to_max_length=False, label_all_tokens=label_all_tokens,
                                preprocessing_num_workers=None, overwrite_cache=True)
    label2id = {label: i for i, label in enumerate(labels)}
    example = tokenize_ner_splits(raw, tiny_tokenizer, label2id, data_args, TrainingArguments("unused"))["test"][0]
    assert example["word_ids"] == [-1, 0, 0, 0, 0, 1, 2, -1]
    assert example["input_ids"][5] == tiny_tokenizer.unk_token_id
    inside = [2, 2, 2] if label_all_tokens else [-100, -100, -100]
    assert example["labels"] == [-100, 1, *inside, 2, 0, -100]


def test_saved_dataset_folder_with_its_own_label_order(tmp_path, pretrained_dir):
    """A save_to_disk folder whose ClassLabel lists the tags in another order: read by name, not by id."""
    names = ["B-PER", "O", "I-PER", "B-LOC", "I-LOC"]
    ids = {name: i for i, name in enumerate(names)}
    tokens, tags = ["江", "泽", "民", "在", "北", "京"], ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC"]
    features = Features({"words": Sequence(Value("string")), "tags": Sequence(ClassLabel(names=names))})
    split = Dataset.from_dict({"words": [tokens] * 8, "tags": [[ids[t] for t in tags]] * 8}, features=features)
    DatasetDict({"train": split, "validation": split}).save_to_disk(str(tmp_path / "data"))
    metrics = finetune_ner([
        "--model_name_or_path", pretrained_dir, "--dataset_name", str(tmp_path / "data"), "--text_column_name",
        "words", "--label_column_name", "tags", "--do_train", "--do_eval", "--return_entity_level_metrics",
        "--output_dir", str(tmp_path / "run"), *FAST_FLAGS,
    ])
    assert metrics["eval_PER_number"] == 8 and metrics["eval_LOC_number"] == 8
    config = _read(str(tmp_path / "run" / "config.json"))
    assert config["label2id"] == {"O": 0, "B-LOC": 1, "I-LOC": 2, "B-PER": 3, "I-PER": 4}


def test_glm_hf_finetune_ner_help_lists_the_run_ner_flags(capsys):
    from glm_hf.cli import main as glm_hf

    with pytest.raises(SystemExit) as exit_info:
        glm_hf(["finetune-ner", "--help"])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    for flag in ("--model_name_or_path", "--model_size", "--tokenizer_name", "--dataset_name", "--train_file",
                 "--validation_file", "--test_file", "--text_column_name", "--label_column_name", "--label_all_tokens",
                 "--max_seq_length", "--return_entity_level_metrics", "--learning_rate", "--eval_strategy"):
        assert flag in shown, flag


def test_bad_flags_name_what_is_allowed(tmp_path, pretrained_dir, conll_files):
    base = ["--model_name_or_path", pretrained_dir, "--do_train", "--output_dir", str(tmp_path / "run")]
    with pytest.raises(ValueError, match=r"--train_file must end with one of \['.conll'"):
        finetune_ner([*base, "--train_file", str(tmp_path / "train.csv")])
    with pytest.raises(ValueError, match="give either --dataset_name or --train_file"):
        finetune_ner([*base, "--dataset_name", "msra", "--train_file", conll_files[0]])
    with pytest.raises(ValueError, match=r"--do_eval needs a validation split: give --validation_file"):
        finetune_ner([*base, "--train_file", conll_files[0], "--do_eval", *FAST_FLAGS])


def test_fine_tuned_model_scores_a_file_with_fewer_types_and_refuses_unknown_ones(tmp_path, trained_dir):
    output_dir, _ = trained_dir
    people = _write_conll(tmp_path / "people.conll", [[("江泽民", "PER"), ("来了", None)]])
    from glm_hf.cli import main as glm_hf

    # Through the glm-hf entry point: a finished run exits 0 (not 1 with its metrics printed).
    assert glm_hf(["finetune-ner", "--model_name_or_path", output_dir, "--test_file", people, "--do_predict",
                   "--output_dir", str(tmp_path / "people"), *FAST_FLAGS]) == 0
    assert _read(str(tmp_path / "people" / "test_results.json"))["test_samples"] == 1
    other = tmp_path / "other.conll"
    other.write_text("奥 B-MISC\n运 I-MISC\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tags \['B-LOC'.*but the data has \['B-MISC', 'I-MISC'\] too"):
        finetune_ner(["--model_name_or_path", output_dir, "--test_file", str(other), "--do_predict",
                      "--output_dir", str(tmp_path / "other"), *FAST_FLAGS])


def test_final_scores_are_the_sentences_whatever_the_windows(tmp_path, trained_dir):
    """A model that tags every character I-PER, whatever its context: in windows, each window would start a person
    of its own; put back together, each sentence is one person, however many windows it took."""
    from transformers import AutoTokenizer

    model = GLMForTokenClassification.from_pretrained(trained_dir[0])
    model.classifier.weight.data.zero_()
    model.classifier.bias.data = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0])
    model.save_pretrained(tmp_path / "model")
    AutoTokenizer.from_pretrained(trained_dir[0]).save_pretrained(tmp_path / "model")
    test = _write_conll(tmp_path / "one.conll", [[("江泽民" * 10, "PER")], [("邓小平", "PER"), ("来了", None)]])
    scores = {}
    for length in ("8", "64"):
        flags = [*FAST_FLAGS, "--max_seq_length", length, "--return_entity_level_metrics"]
        scores[length] = finetune_ner(["--model_name_or_path", str(tmp_path / "model"), "--test_file", test,
                                       "--do_predict", "--output_dir", str(tmp_path / length), *flags])
    assert scores["8"]["test_windows"] > scores["64"]["test_windows"] == 2
    assert scores["8"]["test_precision"] == scores["64"]["test_precision"] == 0.5  # 邓小平来了 is one person
    assert scores["8"]["test_recall"] == scores["64"]["test_recall"] == 0.5
    assert scores["8"]["test_PER_number"] == 2


def test_saved_dataset_folder_with_a_type_train_lacks_is_refused(tmp_path, pretrained_dir):
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=names))})
    train = Dataset.from_dict({"tokens": [["江", "泽"]], "ner_tags": [[1, 2]]}, features=features)
    test = Dataset.from_dict({"tokens": [["江", "泽"], ["新", "华"]], "ner_tags": [[1, 2], [0, 4]]}, features=features)
    DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "data"))
    with pytest.raises(ValueError, match=r"sentence 1 of the test split has \['B-ORG'\], whose type is not in its "
                                         r"train split \(types \['PER'\]\)"):
        finetune_ner(["--model_name_or_path", pretrained_dir, "--dataset_name", str(tmp_path / "data"),
                      "--do_train", "--do_predict", "--output_dir", str(tmp_path / "run"), *FAST_FLAGS])


FRESH_PROCESS_PIPELINE = """
import importlib.abc, json, sys


class BlockGlmHf(importlib.abc.MetaPathFinder):  # glm_hf may be installed: block it, as test_remote_code does
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "glm_hf":
            raise ImportError(f"{name} is blocked in this process")


sys.meta_path.insert(0, BlockGlmHf())
from transformers import pipeline

tagger = pipeline("token-classification", model=sys.argv[1], trust_remote_code=True, aggregation_strategy="simple")
entities = [{key: entity[key] for key in ("entity_group", "start", "end")} for entity in tagger(sys.argv[2])]
print(json.dumps({"entities": entities, "model_module": type(tagger.model).__module__,
                  "glm_hf_loaded": any(name.split(".")[0] == "glm_hf" for name in sys.modules)}))
"""


@pytest.mark.slow
def test_pipeline_in_a_fresh_process_without_glm_hf(tmp_path, trained_dir):
    """The fine-tuned folder carries its code: a process that cannot import glm_hf tags whole entities with it."""
    import subprocess
    import sys

    model = GLMForTokenClassification.from_pretrained(trained_dir[0])
    model.classifier.weight.data.zero_()
    model.classifier.bias.data = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0])  # every character I-PER
    model.save_pretrained(tmp_path / "model")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(trained_dir[0]).save_pretrained(tmp_path / "model")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "hf_modules"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_PIPELINE, str(tmp_path / "model"), "江泽民在北京"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["glm_hf_loaded"] is False and not report["model_module"].startswith("glm_hf")
    assert report["entities"] == [{"entity_group": "PER", "start": 0, "end": 6}]


def _saved_ner_model(folder, tokenizer, labels: list[str]) -> str:
    """A token classifier tagging ``labels`` whose classifier weights are all 1 (a fresh one is drawn around 0)."""
    from glm_hf import GLMConfig

    label2id = {label: i for i, label in enumerate(labels)}
    config = GLMConfig.from_size("tiny", vocab_size=len(tokenizer), max_position_embeddings=64,
                                 id2label=dict(enumerate(labels)), label2id=label2id)
    model = GLMForTokenClassification(config)
    with torch.no_grad():
        model.classifier.weight.fill_(1.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_a_fine_tuned_head_is_kept_only_for_its_own_bio_tags(tmp_path, tiny_tokenizer, caplog):
    """Same tags (in another order): the head is loaded as it is. Other tags of the same number: the head is drawn
    anew (its rows would mean other tags). BIOES tags covering the data's: refused for scoring alone (read as BIO, its
    predictions would be scored wrong), a new head for training."""
    from glm_hf.finetuning import ModelArguments
    from glm_hf.finetuning_ner import build_ner_config_and_model

    def build(folder, data_labels, training=True):
        model_args = ModelArguments(model_name_or_path=folder, ignore_mismatched_sizes=True)
        return build_ner_config_and_model(model_args, data_labels, tiny_tokenizer, 32, training=training)

    people = _saved_ner_model(tmp_path / "people", tiny_tokenizer, ["O", "B-PER", "I-PER"])
    config, model = build(people, ["O", "I-PER", "B-PER"], training=False)
    assert config.label2id == {"O": 0, "B-PER": 1, "I-PER": 2}
    assert torch.equal(model.classifier.weight, torch.ones_like(model.classifier.weight))

    with caplog.at_level("WARNING"):
        config, model = build(people, ["O", "B-LOC", "I-LOC"])
    assert config.label2id == {"O": 0, "B-LOC": 1, "I-LOC": 2} and "re-initialised" in caplog.text
    assert abs(float(model.classifier.weight.detach().mean())) < 0.01, "a new head, not the people's rows"

    bioes = _saved_ner_model(tmp_path / "bioes", tiny_tokenizer, ["O", "B-PER", "I-PER", "E-PER", "S-PER"])
    with pytest.raises(ValueError, match=r"tags \['E-PER', 'S-PER'\], which are not BIO names"):
        build(bioes, ["O", "B-PER", "I-PER"], training=False)
    config, model = build(bioes, ["O", "B-PER", "I-PER"])
    assert config.label2id == {"O": 0, "B-PER": 1, "I-PER": 2} and model.classifier.out_features == 3
    assert abs(float(model.classifier.weight.detach().mean())) < 0.01
