"""An HMM synthesiser on PocketSphinx's acoustic model: a training engine whose spectra come from real talkers.

eSpeak NG, SAM and SVOX Pico each draw every vowel from their own tables, and a model trained on one of them
learns that engine's voice. This engine draws its spectra from the statistics of recorded speech instead
(:mod:`speech.data.sphinx_model`): a digit sequence becomes base phones (CMU dictionary), each phone a
triphone in its word context, each of its three states a senone; each state holds one Gaussian per stream of
the senone's mixtures (static cepstra, deltas, delta-deltas; drawn with the weights sharpened, so a talker's
choice stays typical) for a duration drawn around its self-loop's expectation. The cepstra are the trajectory
those Gaussians make most likely together (maximum-likelihood parameter generation, as HMM synthesisers do):
the deltas give the transitions between states the slopes real speech has. They are turned back into a
spectral envelope (lifter, inverse DCT, mel centres onto FFT bins, pre-emphasis undone) that shapes a pulse
train on a falling pitch contour for voiced phones and noise for the rest, overlap-added from 10 ms frames.

PocketSphinx's own decoder (a digit-loop grammar) reads this engine's digit sequences at a word error rate of
about 0.07 (80 sequences at the training set's rates and voices; 0.16 from the static means alone, held over
each state and smoothed), so the draws are phones a real-speech model accepts. A seven-digit utterance takes
about 50 ms.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.fft import idct
from scipy.ndimage import gaussian_filter1d
from scipy.signal import istft, stft
from scipy.sparse.linalg import spsolve

from core.train.errors import InputError
from speech.data.espeak import DEFAULT_RATE, Utterance
from speech.data.sphinx_model import (WORD_BEGIN, WORD_END, WORD_INTERNAL, WORD_SINGLE, load_model, model_dir,
                                      pronunciations)
from speech.mel_scale import hz_to_mel, mel_to_hz

__all__ = ["REVISION", "SAMPLE_RATE", "SPHINX_PREFIX", "cepstra", "is_engine", "require_sphinx", "speak",
           "sphinx_voice", "synthesize", "trajectory", "vocode"]

SAMPLE_RATE = 16000
SPHINX_PREFIX = "sphinx:"
REVISION = 3  # in the spoken-digits cache key: a changed engine must rebuild the cached sets it speaks in
_HOP, _NFFT = 160, 512  # Sphinx's 10 ms frame step; its 512-point FFT
_N_FILTERS, _LOW_HZ, _HIGH_HZ, _LIFTER, _PRE_EMPHASIS = 25, 130.0, 6800.0, 22, 0.97
_UNVOICED = frozenset({"P", "T", "K", "F", "TH", "S", "SH", "CH", "HH", "SIL"})
_HALF_VOICED = frozenset({"V", "DH", "Z", "ZH", "JH", "B", "D", "G"})  # voicing under frication or a burst
_F0_HZ, _WARP = (85, 240), (0.88, 1.12)


def require_sphinx() -> None:
    """Raise one clear sentence when PocketSphinx's model is not installed."""
    model_dir()


def sphinx_voice(rng: np.random.Generator) -> str:
    """A voice name for :attr:`Utterance.voice`: ``sphinx:<f0 Hz>,<frequency warp x 100>`` drawn uniformly."""
    f0 = int(rng.integers(_F0_HZ[0], _F0_HZ[1] + 1))
    return f"{SPHINX_PREFIX}{f0},{int(rng.integers(round(_WARP[0] * 100), round(_WARP[1] * 100) + 1))}"


def is_engine(u: Utterance) -> bool:
    return u.voice.startswith(SPHINX_PREFIX)


_CENTRES_HZ = mel_to_hz(np.linspace(hz_to_mel(_LOW_HZ), hz_to_mel(_HIGH_HZ), _N_FILTERS + 2))[1:-1]
_LIFTER_GAIN = 1.0 + _LIFTER / 2 * np.sin(np.pi * np.arange(13) / _LIFTER)


def _phone_sequence(words: list[str], rng: np.random.Generator, pause_p: float) -> list[tuple[str, int | None]]:
    """``(base phone, word position)`` with silences (position ``None``) at the ends and some word gaps."""
    lexicon = pronunciations()
    out: list[tuple[str, int | None]] = [("SIL", None)]
    for k, word in enumerate(words):
        if word not in lexicon:
            raise InputError(f"the Sphinx engine has no pronunciation for '{word}'.")
        options = lexicon[word]
        phones = options[int(rng.integers(len(options)))]
        for i, phone in enumerate(phones):
            last = i == len(phones) - 1
            position = WORD_SINGLE if len(phones) == 1 else WORD_BEGIN if i == 0 else WORD_END if last else WORD_INTERNAL
            out.append((phone, position))
        if k < len(words) - 1 and rng.random() < pause_p:
            out.append(("SIL", None))
    return out + [("SIL", None)]


def _shift(frames: int, k: int) -> sparse.csr_matrix:
    """``(frames, frames)`` operator taking frame ``t + k``, edge frames repeated (Sphinx pads so)."""
    rows = np.arange(frames)
    return sparse.csr_matrix((np.ones(frames), (rows, np.clip(rows + k, 0, frames - 1))), shape=(frames, frames))


def trajectory(means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """``(frames, 13)`` cepstra ``c`` maximising the likelihood of per-frame Gaussians ``(frames, 3, 13)`` over
    ``c``, its deltas and its delta-deltas (Sphinx's windows): one banded least-squares solve per coefficient."""
    frames = len(means)
    windows = [sparse.identity(frames, format="csr"), _shift(frames, 2) - _shift(frames, -2),
               _shift(frames, 3) - _shift(frames, -1) - _shift(frames, 1) + _shift(frames, -3)]
    out = np.empty((frames, means.shape[-1]))
    for k in range(means.shape[-1]):
        precision = 1.0 / variances[:, :, k]
        lhs = sum(w.T @ sparse.diags(precision[:, j]) @ w for j, w in enumerate(windows))
        rhs = sum(w.T @ (precision[:, j] * means[:, j, k]) for j, w in enumerate(windows))
        out[:, k] = spsolve(lhs.tocsc(), rhs)
    return out


def cepstra(text: str, rng: np.random.Generator, *, tempo: float = 1.0, sharpen: float = 2.0,
            pause_p: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, 13)`` cepstra and ``(frames,)`` voicing in [0, 1] of ``text`` at 100 frames a second."""
    model = load_model()
    seq = _phone_sequence(text.lower().split(), rng, pause_p)
    means, variances, voicing = [], [], []
    for k, (phone, position) in enumerate(seq):
        base = model.index(phone)
        if position is None:
            senones, tmat = model.context_free_states(base)
        else:
            senones, tmat = model.states(base, model.index(seq[k - 1][0]), model.index(seq[k + 1][0]), position)
        for state, senone in enumerate(senones):
            expected = 1.0 / max(1.0 - model.self_loops[tmat, state], 1e-3)
            n = int(rng.integers(3, 12)) if phone == "SIL" else max(1, round(rng.gamma(4.0, expected / 4.0) * tempo))
            weights = model.weights[senone] ** sharpen  # (streams, densities)
            gaussian = (model.senone_codebook[senone], np.arange(len(weights)),
                        [rng.choice(weights.shape[1], p=w / w.sum()) for w in weights])  # one per stream
            means += [model.means[gaussian]] * n
            variances += [model.variances[gaussian]] * n
            voicing += [0.0 if phone in _UNVOICED else 0.5 if phone in _HALF_VOICED else 1.0] * n
    return trajectory(np.array(means), np.array(variances)), gaussian_filter1d(np.array(voicing), 1.0)


def vocode(cep: np.ndarray, voicing: np.ndarray, rng: np.random.Generator, *, f0: float = 140.0,
           warp: float = 1.0) -> np.ndarray:
    """float32 waveform at :data:`SAMPLE_RATE` whose Sphinx cepstra follow ``cep`` (peak 0.8).

    ``warp`` > 1 moves every formant down by that factor (a longer vocal tract)."""
    coeffs = np.zeros((len(cep), _N_FILTERS))
    coeffs[:, :13] = cep / _LIFTER_GAIN
    log_mel = idct(coeffs, type=2, norm="ortho", axis=-1)  # unit-area filters: log power density per band
    freqs = np.fft.rfftfreq(_NFFT, 1 / SAMPLE_RATE)
    log_power = np.stack([np.interp(freqs * warp, _CENTRES_HZ, row) for row in log_mel])
    # Undo pre-emphasis only down to the filters' lower edge (below it the model knows nothing; undoing it
    # there would lift DC 30 dB), and keep nothing under 60 Hz, where a microphone's high-pass would cut.
    emphasis = np.abs(1 - _PRE_EMPHASIS * np.exp(-2j * np.pi * np.maximum(freqs, _LOW_HZ) / SAMPLE_RATE))
    envelope = np.exp(log_power / 2) / emphasis * (freqs >= 60.0)  # (frames, bins)
    n = len(cep) * _HOP
    t = np.arange(n) / SAMPLE_RATE
    contour = f0 * np.linspace(1.1, 0.85, n) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    pulses = np.diff(np.floor(np.cumsum(contour) / SAMPLE_RATE), prepend=0.0) * np.sqrt(SAMPLE_RATE / contour)
    spectra = [stft(x, nperseg=_NFFT, noverlap=_NFFT - _HOP)[2] for x in (pulses, rng.standard_normal(n))]
    frames = min(spectra[0].shape[1], len(cep))
    voiced = np.sqrt(np.clip(voicing[:frames], 0.0, 1.0))
    mix = spectra[0][:, :frames] * voiced + spectra[1][:, :frames] * (0.05 + np.sqrt(1 - voiced ** 2))
    _, y = istft(mix * envelope[:frames].T, nperseg=_NFFT, noverlap=_NFFT - _HOP)
    return (y / (np.abs(y).max() + 1e-9) * 0.8).astype(np.float32)


def speak(text: str, rng: np.random.Generator, *, f0: float = 140.0, warp: float = 1.0,
          tempo: float = 1.0) -> np.ndarray:
    """float32 waveform of ``text`` (words of the CMU dictionary) at :data:`SAMPLE_RATE`."""
    cep, voicing = cepstra(text, rng, tempo=tempo)
    return vocode(cep, voicing, rng, f0=f0, warp=warp)


def synthesize(u: Utterance) -> np.ndarray:
    """:func:`speak` of a Sphinx utterance as int16; eSpeak's rate (130-230 words a minute) sets the tempo and
    its pitch (0..100) scales the voice's f0 by 0.8-1.2; the utterance's seed draws everything else."""
    f0, warp = (int(v) for v in u.voice.removeprefix(SPHINX_PREFIX).split(","))
    rng = np.random.default_rng(u.seed)
    wave = speak(u.text, rng, f0=f0 * (0.8 + 0.004 * u.pitch), warp=warp / 100, tempo=DEFAULT_RATE / u.rate)
    return (wave * 32767).astype(np.int16)
