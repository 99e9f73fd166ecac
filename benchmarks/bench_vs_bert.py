"""GLM vs transformers BERT (and RoFormer, ELECTRA) on the same real batches: speed, useful FLOP/s and peak memory,
in one run, for every pretraining objective.

    python benchmarks/bench_vs_bert.py                       # full run, ~10-11 minutes on 2 CPU cores
    python benchmarks/bench_vs_bert.py --json bench.json     # also write the results as JSON
    python benchmarks/bench_vs_bert.py --quick               # smoke run (tiny model, a few batches, < 40 s)

What is compared
    Peer: transformers ``BertForPreTraining`` / ``BertForSequenceClassification`` (sdpa attention, its default).
    Ours: ``GLMForPreTraining`` / ``GLMForSequenceClassification`` with the default config (``unpad_inputs``), plus
    ``sparse_prediction`` for pretraining (as the pretraining recipe runs it), loaded with the *peer's weights* (BERT
    names -> GLM names), so both compute the same function; the run checks it (fp32, dropout off) before timing and
    prints the difference.

    Pretraining objectives (``GLMForPreTraining``'s ``pretraining_objective``; at the study's budget tokens per minute
    are accuracy, so each keeps the fast path and gets a row). ``pretraining`` is MLM + NSP, at every shape and dtype;
    the others run at the first shape (``mini``), fp32 only (``--objectives``):
    - ``mlm_sop`` (MLM + SOP on SOP pairs): peer ``BertForPreTraining`` (the same two heads; SOP's label is its
      ``next_sentence_label``).
    - ``mlm`` (MLM alone on packed full windows): peer ``BertForMaskedLM``.
    - ``mlm_rotary`` (the same, ``position_embedding_type="rotary"``): peer ``RoFormerForMaskedLM`` (eager attention,
      the only one transformers has for it). RoFormer rotates interleaved pairs of a head's features (2i, 2i+1), GLM
      rotates halves (i, i + d/2) by the same angles (GPT-NeoX layout): GLM's query and key rows are RoFormer's with
      each head's even features first, then its odd ones -- the same permutation on both sides of every q.k, so the
      same function. The check also runs with query/key weights x16 on both sides: at initialisation attention is
      too flat for a wrong layout to move the loss beyond the tolerance.
    - ``rtd`` (ELECTRA's replaced-token detection on packed windows, a 1-layer generator as the study runs it): peer
      ``ElectraForMaskedLM`` (generator) + ``ElectraForPreTraining`` (discriminator) with one shared embedding
      module and the generator's decoder tied to it (ELECTRA's set-up), replacements sampled from the generator's
      softmax, loss = generator MLM loss + 50 x discriminator loss -- what GLM computes. The check draws both sides'
      samples from the same seed.

    Same architecture (the named shapes of ``GLMConfig.from_size``: ``mini`` = hidden 256 / 4 layers / 4 heads /
    FFN 1024 with the tokenizer's vocabulary, ``base`` = BERT-base: 768 / 12 / 12 / 3072 with bert-base-chinese's
    21,128-token vocabulary), dropout 0.1 on both sides, the same batches and the same optimizer.

Data: "the embedded corpus through our pipeline"
    A WordPiece tokenizer trained on the embedded corpus (``glm_hf.tokenization``, 8,000 tokens; or --tokenizer_name),
    the embedded documents (``glm_hf.corpora``: People's Daily 1998-01 + the sentiment *train* reviews), NSP sentence
    pairs (``glm_hf.pretraining_data``, max_seq_length 128), masked and dynamically padded by
    ``glm_hf.collator.DataCollatorForPreTraining`` (padding to the longest pair of the batch, exactly the shape
    transformers' ``DataCollatorForLanguageModeling`` gives -- checked on the first batch). SOP pairs the same way;
    packed windows (``create_packed_examples``: documents joined, cut into [CLS] 126 tokens [SEP]) for mlm and rtd,
    masked as the pretraining recipe masks for the objective (rtd: every chosen token [MASK]). Classification:
    the sentiment *test* reviews (``glm_hf.sentiment``), truncated to 128 tokens, padded by transformers'
    ``DataCollatorWithPadding``. Every batch is collated once; the very same tensors go to both models.

Steps timed
    Pretraining step = what ``Trainer`` does per step: forward (under ``torch.autocast("cpu", bfloat16)`` for bf16,
    as ``Trainer(bf16=True)`` does), backward, gradient clipping to norm 1.0, ``optimizer.step()``, ``zero_grad``,
    with the optimizer ``Trainer`` builds by default (``Trainer.get_optimizer_cls_and_kwargs``: torch AdamW, fused).
    Inference = ``model.eval()`` forward under ``torch.inference_mode()`` (and autocast for bf16).
    The two sides alternate batch by batch (peer, ours, peer, ours, ...; the order flips every round) after one
    warm-up step each; a row's tokens/s is the median over rounds, its speed-up the median of the per-round ratios.
    Rows run fp32 first, then bf16; ``--time_budget`` is shared among them by weight, a row gets the rounds and
    batches that fit its share, and a row whose minimum would not fit is skipped with the reason in the table. On a
    CPU without bf16 hardware (bf16 matmuls slower than fp32) the bf16 rows run for the first shape only, one batch
    per side, no warm-up (each new batch shape pays the kernels' set-up again anyway), no memory run.
    OMP_WAIT_POLICY defaults to PASSIVE (set before torch is imported; both sides share the process): with the
    default spinning, a shared machine turns every kernel barrier into a wait for a descheduled thread.
    The machine is shared: read the load average printed with the results (a warning is printed above 1 per CPU).

Definitions
    Real tokens: non-padding tokens (attention_mask == 1). tokens/s = real tokens of a round / its wall time.
    Useful FLOPs: the matmul FLOPs the function needs, on real tokens only: every layer's Q/K/V, attention output
    and FFN on real tokens, attention scores and weighted sum of each sequence over its own tokens; in the last layer
    only the tokens some output reads ([CLS] and, for MLM, the masked tokens) need queries and feed-forward; the MLM
    prediction head on masked tokens only; pooler, NSP/SOP and classifier on [CLS] (MLM alone and RTD have no pooler:
    [CLS] is not read); RTD: the generator's layers with its masked tokens read and its MLM head on them, then every
    discriminator layer and its head on every real token (each is read). Backward = 2x forward. Embedding
    lookups, LayerNorm, activations, softmax, dropout, loss and optimizer are not counted. The same count is used for
    both sides (the peer also computes padding and the full-vocabulary decoder: useful to nobody).
    Peer FLOPs: the matmul FLOPs the peer computes (every grid position, padding included, in every layer; the MLM
    head with its full-vocabulary decoder on every position; RTD: the generator's too, and the discriminator's head on
    every position). The table's "FLOPs x" = peer FLOPs / useful FLOPs: the
    speed-up GLM would get at the peer's FLOP/s; beyond it, GLM has to run faster per FLOP than the peer.
    MFU = useful FLOP/s / matmul peak. Matmul peak: the best of ``torch.mm`` and ``F.linear`` on an n x n by n x n
    product (n = 2048, smaller where one product would take over a second) in the same dtype, timed right before and
    after each row (their mean is that row's peak: the load of a shared machine drifts).
    Peak memory: each side runs in its own fresh process (``memory-worker``) the largest batch of each row (training:
    after one step on the smallest batch, which allocates the optimizer state), with
    glibc's mmap threshold at 64 KiB so that freed tensors leave the resident set at once; reported is the peak
    resident set size (VmHWM, reset per row via /proc/self/clear_refs) above the process's resident size before the
    model was built: weights + gradients + optimizer state + activations + temporaries. torch's CPU allocator keeps
    no statistics and tracemalloc does not see its allocations, hence RSS.
    Recommended setup (ours): bf16 autocast when the bf16 matmul peak measured here beats fp32 (a CPU with AMX or
    AVX512-BF16), else fp32. The peer's standard setup: fp32 (Trainer's default on CPU). The headline ratios compare
    those two; the same-dtype rows compare like with like.
"""

import contextlib
import copy
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

# Idle OpenMP threads sleep instead of spinning. On a shared machine a spinning thread keeps its core while the thread
# it waits for is descheduled, and every kernel's barrier can then cost a scheduler time slice (measured here: fused
# AdamW on 2 threads 1 s instead of 10 ms at load 7). Both sides run in this process, so both get the same setting;
# set OMP_WAIT_POLICY yourself to override. It must be set before torch is imported; only when run as a script
# (importing this module, e.g. from a test, leaves the environment alone).
if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SHAPES = ("tiny", "mini", "base")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
TASKS = ("pretraining", "inference")  # every shape and dtype; "pretraining" is MLM + NSP
# Every pretraining row: GLMForPreTraining's objective (and config extras), the examples it trains on and its peer.
# The rows other than "pretraining" (OBJECTIVE_TASKS) run at the first shape, in fp32 only.
PRETRAINING_TASKS = {
    "pretraining": dict(objective="mlm_nsp", examples="nsp", config={},
                        peer="BertForPreTraining (MLM + NSP heads)"),
    "mlm_sop": dict(objective="mlm_sop", examples="sop", config={},
                    peer="BertForPreTraining (the same two heads; SOP labels in next_sentence_label)"),
    "mlm": dict(objective="mlm", examples="packed", config={}, peer="BertForMaskedLM"),
    "mlm_rotary": dict(objective="mlm", examples="packed", config={"position_embedding_type": "rotary"},
                       peer="RoFormerForMaskedLM (eager attention: transformers has no sdpa for it), query/key rows "
                            "permuted per head (interleaved pairs -> halves)"),
    "rtd": dict(objective="rtd", examples="packed", config={"generator_num_hidden_layers": 1, "rtd_loss_weight": 50.0},
                peer="ElectraForMaskedLM (1-layer generator) + ElectraForPreTraining, embeddings shared, "
                     "generator loss + 50 x discriminator loss"),
}
OBJECTIVE_TASKS = tuple(task for task in PRETRAINING_TASKS if task != "pretraining")
TASK_LABELS = {"pretraining": "mlm_nsp", "mlm_sop": "mlm_sop", "mlm": "mlm packed", "mlm_rotary": "mlm rotary",
               "rtd": "rtd packed", "inference": "inference"}
EXAMPLES = {"nsp": "NSP sentence pairs", "sop": "SOP sentence pairs",
            "packed": "packed full windows ([CLS] text [SEP], documents joined)"}
OBJECTIVE_WEIGHT = 1.5  # share of the time budget of each objective row (SECTION_WEIGHTS for the others)
BERT_BASE_CHINESE_VOCAB = 21128
MEMORY_WORKER = "memory-worker"
# Share of the time budget per row: (first shape?, task, first dtype?) -> weight.
SECTION_WEIGHTS = {
    (True, "pretraining", True): 4, (True, "inference", True): 2,
    (False, "pretraining", True): 3, (False, "inference", True): 1.5,
    (True, "pretraining", False): 3, (True, "inference", False): 1,
    (False, "pretraining", False): 1, (False, "inference", False): 1,
}


@dataclass
class BenchmarkArguments:
    json: str | None = field(default=None, metadata={"help": "Write the results to this JSON file."})
    quick: bool = field(default=False, metadata={"help": "Smoke run: tiny model, few batches, no bf16 budget check."})
    shapes: str = field(default="mini,base", metadata={"help": f"Comma-separated model shapes from {SHAPES}."})
    objectives: str = field(
        default=",".join(OBJECTIVE_TASKS),
        metadata={"help": f"Comma-separated pretraining rows besides MLM + NSP, from {OBJECTIVE_TASKS} (first shape, "
                  "fp32 only; empty: none)."},
    )
    dtypes: str = field(default="fp32,bf16", metadata={"help": "Comma-separated dtypes from fp32, bf16."})
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A tokenizer folder; default: train one on the embedded corpus."}
    )
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary of the tokenizer trained when none is given."})
    max_seq_length: int = field(default=128, metadata={"help": "NSP pair length and classification truncation."})
    pretrain_batch_size: int = field(default=32, metadata={"help": "Pretraining batch size (mini/tiny)."})
    inference_batch_size: int = field(default=64, metadata={"help": "Classification batch size (mini/tiny)."})
    base_pretrain_batch_size: int = field(default=8, metadata={"help": "Pretraining batch size at the base shape."})
    base_inference_batch_size: int = field(default=16, metadata={"help": "Classification batch size at base shape."})
    rounds: int = field(default=3, metadata={"help": "Timed rounds per row (fewer if the time budget says so)."})
    batches_per_round: int = field(default=3, metadata={"help": "Batches per round (at most 2 at the base shape)."})
    time_budget: float = field(
        default=480.0,
        metadata={"help": "Seconds for all timed rows; a row that would not fit is shortened, or skipped if even "
                  "one warm-up step would not fit (the table says so)."},
    )
    threads: int = field(default=2, metadata={"help": "torch.set_num_threads."})
    measure_memory: bool = field(default=True, metadata={"help": "Measure peak memory in separate processes."})
    seed: int = field(default=0, metadata={"help": "Seed of the data order, masking and weights."})

    def __post_init__(self):
        self.shape_list = [s.strip() for s in self.shapes.split(",") if s.strip()]
        self.dtype_list = [d.strip() for d in self.dtypes.split(",") if d.strip()]
        self.objective_list = [o.strip() for o in self.objectives.split(",") if o.strip()]
        for objective in self.objective_list:
            if objective not in OBJECTIVE_TASKS:
                raise ValueError(f"objectives: each must be one of {OBJECTIVE_TASKS}, got {objective!r}")
        for shape in self.shape_list:
            if shape not in SHAPES:
                raise ValueError(f"shapes: each must be one of {SHAPES}, got {shape!r}")
        for dtype in self.dtype_list:
            if dtype not in DTYPES:
                raise ValueError(f"dtypes: each must be one of {tuple(DTYPES)}, got {dtype!r}")
        if not self.shape_list or not self.dtype_list:
            raise ValueError("shapes and dtypes must each name at least one entry")
        for name in ("max_seq_length", "pretrain_batch_size", "inference_batch_size", "base_pretrain_batch_size",
                     "base_inference_batch_size", "rounds", "batches_per_round", "threads", "vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.max_seq_length < 5:
            raise ValueError(f"max_seq_length must be >= 5 ([CLS] A [SEP] B [SEP]), got {self.max_seq_length}")
        if self.time_budget <= 0:
            raise ValueError(f"time_budget must be > 0 seconds, got {self.time_budget}")
        if self.quick:
            # bf16 is left out: without AMX / AVX512-BF16 a single bf16 step can take seconds even at this size.
            self.shape_list, self.dtype_list = ["tiny"], ["fp32"]
            self.rounds, self.batches_per_round = 1, 2
            self.pretrain_batch_size = self.inference_batch_size = 8


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Data: the embedded corpus through the glm_hf pipeline
# ---------------------------------------------------------------------------------------------------------------


def load_tokenizer(args: BenchmarkArguments, workdir: str):
    from transformers import AutoTokenizer

    if args.tokenizer_name:
        return AutoTokenizer.from_pretrained(args.tokenizer_name)
    from glm_hf.tokenization import TokenizerTrainingArguments, train_tokenizer

    vocab_size = 2000 if args.quick else args.vocab_size
    log(f"training a {vocab_size}-token WordPiece tokenizer on the embedded corpus (glm_hf.tokenization)")
    tokenizer, _ = train_tokenizer(
        TokenizerTrainingArguments(
            output_dir=os.path.join(workdir, "tokenizer"),
            dataset_name="embedded",
            vocab_size=vocab_size,
            validation_split_percentage=0,
            max_train_documents=300 if args.quick else None,
        )
    )
    return tokenizer


def quick_documents(count: int = 150):
    """--quick: the first articles of People's Daily and the first train reviews, read by glm_hf.corpora's own
    readers, without building (and caching) the whole embedded corpus."""
    from itertools import islice

    from datasets import Dataset

    from glm_hf.corpora import DOCUMENT_FEATURES, peoples_daily_documents, split_sentences
    from glm_hf.sentiment import load_sentiment_dataset

    articles = list(islice(peoples_daily_documents(), count))
    reviews = [split_sentences(text) for text in load_sentiment_dataset()["train"]["text"][:count]]
    sentences = articles + [r for r in reviews if r]
    sources = ["peoples_daily"] * len(articles) + ["reviews"] * (len(sentences) - len(articles))
    return Dataset.from_dict({"sentences": sentences, "source": sources}, features=DOCUMENT_FEATURES)


_TOKENIZED: dict = {}


def tokenized_documents(args: BenchmarkArguments, tokenizer):
    """The embedded documents (--quick: a few of them) tokenized by the pipeline; once per run and tokenizer."""
    from glm_hf.corpora import load_documents
    from glm_hf.pretraining_data import tokenize_documents

    key = (id(tokenizer), args.quick)
    if key not in _TOKENIZED:
        if args.quick:
            documents = quick_documents()
        else:
            documents = load_documents(dataset_name="embedded", validation_split_percentage=0)["train"]
        _TOKENIZED[key] = tokenize_documents(documents, tokenizer)
    return _TOKENIZED[key]


def pretraining_batches(
    args: BenchmarkArguments, tokenizer, batch_size: int, count: int, task: str = "pretraining"
) -> list[dict]:
    """The examples of the task's objective (NSP or SOP pairs, or packed windows) from the embedded corpus, masked
    and padded by the pipeline's collator (as ``glm_hf.pretraining.build_collator`` sets it up for the objective),
    collated once."""
    from transformers import DataCollatorForLanguageModeling

    from glm_hf.collator import DataCollatorForPreTraining
    from glm_hf.pretraining_data import create_nsp_examples, create_packed_examples, nsp_example_stats

    spec = PRETRAINING_TASKS[task]
    tokenized = tokenized_documents(args, tokenizer)
    if spec["examples"] == "packed":
        examples = create_packed_examples(tokenized, tokenizer, max_seq_length=args.max_seq_length)
    else:
        examples = create_nsp_examples(tokenized, tokenizer, max_seq_length=args.max_seq_length, seed=args.seed,
                                       sentence_task=spec["examples"])
    stats = nsp_example_stats(examples)
    log(f"{TASK_LABELS[task]}: {EXAMPLES[spec['examples']]}: {stats['examples']} examples, mean length "
        f"{stats['mean_length']:.1f} tokens")
    needed = batch_size * count
    if len(examples) < needed:
        raise ValueError(f"the corpus gives {len(examples)} {EXAMPLES[spec['examples']]}, fewer than the {needed} "
                         "the benchmark needs")
    examples = examples.shuffle(seed=args.seed).select(range(needed))
    # RTD: every chosen position becomes [MASK] (the generator fills it), as the pretraining recipe masks for rtd.
    rtd = spec["objective"] == "rtd"
    collator = DataCollatorForPreTraining(tokenizer, seed=args.seed, mask_replace_prob=1.0 if rtd else 0.8,
                                          random_replace_prob=0.0 if rtd else 0.1)
    features = [examples[i] for i in range(needed)]
    batches = [collator(features[k * batch_size : (k + 1) * batch_size]) for k in range(count)]
    # The peer's standard collator pads a batch to the same shape (its longest example): check it on the first batch.
    keys = [key for key in ("input_ids", "token_type_ids") if key in features[0]]
    standard = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)(
        [{key: f[key] for key in keys} for f in features[:batch_size]]
    )
    if standard["input_ids"].shape != batches[0]["input_ids"].shape:
        raise AssertionError(
            f"DataCollatorForPreTraining padded to {tuple(batches[0]['input_ids'].shape)}, "
            f"DataCollatorForLanguageModeling to {tuple(standard['input_ids'].shape)}"
        )
    return batches


def classification_batches(args: BenchmarkArguments, tokenizer, batch_size: int, count: int) -> list[dict]:
    """Sentiment test reviews, truncated to max_seq_length, padded by transformers' DataCollatorWithPadding."""
    from transformers import DataCollatorWithPadding

    from glm_hf.sentiment import load_sentiment_dataset

    needed = batch_size * count
    texts = load_sentiment_dataset()["test"].shuffle(seed=args.seed)["text"][:needed]
    encoded = tokenizer(list(texts), truncation=True, max_length=args.max_seq_length)
    collator = DataCollatorWithPadding(tokenizer)
    rows = [{key: encoded[key][i] for key in encoded} for i in range(len(texts))]
    return [dict(collator(rows[k * batch_size : (k + 1) * batch_size])) for k in range(count)]


# ---------------------------------------------------------------------------------------------------------------
# Models, FLOPs, steps
# ---------------------------------------------------------------------------------------------------------------


def architecture(shape: str, vocab_size: int, pad_token_id: int) -> dict:
    from glm_hf.configuration_glm import MODEL_SIZES

    fields = dict(MODEL_SIZES[shape])
    fields.update(
        vocab_size=max(vocab_size, BERT_BASE_CHINESE_VOCAB) if shape == "base" else vocab_size,
        max_position_embeddings=512,
        type_vocab_size=2,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        pad_token_id=pad_token_id,
    )
    return fields


class ElectraReplacedTokenDetection(torch.nn.Module):
    """The peer of RTD: ELECTRA's pretraining with transformers' two models, as ELECTRA's authors set it up.

    ``ElectraForMaskedLM`` (the generator: ``generator_layers`` layers of the discriminator's width) and
    ``ElectraForPreTraining`` (the discriminator) share the embeddings (token, position, token type and their
    LayerNorm: one module) and the generator's decoder is the word embedding matrix. A step: the generator's MLM loss
    on ``labels`` (its logits on every position, as ``ElectraForMaskedLM`` computes them), one token sampled per
    labelled position from its softmax, the discriminator's loss on the corrupted input (1 where the sampled token
    differs from the original; real tokens only), loss = generator loss + ``rtd_loss_weight`` x discriminator loss --
    what ``GLMForPreTraining(pretraining_objective="rtd")`` computes.
    """

    def __init__(self, fields: dict, generator_layers: int, rtd_loss_weight: float):
        from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

        super().__init__()
        width = {"embedding_size": fields["hidden_size"]}
        self.discriminator = ElectraForPreTraining(ElectraConfig(**fields, **width))
        self.generator = ElectraForMaskedLM(ElectraConfig(**{**fields, "num_hidden_layers": generator_layers}, **width))
        self.generator.electra.embeddings = self.discriminator.electra.embeddings
        self.generator.generator_lm_head.weight = self.discriminator.electra.embeddings.word_embeddings.weight
        self.rtd_loss_weight = rtd_loss_weight

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        from transformers.utils import ModelOutput

        inputs = dict(attention_mask=attention_mask, token_type_ids=token_type_ids)
        generated = self.generator(input_ids, labels=labels, **inputs)
        chosen = labels != -100
        with torch.no_grad():
            sampled = torch.multinomial(F.softmax(generated.logits[chosen].detach().float(), dim=-1), 1).squeeze(-1)
        corrupted = input_ids.masked_scatter(chosen, sampled)
        replaced = (chosen & (corrupted != labels)).long()
        discriminated = self.discriminator(corrupted, labels=replaced, **inputs)
        return ModelOutput(loss=generated.loss + self.rtd_loss_weight * discriminated.loss)


def build_peer(task: str, fields: dict):
    """The transformers model the task's row compares against (random weights)."""
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForPreTraining,
        BertForSequenceClassification,
        RoFormerConfig,
        RoFormerForMaskedLM,
    )

    if task == "inference":
        return BertForSequenceClassification(BertConfig(**fields, num_labels=2))
    if task in ("pretraining", "mlm_sop"):
        return BertForPreTraining(BertConfig(**fields))
    if task == "mlm":
        return BertForMaskedLM(BertConfig(**fields))
    if task == "mlm_rotary":
        return RoFormerForMaskedLM(RoFormerConfig(**fields, embedding_size=fields["hidden_size"]))
    config = PRETRAINING_TASKS[task]["config"]
    return ElectraReplacedTokenDetection(fields, config["generator_num_hidden_layers"], config["rtd_loss_weight"])


def build_ours(task: str, fields: dict):
    """GLM for the task: the default config (unpad_inputs), sparse_prediction for pretraining, the task's objective."""
    from glm_hf import GLMConfig, GLMForPreTraining, GLMForSequenceClassification

    if task == "inference":
        return GLMForSequenceClassification(GLMConfig(**fields, num_labels=2))
    spec = PRETRAINING_TASKS[task]
    return GLMForPreTraining(
        GLMConfig(**fields, sparse_prediction=True, pretraining_objective=spec["objective"], **spec["config"])
    )


def rotary_layout_index(num_heads: int, head_size: int) -> torch.Tensor:
    """Row order that turns RoFormer's query/key rows into GLM's: RoFormer rotates interleaved pairs (2i, 2i+1) of a
    head's features by angle i, GLM rotates halves (i, i + head_size / 2) by the same angle (GPT-NeoX layout). Row
    ``h * head_size + j`` of GLM's projection is row ``index[h * head_size + j]`` of RoFormer's: per head the even
    features, then the odd ones. Applied to queries and keys alike, it permutes both sides of every q.k dot product
    the same way, so attention scores -- and the whole function -- stay the same."""
    per_head = torch.cat([torch.arange(0, head_size, 2), torch.arange(1, head_size, 2)])
    return (torch.arange(num_heads)[:, None] * head_size + per_head).reshape(-1)


# ELECTRA (the peer of rtd) names -> GLM names, by prefix: the discriminator is GLM's encoder and head, the
# generator's layers and head are GLM's generator; the generator's embeddings are the discriminator's (tied in both).
_ELECTRA_PREFIXES = (
    ("glm.", "discriminator.electra."),
    ("discriminator.", "discriminator.discriminator_predictions."),
    ("generator.", "generator.electra."),
    ("generator_head.transform.", "generator.generator_predictions."),
    ("generator_head.decoder.", "generator.generator_lm_head."),
)


def peer_weights_for_ours(task: str, peer, ours) -> dict:
    """The peer's weights under GLM's names (and layout), for ``ours.load_state_dict(..., strict=True)``."""
    from glm_hf.convert_bert import rename_bert_state_dict  # the converter's renaming: one mapping of names

    peer_state = peer.state_dict()
    if task == "rtd":
        mapped = {}
        for key, value in ours.state_dict().items():
            if key == "generator_token_probabilities":  # the generator network replaces it: unused
                mapped[key] = value
                continue
            source = next(peer_prefix + key[len(prefix):] for prefix, peer_prefix in _ELECTRA_PREFIXES
                          if key.startswith(prefix))
            if peer_state[source].shape != value.shape:
                raise AssertionError(f"{source} {tuple(peer_state[source].shape)} -> {key} {tuple(value.shape)}")
            mapped[key] = peer_state[source]
        return mapped
    if task == "mlm_rotary":
        # RoFormer: BERT's names under "roformer."; its sinusoidal table is recomputed by GLM (not a weight).
        peer_state = {("bert." + key[len("roformer."):] if key.startswith("roformer.") else key): value
                      for key, value in peer_state.items() if not key.endswith("embed_positions.weight")}
    mapped = rename_bert_state_dict(peer_state, bare_encoder=False)[0]
    if task == "mlm_rotary":
        config = ours.config
        index = rotary_layout_index(config.num_attention_heads, config.hidden_size // config.num_attention_heads)
        for key in mapped:
            if key.endswith(("attention.self.query.weight", "attention.self.query.bias",
                             "attention.self.key.weight", "attention.self.key.bias")):
                mapped[key] = mapped[key][index]
    return mapped


def build_models(task: str, fields: dict, seed: int):
    """The peer and ours with the same weights: (peer, ours)."""
    torch.manual_seed(seed)
    peer, ours = build_peer(task, fields), build_ours(task, fields)
    ours.load_state_dict(peer_weights_for_ours(task, peer, ours), strict=True)
    ours.tie_weights()
    return peer, ours


def build_model(side: str, task: str, fields: dict):
    return build_peer(task, fields) if side == "peer" else build_ours(task, fields)


def trainer_optimizer(model, workdir: str):
    """The optimizer Trainer builds by default (torch AdamW, fused where supported), lr 1e-4."""
    from transformers import Trainer, TrainingArguments

    training_args = TrainingArguments(output_dir=workdir, use_cpu=True, report_to=[], learning_rate=1e-4)
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    return optimizer_cls(model.parameters(), **optimizer_kwargs), optimizer_cls.__name__, optimizer_kwargs


def autocast(dtype: torch.dtype):
    return torch.autocast("cpu", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()


def pretraining_step(model, optimizer, batch: dict, dtype: torch.dtype) -> float:
    model.train()
    with autocast(dtype):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def inference_step(model, batch: dict, dtype: torch.dtype) -> None:
    model.eval()
    with torch.inference_mode(), autocast(dtype):
        model(**batch)


def real_tokens(batch: dict) -> int:
    return int(batch["attention_mask"].sum())


def _encoder_flops(lengths: list[int], queries: list[int], hidden: int, ffn: int, layers: int) -> float:
    """Forward matmul FLOPs of ``layers`` layers on sequences of ``lengths`` real tokens, the last layer running its
    queries, attention output and feed-forward for ``queries[i]`` tokens of sequence i only."""
    tokens = sum(lengths)
    per_token_layer = 2 * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = 4 * hidden * sum(n * n for n in lengths)
    last_layer = (
        tokens * 2 * (2 * hidden * hidden)  # keys and values of every token
        + sum(queries) * 2 * (2 * hidden * hidden + 2 * hidden * ffn)  # query, attention output, feed-forward
        + 4 * hidden * sum(q * n for q, n in zip(queries, lengths))
    )
    return (layers - 1) * (tokens * per_token_layer + attention) + last_layer


def useful_flops(batch: dict, fields: dict, task: str) -> float:
    """Matmul FLOPs the function needs on the real tokens (see the module docstring); training = 3x forward.

    Per objective: MLM + NSP/SOP: [CLS] and the masked tokens are read (pooler and pair head on [CLS], MLM head on
    the masked tokens); MLM alone (absolute or rotary positions: rotation is no matmul): the masked tokens only;
    RTD: the generator's layers with the masked tokens read (MLM head on them), then the discriminator's layers and
    head on every real token (every one is read).
    """
    hidden, ffn, layers = fields["hidden_size"], fields["intermediate_size"], fields["num_hidden_layers"]
    vocab = fields["vocab_size"]
    lengths = batch["attention_mask"].sum(1).tolist()
    if task == "inference":
        forward = _encoder_flops(lengths, [1] * len(lengths), hidden, ffn, layers)
        return float(forward + len(lengths) * 2 * (hidden * hidden + 2 * hidden))  # pooler + classifier
    spec = PRETRAINING_TASKS[task]
    masked = (batch["labels"] != -100).sum(1).tolist()
    mlm_head = sum(masked) * 2 * (hidden * hidden + hidden * vocab)  # MLM transform + decoder
    if spec["objective"] in ("mlm_nsp", "mlm_sop"):
        queries = [m + 1 for m in masked]  # the masked tokens and [CLS] (never masked)
        forward = _encoder_flops(lengths, queries, hidden, ffn, layers)
        forward += len(lengths) * 2 * (hidden * hidden + 2 * hidden)  # pooler + NSP / SOP
        forward += mlm_head
    elif spec["objective"] == "mlm":
        forward = _encoder_flops(lengths, masked, hidden, ffn, layers) + mlm_head
    else:  # rtd
        generator_layers = spec["config"]["generator_num_hidden_layers"]
        forward = _encoder_flops(lengths, masked, hidden, ffn, generator_layers) + mlm_head
        forward += _encoder_flops(lengths, lengths, hidden, ffn, layers)
        forward += sum(lengths) * 2 * (hidden * hidden + hidden)  # discriminator head on every real token
    return 3.0 * forward


def peer_flops(batch: dict, fields: dict, task: str) -> float:
    """Matmul FLOPs the peer computes: every layer on every grid position (padding too), attention over the padded
    grid, the MLM head (transform + full-vocabulary decoder) on every position (RTD: the generator's; the
    discriminator's head on every position too); training = 3x forward.

    ``peer_flops / useful_flops`` is the speed-up GLM would get at the peer's efficiency per FLOP: the bound on the
    speed-up from doing less work alone (beyond it, GLM must run its matmuls faster per FLOP than the peer).
    """
    hidden, ffn, layers = fields["hidden_size"], fields["intermediate_size"], fields["num_hidden_layers"]
    vocab = fields["vocab_size"]
    batch_size, seq_len = batch["attention_mask"].shape
    positions = batch_size * seq_len

    def encoder(num_layers):
        return num_layers * (positions * 2 * (4 * hidden * hidden + 2 * hidden * ffn)
                             + 4 * hidden * batch_size * seq_len**2)

    mlm_head = positions * 2 * (hidden * hidden + hidden * vocab)  # MLM transform + decoder on every position
    pooler = batch_size * 2 * (hidden * hidden + 2 * hidden)  # pooler + NSP / SOP / classifier
    if task == "inference":
        return float(encoder(layers) + pooler)
    spec = PRETRAINING_TASKS[task]
    if spec["objective"] in ("mlm_nsp", "mlm_sop"):
        forward = encoder(layers) + pooler + mlm_head
    elif spec["objective"] == "mlm":
        forward = encoder(layers) + mlm_head
    else:  # rtd: generator (every position, full decoder) + discriminator (every position, its head)
        forward = encoder(spec["config"]["generator_num_hidden_layers"]) + mlm_head
        forward += encoder(layers) + positions * 2 * (hidden * hidden + hidden)
    return 3.0 * forward


def _seconds(operation) -> float:
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


MATMULS = {"torch.mm": torch.mm, "F.linear": F.linear}


def matmul_flops(name: str, dtype: torch.dtype, size: int, repeats: int = 2) -> float:
    """FLOP/s of ``MATMULS[name]`` on a size x size by size x size product in ``dtype`` (best of ``repeats``)."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    operation = MATMULS[name]
    operation(a, b)  # first call: kernel selection
    return 2 * size**3 / min(_seconds(lambda: operation(a, b)) for _ in range(max(repeats, 1)))


class PeakMeter:
    """Matmul peak per dtype, measured repeatedly during the run (before and after every row).

    The faster of ``torch.mm`` and ``F.linear`` (chosen on a small product: in bf16 without hardware support one of
    them can be 10-100x slower), on an n x n product with n = 2048, or smaller while one product would take over a
    second.
    """

    def __init__(self):
        self.samples: dict[str, list[float]] = {}
        self.sizes: dict[str, int] = {}
        self.operations: dict[str, str] = {}

    def measure(self, dtype_name: str) -> float:
        dtype = DTYPES[dtype_name]
        if dtype_name not in self.sizes:
            self.operations[dtype_name] = max(MATMULS, key=lambda name: matmul_flops(name, dtype, 256, repeats=1))
            size = 256
            while size < 2048 and 2 * (2 * size) ** 3 / matmul_flops(self.operations[dtype_name], dtype, size, 1) < 1.0:
                size *= 2
            self.sizes[dtype_name] = size
        value = matmul_flops(self.operations[dtype_name], dtype, self.sizes[dtype_name])
        self.samples.setdefault(dtype_name, []).append(value)
        return value

    def peak(self, dtype_name: str) -> float:
        return statistics.median(self.samples[dtype_name])


# ---------------------------------------------------------------------------------------------------------------
# Timed rows
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    shape: str
    task: str
    dtype: str
    status: str = "ok"  # or why the row was skipped
    objective: str | None = None  # GLMForPreTraining's pretraining_objective (None: classification inference)
    peer: str = ""  # the transformers model (or set-up) the row compares against
    slow_dtype: bool = False  # bf16 without hardware support: no warm-up, one batch, no memory measurement
    warmup_seconds: float | None = None
    rounds: int = 0
    batches_per_round: int = 0
    tokens_per_round: int = 0
    peer_tokens_per_s: float | None = None
    ours_tokens_per_s: float | None = None
    speed_ratio: float | None = None
    cpu_time_ratio: float | None = None
    useful_flops_per_round: float = 0.0
    peer_flops_per_round: float = 0.0
    flops_ratio: float | None = None  # the peer's matmul FLOPs / useful FLOPs: the speed-up at equal FLOP/s
    matmul_peak_flops: float | None = None  # mean of the peaks measured right before and after the row
    peer_useful_flops_per_s: float | None = None
    ours_useful_flops_per_s: float | None = None
    peer_mfu: float | None = None
    ours_mfu: float | None = None
    peer_peak_memory_mb: float | None = None
    ours_peak_memory_mb: float | None = None
    memory_ratio: float | None = None
    load_average: tuple[float, float] | None = None
    peer_step_seconds: list[float] = field(default_factory=list)
    ours_step_seconds: list[float] = field(default_factory=list)


def time_row(
    row: Row, peer, ours, batches: list[dict], fields: dict, budget: float, workdir: str, warm_up: bool = True
) -> None:
    """Interleaved timing of one (shape, task, dtype) row; fills ``row``. ``warm_up=False``: the first batch is
    timed too (for bf16 without hardware support, whose one-time costs recur with every new batch shape anyway)."""
    dtype = DTYPES[row.dtype]
    load_start = os.getloadavg()[0]
    if row.task in PRETRAINING_TASKS:
        optimizers = {"peer": trainer_optimizer(peer, workdir)[0], "ours": trainer_optimizer(ours, workdir)[0]}

        def step(side, model, batch):
            pretraining_step(model, optimizers[side], batch, dtype)
    else:

        def step(side, model, batch):
            inference_step(model, batch, dtype)

    models = {"peer": peer, "ours": ours}
    if warm_up:
        warmup, timed = batches[0], batches[1:]
        warmup_seconds = 0.0
        for side in ("peer", "ours"):
            start = time.perf_counter()
            step(side, models[side], warmup)
            warmup_seconds += time.perf_counter() - start
        row.warmup_seconds = round(warmup_seconds, 3)
        # What fits the budget: a batch costs about (its tokens / warm-up tokens) x the warm-up time of both sides.
        seconds_per_token = warmup_seconds / max(real_tokens(warmup), 1)
        per_batch = seconds_per_token * statistics.mean(real_tokens(b) for b in timed)
        fitting = int((budget - warmup_seconds) // max(per_batch, 1e-9))
    else:
        timed, fitting = batches[1:], 1
    timed = timed[: max(1, min(len(timed), fitting))]
    rounds = max(1, min(row.rounds, fitting // len(timed)))
    row.rounds, row.batches_per_round = rounds, len(timed)
    row.tokens_per_round = sum(real_tokens(b) for b in timed)
    row.useful_flops_per_round = sum(useful_flops(b, fields, row.task) for b in timed)
    row.peer_flops_per_round = sum(peer_flops(b, fields, row.task) for b in timed)
    row.flops_ratio = row.peer_flops_per_round / row.useful_flops_per_round

    wall = {"peer": [], "ours": []}
    cpu = {"peer": [], "ours": []}
    for round_index in range(rounds):
        order = ("peer", "ours") if round_index % 2 == 0 else ("ours", "peer")
        round_wall = {"peer": 0.0, "ours": 0.0}
        round_cpu = {"peer": 0.0, "ours": 0.0}
        for batch in timed:
            for side in order:
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                step(side, models[side], batch)
                elapsed = time.perf_counter() - start_wall
                round_wall[side] += elapsed
                round_cpu[side] += time.process_time() - start_cpu
                (row.peer_step_seconds if side == "peer" else row.ours_step_seconds).append(round(elapsed, 4))
        for side in ("peer", "ours"):
            wall[side].append(round_wall[side])
            cpu[side].append(round_cpu[side])
    row.peer_tokens_per_s = statistics.median(row.tokens_per_round / t for t in wall["peer"])
    row.ours_tokens_per_s = statistics.median(row.tokens_per_round / t for t in wall["ours"])
    row.speed_ratio = statistics.median(p / o for p, o in zip(wall["peer"], wall["ours"]))
    row.cpu_time_ratio = statistics.median(p / o for p, o in zip(cpu["peer"], cpu["ours"]))
    row.peer_useful_flops_per_s = statistics.median(row.useful_flops_per_round / t for t in wall["peer"])
    row.ours_useful_flops_per_s = statistics.median(row.useful_flops_per_round / t for t in wall["ours"])
    row.load_average = (round(load_start, 2), round(os.getloadavg()[0], 2))


def same_function_check(task: str, peer, ours, batch: dict, seed: int = 0) -> float:
    """fp32, dropout off: |loss difference| (pretraining) or max |logit difference| (classification).

    RTD samples the replacements: both sides draw them from the same seed (the same draws pick the same tokens from
    the same distribution). Rotary positions: also checked on copies of both models whose query and key weights are
    scaled x16 (on both sides: still one function) -- at initialisation the attention scores are too small for the
    positions to move the loss beyond the tolerance, so a wrong rotary layout would pass unseen; the larger of the
    two differences is returned.
    """
    peer.eval(), ours.eval()
    with torch.no_grad():
        if task == "inference":
            return float((peer(**batch).logits - ours(**batch).logits).abs().max())
        torch.manual_seed(seed)
        peer_loss = float(peer(**batch).loss)
        torch.manual_seed(seed)
        difference = abs(peer_loss - float(ours(**batch).loss))
        if task == "mlm_rotary":
            sharp = []
            for model in (peer, ours):
                model = copy.deepcopy(model)
                for name, parameter in model.named_parameters():
                    if ".attention.self.query." in name or ".attention.self.key." in name:
                        parameter.mul_(16.0)
                sharp.append(float(model(**batch).loss))
            difference = max(difference, abs(sharp[0] - sharp[1]))
        return difference


# ---------------------------------------------------------------------------------------------------------------
# Peak memory, one fresh process per side
# ---------------------------------------------------------------------------------------------------------------


def _resident_kb(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not found in /proc/self/status")


def memory_worker(spec_path: str) -> int:
    """Child process: for each row of the spec, build the side's model, run its largest batch, report the peak."""
    with open(spec_path) as f:
        spec = json.load(f)
    torch.set_num_threads(spec["threads"])
    data = torch.load(spec["batches_path"], weights_only=True)
    # Every model class a row builds, imported before the baseline (like torch): module code is no row's memory.
    from transformers import (  # noqa: F401
        BertForMaskedLM,
        BertForPreTraining,
        ElectraForMaskedLM,
        ElectraForPreTraining,
        RoFormerForMaskedLM,
    )

    import glm_hf  # noqa: F401  (imported before the baseline, like torch and transformers)

    optimizer_cls = getattr(torch.optim, spec["optimizer"]["class"])  # what Trainer chose, in the parent

    gc.collect()
    baseline_kb = _resident_kb("VmRSS")
    results = []
    for job in spec["jobs"]:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident size
        start_kb = _resident_kb("VmRSS")
        model = build_model(spec["side"], job["task"], job["fields"])
        batch = data[job["batches_key"]]
        dtype = DTYPES[job["dtype"]]
        if job["task"] in PRETRAINING_TASKS:
            optimizer = optimizer_cls(model.parameters(), **spec["optimizer"]["kwargs"])
            # A first step (on the smallest batch) allocates the optimizer state; the largest then runs with it.
            pretraining_step(model, optimizer, data[job["batches_key"] + "/smallest"], dtype)
            pretraining_step(model, optimizer, batch, dtype)
            del optimizer
        else:
            inference_step(model, batch, dtype)
        peak_kb = _resident_kb("VmHWM")
        results.append({**job, "peak_mb": (peak_kb - baseline_kb) / 1024, "start_mb": (start_kb - baseline_kb) / 1024})
        del model
    with open(spec["output_path"], "w") as f:
        json.dump({"baseline_mb": baseline_kb / 1024, "results": results}, f)
    return 0


def measure_memory(jobs: list[dict], largest: dict[str, dict], threads: int, workdir: str, optimizer: dict) -> dict:
    """Run a memory worker per side (the two in parallel: resident sizes are per process). -> {(side, key): MB}."""
    batches_path = os.path.join(workdir, "memory_batches.pt")
    torch.save(largest, batches_path)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    processes = {}
    for side in ("peer", "ours"):
        spec = {
            "side": side,
            "jobs": jobs,
            "threads": threads,
            "batches_path": batches_path,
            "workdir": workdir,
            "optimizer": optimizer,
            "output_path": os.path.join(workdir, f"memory_{side}.json"),
        }
        spec_path = os.path.join(workdir, f"memory_spec_{side}.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        processes[side] = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), MEMORY_WORKER, spec_path], env=env
        )
    peaks = {}
    for side, process in processes.items():
        if process.wait() != 0:
            raise RuntimeError(f"the {side} memory worker failed (exit code {process.returncode})")
        with open(os.path.join(workdir, f"memory_{side}.json")) as f:
            for result in json.load(f)["results"]:
                peaks[(side, result["shape"], result["task"], result["dtype"])] = result["peak_mb"]
    return peaks


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------


def _fmt(value, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'shape':<6} {'task':<12} {'dtype':<5} {'peer tok/s':>10} {'GLM tok/s':>10} {'speed-up':>8} "
        f"{'FLOPs x':>7} {'peer MFU':>8} {'GLM MFU':>8} {'peer MB':>8} {'GLM MB':>8} {'steps':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        label = TASK_LABELS[r.task]
        if r.status != "ok":
            lines.append(f"{r.shape:<6} {label:<12} {r.dtype:<5} skipped: {r.status}")
            continue
        lines.append(
            f"{r.shape:<6} {label:<12} {r.dtype:<5} {_fmt(r.peer_tokens_per_s, ',.0f'):>10} "
            f"{_fmt(r.ours_tokens_per_s, ',.0f'):>10} {_fmt(r.speed_ratio, '.2f', 'x'):>8} "
            f"{_fmt(r.flops_ratio, '.2f', 'x'):>7} "
            f"{_fmt(None if r.peer_mfu is None else 100 * r.peer_mfu, '.1f', '%'):>8} "
            f"{_fmt(None if r.ours_mfu is None else 100 * r.ours_mfu, '.1f', '%'):>8} "
            f"{_fmt(r.peer_peak_memory_mb, ',.0f'):>8} {_fmt(r.ours_peak_memory_mb, ',.0f'):>8} "
            f"{r.rounds}x{r.batches_per_round:>3}"
        )
    lines.append("Tasks (GLM: GLMForPreTraining with that objective, sparse_prediction; the peer: transformers, same "
                 "weights):")
    for task in dict.fromkeys(r.task for r in rows):
        if task == "inference":
            what = "sentiment test reviews; peer BertForSequenceClassification"
        else:
            spec = PRETRAINING_TASKS[task]
            extra = "".join(f", {k}={v}" for k, v in spec["config"].items())
            what = (f"objective {spec['objective']}{extra}, on {EXAMPLES[spec['examples']]}; "
                    f"peer {spec['peer']}")
        lines.append(f"  {TASK_LABELS[task]:<12} {what}")
    return "\n".join(lines)


def cpu_description() -> dict:
    flags = set()
    model_name = platform.processor()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                elif line.startswith("model name") and model_name in ("", "x86_64"):
                    model_name = line.split(":", 1)[1].strip()
    bf16_flags = sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f"})
    return {
        "model": model_name,
        "bf16_hardware_flags": bf16_flags,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def run(args: BenchmarkArguments) -> dict:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    run_start = time.perf_counter()
    environment = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu": cpu_description(),
        "load_average_start": os.getloadavg(),
    }
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads "
        f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), "
        f"CPU {environment['cpu']['model']} ({environment['cpu']['cpu_capability']}; bf16 hardware flags: "
        f"{environment['cpu']['bf16_hardware_flags'] or 'none'}), load average {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory(prefix="glm-bench-") as workdir:
        tokenizer = load_tokenizer(args, workdir)
        peaks = PeakMeter()
        for dtype_name in args.dtype_list:
            value = peaks.measure(dtype_name)
            size = peaks.sizes[dtype_name]
            log(f"matmul peak {dtype_name}: {value / 1e9:.1f} GFLOP/s ({size}x{size})")

        # Batches: batches_per_round timed + 1 warm-up (the smallest, first) per task and shape.
        data: dict[tuple[str, str], list[dict]] = {}
        for shape in args.shape_list:
            per_round = min(2, args.batches_per_round) if shape == "base" else args.batches_per_round
            pt_size = args.base_pretrain_batch_size if shape == "base" else args.pretrain_batch_size
            inf_size = args.base_inference_batch_size if shape == "base" else args.inference_batch_size
            log(f"{shape}: collating {per_round + 1} pretraining batches of {pt_size} and {per_round + 1} "
                f"classification batches of {inf_size}")
            jobs = [("pretraining", pretraining_batches, pt_size), ("inference", classification_batches, inf_size)]
            if shape == args.shape_list[0] and "fp32" in args.dtype_list:
                jobs[1:1] = [(task, pretraining_batches, pt_size) for task in args.objective_list]
            for task, make, size in jobs:
                if make is pretraining_batches:
                    batches = make(args, tokenizer, size, per_round + 1, task=task)
                else:
                    batches = make(args, tokenizer, size, per_round + 1)
                batches.sort(key=real_tokens)  # the smallest one warms up
                data[(shape, task)] = [batches[0]] + batches[1:]

        rows: list[Row] = []
        checks = {}
        # fp32 rows first (the headline on CPUs without fast bf16), the first shape first; weights share the budget.
        # The objective rows (first shape, fp32 only) follow the MLM + NSP row.
        sections = []
        for d in args.dtype_list:
            for s in args.shape_list:
                extra = list(args.objective_list) if (s == args.shape_list[0] and d == "fp32") else []
                sections += [(s, t, d) for t in (TASKS[0], *extra, *TASKS[1:])]
        weights = [SECTION_WEIGHTS[(s == args.shape_list[0], t, d == args.dtype_list[0])] if t in TASKS
                   else OBJECTIVE_WEIGHT for s, t, d in sections]
        budget_left = args.time_budget
        for index, (shape, task, dtype_name) in enumerate(sections):
            fields = architecture(shape, len(tokenizer), tokenizer.pad_token_id)
            row = Row(shape, task, dtype_name, rounds=args.rounds,
                      objective=PRETRAINING_TASKS[task]["objective"] if task in PRETRAINING_TASKS else None,
                      peer=PRETRAINING_TASKS[task]["peer"] if task in PRETRAINING_TASKS
                      else "BertForSequenceClassification")
            batches = data[(shape, task)]
            share = budget_left * weights[index] / sum(weights[index:])
            # The warm-up steps (one per side) must fit: estimated from the same row in fp32 when it ran (scaled by
            # the two matmul peaks, x2 for the extra cost of bf16 without hardware support), else from the useful
            # FLOPs (x3.5 for the peer's padding and full decoder) at 30% of the peak.
            peak = peak_before = peaks.measure(dtype_name)
            # bf16 without hardware support (no AMX / AVX512-BF16): slower than fp32, and every new batch shape
            # pays the kernels' set-up again. Such rows run for the first shape only, one batch, no warm-up.
            slow_dtype = dtype_name != "fp32" and "fp32" in peaks.samples and peak < peaks.peak("fp32")
            fp32_row = next((r for r in rows if (r.shape, r.task, r.dtype, r.status) == (shape, task, "fp32", "ok")),
                            None)
            # The least this row costs: the warm-up pair and one timed pair.
            measured = [r for r in rows if (r.task, r.dtype, r.status) == (task, dtype_name, "ok")]
            nsp_row = next((r for r in rows if (r.shape, r.task, r.dtype, r.status) == (shape, "pretraining",
                                                                                        dtype_name, "ok")), None)
            if fp32_row is not None and dtype_name != "fp32":
                # The same row in fp32, scaled by the two matmul peaks, x3 for bf16's per-shape set-up.
                pair = statistics.median(p + o for p, o in zip(fp32_row.peer_step_seconds, fp32_row.ours_step_seconds))
                estimate = (1 if slow_dtype else 2) * 3 * pair * peaks.peak("fp32") / peak
            elif measured:  # the seconds per useful FLOP of a row of this task and dtype already timed
                seconds_per_flop = (sum(measured[0].peer_step_seconds) + sum(measured[0].ours_step_seconds)) / (
                    measured[0].rounds * measured[0].useful_flops_per_round
                )
                estimate = sum(useful_flops(b, fields, task) for b in batches[:2]) * seconds_per_flop
            elif task in OBJECTIVE_TASKS and nsp_row is not None:
                # The MLM + NSP row's seconds per FLOP computed (useful FLOPs for GLM, the peer's for the peer).
                seconds_per_flop = (sum(nsp_row.peer_step_seconds) + sum(nsp_row.ours_step_seconds)) / (
                    nsp_row.rounds * (nsp_row.useful_flops_per_round + nsp_row.peer_flops_per_round)
                )
                estimate = seconds_per_flop * sum(useful_flops(b, fields, task) + peer_flops(b, fields, task)
                                                  for b in batches[:2])
            else:  # the useful FLOPs (x3.5 for the peer's padding and full decoder) at 30% of the peak
                estimate = 2 * 3.5 * useful_flops(batches[0], fields, task) / (0.3 * peak)
            reason = None
            if slow_dtype and not args.quick and shape != args.shape_list[0]:
                reason = (f"{dtype_name} is slower than fp32 on this CPU (matmul peak {peak / 1e9:.1f} vs "
                          f"{peaks.peak('fp32') / 1e9:.1f} GFLOP/s: no AMX / AVX512-BF16); "
                          "timed for the first shape only")
            elif not args.quick and budget_left <= 0:
                reason = "no time left in --time_budget"
            elif not args.quick and estimate > share:
                reason = (f"estimated ~{estimate:.0f} s ({dtype_name} matmul peak here {peak / 1e9:.1f} GFLOP/s), "
                          f"more than this row's {share:.0f} s of --time_budget")
            if reason:
                row.status = reason
                log(f"{shape} {TASK_LABELS[task]} {dtype_name}: skipped: {reason}")
                rows.append(row)
                continue
            peer, ours = build_models(task, fields, args.seed)
            if dtype_name == "fp32" and (shape, task) not in checks:
                checks[(shape, task)] = same_function_check(task, peer, ours, batches[-1], args.seed)
                log(f"{shape} {TASK_LABELS[task]}: same weights, fp32, dropout off: "
                    f"{'max |logits peer - logits GLM|' if task == 'inference' else '|loss peer - loss GLM|'}"
                    f" = {checks[(shape, task)]:.2e}")
            section_start = time.perf_counter()
            time_row(row, peer, ours, batches, fields, share, workdir, warm_up=not slow_dtype)
            row.slow_dtype = slow_dtype
            budget_left -= time.perf_counter() - section_start
            # This row's MFU is against the peak measured right before and after it: the load drifts during a run.
            row.matmul_peak_flops = (peak_before + peaks.measure(dtype_name)) / 2
            # MFU in the log too: a run stopped before its report still leaves every finished row's numbers.
            log(f"{shape} {TASK_LABELS[task]} {dtype_name}: peer {row.peer_tokens_per_s:,.0f} tok/s, GLM "
                f"{row.ours_tokens_per_s:,.0f} tok/s, speed-up {row.speed_ratio:.2f}x, FLOPs x {row.flops_ratio:.2f}, "
                f"MFU peer {100 * row.peer_useful_flops_per_s / row.matmul_peak_flops:.1f}% GLM "
                f"{100 * row.ours_useful_flops_per_s / row.matmul_peak_flops:.1f}% "
                f"({row.rounds} rounds x {row.batches_per_round} batches, load {row.load_average})")
            rows.append(row)
            del peer, ours
            gc.collect()

        for row in rows:
            if row.status == "ok":
                row.peer_mfu = row.peer_useful_flops_per_s / row.matmul_peak_flops
                row.ours_mfu = row.ours_useful_flops_per_s / row.matmul_peak_flops

        if args.measure_memory:
            jobs, largest = [], {}
            for row in rows:
                if row.status != "ok" or row.slow_dtype:
                    continue
                key = f"{row.shape}/{row.task}"
                largest[key] = max(data[(row.shape, row.task)], key=lambda b: b["input_ids"].numel())
                largest[key + "/smallest"] = data[(row.shape, row.task)][0]
                fields = architecture(row.shape, len(tokenizer), tokenizer.pad_token_id)
                jobs.append({"shape": row.shape, "task": row.task, "dtype": row.dtype, "fields": fields,
                             "batches_key": key})
            log(f"peak memory: {len(jobs)} rows, one fresh process per side")
            _, optimizer_name, optimizer_kwargs = trainer_optimizer(torch.nn.Linear(1, 1), workdir)
            optimizer = {"class": optimizer_name, "kwargs": {k: (list(v) if isinstance(v, tuple) else v)
                                                             for k, v in optimizer_kwargs.items()}}
            memory = measure_memory(jobs, largest, args.threads, workdir, optimizer)
            for row in rows:
                if row.status == "ok" and not row.slow_dtype:
                    row.peer_peak_memory_mb = memory[("peer", row.shape, row.task, row.dtype)]
                    row.ours_peak_memory_mb = memory[("ours", row.shape, row.task, row.dtype)]
                    row.memory_ratio = row.ours_peak_memory_mb / row.peer_peak_memory_mb

    # Recommended setup: bf16 autocast where bf16 matmuls beat fp32 here (AMX / AVX512-BF16), else fp32.
    peak_values = {d: peaks.peak(d) for d in peaks.samples}
    recommended = "bf16" if peak_values.get("bf16", 0) > 1.1 * peak_values.get("fp32", float("inf")) else "fp32"
    if recommended not in args.dtype_list:
        recommended = args.dtype_list[0]
    reason = (
        f"measured matmul peak bf16 {peak_values.get('bf16', float('nan')) / 1e9:.1f} vs fp32 "
        f"{peak_values.get('fp32', float('nan')) / 1e9:.1f} GFLOP/s"
    )
    by_key = {(r.shape, r.task, r.dtype): r for r in rows}
    headline_shape = args.shape_list[0]
    headline = {}
    for task in TASKS:
        ours_row, peer_row = by_key.get((headline_shape, task, recommended)), by_key.get((headline_shape, task, "fp32"))
        if ours_row and peer_row and ours_row.status == peer_row.status == "ok":
            if ours_row is peer_row:  # same dtype: the interleaved per-round ratio
                headline[task] = ours_row.speed_ratio
            else:  # ours in bf16 vs the peer in fp32, from their two rows of this run
                headline[task] = ours_row.ours_tokens_per_s / peer_row.peer_tokens_per_s
    table = format_table(rows)
    result = {
        "pretraining_speed_ratio": headline.get("pretraining"),
        "inference_speed_ratio": headline.get("inference"),
        "headline": {
            "shape": headline_shape,
            "ours": f"GLM, {recommended} ({'bf16 autocast' if recommended == 'bf16' else 'fp32'}), sdpa, "
                    "unpad_inputs + sparse_prediction",
            "peer": "transformers BERT, fp32 (Trainer's default on CPU), sdpa",
            "recommended_dtype": recommended,
            "reason": reason,
        },
        "same_dtype_ratios": {
            f"{r.shape}/{r.dtype}/{r.task}": r.speed_ratio for r in rows if r.status == "ok"
        },
        "matmul_peak_flops": {d: {"median": peaks.peak(d), "samples": peaks.samples[d], "size": peaks.sizes[d],
                                  "operation": peaks.operations[d]} for d in peaks.samples},
        "same_function_check": {f"{s}/{t}": v for (s, t), v in checks.items()},
        "tasks": {t: {"label": TASK_LABELS[t], **({"objective": PRETRAINING_TASKS[t]["objective"],
                                                    "examples": EXAMPLES[PRETRAINING_TASKS[t]["examples"]],
                                                    "config": PRETRAINING_TASKS[t]["config"],
                                                    "peer": PRETRAINING_TASKS[t]["peer"]}
                                                   if t in PRETRAINING_TASKS else
                                                   {"peer": "BertForSequenceClassification"})}
                  for t in dict.fromkeys(r.task for r in rows)},
        "rows": [asdict(r) for r in rows],
        "table": table,
        "environment": {**environment, "load_average_end": os.getloadavg(),
                        "seconds": round(time.perf_counter() - run_start, 1)},
        "arguments": {k: v for k, v in asdict(args).items()},
        "definitions": {
            "real_tokens": "non-padding tokens (attention_mask == 1)",
            "tokens_per_s": "real tokens of a round / wall time of the round, median over rounds",
            "speed_ratio": "median over rounds of BERT round time / GLM round time (same batches, interleaved)",
            "useful_flops": "matmul FLOPs needed on real tokens only: layers on real tokens, attention within each "
                            "sequence, last layer's queries/FFN only for [CLS] and masked tokens, MLM head on "
                            "masked tokens only; backward = 2x forward; same count for both sides",
            "flops_ratio": "the peer's matmul FLOPs (every grid position, full-vocabulary decoder everywhere, same "
                           "3x for training) / useful FLOPs: the speed-up GLM gets at the peer's FLOP/s",
            "mfu": "useful FLOP/s / matmul peak measured right before and after the row (best of torch.mm and "
                   "F.linear, n x n, same dtype)",
            "peak_memory_mb": "peak RSS above the pre-model baseline in a fresh process per side, largest batch, "
                              "glibc mmap threshold 64 KiB",
            "pretraining_step": "forward (+autocast), backward, clip_grad_norm_(1.0), Trainer's default AdamW step, "
                                "zero_grad",
            "inference_step": "eval forward under inference_mode (+autocast)",
        },
    }
    return result


def print_report(result: dict) -> None:
    print()
    print("GLM (glm_hf) vs transformers (BERT; RoFormer, ELECTRA for rotary MLM, RTD): same batches (embedded corpus "
          "through the glm_hf pipeline), same architecture and weights, same optimizer")
    print(result["table"])
    head = result["headline"]
    print()
    print(f"Headline, {head['shape']} shape -- GLM recommended setup ({head['ours']}) vs BERT standard setup "
          f"({head['peer']}); {head['reason']}:")
    for task in TASKS:
        value = result[f"{task}_speed_ratio"]
        print(f"  {task:<12} speed-up {'-' if value is None else f'{value:.2f}x'} (real tokens/s)")
    print("Same-dtype speed-ups (fp32 vs fp32, bf16 vs bf16) are the rows above.")
    slow = sorted({r["dtype"] for r in result["rows"] if r["slow_dtype"]})
    if slow:
        print(f"{', '.join(slow)} rows: this CPU has no hardware for it (slower than fp32), so they run one batch per "
              "side without warm-up (each new batch shape pays the kernels' set-up again anyway) and no memory run.")
    peaks = ", ".join(f"{d} {v['median'] / 1e9:.1f} GFLOP/s (median; {v['operation']}, {v['size']}x{v['size']})"
                      for d, v in result["matmul_peak_flops"].items())
    print(f"Matmul peak measured in this run: {peaks}")
    checks = ", ".join(f"{k} {v:.1e}" for k, v in result["same_function_check"].items())
    print(f"Same function (same weights, fp32, dropout off), |BERT - GLM|: {checks}")
    env = result["environment"]
    busiest = max([env["load_average_start"][0], env["load_average_end"][0]]
                  + [max(r["load_average"]) for r in result["rows"] if r["load_average"]])
    if busiest > env["cpus"]:
        print(f"WARNING: the 1-minute load average reached {busiest:.1f} on {env['cpus']} CPUs: other processes "
              "shared the cores, which slows every row and squeezes the speed-ups toward 1 (the side doing less work "
              "per kernel loses more to waiting for descheduled threads); rerun on an idle machine.")
    print(f"{env['threads']} threads (OMP_WAIT_POLICY={env['omp_wait_policy']}), CPU {env['cpu']['model']} "
          f"({env['cpu']['cpu_capability']}, bf16 hardware flags: "
          f"{', '.join(env['cpu']['bf16_hardware_flags']) or 'none'}); load average {env['load_average_start'][0]:.2f} "
          f"at start, {env['load_average_end'][0]:.2f} at end; {env['seconds']:.0f} s")
    print("tok/s: real (non-pad) tokens per second, median over rounds. FLOPs x: the peer's matmul FLOPs (padding, "
          "full-vocabulary decoder on every position, every query of the last layer) / useful FLOPs -- the speed-up "
          "GLM gets at BERT's FLOP/s; beyond it GLM must run faster per FLOP than BERT. MFU: useful FLOP/s "
          "(real tokens only, MLM "
          "head on masked tokens only, backward = 2x forward) / matmul peak in the same dtype. MB: peak resident "
          "memory above the pre-model baseline, fresh process per side. steps: rounds x batches per side.")


def write_json(result: dict, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".bench-", suffix=".json", dir=directory)
    try:
        with os.fdopen(handle, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [MEMORY_WORKER]:
        return memory_worker(argv[1])
    from transformers import HfArgumentParser

    parser = HfArgumentParser(BenchmarkArguments)
    parser.prog = "bench_vs_bert.py"
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    result = run(args)
    print_report(result)
    if args.json:
        write_json(result, args.json)
        print(f"Results written to {os.path.abspath(args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
