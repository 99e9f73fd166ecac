"""transformers' own common model tests (``ModelTesterMixin``) on every GLM class, as transformers runs them on BERT.

The tests come from the source distribution of the installed transformers version on PyPI (its wheel has no tests),
downloaded once by ``pip download`` into ``~/.cache/glm_hf/`` (``$XDG_CACHE_HOME`` if set) and imported from there as
the package ``transformers_tests``; nothing of them is copied into this repository. Without PyPI the module is skipped,
saying why.

The sdist ships only the top level of transformers' ``tests/`` folder: ``test_modeling_common.py`` imports two
modules of its sub-folders that are not in it (nor anywhere else on PyPI), replaced here by stand-ins:

* ``generation/test_utils.py`` (``GenerationTesterMixin``): the generate tests. GLM is an encoder that cannot
  generate; the common tests only use the class to check that a model which cannot generate does not inherit it.
* ``exporters/test_export.py`` (``ExportTesterMixin``, the base class of ``ModelTesterMixin``): the torch.export /
  ONNX / ExecuTorch export tests, which are therefore not run here.

``PipelineTesterMixin`` is not used: its tests live in ``tests/pipelines/`` and need the Hub's tiny-model summary,
neither of which the sdist has; ``tests/test_pipelines.py`` runs GLM through the pipelines instead. Of
``ConfigTester`` (``test_configuration_common.py``), every check runs but ``check_config_arguments_init``, whose
reference values live in the missing ``utils/test_configuration_utils.py``.

The skips that remain are the mixin's own: tests that need a GPU, flash-attention, DeepSpeed, the kernels library or
``RUN_SLOW``, and tests of features GLM does not have (a KV cache, RoPE, sliding windows, MoE experts,
sub-configs, tensor-parallel plans, ``_keep_in_fp32_modules``, legacy checkpoint key conversions).
"""

import os
import re
import subprocess
import sys
import tarfile
import tempfile
import types
import unittest
import warnings
from pathlib import Path
from unittest import mock

import pytest
import torch
import transformers
from transformers.models.auto import modeling_auto

from glm_hf import (
    GLMConfig,
    GLMForMaskedLM,
    GLMForPreTraining,
    GLMForSequenceClassification,
    GLMForTokenClassification,
    GLMModel,
)

PACKAGE = "transformers_tests"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "glm_hf"
CACHE = CACHE / f"transformers-{transformers.__version__}"


def _download_transformers_tests() -> Path:
    """The folder holding ``transformers_tests/`` (the sdist's ``tests/*.py``), downloaded on first use."""
    if (CACHE / PACKAGE / "test_modeling_common.py").exists():
        return CACHE
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet"]
        command += ["--disable-pip-version-check", "--timeout", "30", "-d", tmp]
        version = f"transformers=={transformers.__version__}"
        subprocess.run([*command, version], check=True, capture_output=True, text=True, timeout=600)
        (sdist,) = Path(tmp).glob("transformers-*.tar.gz")
        staging = Path(tmp) / PACKAGE
        staging.mkdir()
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                if member.isfile() and re.fullmatch(r"[^/]+/tests/[^/]+\.py", member.name):
                    (staging / Path(member.name).name).write_bytes(archive.extractfile(member).read())
        (staging / "__init__.py").touch()
        if not (staging / "test_modeling_common.py").exists():
            raise FileNotFoundError(f"{sdist.name} has no tests/test_modeling_common.py")
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging, CACHE / PACKAGE)
        except OSError:  # another process put it there first
            pass
    return CACHE


def _add_stand_ins() -> None:
    """The modules ``test_modeling_common.py`` imports from sub-folders the sdist lacks (see the module doc)."""
    stand_ins = {
        "exporters.test_export": {"ExportTesterMixin": type("ExportTesterMixin", (), {})},
        "generation.test_utils": {"GenerationTesterMixin": type("GenerationTesterMixin", (), {})},
        # Read by ConfigTester.check_config_arguments_init only, which is not run (see GLMModelTest.test_config).
        "utils.test_configuration_utils": {"config_common_kwargs": {}},
    }
    for name, attributes in stand_ins.items():
        package, _ = name.split(".")
        sys.modules.setdefault(f"{PACKAGE}.{package}", types.ModuleType(f"{PACKAGE}.{package}"))
        module = types.ModuleType(f"{PACKAGE}.{name}")
        module.__dict__.update(attributes)
        sys.modules[f"{PACKAGE}.{name}"] = module


try:
    sys.path.insert(0, str(_download_transformers_tests()))
except (subprocess.SubprocessError, OSError, ValueError) as err:
    detail = (getattr(err, "stderr", None) or str(err)).strip()
    pytest.skip(
        f"transformers {transformers.__version__}'s test suite (its PyPI sdist) could not be downloaded: {detail}",
        allow_module_level=True,
    )
_add_stand_ins()
with warnings.catch_warnings():  # marks that transformers' own conftest registers (flash_attn_test, ...)
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    from transformers_tests.test_configuration_common import ConfigTester
    from transformers_tests.test_modeling_common import ModelTesterMixin, ids_tensor, random_attention_mask

# The common tests tell a base model from a head, and which labels a head takes, by the class names in transformers'
# auto mappings, which list in-library models only; GLM's classes are listed there (as BERT's are) while they run.
AUTO_MAPPING_NAMES = {
    "MODEL_MAPPING_NAMES": GLMModel,
    "MODEL_FOR_PRETRAINING_MAPPING_NAMES": GLMForPreTraining,
    "MODEL_FOR_MASKED_LM_MAPPING_NAMES": GLMForMaskedLM,
    "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES": GLMForSequenceClassification,
    "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES": GLMForTokenClassification,
}


class GLMModelTester:
    """Tiny configs and random inputs, as transformers' ``BertModelTester``.

    ``GLMConfig`` rejects a hidden size that the number of heads does not divide (BERT's config accepts it and its
    attention raises later), so ``ConfigTester`` gets ``hidden_size=36`` where BERT's test passes 37 (with BERT's
    default of 12 heads); the model sizes are BERT's tester's (hidden 32, 4 heads, FFN 37).
    """

    def __init__(
        self,
        parent,
        batch_size=13,
        seq_length=7,
        is_training=True,
        use_input_mask=True,
        use_token_type_ids=True,
        use_labels=True,
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=16,
        type_sequence_label_size=2,
        initializer_range=0.02,
        num_labels=3,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.use_input_mask = use_input_mask
        self.use_token_type_ids = use_token_type_ids
        self.use_labels = use_labels
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.type_sequence_label_size = type_sequence_label_size
        self.initializer_range = initializer_range
        self.num_labels = num_labels

    def prepare_config_and_inputs(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        input_mask = random_attention_mask([self.batch_size, self.seq_length]) if self.use_input_mask else None
        token_type_ids = None
        if self.use_token_type_ids:
            token_type_ids = ids_tensor([self.batch_size, self.seq_length], self.type_vocab_size)
        sequence_labels = token_labels = None
        if self.use_labels:
            sequence_labels = ids_tensor([self.batch_size], self.type_sequence_label_size)
            token_labels = ids_tensor([self.batch_size, self.seq_length], self.num_labels)
        return self.get_config(), input_ids, token_type_ids, input_mask, sequence_labels, token_labels

    def get_config(self):
        return GLMConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            initializer_range=self.initializer_range,
        )

    def create_and_check_model(self, config, input_ids, token_type_ids, input_mask, *labels):
        model = GLMModel(config).eval()
        result = model(input_ids, attention_mask=input_mask, token_type_ids=token_type_ids)
        result = model(input_ids, token_type_ids=token_type_ids)
        result = model(input_ids)
        self.parent.assertEqual(result.last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size))
        self.parent.assertEqual(result.pooler_output.shape, (self.batch_size, self.hidden_size))

    def create_and_check_for_pretraining(
        self, config, input_ids, token_type_ids, input_mask, sequence_labels, token_labels
    ):
        model = GLMForPreTraining(config).eval()
        result = model(
            input_ids,
            attention_mask=input_mask,
            token_type_ids=token_type_ids,
            labels=token_labels,
            next_sentence_label=sequence_labels,
        )
        self.parent.assertEqual(result.prediction_logits.shape, (self.batch_size, self.seq_length, self.vocab_size))
        self.parent.assertEqual(result.seq_relationship_logits.shape, (self.batch_size, 2))

    def create_and_check_for_masked_lm(
        self, config, input_ids, token_type_ids, input_mask, sequence_labels, token_labels
    ):
        model = GLMForMaskedLM(config).eval()
        result = model(input_ids, attention_mask=input_mask, token_type_ids=token_type_ids, labels=token_labels)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.seq_length, self.vocab_size))

    def create_and_check_for_sequence_classification(
        self, config, input_ids, token_type_ids, input_mask, sequence_labels, token_labels
    ):
        config.num_labels = self.num_labels
        model = GLMForSequenceClassification(config).eval()
        result = model(input_ids, attention_mask=input_mask, token_type_ids=token_type_ids, labels=sequence_labels)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.num_labels))

    def create_and_check_for_token_classification(
        self, config, input_ids, token_type_ids, input_mask, sequence_labels, token_labels
    ):
        config.num_labels = self.num_labels
        model = GLMForTokenClassification(config).eval()
        result = model(input_ids, attention_mask=input_mask, token_type_ids=token_type_ids, labels=token_labels)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.seq_length, self.num_labels))

    def prepare_config_and_inputs_for_common(self):
        config, input_ids, token_type_ids, input_mask, _, _ = self.prepare_config_and_inputs()
        return config, {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": input_mask}


class GLMModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (
        GLMModel,
        GLMForPreTraining,
        GLMForMaskedLM,
        GLMForSequenceClassification,
        GLMForTokenClassification,
    )
    # The mixin runs this check for models added from 2023 on (by their file's copyright year); GLM is new.
    test_can_init_all_missing_weights_before_2023 = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for mapping, model_class in AUTO_MAPPING_NAMES.items():
            patcher = mock.patch.dict(getattr(modeling_auto, mapping), {GLMConfig.model_type: model_class.__name__})
            patcher.start()
            cls.addClassCleanup(patcher.stop)

    def setUp(self):
        self.model_tester = GLMModelTester(self)
        self.config_tester = ConfigTester(self, config_class=GLMConfig, hidden_size=36)

    # As BERT's test: the pretraining head takes MLM and NSP labels.
    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels and model_class is GLMForPreTraining:
            batch_size, seq_length = self.model_tester.batch_size, self.model_tester.seq_length
            inputs_dict["labels"] = torch.zeros((batch_size, seq_length), dtype=torch.long)
            inputs_dict["next_sentence_label"] = torch.zeros(batch_size, dtype=torch.long)
        return inputs_dict

    def test_config(self):
        # run_common_tests() less check_config_arguments_init (its reference values are not in the sdist).
        for check in (
            "create_and_test_config_common_properties",
            "create_and_test_config_to_json_string",
            "create_and_test_config_to_json_file",
            "create_and_test_config_from_and_save_pretrained",
            "create_and_test_config_from_and_save_pretrained_subfolder",
            "create_and_test_config_from_and_save_pretrained_composite",
            "create_and_test_config_with_num_labels",
            "create_and_test_config_from_pretrained_custom_kwargs",
            "check_config_can_be_init_without_params",
        ):
            with self.subTest(check):
                getattr(self.config_tester, check)()

    def test_model(self):
        self.model_tester.create_and_check_model(*self.model_tester.prepare_config_and_inputs())

    def test_for_pretraining(self):
        self.model_tester.create_and_check_for_pretraining(*self.model_tester.prepare_config_and_inputs())

    def test_for_masked_lm(self):
        self.model_tester.create_and_check_for_masked_lm(*self.model_tester.prepare_config_and_inputs())

    def test_for_sequence_classification(self):
        self.model_tester.create_and_check_for_sequence_classification(*self.model_tester.prepare_config_and_inputs())

    def test_for_token_classification(self):
        self.model_tester.create_and_check_for_token_classification(*self.model_tester.prepare_config_and_inputs())

    def test_common_tests_come_from_the_installed_version(self):
        import transformers_tests.test_modeling_common as common

        self.assertEqual(Path(common.__file__).parent, CACHE / PACKAGE)
        self.assertIn(f"transformers-{transformers.__version__}", str(CACHE))
