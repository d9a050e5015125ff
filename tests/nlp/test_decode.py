"""Greedy and beam search against hand-computed cases and brute-force enumeration."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from nlp.decode import beam_search, greedy_search

PAD, UNK, BOS, EOS, A, B = range(6)
V = 6


def table_step(table: dict[tuple[int, ...], dict[int, float]], rows_per_item: int = 1):
    """Step function from a table ``prefix (without BOS) -> {token: prob}``; default: always </s>."""

    def step(prefix: torch.Tensor) -> torch.Tensor:
        out = torch.full((len(prefix), V), float("-inf"))
        for r, row in enumerate(prefix.tolist()):
            gen = tuple(t for t in row[1:] if t != PAD)
            for tok, p in table.get(gen, {EOS: 1.0}).items():
                out[r, tok] = math.log(p)
        return out

    return step


def test_beam_finds_what_greedy_misses():
    # greedy: a (0.6) then </s> (0.4): P = 0.24; beam 2 keeps "b", whose </s> has 0.9: P = 0.36
    table = {(): {A: 0.6, B: 0.4}, (A,): {EOS: 0.4, A: 0.3, B: 0.3}, (B,): {EOS: 0.9, A: 0.05, B: 0.05}}
    step = table_step(table)
    greedy = greedy_search(step, 1, max_len=5, bos=BOS, eos=EOS, pad=PAD)
    assert greedy.tolist() == [[A, EOS]]
    out, score = beam_search(step, 1, beam_size=2, max_len=5, bos=BOS, eos=EOS, pad=PAD, length_penalty=0.0)
    assert out.tolist() == [[B, EOS]]
    assert score.item() == pytest.approx(math.log(0.36), abs=1e-6)


def test_length_penalty_hand_computed():
    # "</s>" alone: log 0.5 = -0.693 (length 1); "a a </s>": log(0.5 * 1 * 0.9) = -0.799 (length 3)
    table = {(): {EOS: 0.5, A: 0.5}, (A,): {A: 1.0}, (A, A): {EOS: 0.9, A: 0.1}}
    step = table_step(table)
    raw, s0 = beam_search(step, 1, beam_size=2, max_len=6, bos=BOS, eos=EOS, pad=PAD, length_penalty=0.0)
    assert raw.tolist() == [[EOS, PAD, PAD]] and s0.item() == pytest.approx(math.log(0.5), abs=1e-6)
    avg, s1 = beam_search(step, 1, beam_size=2, max_len=6, bos=BOS, eos=EOS, pad=PAD, length_penalty=1.0)
    assert avg.tolist() == [[A, A, EOS]] and s1.item() == pytest.approx(math.log(0.45) / 3, abs=1e-6)


def _random_tables(n: int, depth: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    tables = []
    for _ in range(n):
        table = {}
        for length in range(depth):
            for prefix in itertools.product([A, B], repeat=length):
                p = torch.rand(3, generator=g) + 0.05
                p = (p / p.sum()).tolist()
                table[prefix] = {EOS: p[0], A: p[1], B: p[2]}
        tables.append(table)
    return tables


def _brute_force(table: dict, max_len: int, alpha: float) -> tuple[list[int], float]:
    best, best_score = None, -math.inf
    for length in range(1, max_len + 1):
        for body in itertools.product([A, B], repeat=length - 1):
            for last in ([EOS] if length < max_len else [EOS, A, B]):
                seq, lp = list(body) + [last], 0.0
                for i, tok in enumerate(seq):
                    lp += math.log(table.get(tuple(seq[:i]), {EOS: 1.0}).get(tok, 0.0) or 1e-300)
                s = lp / length**alpha
                if s > best_score:
                    best, best_score = seq, s
    return best, best_score


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_is_exhaustive_and_batched(alpha):
    """With a beam wider than the number of hypotheses, beam search is exact; items in one batch
    (each its own table) do not interact."""
    depth, k, items = 3, 16, 3
    tables = _random_tables(items, depth, seed=1)
    steps = [table_step(t) for t in tables]

    def step(prefix):  # rows b*K + k belong to item b
        return torch.cat([steps[r // k](prefix[r:r + 1]) for r in range(len(prefix))])

    out, score = beam_search(step, items, beam_size=k, max_len=depth, bos=BOS, eos=EOS, pad=PAD,
                             length_penalty=alpha)
    for b, table in enumerate(tables):
        want, want_score = _brute_force(table, depth, alpha)
        got = [t for t in out[b].tolist() if t != PAD]
        assert got == want
        assert score[b].item() == pytest.approx(want_score, abs=1e-5)


def test_beam_one_equals_greedy_batched():
    tables = _random_tables(4, 4, seed=2)
    steps = [table_step(t) for t in tables]

    def step(prefix):
        return torch.cat([steps[r](prefix[r:r + 1]) for r in range(len(prefix))])

    greedy = greedy_search(step, 4, max_len=4, bos=BOS, eos=EOS, pad=PAD)
    beam, _ = beam_search(step, 4, beam_size=1, max_len=4, bos=BOS, eos=EOS, pad=PAD, length_penalty=0.0)
    assert beam.tolist() == greedy.tolist()
