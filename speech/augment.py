"""Training-time variety for speech models, on the batch and on the model's device.

One synthesiser's voices are a narrow slice of speech; these transforms widen it the ways ASR recipes do,
so a model learns the words rather than the engine:

- on the waveform (:meth:`SpeechAugment.wave`): speed perturbation (Kaldi/ESPnet's 0.9/1.0/1.1, which
  moves pitch, formants and tempo together), room reverberation from simulated impulse responses
  (exponentially decaying noise with a random RT60), background babble made from the other utterances of
  the batch, coloured (white/pink/brown) noise, a recording at a lower sample rate (resampled down and
  back), and coarse quantisation (3-8 bits, linear or mu-law: low-bit recorders, codecs and old
  synthesisers; eSpeak's held-out voices quantised to 15 levels lost half their words);
- on the power spectrogram, before the mel filters (:meth:`SpeechAugment.spectrum`): vocal-tract-length
  perturbation (a warp of the frequency axis, Jaitly & Hinton 2013) that may drift during the utterance, a
  local time warp (the tempo drifts, so sounds keep their order but not their relative durations: another
  engine's duration rules), a source tilt (voiced frames lose their upper harmonics by up to ``tilt_db`` at
  4 kHz, and the unvoiced ones move by ``consonant_db``: a soft or muffled voice, whose vowels and fricatives
  stand in another balance; an equaliser alone cannot do that, since the front end's per-utterance
  normalisation removes any fixed filter), a random smooth equaliser, and band-limiting (telephone-like edges).

The log-mel front end normalises every utterance's mean and variance, so an overall gain changes nothing
and is not drawn. SpecAugment's masks stay in :class:`speech.models.AudioTransformer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import torch
import torch.nn.functional as F
import torchaudio.transforms as T
from torch import Tensor, nn

from speech.mel_scale import hz_to_mel

__all__ = ["SpeechAugment", "warp_frequencies"]


def warp_frequencies(power: Tensor, alpha: Tensor | float) -> Tensor:
    """``power`` (B, F, T) with its frequency axis warped by ``alpha`` (a float, or (B, 1, 1) / (B, 1, T)): bin
    ``f`` takes the power of ``f / alpha`` below a boundary frequency and a straight line to Nyquist above it,
    so the warp keeps the band's edges (vocal-tract-length perturbation, Jaitly & Hinton 2013)."""
    b, nbins, t = power.shape
    if not torch.is_tensor(alpha):
        alpha = torch.full((1, 1, 1), float(alpha), dtype=power.dtype, device=power.device)
    f = torch.arange(nbins, device=power.device, dtype=power.dtype)[None, :, None]  # (1, F, 1) in bins
    top = nbins - 1
    edge = 0.85 * top * alpha.clamp(max=1.0)  # boundary in output bins
    src = torch.where(f <= edge, f / alpha, edge / alpha + (f - edge) * (top - edge / alpha) / (top - edge))
    lo = src.floor().clamp(0, top - 1)
    w = (src - lo).clamp(0, 1)
    lo = lo.long().expand(b, -1, t)
    w = w.expand(b, -1, t)
    return power.gather(1, lo) * (1 - w) + power.gather(1, lo + 1) * w


def _uniform(shape: tuple[int, ...], lo_hi: Sequence[float], device: torch.device) -> Tensor:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    return torch.rand(shape, device=device) * (hi - lo) + lo


def _valid(lens: Tensor, length: int) -> Tensor:
    """``(B, S)`` float mask of the samples inside each utterance."""
    return (torch.arange(length, device=lens.device)[None] < lens[:, None]).float()


def _on_drawn_rows(wave: Tensor, lens: Tensor, p: float, transform: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``transform`` (the drawn rows ``(b, S)`` and their valid-sample mask -> ``(b, S)``) applied to each
    utterance with probability ``p``; the other rows pass unchanged and cost nothing, the padding stays silent."""
    rows = torch.nonzero(torch.rand(wave.shape[0], device=wave.device) < p).flatten()
    if rows.numel() == 0:
        return wave
    out = wave.clone()
    mask = _valid(lens[rows], wave.shape[1])
    out[rows] = transform(wave[rows], mask) * mask
    return out


def _fft_size(n: int) -> int:
    """A power of two >= ``n``: an FFT of an arbitrary length (a large prime factor) runs several times slower."""
    return 1 << (n - 1).bit_length()


def _cosines(batch: int, x: Tensor, depth: float, terms: int) -> Tensor:
    """A smooth random curve per utterance over ``x`` ``(B or 1, N)`` in [0, 1]: ``terms`` cosines of random
    amplitude and phase, swinging at most ``depth`` either way, ``(B, N)``."""
    k = torch.arange(1, terms + 1, device=x.device, dtype=x.dtype)[None, :, None]  # (1, K, 1)
    amp = _uniform((batch, terms, 1), (-1.0, 1.0), x.device) * depth / terms
    phase = _uniform((batch, terms, 1), (0.0, 2 * math.pi), x.device)
    return (amp * torch.cos(math.pi * k * x[:, None] + phase)).sum(1)


def _power(x: Tensor, mask: Tensor) -> Tensor:
    """Mean power of each row over its valid samples, ``(B, 1)``."""
    return ((x * mask) ** 2).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp_min(1.0)


def _mixed(wave: Tensor, mask: Tensor, other: Tensor, snr: Sequence[float]) -> Tensor:
    """``wave`` plus ``other`` scaled to an SNR drawn per row from ``snr`` (dB) over the valid samples."""
    other = other * mask
    snr_db = _uniform((wave.shape[0], 1), snr, wave.device)
    scale = torch.sqrt(_power(wave, mask) / _power(other, mask).clamp_min(1e-10) / 10 ** (snr_db / 10))
    return wave + scale * other


class SpeechAugment:
    """Draws the transforms of the module docstring; each applies to an utterance with its probability.

    Args:
        sample_rate: the front end's (the spectrogram's bins span 0 to half of it).
        speeds: speed factors, one drawn per batch (a batch shares one resampling kernel).
        reverb_p, rt60: probability and RT60 range in seconds of a simulated room.
        babble_p, babble_snr, babble_voices: probability, SNR range in dB and most talkers of babble.
        noise_p, noise_snr: probability and SNR range of white, pink or brown noise.
        vtlp: warp factor range of the frequency axis (1 = none).
        vtlp_drift: how far (in log factor) the warp drifts either way within an utterance (0 = a constant warp).
        time_warp: how far (in log tempo) the local tempo drifts either way within an utterance (0 = none).
        tilt_p, tilt_db, consonant_db: probability of a source tilt, the range of its loss at 4 kHz in voiced
            frames (dB, growing with log frequency from 500 Hz) and the range of the unvoiced frames' gain (dB).
        eq_p, eq_db: probability and largest swing of the random equaliser.
        bandlimit_p, lowpass_hz, highpass_hz: probability and edge ranges of band-limiting.
        quantize_p, bits: probability and bit-depth range of quantisation (half of them mu-law).
        lowrate_p, low_rates: probability of a recording made at a lower sample rate, and the rates (Hz): the
            utterance is resampled down and back up, losing everything above half the rate at a resampler's
            steep edge (the spectral band-limit's slope is gentle).
    """

    def __init__(self, *, sample_rate: int, speeds: Sequence[float] = (0.9, 1.0, 1.1),
                 reverb_p: float = 0.3, rt60: Sequence[float] = (0.15, 0.7), babble_p: float = 0.2,
                 babble_snr: Sequence[float] = (8.0, 25.0), babble_voices: int = 3, noise_p: float = 0.3,
                 noise_snr: Sequence[float] = (10.0, 40.0), vtlp: Sequence[float] = (0.88, 1.12),
                 vtlp_drift: float = 0.0, time_warp: float = 0.0, tilt_p: float = 0.0,
                 tilt_db: Sequence[float] = (0.0, 30.0), consonant_db: Sequence[float] = (-20.0, 3.0),
                 eq_p: float = 0.5, eq_db: float = 8.0, bandlimit_p: float = 0.3,
                 lowpass_hz: Sequence[float] = (3000.0, 7000.0), highpass_hz: Sequence[float] = (50.0, 400.0),
                 quantize_p: float = 0.0, bits: Sequence[int] = (3, 8), lowrate_p: float = 0.0,
                 low_rates: Sequence[int] = (8000, 11025, 12000)) -> None:
        if any(s <= 0 for s in speeds) or not speeds:
            raise ValueError(f"augment.speeds={list(speeds)} must be positive factors.")
        for name, p in (("reverb_p", reverb_p), ("babble_p", babble_p), ("noise_p", noise_p), ("eq_p", eq_p),
                        ("tilt_p", tilt_p), ("bandlimit_p", bandlimit_p), ("quantize_p", quantize_p),
                        ("lowrate_p", lowrate_p)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augment.{name}={p} is not a probability.")
        self.sample_rate = int(sample_rate)
        self.speeds = [Fraction(float(s)).limit_denominator(20) for s in speeds]
        self.reverb_p, self.rt60 = reverb_p, rt60
        self.babble_p, self.babble_snr, self.babble_voices = babble_p, babble_snr, max(1, int(babble_voices))
        self.noise_p, self.noise_snr = noise_p, noise_snr
        self.vtlp, self.eq_p, self.eq_db = vtlp, eq_p, eq_db
        if vtlp_drift < 0 or time_warp < 0:
            raise ValueError(f"augment.vtlp_drift={vtlp_drift} and augment.time_warp={time_warp} must be >= 0.")
        self.vtlp_drift, self.time_warp = float(vtlp_drift), float(time_warp)
        if not 0 <= tilt_db[0] <= tilt_db[1]:
            raise ValueError(f"augment.tilt_db={list(tilt_db)} must be a range of losses >= 0 dB.")
        self.tilt_p, self.tilt_db, self.consonant_db = tilt_p, tilt_db, consonant_db
        self.bandlimit_p, self.lowpass_hz, self.highpass_hz = bandlimit_p, lowpass_hz, highpass_hz
        if not 1 <= int(bits[0]) <= int(bits[1]) <= 16:
            raise ValueError(f"augment.bits={list(bits)} must be a range within 1..16.")
        self.quantize_p, self.bits = quantize_p, (int(bits[0]), int(bits[1]))
        if not low_rates or any(not 0 < int(r) < self.sample_rate for r in low_rates):
            raise ValueError(f"augment.low_rates={list(low_rates)} must lie below the sample rate {self.sample_rate}.")
        self.lowrate_p, self.low_rates = lowrate_p, [int(r) for r in low_rates]
        self._resamplers: dict[tuple[int, int, torch.device], nn.Module] = {}

    def _resample(self, x: Tensor, orig_freq: int, new_freq: int) -> Tensor:
        """``x`` resampled by ``new_freq / orig_freq``; each ratio's windowed-sinc kernel is built once (building
        it took as long as applying it to a batch)."""
        key = (orig_freq, new_freq, x.device)
        if key not in self._resamplers:
            self._resamplers[key] = T.Resample(orig_freq, new_freq).to(x.device)
        return self._resamplers[key](x)

    # -- waveform -----------------------------------------------------------------------------------------
    def wave(self, wave: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """``wave`` (B, S) and ``lens`` (B,) after speed, reverberation, babble, noise, a lower recording
        rate and quantisation."""
        wave, lens = self.speed(wave.float(), lens)
        wave = self.reverb(wave, lens)
        wave = self.babble(wave, lens)
        wave = self.lowrate(self.noise(wave, lens), lens)
        return self.quantize(wave, lens), lens

    def speed(self, wave: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        factor = self.speeds[int(torch.randint(len(self.speeds), ()))]
        if factor == 1:
            return wave, lens
        # played ``factor`` times faster: ``factor * n`` samples become ``n``
        out = self._resample(wave, factor.numerator, factor.denominator)
        new_lens = torch.div(lens * factor.denominator, factor.numerator, rounding_mode="floor").clamp(1, out.shape[1])
        return out * _valid(new_lens, out.shape[1]), new_lens

    def reverb(self, wave: Tensor, lens: Tensor) -> Tensor:
        return _on_drawn_rows(wave, lens, self.reverb_p, self._reverberate)

    def _reverberate(self, x: Tensor, _mask: Tensor) -> Tensor:
        dev, (b, s) = x.device, x.shape
        rt60 = _uniform((b, 1), self.rt60, dev)
        n = int(float(self.rt60[1]) * self.sample_rate)
        t = torch.arange(n, device=dev)[None] / self.sample_rate
        rir = torch.randn(b, n, device=dev) * torch.exp(-6.9 * t / rt60)  # 60 dB down at RT60
        # direct path 3 dB below to 6 dB above the reverberant energy
        rir[:, 0] = rir[:, 1:].norm(dim=1) * 10 ** (_uniform((b,), (-3.0, 6.0), dev) / 20)
        size = _fft_size(s + n)
        wet = torch.fft.irfft(torch.fft.rfft(x, n=size) * torch.fft.rfft(rir / rir[:, :1], n=size), n=size)
        return wet[:, :s]

    def babble(self, wave: Tensor, lens: Tensor) -> Tensor:
        b = wave.shape[0]
        on = torch.rand(b, device=wave.device) < self.babble_p
        if b < 2 or not bool(on.any()):
            return wave
        talkers = int(torch.randint(1, min(self.babble_voices, b - 1) + 1, ()))
        crowd = sum(torch.roll(wave, shifts=(k, int(torch.randint(wave.shape[1], ()))), dims=(0, 1))
                    for k in range(1, talkers + 1))
        mixed = _mixed(wave, _valid(lens, wave.shape[1]), crowd, self.babble_snr)
        return torch.where(on[:, None], mixed, wave)

    def noise(self, wave: Tensor, lens: Tensor) -> Tensor:
        return _on_drawn_rows(wave, lens, self.noise_p, self._with_noise)

    def _with_noise(self, x: Tensor, mask: Tensor) -> Tensor:
        (b, s), size = x.shape, _fft_size(x.shape[1])
        spec = torch.fft.rfft(torch.randn(b, size, device=x.device))
        f = torch.arange(spec.shape[1], device=x.device).clamp_min(1).float()
        beta = torch.randint(0, 3, (b, 1), device=x.device).float()  # 0 white, 1 pink, 2 brown
        coloured = torch.fft.irfft(spec / f[None] ** (beta / 2), n=size)[:, :s]
        return _mixed(x, mask, coloured, self.noise_snr)

    def lowrate(self, wave: Tensor, lens: Tensor) -> Tensor:
        """Drawn utterances resampled to one drawn lower rate and back (one kernel per batch)."""
        return _on_drawn_rows(wave, lens, self.lowrate_p, self._at_lower_rate)

    def _at_lower_rate(self, x: Tensor, _mask: Tensor) -> Tensor:
        g = math.gcd(self.sample_rate, rate := self.low_rates[int(torch.randint(len(self.low_rates), ()))])
        down = self._resample(x, self.sample_rate // g, rate // g)
        back = self._resample(down, rate // g, self.sample_rate // g)
        return F.pad(back, (0, max(0, x.shape[1] - back.shape[1])))[:, : x.shape[1]]

    def quantize(self, wave: Tensor, lens: Tensor) -> Tensor:
        """Rounds each drawn utterance, scaled to full scale, to about ``2**bits`` levels, uniformly spaced or
        mu-law (telephony's companding: fine steps near zero, coarse ones near the peak)."""
        return _on_drawn_rows(wave, lens, self.quantize_p, self._quantized)

    def _quantized(self, x: Tensor, _mask: Tensor) -> Tensor:
        b, dev = x.shape[0], x.device
        peak = x.abs().amax(1, keepdim=True).clamp_min(1e-8)
        x = x / peak
        steps = 2.0 ** (torch.randint(self.bits[0], self.bits[1] + 1, (b, 1), device=dev) - 1)
        mu = torch.rand(b, 1, device=dev) < 0.5
        law = 255.0
        companded = torch.where(mu, torch.sign(x) * torch.log1p(law * x.abs()) / math.log1p(law), x)
        q = torch.round(companded * steps) / steps
        return torch.where(mu, torch.sign(q) * torch.expm1(q.abs() * math.log1p(law)) / law, q) * peak

    # -- spectrum -----------------------------------------------------------------------------------------
    def frequencies(self, num_bins: int, device: torch.device) -> Tensor:
        return torch.linspace(0, self.sample_rate / 2, num_bins, device=device)

    def spectrum(self, power: Tensor, frames: Tensor | None = None) -> Tensor:
        """``power`` (B, F, T) after vocal-tract-length warping, a local time warp within each utterance's
        ``frames`` (B,) (all T when not given), a source tilt, equalisation and band-limiting."""
        b, _, t = power.shape
        frames = torch.full((b,), t, device=power.device) if frames is None else frames.clamp(max=t)
        u = torch.arange(t, device=power.device, dtype=power.dtype)[None] / (frames[:, None] - 1).clamp(min=1)
        power = self.source_tilt(self.retime(self.warp(power, u), u, frames))
        return power * self.gain(b, power.shape[1], power.device)[..., None]

    def warp(self, power: Tensor, u: Tensor | None = None) -> Tensor:
        """Vocal-tract-length perturbation (:func:`warp_frequencies`) by a factor drawn per utterance from
        ``vtlp``, drifting by up to ``vtlp_drift`` over the utterance's time ``u`` (B, T) in [0, 1]."""
        alpha = _uniform((power.shape[0], 1), self.vtlp, power.device)[..., None]  # (B, 1, 1)
        if self.vtlp_drift > 0 and u is not None:
            alpha = alpha * _cosines(power.shape[0], u, self.vtlp_drift, 3).exp()[:, None]  # (B, 1, T)
        return warp_frequencies(power, alpha)

    def retime(self, power: Tensor, u: Tensor, frames: Tensor) -> Tensor:
        """Local time warp: output frame ``i`` of an utterance reads source time ``s(i)``, a monotonic map of its
        valid frames onto themselves whose slope (the tempo) drifts by up to ``time_warp`` in log; the first and
        last frames stay, padding is untouched."""
        if self.time_warp <= 0:
            return power
        b, nbins, t = power.shape
        valid = torch.arange(t, device=power.device)[None] < frames[:, None]
        tempo = _cosines(b, u, self.time_warp, 3).exp() * valid
        src = torch.cumsum(tempo, 1) - tempo[:, :1]  # 0 at the first frame
        last = src.gather(1, (frames[:, None] - 1).clamp(min=0)).clamp_min(1e-6)
        ramp = torch.arange(t, device=power.device, dtype=power.dtype)[None].expand(b, -1)
        src = torch.where(valid, src / last * (frames[:, None] - 1).clamp(min=0), ramp)
        lo = src.floor().clamp(0, max(t - 2, 0))
        w = (src - lo).clamp(0, 1)[:, None]
        lo = lo.long()[:, None].expand(-1, nbins, -1)
        hi = (lo + 1).clamp(max=t - 1)
        return power.gather(2, lo) * (1 - w) + power.gather(2, hi) * w

    def voicing(self, power: Tensor) -> Tensor:
        """How voiced each frame of ``power`` (B, F, T) is, ``(B, 1, T)`` in [0, 1]: from the share of its power
        below 1 kHz against that above 2 kHz (a vowel's lies low, a fricative's and white noise's high)."""
        hz = self.frequencies(power.shape[1], power.device)[None, :, None]
        low = (power * (hz < 1000)).sum(1, keepdim=True)
        high = (power * (hz > 2000)).sum(1, keepdim=True)
        share = low / (low + high).clamp_min(1e-12)
        return ((share - 0.2) / 0.6).clamp(0, 1)

    def source_tilt(self, power: Tensor) -> Tensor:
        """Where drawn (``tilt_p``): voiced frames lose ``tilt_db`` at 4 kHz (a third of it an octave from
        500 Hz up, none below), unvoiced frames gain ``consonant_db``, in proportion to :meth:`voicing`."""
        if self.tilt_p <= 0:
            return power
        b, nbins, _ = power.shape
        on = (torch.rand(b, 1, 1, device=power.device) < self.tilt_p).float()
        tilt = _uniform((b, 1, 1), self.tilt_db, power.device) * on
        consonant = _uniform((b, 1, 1), self.consonant_db, power.device) * on
        octaves = torch.log2(self.frequencies(nbins, power.device).clamp_min(500.0) / 500.0)[None, :, None]
        v = self.voicing(power)
        db = -tilt * v * octaves / 3 + consonant * (1 - v)
        return power * 10 ** (db / 10)

    def gain(self, batch: int, num_bins: int, device: torch.device) -> Tensor:
        """Power gain per utterance and bin ``(B, F)``: a smooth random equaliser over the mel axis
        (four cosines, up to ``eq_db``), times low-/high-pass edges where band-limiting is drawn."""
        hz = self.frequencies(num_bins, device)[None]  # (1, F)
        mel = hz_to_mel(hz)
        db = _cosines(batch, mel / mel[:, -1:], self.eq_db, 4)  # (B, F)
        db = db * (torch.rand(batch, 1, device=device) < self.eq_p).float()
        g = 10 ** (db / 10)
        on = (torch.rand(batch, 1, device=device) < self.bandlimit_p).float()
        low = _uniform((batch, 1), self.lowpass_hz, device)
        high = _uniform((batch, 1), self.highpass_hz, device)
        edges = 1.0 / (1.0 + (hz / low) ** 16) / (1.0 + (high / hz.clamp_min(1.0)) ** 8)
        return g * (on * edges + (1 - on))
