"""Masking collator for MLM + NSP pretraining.

:class:`DataCollatorForPreTraining` takes the examples of :func:`glm_hf.pretraining_data.create_nsp_examples`
(``input_ids``, ``token_type_ids``, ``next_sentence_label``, optionally ``word_continuation``), masks them, pads
them to the longest in the batch (rounded up to ``pad_to_multiple_of``) and returns ``input_ids``,
``token_type_ids``, ``attention_mask``, ``labels`` (-100 where no prediction is asked) and ``next_sentence_label``.

Masking is BERT's: ``mlm_probability`` of the maskable tokens (never ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]`` or any
other special token) are chosen -- ``round(n * mlm_probability)`` of them, at least one -- and of those 80% become
``[MASK]``, 10% a random token, 10% stay as they are. With ``whole_word_mask``, whole words are chosen (the tokens
of a word are those joined by ``word_continuation`` = 1, e.g. a jieba word), never more than the token budget.

Masking happens per example, before padding, so it is the same whatever the batch and its padding. The random
choices of an example come from a generator seeded with (``seed``, ``epoch``, a hash of the example): the same
example is masked the same way in a 1-process and an N-process run, and after resuming from a checkpoint, while a
new ``epoch`` (see :class:`MaskingEpochCallback`) draws new masks (dynamic masking). An example may carry its own
``epoch`` (a stream's pass over the corpus, :mod:`glm_hf.streaming`), which then takes the collator's place. Examples
that already carry ``labels`` (e.g. an evaluation set masked once with :func:`mask_dataset`) are only padded.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback


@dataclass
class DataCollatorForPreTraining:
    tokenizer: PreTrainedTokenizerBase
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    whole_word_mask: bool = False
    pad_to_multiple_of: int | None = None
    seed: int = 42
    epoch: int = 0
    return_tensors: str = "pt"
    _special_ids: np.ndarray = field(init=False, repr=False)
    _random_token_ids: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        if self.tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask_token: masked language modelling needs one ([MASK])")
        if self.tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad_token: dynamic padding needs one ([PAD])")
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        for name in ("mask_replace_prob", "random_replace_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError(
                "mask_replace_prob + random_replace_prob must be <= 1 (the rest keeps the original token), got "
                f"{self.mask_replace_prob} + {self.random_replace_prob}"
            )
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be a positive integer or None, got {self.pad_to_multiple_of}")
        if self.return_tensors != "pt":
            raise ValueError(f"return_tensors must be 'pt', got {self.return_tensors!r}")
        self._special_ids = np.array(sorted(set(self.tokenizer.all_special_ids)), dtype=np.int64)
        vocab_ids = np.arange(len(self.tokenizer), dtype=np.int64)
        self._random_token_ids = vocab_ids[~np.isin(vocab_ids, self._special_ids)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    # -- masking ----------------------------------------------------------------------------------------------

    def example_rng(self, input_ids, epoch: int | None = None) -> np.random.Generator:
        """The generator for one example: seeded by (seed, epoch -- the collator's unless given --, hash of its token
        ids)."""
        digest = hashlib.blake2b(np.asarray(input_ids, dtype=np.int64).tobytes(), digest_size=8).digest()
        epoch = self.epoch if epoch is None else int(epoch)
        return np.random.default_rng([self.seed, epoch, int.from_bytes(digest, "little")])

    def mask_example(self, input_ids, word_continuation=None, rng: np.random.Generator | None = None):
        """Masked copy of ``input_ids`` and its labels (original id where masked, -100 elsewhere), as numpy arrays."""
        ids = np.asarray(input_ids, dtype=np.int64)
        rng = self.example_rng(ids) if rng is None else rng
        labels = np.full_like(ids, -100)
        maskable = ~np.isin(ids, self._special_ids)
        num_maskable = int(maskable.sum())
        if num_maskable == 0:
            return ids.copy(), labels

        # Words: tokens joined by word_continuation (each token alone without whole-word masking). A special token
        # inside a word ([UNK]) is left out of it; the word's other tokens are still masked together.
        if self.whole_word_mask:
            if word_continuation is None:
                raise ValueError(
                    "whole_word_mask needs a 'word_continuation' column: build the examples with "
                    "tokenize_documents(..., whole_word_mask=True)"
                )
            continues = np.asarray(word_continuation, dtype=bool)
            if continues.shape != ids.shape:
                raise ValueError(f"word_continuation has {continues.shape[0]} flags for {ids.shape[0]} tokens")
            starts = ~continues
            starts[0] = True
        else:
            starts = np.ones(len(ids), dtype=bool)
        word_ids = np.cumsum(starts) - 1  # index of the word each token belongs to
        positions = np.flatnonzero(maskable)
        words = np.split(positions, np.flatnonzero(np.diff(word_ids[positions])) + 1)

        budget = max(1, int(round(num_maskable * self.mlm_probability)))
        chosen: list[np.ndarray] = []
        covered = 0
        for word_index in rng.permutation(len(words)):
            word = words[word_index]
            if covered + len(word) > budget:
                continue  # BERT: skip a word that would overshoot the budget, try smaller ones
            chosen.append(word)
            covered += len(word)
            if covered == budget:
                break
        if not chosen:  # every word is longer than the budget: take the shortest one
            chosen = [min(words, key=len)]
        selected = np.concatenate(chosen)

        labels[selected] = ids[selected]
        masked = ids.copy()
        # One draw per word, so that a word is either all [MASK], all random or all kept.
        draws = np.repeat(rng.random(len(chosen)), [len(word) for word in chosen])
        to_mask = selected[draws < self.mask_replace_prob]
        random_limit = self.mask_replace_prob + self.random_replace_prob
        to_random = selected[(draws >= self.mask_replace_prob) & (draws < random_limit)]
        masked[to_mask] = self.tokenizer.mask_token_id
        if len(to_random):
            masked[to_random] = self._random_token_ids[rng.integers(len(self._random_token_ids), size=len(to_random))]
        return masked, labels

    # -- batching ---------------------------------------------------------------------------------------------

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        rows = []
        for feature in features:
            if "labels" in feature:
                input_ids, labels = np.asarray(feature["input_ids"]), np.asarray(feature["labels"])
            else:
                rng = self.example_rng(feature["input_ids"], feature.get("epoch"))
                input_ids, labels = self.mask_example(feature["input_ids"], feature.get("word_continuation"), rng)
            token_type_ids = feature.get("token_type_ids")
            rows.append((input_ids, labels, np.zeros_like(input_ids) if token_type_ids is None else token_type_ids))

        length = max(len(row[0]) for row in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {
            "input_ids": torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long),
            "token_type_ids": torch.zeros((len(rows), length), dtype=torch.long),
            "attention_mask": torch.zeros((len(rows), length), dtype=torch.long),
            "labels": torch.full((len(rows), length), -100, dtype=torch.long),
        }
        left = self.tokenizer.padding_side == "left"
        for row, (input_ids, labels, token_type_ids) in enumerate(rows):
            n = len(input_ids)
            span = slice(length - n, length) if left else slice(0, n)
            batch["input_ids"][row, span] = torch.as_tensor(input_ids, dtype=torch.long)
            batch["labels"][row, span] = torch.as_tensor(labels, dtype=torch.long)
            batch["token_type_ids"][row, span] = torch.as_tensor(np.asarray(token_type_ids), dtype=torch.long)
            batch["attention_mask"][row, span] = 1
        if "next_sentence_label" in features[0]:
            batch["next_sentence_label"] = torch.tensor([int(f["next_sentence_label"]) for f in features])
        return batch


def mask_dataset(
    dataset, collator: DataCollatorForPreTraining, *, num_proc: int | None = None, desc: str | None = None
):
    """Mask every example once (``input_ids`` masked, ``labels`` added, ``word_continuation`` dropped).

    Used for the evaluation set, so that every evaluation of a run (and of runs with the same seed) scores the
    same masked positions.
    """

    def mask_batch(batch):
        flags = batch.get("word_continuation") or [None] * len(batch["input_ids"])
        masked = [collator.mask_example(ids, wc) for ids, wc in zip(batch["input_ids"], flags)]
        return {"input_ids": [m.tolist() for m, _ in masked], "labels": [lab.tolist() for _, lab in masked]}

    remove = [c for c in ("word_continuation",) if c in dataset.column_names]
    return dataset.map(
        mask_batch, batched=True, remove_columns=remove, num_proc=num_proc, desc=desc or "Masking the evaluation set"
    )


def unigram_distribution(token_id_lists, tokenizer) -> np.ndarray:
    """Relative frequency of each token id in ``token_id_lists`` (special tokens: 0), over ``len(tokenizer)`` ids."""
    counts = np.zeros(len(tokenizer), dtype=np.float64)
    for ids in token_id_lists:
        counts += np.bincount(np.asarray(ids, dtype=np.int64), minlength=len(counts))[: len(counts)]
    counts[sorted(set(tokenizer.all_special_ids))] = 0
    if counts.sum() == 0:
        raise ValueError("the corpus has no token other than special tokens: no unigram distribution to sample from")
    return counts / counts.sum()


class MaskingRateCallback(TrainerCallback):
    """A linear masking-rate schedule (Ankner et al. 2023: high early, lower late): before each optimizer step the
    collator's ``mlm_probability`` is set from ``start`` at step 0 to ``end`` at ``max_steps``. The rate is a function
    of the step alone, so a resumed run masks as the uninterrupted one did."""

    def __init__(self, collator: DataCollatorForPreTraining, start: float, end: float):
        self.collator, self.start, self.end = collator, start, end

    def rate_at(self, step: int, max_steps: int) -> float:
        return self.start + (self.end - self.start) * min(1.0, step / max(1, max_steps))

    def on_train_begin(self, args, state, control, **kwargs):
        self.collator.mlm_probability = self.rate_at(state.global_step, state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        self.collator.mlm_probability = self.rate_at(state.global_step, state.max_steps)


class MaskingEpochCallback(TrainerCallback):
    """Gives the collator the epoch at the start of each epoch, so every epoch masks examples anew."""

    def __init__(self, collator: DataCollatorForPreTraining):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch is ``epoch + step / steps_in_epoch``: its integer part is the epoch, also after a resume.
        self.collator.set_epoch(int(state.epoch or 0))
