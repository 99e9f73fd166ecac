"""N-gram cloze baselines: what unigram and bigram counts guess at the positions an MLM evaluation masks.

A small MLM first learns the unigram distribution (always guess the most frequent token), then local co-occurrence,
and only later anything a bigram table cannot know. Scoring the same masked positions with count models fitted on
the training text tells a reader at which of these stages a model is: an MLM accuracy at the unigram line has learned
nothing a classifier could use; one above the bigram line uses context beyond the neighbouring tokens.

The bigram guess for a masked token ``x`` between visible neighbours ``l`` and ``r`` maximises
``log P(x | l) + log P(r | x)`` (add-``smoothing`` estimates; a neighbour that is itself masked or a special token is
left out). Counts are kept sparse: a 21k vocabulary would need a 21k x 21k dense table.
"""

from collections.abc import Iterable

import numpy as np
from scipy import sparse


class NgramCloze:
    def __init__(self, token_id_lists: Iterable, vocab_size: int, special_ids: Iterable[int], smoothing: float = 0.1):
        self.vocab_size, self.smoothing = vocab_size, smoothing
        self.special = np.zeros(vocab_size, dtype=bool)
        self.special[list(special_ids)] = True
        unigrams = np.zeros(vocab_size, dtype=np.float64)
        left, right = [], []
        for ids in token_id_lists:
            ids = np.asarray(ids, dtype=np.int64)
            unigrams += np.bincount(ids, minlength=vocab_size)[:vocab_size]
            keep = ~self.special[ids[:-1]] & ~self.special[ids[1:]]
            left.append(ids[:-1][keep])
            right.append(ids[1:][keep])
        unigrams[self.special] = 0
        if unigrams.sum() == 0:
            raise ValueError("the n-gram cloze baseline needs training text with at least one non-special token")
        self.unigrams = unigrams
        left, right = np.concatenate(left or [[]]), np.concatenate(right or [[]])
        counts = sparse.coo_matrix(
            (np.ones(len(left)), (left.astype(np.int64), right.astype(np.int64))), shape=(vocab_size, vocab_size)
        )
        self.bigrams = counts.tocsr()  # rows: left token
        self.bigrams_by_right = counts.tocsc()
        self.row_totals = np.asarray(self.bigrams.sum(1)).ravel()
        self.most_frequent = int(np.argmax(unigrams))

    def _log_next(self, left: int) -> np.ndarray:
        """log P(x | left) for every x."""
        row = np.asarray(self.bigrams.getrow(left).todense()).ravel()
        return np.log(row + self.smoothing) - np.log(self.row_totals[left] + self.smoothing * self.vocab_size)

    def _log_previous_given(self, right: int) -> np.ndarray:
        """log P(right | x) for every x."""
        column = np.asarray(self.bigrams_by_right.getcol(right).todense()).ravel()
        return np.log(column + self.smoothing) - np.log(self.row_totals + self.smoothing * self.vocab_size)

    def guess(self, masked_ids: np.ndarray, position: int) -> int:
        """The bigram guess for ``masked_ids[position]`` from its visible neighbours (unigram when it has none)."""
        scores = np.log(self.unigrams + self.smoothing)
        has_context = False
        if position > 0 and not self.special[masked_ids[position - 1]]:
            scores, has_context = self._log_next(int(masked_ids[position - 1])), True
        if position + 1 < len(masked_ids) and not self.special[masked_ids[position + 1]]:
            right = self._log_previous_given(int(masked_ids[position + 1]))
            scores = scores + right if has_context else right + np.log(self.unigrams + self.smoothing)
        scores[self.special] = -np.inf
        return int(np.argmax(scores))

    def score(self, masked_examples: Iterable[tuple], max_positions: int = 5000) -> dict:
        """Unigram and bigram cloze accuracy on ``(masked input_ids, labels)`` pairs (labels -100 where not masked),
        over at most ``max_positions`` masked positions (in order)."""
        unigram_hits = bigram_hits = total = 0
        for input_ids, labels in masked_examples:
            input_ids, labels = np.asarray(input_ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)
            for position in np.flatnonzero(labels != -100):
                if total == max_positions:
                    break
                target = int(labels[position])
                unigram_hits += target == self.most_frequent
                bigram_hits += target == self.guess(input_ids, int(position))
                total += 1
        if total == 0:
            raise ValueError("no masked position to score the n-gram cloze baseline on")
        return {"unigram_cloze_accuracy": unigram_hits / total, "bigram_cloze_accuracy": bigram_hits / total,
                "cloze_positions": total}
