"""Drawn eSpeak NG voices: many more training speakers than the wheel's variant files.

The shipped variants move formants together by a few percent; speakers (and other synthesisers) differ
far more, and not uniformly: a child's first formant sits up to half as high again as a man's, while the
second and third move by less. Each drawn voice is an eSpeak variant file (``formant N freq height
width`` scales each formant independently; ``klatt N`` picks one of eSpeak's Klatt sources instead of its
own; ``pitch``, ``flutter``, ``roughness``, ``voicing``, ``breath``, ``consonants`` and ``echo`` vary the
source and the room), written into an overlay of the wheel's data folder that eSpeak reads like the
original one: every other file there is a symbolic link, so nothing is copied or changed in the wheel.

Only training uses drawn voices; validation and test keep their held-out shipped variants.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

__all__ = ["FORMANT_SCALE", "MAX_VOICES", "check_count", "random_variant", "random_voice_names", "voice_data_dir"]

#: eSpeak NG lists at most this many voices (languages and variants together); beyond it, voices go missing
MAX_VOICES = 350

#: range of each formant's frequency, percent of the phoneme table's value (formant 0 is the low
#: "voice bar"; 1-3 carry vowel identity; 4-8 the timbre above them)
FORMANT_SCALE = ((90, 110), (75, 145), (80, 135), (85, 125), (85, 120), (85, 120), (85, 120), (90, 115), (90, 115))


def random_voice_names(count: int) -> list[str]:
    """Variant names of ``count`` drawn voices (``en+masv0000`` ...)."""
    return [f"masv{i:04d}" for i in range(count)]


def random_variant(name: str, rng: np.random.Generator) -> str:
    """The text of one eSpeak variant file with independently drawn formants and source."""
    lines = ["language variant", f"name {name}"]
    if rng.random() < 0.5:
        lines.append(f"klatt {int(rng.integers(1, 7))}")
    base = rng.uniform(70, 230)
    lines.append(f"pitch {base:.0f} {base * rng.uniform(1.15, 1.8):.0f}")
    for n, (lo, hi) in enumerate(FORMANT_SCALE):
        height = rng.uniform(60, 140) if n <= 3 else rng.uniform(40, 140)
        lines.append(f"formant {n} {rng.uniform(lo, hi):.0f} {height:.0f} {rng.uniform(70, 150):.0f}")
    lines.append(f"flutter {int(rng.integers(0, 25))}")
    lines.append(f"roughness {int(rng.integers(0, 8))}")
    lines.append(f"voicing {int(rng.integers(70, 131))}")
    lines.append(f"consonants {int(rng.integers(70, 131))} {int(rng.integers(70, 131))}")
    if rng.random() < 0.25:  # breathy: noise on the formants above F1
        lines.append("breath " + " ".join(str(int(v)) for v in rng.integers(0, 40, 6)))
    if rng.random() < 0.2:
        lines.append(f"echo {int(rng.integers(10, 120))} {int(rng.integers(5, 30))}")
    return "\n".join(lines) + "\n"


@functools.cache
def _shipped_voices(source: Path) -> int:
    """Voices (languages and variants) in an eSpeak data folder; read once per folder."""
    return (sum(1 for p in (source / "lang").rglob("*") if p.is_file())
            + sum(1 for _ in (source / "voices" / "!v").iterdir()))


def check_count(count: int, source: Path | None = None) -> None:
    """Refuse more drawn voices than fit eSpeak's voice list beside the ``source`` folder's own."""
    if count == 0:
        return
    from speech.data.espeak import data_root

    shipped = _shipped_voices(data_root(source))
    if not 0 <= count <= MAX_VOICES - shipped:
        raise ValueError(f"data.random_voices={count} is out of range: eSpeak NG lists at most {MAX_VOICES} voices "
                         f"and {shipped} ship with it, so 0 to {MAX_VOICES - shipped} can be drawn.")


def voice_data_dir(root: Path, source: Path, count: int, seed: int) -> Path:
    """An eSpeak data folder under ``root`` holding the wheel's ``source`` folder (as links) plus ``count``
    drawn variants; the same ``(count, seed)`` always writes the same files."""
    check_count(count, source)
    out = Path(root) / "espeak-ng-data"
    variants = out / "voices" / "!v"
    variants.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name != "voices":
            _link(out / entry.name, entry)
    for entry in (source / "voices").iterdir():
        if entry.name != "!v":
            _link(out / "voices" / entry.name, entry)
    for entry in (source / "voices" / "!v").iterdir():
        _link(variants / entry.name, entry)
    for i, name in enumerate(random_voice_names(count)):
        (variants / name).write_text(random_variant(name, np.random.default_rng([seed, i])))
    return out


def _link(link: Path, target: Path) -> None:
    if not link.exists():
        link.symlink_to(target.resolve())
