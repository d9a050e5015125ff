"""Which attention variants and positional encodings combine: the one check everybody calls.

Capabilities are declared on the classes, never inferred from names:

* an attention class says ``supports_bias`` (it can add a logit bias such as ALiBi's) and
  ``supports_rotary`` (it can rotate queries and keys);
* a positional encoding says its ``kind`` (``additive``, ``rotary``, ``bias``, ``none``), which coordinate
  dimensionalities it ``serves`` (``None``: any; an ``only_ndim=`` argument narrows it) and whether it is
  ``causal_only`` (meaningful only when each token sees its past).

:func:`check_compatible` takes classes, ``functools.partial`` factories (what Hydra's ``_partial_``
builds) or instances, so start-up validation, the blocks and ``mas-compare`` ask the same question.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["IncompatibleError", "check_compatible", "incompatibility", "served_ndims"]


class IncompatibleError(ValueError):
    """An attention / PE / model combination that cannot work; the message is one sentence."""


def _resolve(obj: Any) -> tuple[type | None, dict[str, Any]]:
    """The class behind a class, a partial (with its keywords) or an instance."""
    if obj is None:
        return None, {}
    if isinstance(obj, functools.partial):
        cls, kw = _resolve(obj.func)
        return cls, {**kw, **obj.keywords}
    if isinstance(obj, type):
        return obj, {}
    return type(obj), {"only_ndim": getattr(obj, "only_ndim", None)}


def served_ndims(pe: Any) -> tuple[int, ...] | None:
    """The coordinate dimensionalities ``pe`` serves (``None``: any)."""
    cls, kw = _resolve(pe)
    if cls is None:
        return None
    if kw.get("only_ndim") is not None:
        return (int(kw["only_ndim"]),)
    return getattr(cls, "serves", None)


def incompatibility(attention: Any, pe: Any, *, ndim: int | None = None, causal: bool | None = None,
                    names: tuple[str, str] | None = None) -> str | None:
    """Why ``attention`` with ``pe`` on ``ndim``-D positions cannot work (one sentence), or ``None``.

    ``names`` are the labels used in the sentence (config choices such as ``linear``/``alibi``); by
    default the class names.
    """
    attn_cls, _ = _resolve(attention)
    pe_cls, _ = _resolve(pe)
    a_name, p_name = names or (getattr(attn_cls, "__name__", "?"), getattr(pe_cls, "__name__", "?"))
    kind = getattr(pe_cls, "kind", "none")
    if attn_cls is not None and pe_cls is not None:
        if kind == "bias" and not getattr(attn_cls, "supports_bias", True):
            return (f"attention={a_name} cannot apply the logit bias of pe={p_name}; "
                    "choose another attention= or pe=.")
        if kind == "rotary" and not getattr(attn_cls, "supports_rotary", True):
            return f"attention={a_name} cannot rotate queries and keys for pe={p_name}; choose another attention= or pe=."
    served = served_ndims(pe)
    if ndim is not None and served is not None and ndim not in served:
        return (f"pe={p_name} serves {' or '.join(map(str, served))}-D positions, "
                f"but this model's tokens have {ndim}-D positions.")
    if causal is False and getattr(pe_cls, "causal_only", False):
        return f"pe={p_name} needs causal attention, but this model attends in both directions."
    return None


def check_compatible(attention: Any, pe: Any, *, ndim: int | None = None, causal: bool | None = None,
                     names: tuple[str, str] | None = None) -> None:
    """Raise :class:`IncompatibleError` with :func:`incompatibility`'s sentence when there is one."""
    why = incompatibility(attention, pe, ndim=ndim, causal=causal, names=names)
    if why:
        raise IncompatibleError(why)
