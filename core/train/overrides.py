"""Check a command line before Hydra runs it, so a wrong key, option or value ends in one sentence.

Hydra reports a bad override with several lines of its own text and exit status 1. Every console
script calls :func:`check_command_line` first: it composes the config exactly as the app will (same
search path, same overrides, each value of a ``-m`` sweep) and turns a failure into a
:class:`ConfigError` that names the key and the closest valid ones.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from core.train.errors import ConfigError

__all__ = ["check_command_line", "split_free_text"]

# flags after which Hydra prints something instead of running the app: leave those to Hydra
_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc",
               "--version", "--experimental-rerun"}
_VALUE_FLAGS = {"--config-dir": "dir", "-cd": "dir", "--config-name": "name", "-cn": "name",
                "--config-path": "path", "-cp": "path", "--package": None, "-p": None}
_LIST_ALL_AT_MOST = 40


def split_free_text(args: list[str], key: str) -> tuple[list[str], list[str]]:
    """Take every ``key=<anything>`` out of ``args``: its value is free text that Hydra's grammar must
    not parse (commas, quotes, brackets, any script). A value wrapped in one pair of matching quotes
    (Hydra's own quoting) is unwrapped. Returns ``(remaining args, texts)``."""
    rest, texts = [], []
    for arg in args:
        if arg.startswith(f"{key}="):
            value = arg[len(key) + 1:]
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1].replace("\\" + value[0], value[0])
            texts.append(value)
        else:
            rest.append(arg)
    return rest, texts


def _split_flags(args: list[str]) -> tuple[list[str], dict[str, str], bool] | None:
    """``(overrides, {dir|name|path: value}, multirun)``, or ``None`` when Hydra should answer itself."""
    overrides, flags, multirun, i = [], {}, False, 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if arg.startswith("-") and name in _INFO_FLAGS:
            return None
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg.startswith("-") and name in _VALUE_FLAGS:
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            if _VALUE_FLAGS[name]:
                flags[_VALUE_FLAGS[name]] = value
        else:
            overrides.append(arg)
        i += 1
    return overrides, flags, multirun


def _variants(overrides: list[str], multirun: bool) -> Iterator[list[str]]:
    """The override lists a run (or each job of a ``-m`` sweep, one sweep value at a time) composes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as exc:
        bad = next((o for o in overrides if _unparsable(o)), overrides[0] if overrides else "")
        raise ConfigError(f"cannot read the override {bad!r} ({str(exc).splitlines()[0].strip()}); quote a value "
                          "that holds spaces or special characters, e.g. key='a b'.") from None
    sweeps = [i for i, o in enumerate(parsed) if o.is_sweep_override()] if multirun else []
    values = {}
    for i in sweeps:
        try:
            values[i] = list(parsed[i].sweep_string_iterator())
        except Exception:  # noqa: BLE001 - interval sweeps (Optuna) have no list of values
            return
    first = [f"{parsed[i].get_key_element()}={values[i][0]}" if i in values else o
             for i, o in enumerate(overrides)]
    yield first
    for i in sweeps:
        for v in values[i][1:]:
            yield [f"{parsed[i].get_key_element()}={v}" if j == i else o for j, o in enumerate(first)]


def _unparsable(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        OverridesParser.create().parse_overrides([override])
    except OverrideParseException:
        return True
    return False


def _dotted_keys(node, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}{k}"
            yield path
            yield from _dotted_keys(v, path + ".")


def _group_options(group: str) -> list[str]:
    """Every option of a config group, nested folders included (``experiment`` -> ``vision/digits``)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    loader = GlobalHydra.instance().config_loader()
    found = []
    for name in loader.get_group_options(group, results_filter=ObjectType.CONFIG):
        found.append(name)
    for sub in loader.get_group_options(group, results_filter=ObjectType.GROUP):
        found += [f"{sub}/{n}" for n in _group_options(f"{group}/{sub}")]
    return sorted(found)


def _closest(word: str, candidates: list[str]) -> list[str]:
    return difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)


def _compose(config_name: str, overrides: list[str]) -> DictConfig:
    from hydra import compose

    return compose(config_name, overrides=overrides, return_hydra_config=True)


def _sentence(exc: Exception, config_name: str, overrides: list[str], app: str) -> str:
    """One sentence for a failed composition, naming the key and the nearest valid ones."""
    text = str(exc).strip()
    missing = re.search(r"Could not find '([^']+)'", text)
    if missing:
        path = missing.group(1)
        for o in overrides:
            key, _, value = o.lstrip("+~").partition("=")
            if f"{key}/{value}" == path:
                options = _group_options(key)
                near = _closest(value, options)
                hint = f"did you mean {' or '.join(near)}? " if near else ""
                listed = ", ".join(options) if len(options) <= _LIST_ALL_AT_MOST else f"see conf/{key}/"
                return f"{key}={value}: there is no such {key} config; {hint}choose one of {listed}."
        return f"there is no config '{path}' in the config tree."
    unknown = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if unknown:
        key = unknown.group(1)
        others = [o for o in overrides if not o.lstrip("+~").startswith(key + "=")]
        try:
            known = list(_dotted_keys(OmegaConf.to_container(_compose(config_name, others), resolve=False)))
        except Exception:  # noqa: BLE001 - other overrides are wrong too: suggest from the plain config
            known = list(_dotted_keys(OmegaConf.to_container(_compose(config_name, []), resolve=False)))
        near = _closest(key, known)
        hint = f"did you mean {' or '.join(near)}?" if near else f"write +{key}=... to add a new key."
        return f"{key} is not a key of {app}'s config; {hint}"
    exists = re.search(r"An item is already at '([^']+)'", text)
    if exists:
        return f"+{exists.group(1)}: that key already exists; write {exists.group(1)}=<value> to change it."
    ambiguous = re.search(r"Ambiguous value for argument '([^']+)'", text)
    if ambiguous:
        return (f"{ambiguous.group(1)} holds comma-separated values: quote it (key='a,b'), make it a list "
                "(key=[a,b]), or add -m to sweep over them.")
    return f"the command line does not compose into a config: {text.splitlines()[0]}"


def check_command_line(config_name: str, args: list[str], app: str) -> None:
    """Compose ``config_name`` with ``args`` (a console script's ``sys.argv[1:]``) as Hydra will.

    Raises:
        ConfigError: one sentence for an unknown key, a missing group option, an unreadable or ambiguous value.
    """
    from hydra import initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    split = _split_flags(args)
    if split is None:
        return
    overrides, flags, multirun = split
    config_name = flags.get("name", config_name)
    user_dir = Path(flags["dir"]).expanduser().resolve() if flags.get("dir") else None
    own_primary = user_dir is not None and (user_dir / f"{config_name}.yaml").is_file()  # e.g. a search's best.yaml
    if user_dir is not None:
        overrides = [*overrides, "hydra.searchpath=[pkg://conf]" if own_primary else f"hydra.searchpath=[file://{user_dir}]"]
    GlobalHydra.instance().clear()
    try:
        with (initialize_config_dir(str(user_dir), version_base="1.3") if own_primary
              else initialize_config_module(config_module="conf", version_base="1.3")):
            for variant in _variants(overrides, multirun):
                try:
                    _compose(config_name, variant)
                except ConfigError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every Hydra/OmegaConf composition error
                    raise ConfigError(_sentence(exc, config_name, variant, app)) from None
    finally:
        GlobalHydra.instance().clear()
