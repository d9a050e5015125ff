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
    """sha1 of a plan's ``repr``: pins every draw of a plan made before an engine was added."""
    return hashlib.sha1(repr(plan).encode()).hexdigest()
