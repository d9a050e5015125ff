"""CTC decoding on hand-made emissions: greedy, built-in prefix beam search, brute-force reference."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from speech.decode import decode, flashlight_available, greedy_decode, prefix_beam_search

VOCAB = ["<b>", " ", "a", "b"]


def one_hot_path(path: list[int], v: int = 4, p: float = 0.9) -> torch.Tensor:
    """Log-probs (1, N, V) putting probability ``p`` on ``path[t]`` at frame ``t``."""
    lp = torch.full((len(path), v), (1 - p) / (v - 1))
    lp[torch.arange(len(path)), torch.tensor(path)] = p
    return lp.log()[None]


def collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    out = [k for k, _ in itertools.groupby(path)]
    return tuple(k for k in out if k != 0)


def brute_force_best(lp: torch.Tensor) -> tuple[int, ...]:
    """Most probable labelling by summing the probabilities of all frame paths (tiny N, V only)."""
    n, v = lp.shape
    scores: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(v), repeat=n):
        s = float(sum(lp[t, c] for t, c in enumerate(path)))
        lab = collapse(path)
        scores[lab] = math.log(math.exp(scores[lab]) + math.exp(s)) if lab in scores else s
    return max(scores, key=scores.get)


def test_greedy_merges_repeats_and_drops_blanks():
    lp = one_hot_path([2, 2, 0, 2, 3, 3, 0, 1, 3])  # a a _ a b b _ ' ' b
    assert greedy_decode(lp, torch.tensor([9])) == [[2, 2, 3, 1, 3]]
    assert decode(lp, torch.tensor([9]), VOCAB) == ["aab b"]
    # only the valid frames count
    assert greedy_decode(lp, torch.tensor([3])) == [[2]]


def test_beam_finds_labelling_that_greedy_misses():
    # two frames, P(blank) = 0.6, P(a) = 0.4: best path "" (0.36) but P("a") = 0.64
    lp = torch.tensor([[0.6, 0.0, 0.4, 0.0]] * 2).clamp_min(1e-12).log()[None]
    n = torch.tensor([2])
    assert greedy_decode(lp, n) == [[]]
    assert prefix_beam_search(lp, n, beam_size=4) == [[2]]
    assert decode(lp, n, VOCAB, beam_size=4, backend="builtin") == ["a"]


@pytest.mark.parametrize("seed", range(6))
def test_beam_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(5, 3, generator=g) * 1.5).log_softmax(-1)
    best = prefix_beam_search(lp[None], torch.tensor([5]), beam_size=64, prune=-math.inf)[0]
    assert tuple(best) == brute_force_best(lp)


def test_beam_batch_respects_lengths():
    lp = torch.cat([one_hot_path([2, 0, 3, 0]), one_hot_path([3, 3, 0, 0])])
    assert prefix_beam_search(lp, torch.tensor([4, 2]), beam_size=3) == [[2, 3], [3]]


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        decode(one_hot_path([2]), torch.tensor([1]), VOCAB, beam_size=2, backend="nope")


@pytest.mark.skipif(not flashlight_available(), reason="flashlight-text (optional) is not installed")
def test_flashlight_agrees_with_builtin():
    g = torch.Generator().manual_seed(0)
    lp = (torch.randn(2, 12, 4, generator=g) * 3).log_softmax(-1)
    n = torch.tensor([12, 9])
    assert decode(lp, n, VOCAB, beam_size=8, backend="flashlight") == decode(lp, n, VOCAB, beam_size=8,
                                                                            backend="builtin")


def _spells_words(lab: tuple[int, ...], words: set[tuple[int, ...]]) -> bool:
    if not lab:
        return True
    parts, cur = [], []
    for t in lab:
        if t == 1:
            parts.append(tuple(cur))
            cur = []
        else:
            cur.append(t)
    parts.append(tuple(cur))
    return all(p in words for p in parts)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_lexicon_beam_search_finds_the_best_in_lexicon_labelling(seed):
    """Against brute force over every frame path, restricted to labellings spelled from the lexicon."""
    from speech.decode import Lexicon

    torch.manual_seed(seed)
    lp = torch.randn(5, 4).mul(2).log_softmax(-1)
    lexicon = Lexicon(["ab", "b"], VOCAB)
    n, v = lp.shape
    scores: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(v), repeat=n):
        lab = collapse(path)
        if _spells_words(lab, lexicon.words):
            s = float(sum(lp[t, c] for t, c in enumerate(path)))
            scores[lab] = math.log(math.exp(scores[lab]) + math.exp(s)) if lab in scores else s
    want = max(scores, key=scores.get)
    got = prefix_beam_search(lp[None], torch.tensor([5]), beam_size=256, prune=-math.inf, lexicon=lexicon)[0]
    assert tuple(got) == want


def test_lexicon_turns_a_misspelling_into_the_nearest_word():
    lp = one_hot_path([2, 0, 2, 3])  # "a" then "ab" collapses to "aab": not a word
    assert decode(lp, torch.tensor([4]), VOCAB) == ["aab"]
    assert decode(lp, torch.tensor([4]), VOCAB, lexicon=["ab", "b"]) == ["ab"]
    with pytest.raises(ValueError, match="cannot emit"):
        decode(lp, torch.tensor([4]), VOCAB, lexicon=["abc"])


def test_lexicon_search_cut_mid_word_keeps_the_whole_words_before_it():
    from speech.decode import Lexicon

    lp = one_hot_path([2, 3, 1, 3, 1, 2])  # "ab b a": the recording ends inside a word ("a" alone is none)
    lexicon = Lexicon(["ab", "b"], VOCAB)
    got = prefix_beam_search(lp, torch.tensor([6]), beam_size=1, lexicon=lexicon)[0]
    assert got == [2, 3, 1, 3]  # "ab b", not nothing
    assert prefix_beam_search(one_hot_path([2]), torch.tensor([1]), beam_size=1, lexicon=lexicon)[0] == []
