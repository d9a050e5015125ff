"""The spoken-digits request plan with every other engine's presence check stubbed: a plan needs no engine."""

from __future__ import annotations

import hashlib

from speech.data.digits import DigitsSpec, make_requests

CHECKS = ("pico.require_pico", "sam.require_sam", "sphinx.require_sphinx", "dectalk.require_dectalk")


def request_plan(monkeypatch, sizes: dict[str, int], **shares: float) -> list:
    """:func:`make_requests` of a :class:`DigitsSpec` of ``sizes`` and engine ``shares``."""
    for check in CHECKS:
        monkeypatch.setattr(f"speech.data.{check}", lambda: None)
    return make_requests(DigitsSpec(num_utterances=sizes, **shares))


def plan_digest(plan: list) -> str:
    """sha1 of a plan's ``repr``: pins every draw of a plan made before an engine was added (an utterance
    without word paces reads as it did before :attr:`Utterance.word_rates` existed)."""
    return hashlib.sha1(repr(plan).replace(", word_rates=()", "").encode()).hexdigest()


def assert_only_the_added_rows_move(plain: list, before: list, after: list, *, added: str, kept: str) -> None:
    """``after`` is ``before`` (eSpeak and the engine whose voices start with ``kept``) with a share given to the
    engine whose voices start with ``added``: texts and splits never move, ``kept``'s rows stay as they were,
    and every row left to eSpeak is the one of ``plain`` (eSpeak alone)."""
    for (s0, t0, u0), (s1, t1, u1), (s2, t2, u2) in zip(plain, before, after, strict=True):
        assert (s0, t0) == (s1, t1) == (s2, t2)
        if u1.voice.startswith(kept):
            assert u1 == u2
        elif not u2.voice.startswith(added):
            assert u0 == u2


def assert_first_epoch_draws_only(dm, rows: set[int], total: int) -> None:
    """``dm``'s training batches hold ``rows`` alone in the first epoch and all ``total`` rows in the second."""
    sampler = dm.train_dataloader().batch_sampler
    assert {i for b in sampler for i in b} == rows
    sampler.set_epoch(1)
    assert sorted(i for b in sampler for i in b) == list(range(total))
