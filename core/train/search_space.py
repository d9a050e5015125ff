"""The search space of ``hparams_search.params``: parsed into Optuna distributions, checked key by key, and a
trial's values written back as Hydra overrides (one sentence for anything that cannot work)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from core.train.errors import ConfigError

__all__ = ["distribution", "dotted_keys", "import_optuna", "leaves", "override_key", "override_value",
           "param_overrides"]

SPEC_KEYS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}
INSTALL = "install the 'hpo' extra: pip install -e '.[hpo]'"


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"hparams_search needs optuna; {INSTALL}.") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search prints one line per trial instead
    return optuna


def leaves(node: Any, prefix: str = "") -> dict[str, dict]:
    """``params`` as ``{dotted key: spec}``: a spec is a mapping with a string ``type``; other mappings nest,
    so ``{module: {optimizer: {lr: spec}}}`` and ``{module.optimizer.lr: spec}`` name the same key."""
    out = {}
    for key, value in (node or {}).items():
        name = f"{prefix}{key}"
        if not isinstance(value, dict):
            raise ConfigError(f"hparams_search.params.{name} must be a mapping such as "
                              f"{{type: float, low: 1.0e-4, high: 1.0e-2}}, not {value!r}.")
        if isinstance(value.get("type"), str):
            out[name] = value
        else:
            out.update(leaves(value, name + "."))
    return out


def _number(name: str, spec: dict, key: str, integer: bool) -> float | int:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and int(value) != value):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"hparams_search.params.{name}.{key} must be {kind}, not {value!r}.")
    return int(value) if integer else float(value)


def distribution(optuna, name: str, spec: dict):
    kind = spec["type"]
    if kind not in SPEC_KEYS:
        raise ConfigError(f"hparams_search.params.{name}.type must be float, int or categorical, not {kind!r}.")
    extra = sorted(set(spec) - SPEC_KEYS[kind] - {"type"})
    if extra:
        raise ConfigError(f"hparams_search.params.{name}: a {kind} parameter takes "
                          f"{', '.join(sorted(SPEC_KEYS[kind]))}, not {', '.join(extra)}.")
    dist = optuna.distributions
    try:
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ValueError("choices must be a non-empty list")
            return dist.CategoricalDistribution(choices)
        integer = kind == "int"
        low, high = _number(name, spec, "low", integer), _number(name, spec, "high", integer)
        options = {"log": bool(spec.get("log", False))}
        if spec.get("step") is not None:
            options["step"] = _number(name, spec, "step", integer)
        return (dist.IntDistribution if integer else dist.FloatDistribution)(low, high, **options)
    except (ValueError, TypeError) as exc:  # optuna's word on low > high, log with low <= 0, ...
        raise ConfigError(f"hparams_search.params.{name}: {str(exc).strip().rstrip('.')}.") from None


def dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{prefix}{k}"
            yield from dotted_keys(v, f"{prefix}{k}.")


def override_value(value: Any) -> str:
    """A value in Hydra's override grammar; strings that would read as another type are quoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z_/.][\w./+\-:]*", text) and text.lower() not in ("true", "false", "null"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def param_overrides(params: dict[str, Any]) -> list[str]:
    return [f"{k}={override_value(v)}" for k, v in params.items()]


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")
