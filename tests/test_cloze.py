"""N-gram cloze baselines: the unigram guess is the most frequent token, the bigram guess reads the neighbours."""

import numpy as np
import pytest

from glm_hf.cloze import NgramCloze

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIAL = (PAD, CLS, SEP, MASK)


def test_bigram_guess_uses_both_neighbours_and_skips_masked_ones():
    # 10 is always followed by 11, 11 by 12; 20 is the most frequent token.
    text = [[CLS, 10, 11, 12, SEP]] * 5 + [[CLS, 20, 20, 20, 20, 20, 20, 20, 20, SEP]] * 5
    cloze = NgramCloze(text, vocab_size=30, special_ids=SPECIAL)
    assert cloze.most_frequent == 20
    assert cloze.guess(np.array([CLS, 10, MASK, 12, SEP]), 2) == 11  # both sides
    assert cloze.guess(np.array([CLS, 10, MASK, MASK, SEP]), 2) == 11  # left only
    assert cloze.guess(np.array([CLS, MASK, MASK, 12, SEP]), 2) == 11  # right only
    assert cloze.guess(np.array([CLS, MASK, SEP]), 1) == 20  # no visible neighbour: unigram


def test_score_counts_hits_on_masked_positions_only():
    text = [[CLS, 10, 11, 12, SEP]] * 5 + [[CLS, 20, 20, 20, SEP]] * 5
    cloze = NgramCloze(text, vocab_size=30, special_ids=SPECIAL)
    masked = [([CLS, 10, MASK, 12, SEP], [-100, -100, 11, -100, -100]),
              ([CLS, 20, MASK, 20, SEP], [-100, -100, 20, -100, -100])]
    scores = cloze.score(masked)
    assert scores == {"unigram_cloze_accuracy": 0.5, "bigram_cloze_accuracy": 1.0, "cloze_positions": 2}
    with pytest.raises(ValueError, match="no masked position"):
        cloze.score([([CLS, 10, SEP], [-100, -100, -100])])


def test_needs_real_text():
    with pytest.raises(ValueError, match="at least one non-special token"):
        NgramCloze([[CLS, SEP]], vocab_size=30, special_ids=SPECIAL)
