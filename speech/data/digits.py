"""The embedded speech set: spoken digit sequences synthesised offline with eSpeak NG.

Each utterance says 3 to 7 digits ("four one one seven") with one voice = an English accent
(``en``, ``en-us``, ``en-gb-x-rp``, ...) plus a voice *variant* (``m3``, ``f2``, ``adam``, ...),
a random speaking rate, pitch, pitch range and word gap. Afterwards it is resampled to the
model rate, padded with a little silence, scaled to a random level and mixed with light noise.
Train, validation and test use disjoint voice variants, so the test score measures
generalisation to unseen voices.

Reproducibility: every random choice comes from ``numpy`` generators seeded by
``(seed, split, index)``, and synthesis runs in fixed batches in fresh processes
(:mod:`speech.data.synthesis`): the result does not depend on ``num_workers``.
"""

from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from core.train.data import cached_tensors, lengths_at_ratio
from core.train.errors import InputError
from speech.data import dectalk, pico, sam, sphinx
from speech.data.batching import SpeechDataModuleBase, WaveDataset
from speech.data.espeak import Utterance, wheel_data_path
from speech.data.synthesis import (ACCENTS, SPLITS, VOICE_VARIANTS, check_voices, finish, spec_key,
                                   synthesize_batches, uniform_int)
from speech.data.voices import check_count, random_voice_names, voice_data_dir

__all__ = ["DIGIT_WORDS", "OTHER_ENGINES", "SPLITS", "DigitsSpec", "SpokenDigitsDataModule", "build_spoken_digits",
           "make_requests", "other_engine"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# The engines besides eSpeak by their DigitsSpec share, in the order the shares are drawn. Each module ``<name>``
# offers ``<name>_voice(rng)``, ``require_<name>()``, ``is_engine(u)``, ``synthesize(u)``, ``SAMPLE_RATE`` and,
# where the sound depends on code of ours, a ``REVISION`` for the cache key. Looked up by name when called, so
# a test's stand-in for a check is the one used.
OTHER_ENGINES = {"pico_fraction": pico, "sam_fraction": sam, "sphinx_fraction": sphinx, "dectalk_fraction": dectalk}


def _short_name(engine) -> str:
    return engine.__name__.rsplit(".", 1)[-1]


def _engine_function(engine, pattern: str):
    """The engine module's function named by ``pattern`` around its short name (``"require_{}"``)."""
    return getattr(engine, pattern.format(_short_name(engine)))


def _listed(items: list[str], last: str) -> str:
    """``a, b, c and d`` (``last`` = "and") or ``a, b, c or d``."""
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


@dataclass
class DigitsSpec:
    """Everything that determines the embedded set (its hash names the cache file).

    Args:
        num_utterances: utterances per split.
        variants: eSpeak voice variants per split (disjoint: held-out voices for val/test).
        accents: English language voices combined with every variant.
        min_digits, max_digits: sequence length range.
        rate, pitch, pitch_range, word_gap: inclusive ranges drawn uniformly per utterance.
        word_rate_p, word_rate: the share of the training utterances eSpeak speaks that give each word its own
            pace, and the range of that pace (percent of the utterance's rate, drawn log-uniformly per word): a
            digit stressed and drawn out, or reduced to a syllable's flick, as people and other engines say them.
        random_voices: drawn eSpeak voices (:mod:`speech.data.voices`) added to the training variants;
            every other training utterance that eSpeak speaks uses one of them (an utterance another engine
            speaks takes that engine's voice; 0: the shipped variants only).
        pico_fraction: share of training utterances spoken by SVOX Pico instead (:mod:`speech.data.pico`,
            a second engine; val and test stay eSpeak's held-out voices).
        sam_fraction: share of training utterances spoken by SAM (:mod:`speech.data.sam`, a third engine; pure
            Python), drawn after Pico's share from the same stream.
        sphinx_fraction: share spoken by the HMM synthesiser on PocketSphinx's acoustic model
            (:mod:`speech.data.sphinx`: spectra drawn from real talkers' statistics), drawn after SAM's.
        dectalk_fraction: share spoken by DECtalk (:mod:`speech.data.dectalk`, a formant synthesiser with its own
            rules and nine speakers), drawn after the Sphinx share.
        snr_db: range of the signal-to-noise ratio of the added white noise.
        pad_seconds: range of the silence added before and after the speech.
        sample_rate: rate of the stored waveforms (the model's rate).
        batch: requests per fresh synthesis process (part of the spec: it fixes call histories).
        seed: the dataset seed (not the run seed).
    """

    num_utterances: dict[str, int] = field(default_factory=lambda: {"train": 4000, "val": 300, "test": 600})
    variants: dict[str, list[str]] = field(default_factory=lambda: copy.deepcopy(VOICE_VARIANTS))
    accents: list[str] = field(default_factory=lambda: list(ACCENTS))
    min_digits: int = 3
    max_digits: int = 7
    rate: tuple[int, int] = (130, 230)
    pitch: tuple[int, int] = (25, 75)
    pitch_range: tuple[int, int] = (20, 90)
    word_gap: tuple[int, int] = (0, 3)
    word_rate_p: float = 0.0
    word_rate: tuple[int, int] = (60, 250)
    random_voices: int = 0
    pico_fraction: float = 0.0
    sam_fraction: float = 0.0
    sphinx_fraction: float = 0.0
    dectalk_fraction: float = 0.0
    snr_db: tuple[float, float] = (15.0, 40.0)
    pad_seconds: tuple[float, float] = (0.05, 0.25)
    sample_rate: int = 16000
    batch: int = 250
    seed: int = 0

    def __post_init__(self) -> None:
        check_voices(self.variants, self.num_utterances)
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError("data.min_digits must be >= 1 and <= data.max_digits.")
        if not 0 < self.rate[0] <= self.rate[1]:
            raise ValueError(f"data.rate={list(self.rate)} must be a positive range of words per minute.")
        check_count(self.random_voices)
        if not 0.0 <= self.word_rate_p <= 1.0 or not 0 < self.word_rate[0] <= self.word_rate[1]:
            raise ValueError(f"data.word_rate_p={self.word_rate_p} must be a probability and data.word_rate="
                             f"{list(self.word_rate)} a positive range of percentages.")
        shares = {field: getattr(self, field) for field in OTHER_ENGINES}
        if min(shares.values()) < 0.0 or self.other_share > 1.0:
            listed = _listed([f"data.{field}={share}" for field, share in shares.items()], "and")
            raise ValueError(f"{listed} must be shares in [0, 1] that add up to at most 1.")
        for field, engine in OTHER_ENGINES.items():
            if shares[field] > 0:
                _engine_function(engine, "require_{}")()

    @property
    def other_share(self) -> float:
        """The share of training utterances that engines other than eSpeak speak."""
        return sum(getattr(self, field) for field in OTHER_ENGINES)

    def key(self) -> str:
        """Short hash of the spec and of the revisions of the engines of ours that speak (names the cache file)."""
        revisions = {f"{_short_name(engine)}_revision": engine.REVISION for field, engine in OTHER_ENGINES.items()
                     if getattr(self, field) > 0 and hasattr(engine, "REVISION")}
        unused = ("word_rate_p", "word_rate") if self.word_rate_p == 0 else ()  # earlier sets keep their names
        return spec_key(self, skip=unused, **revisions)


def make_requests(spec: DigitsSpec) -> list[tuple[str, str, Utterance]]:
    """All synthesis requests in build order: ``(split, transcript, Utterance)``."""
    out = []
    drawn = random_voice_names(spec.random_voices)
    other_engines = [(getattr(spec, field), _engine_function(engine, "{}_voice"))
                     for field, engine in OTHER_ENGINES.items()]
    for si, split in enumerate(SPLITS):
        variants = spec.variants.get(split, [])
        for i in range(spec.num_utterances.get(split, 0)):
            rng = np.random.default_rng([spec.seed, si, i])
            n = uniform_int(rng, (spec.min_digits, spec.max_digits))
            text = " ".join(DIGIT_WORDS[d] for d in rng.integers(0, 10, n))
            if split == "train" and drawn and i % 2:  # every other training utterance: a drawn voice
                variant = drawn[(i // 2) % len(drawn)]
            else:
                variant = variants[i % len(variants)]
            voice = f"{spec.accents[int(rng.integers(len(spec.accents)))]}+{variant}"
            espeak_speaks = True
            if split == "train" and spec.other_share > 0:  # own stream
                engine_rng = np.random.default_rng([spec.seed, si, i, 2])
                share, bound = engine_rng.random(), 0.0
                for fraction, draw_voice in other_engines:  # consecutive slices of [0, 1), in this order
                    bound += fraction
                    if share < bound:
                        voice, espeak_speaks = draw_voice(engine_rng), False
                        break
            u = Utterance(text=text, voice=voice, rate=uniform_int(rng, spec.rate), pitch=uniform_int(rng, spec.pitch),
                          pitch_range=uniform_int(rng, spec.pitch_range), word_gap=uniform_int(rng, spec.word_gap),
                          seed=int(rng.integers(2**31)))
            if split == "train" and espeak_speaks and spec.word_rate_p > 0:
                u = replace(u, word_rates=word_rates(n, spec, np.random.default_rng([spec.seed, si, i, 3])))
            out.append((split, text, u))
    return out


def word_rates(words: int, spec: DigitsSpec, rng: np.random.Generator) -> tuple[int, ...]:
    """For a share ``spec.word_rate_p`` of utterances, a pace per word (percent of the utterance's rate) drawn
    log-uniformly over ``spec.word_rate``; ``()`` for the others (plain text, no SSML)."""
    if rng.random() >= spec.word_rate_p:
        return ()
    lo, hi = np.log(spec.word_rate)
    return tuple(int(round(np.exp(rng.uniform(lo, hi)))) for _ in range(words))


def other_engine(u: Utterance):
    """The module of the engine other than eSpeak that speaks ``u`` (:data:`OTHER_ENGINES`), or ``None``."""
    return next((engine for engine in OTHER_ENGINES.values() if engine.is_engine(u)), None)


def build_spoken_digits(spec: DigitsSpec, *, num_workers: int = 1, progress: bool = True) -> dict:
    """Synthesise the whole set. Returns ``audio`` (flat int16), ``offsets`` (N+1), ``split`` (N,)
    (0 train, 1 val, 2 test), ``text``/``voice`` lists and the ``sample_rate``."""
    reqs = make_requests(spec)
    utts = [u for _, _, u in reqs]
    split_ids = [SPLITS.index(s) for s, _, _ in reqs]
    flat: list[np.ndarray | None] = [None] * len(reqs)

    def store(k: int, w: np.ndarray, sr_in: int) -> None:
        rng = np.random.default_rng([spec.seed, split_ids[k], k, 1])
        flat[k] = finish(w, sr_in, spec.sample_rate, rng, pad_seconds=spec.pad_seconds, snr_db=spec.snr_db)

    others = {k: engine for k, u in enumerate(utts) if (engine := other_engine(u)) is not None}
    by_espeak = [k for k in range(len(utts)) if k not in others]
    with tempfile.TemporaryDirectory() as tmp:
        data_path = (str(voice_data_dir(Path(tmp), wheel_data_path(), spec.random_voices, spec.seed))
                     if spec.random_voices else None)
        for first, sr_in, out in synthesize_batches([utts[k] for k in by_espeak], batch=spec.batch,
                                                    num_workers=num_workers, label="spoken digits",
                                                    progress=progress, data_path=data_path):
            for j, w in enumerate(out):
                store(by_espeak[first + j], w, sr_in)
    for k, engine in others.items():
        store(k, engine.synthesize(utts[k]), engine.SAMPLE_RATE)
    offsets = np.concatenate([[0], np.cumsum([len(w) for w in flat])])
    return {
        "audio": torch.from_numpy(np.concatenate(flat)),
        "offsets": torch.from_numpy(offsets.astype(np.int64)),
        "split": torch.tensor(split_ids, dtype=torch.int8),
        "text": [t for _, t, _ in reqs],
        "voice": [u.voice for u in utts],
        "sample_rate": spec.sample_rate,
    }


def _curriculum_epochs(epochs, spec: DigitsSpec) -> int:
    """``data.espeak_first_epochs`` checked: a whole number, and only where something is held back (another
    engine's share, or paced words) and something is left (eSpeak's utterances at an even pace)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise InputError(f"data.espeak_first_epochs={epochs!r} must be a whole number of epochs, 0 or more.")
    held_back = spec.other_share > 0 or spec.word_rate_p > 0
    if epochs and not (held_back and spec.other_share < 1.0 and spec.word_rate_p < 1.0):
        raise InputError(f"data.espeak_first_epochs={epochs} holds back the other engines' utterances and the "
                         "paced ones: it needs "
                         f"{_listed([f'data.{field}' for field in [*OTHER_ENGINES, 'word_rate_p']], 'or')} above 0, "
                         "the shares adding up to less than 1 and data.word_rate_p less than 1.")
    return epochs


class SpokenDigitsDataModule(SpeechDataModuleBase):
    """Embedded spoken digit sequences (eSpeak NG), built once under ``cache_dir``.

    Args:
        cache_dir: where the synthesised set is cached (file named by the spec's hash).
        num_utterances: ``{train, val, test}`` sizes (tests use a tiny set).
        variants: optional ``{train, val, test}`` voice variants (held-out voices for val/test).
        random_voices: drawn eSpeak voices added to training (:class:`DigitsSpec`).
        word_rate_p: the share of eSpeak's training utterances with a pace per word (:class:`DigitsSpec`).
        pico_fraction, sam_fraction, sphinx_fraction, dectalk_fraction: shares of training utterances spoken by
            SVOX Pico, SAM, the Sphinx HMM synthesiser and DECtalk (:class:`DigitsSpec`).
        espeak_first_epochs: epochs at the start that draw their batches from eSpeak's utterances alone (at
            their own even pace: words at a drawn pace held back too); the other engines' shares join after. On a mix CTC is slow to leave its blank-only plateau (a third from
            the Sphinx engine left it only after 4 of 8 epochs); the one engine gets it out first.
        build_workers: parallel synthesis processes (the result does not depend on it).
        size_ratio: the test split's digit counts relative to the training ones (3-7 digits):
            ``((r - 1/2) 7, r 7]`` (:func:`core.train.data.lengths_at_ratio`), the same held-out voices,
            built once and cached beside the set; 1 is the recipe's own test split. The longer set holds
            ``ceil(n / r)`` utterances for a test split of ``n``: fewer, longer ones, about as many spoken
            digits as the test split, so every size costs about one test pass and weighs as many words.
        batch_size, max_batch_seconds, num_workers, sample_rate, seed: loaders and rate.
    """

    def __init__(self, *, cache_dir: str, num_utterances: dict[str, int] | None = None,
                 variants: dict[str, list[str]] | None = None, random_voices: int = 0, word_rate_p: float = 0.0,
                 pico_fraction: float = 0.0, sam_fraction: float = 0.0, sphinx_fraction: float = 0.0,
                 dectalk_fraction: float = 0.0, espeak_first_epochs: int = 0, build_workers: int = 2,
                 size_ratio: float = 1.0, **kw) -> None:
        super().__init__(**kw)
        spec_kw = {"sample_rate": self.sample_rate, "random_voices": int(random_voices),
                   "word_rate_p": float(word_rate_p), "pico_fraction": float(pico_fraction),
                   "sam_fraction": float(sam_fraction),
                   "sphinx_fraction": float(sphinx_fraction), "dectalk_fraction": float(dectalk_fraction)}
        if num_utterances is not None:
            spec_kw["num_utterances"] = {s: int(num_utterances.get(s, 0)) for s in SPLITS}
        if variants is not None:
            spec_kw["variants"] = {s: [str(v) for v in variants.get(s, [])] for s in SPLITS}
        self.spec = DigitsSpec(**spec_kw)
        root = Path(cache_dir).expanduser() / "speech"
        self.path = root / f"spoken_digits-{self.spec.key()}.pt"
        self.build_workers = build_workers
        self.espeak_first_epochs = _curriculum_epochs(espeak_first_epochs, self.spec)
        if not size_ratio > 0:
            raise InputError(f"data.size_ratio={size_ratio} must be positive.")
        self.size_ratio = float(size_ratio)
        self.test_spec = None  # the test split at another length: same voices and rule, more digits
        if self.size_ratio != 1.0:
            lo, hi = lengths_at_ratio((self.spec.min_digits, self.spec.max_digits), self.size_ratio)
            count = math.ceil(self.spec.num_utterances.get("test", 0) / self.size_ratio)
            self.test_spec = replace(self.spec, num_utterances={"test": count}, min_digits=lo, max_digits=hi,
                                     word_rate_p=0.0, **dict.fromkeys(OTHER_ENGINES, 0.0))  # eSpeak's alone
            self.test_path = root / f"spoken_digits-{self.test_spec.key()}.pt"

    def _data(self) -> dict:
        return cached_tensors(self.path, lambda: build_spoken_digits(self.spec, num_workers=self.build_workers))

    def _test_data(self) -> dict:
        return cached_tensors(self.test_path, lambda: build_spoken_digits(self.test_spec,
                                                                          num_workers=self.build_workers))

    def prepare_data(self) -> None:
        self._data()
        if self.test_spec is not None:
            self._test_data()

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" or self.datasets:
            return
        sources = [self._data()] + ([self._test_data()] if self.test_spec is not None else [])
        for k, s in enumerate(SPLITS):
            data = sources[-1] if s == "test" else sources[0]
            ix = np.flatnonzero(data["split"].numpy() == k)
            self.datasets[s] = WaveDataset(data["audio"], data["offsets"], ix, data["text"], self.tokenizer)
            if s == "train" and self.espeak_first_epochs:
                paced = ({k for k, (_, _, u) in enumerate(make_requests(self.spec)) if u.word_rates}
                         if self.spec.word_rate_p > 0 else set())  # the plan is drawn again only where it paces
                by_espeak = [j for j, row in enumerate(ix) if row not in paced
                             and other_engine(Utterance(data["text"][row], data["voice"][row])) is None]
                self.first_epochs = (by_espeak, self.espeak_first_epochs)
