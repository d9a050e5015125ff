"""One-sentence errors for bad input: configs, checkpoints, files (the CLIs print them and exit 2)."""

from __future__ import annotations

__all__ = ["ConfigError", "InputError"]


class ConfigError(ValueError):
    """A configuration that cannot work; the message is one sentence naming the key."""


class InputError(ValueError):
    """A bad input file or value (missing, corrupt, wrong kind); the message is one sentence."""
