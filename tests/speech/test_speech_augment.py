"""speech.augment.SpeechAugment: each transform measured against what it promises (pitch, SNR, decay, warp, edges)."""

from __future__ import annotations

import math

import pytest
import torch

from speech.augment import SpeechAugment

SR = 16000
OFF = dict(reverb_p=0.0, babble_p=0.0, noise_p=0.0, eq_p=0.0, bandlimit_p=0.0, speeds=[1.0], vtlp=[1.0, 1.0])


def _aug(**kw) -> SpeechAugment:
    return SpeechAugment(sample_rate=SR, **{**OFF, **kw})


def _peak_hz(x: torch.Tensor) -> float:
    spec = torch.fft.rfft(x * torch.hann_window(len(x))).abs()
    return float(spec.argmax()) * SR / len(x)


def test_speed_perturbation_scales_pitch_and_length():
    torch.manual_seed(0)
    t = torch.arange(SR) / SR
    wave = torch.sin(2 * math.pi * 440 * t)[None].repeat(2, 1)
    lens = torch.tensor([SR, SR // 2])
    out, new = _aug(speeds=[1.1]).wave(wave, lens)
    assert abs(_peak_hz(out[0, : int(new[0])]) - 484.0) < 3.0  # 10 % faster: 10 % higher
    assert new.tolist() == [SR * 10 // 11, (SR // 2) * 10 // 11]
    assert out[1, int(new[1]):].abs().max() == 0  # padding stays silent
    slow, slow_lens = _aug(speeds=[0.9]).wave(wave, lens)
    assert abs(_peak_hz(slow[0, : int(slow_lens[0])]) - 396.0) < 3.0 and int(slow_lens[0]) == SR * 10 // 9


@pytest.mark.parametrize("kind", ["noise", "babble"])
def test_added_noise_and_babble_sit_at_the_drawn_snr(kind):
    torch.manual_seed(1)
    wave = torch.randn(4, SR) * torch.linspace(0.1, 1.0, 4)[:, None]
    lens = torch.full((4,), SR)
    aug = _aug(**{f"{kind}_p": 1.0, f"{kind}_snr": [12.0, 12.0]})
    out = getattr(aug, kind)(wave, lens)
    added = out - wave
    snr = 10 * torch.log10(wave.pow(2).mean(1) / added.pow(2).mean(1))
    assert torch.allclose(snr, torch.full_like(snr, 12.0), atol=0.05)


def test_noise_reaches_only_drawn_rows_at_the_snr_of_their_valid_samples():
    torch.manual_seed(4)
    wave = torch.randn(16, SR) * torch.linspace(0.1, 1.0, 16)[:, None]
    lens = torch.randint(SR // 3, SR + 1, (16,))
    wave = wave * (torch.arange(SR)[None] < lens[:, None])
    torch.manual_seed(7)
    drawn = torch.rand(16) < 0.5  # the row draw the transform makes first from the same seed
    torch.manual_seed(7)
    out = _aug(noise_p=0.5, noise_snr=[9.0, 9.0]).noise(wave, lens)
    assert 0 < int(drawn.sum()) < 16
    assert torch.equal(out[~drawn], wave[~drawn])  # undrawn rows untouched bit for bit
    added = out - wave
    for row in torch.nonzero(drawn).flatten().tolist():
        n = int(lens[row])
        assert added[row, n:].abs().max() == 0  # padding stays silent
        snr = 10 * torch.log10(wave[row, :n].pow(2).mean() / added[row, :n].pow(2).mean())
        assert abs(float(snr) - 9.0) < 0.05  # over the valid samples (over the whole row it would be off)


def test_speed_and_lower_rate_resample_as_torchaudio_does():
    import torchaudio.functional as AF

    torch.manual_seed(5)
    wave = torch.randn(2, 12000)
    lens = torch.tensor([12000, 9000])
    wave[1, 9000:] = 0
    # torchaudio's Resample builds its kernel in float64 and keeps it as float32, the function builds it in the
    # input's float32: they agree to about 1e-4
    aug = _aug(speeds=[1.1], lowrate_p=1.0, low_rates=[8000])
    for _ in range(2):  # the second batch reuses the first batch's kernels
        fast, fast_lens = aug.speed(wave, lens)
        assert fast_lens.tolist() == [12000 * 10 // 11, 9000 * 10 // 11]
        ref = AF.resample(wave, 11, 10)
        for row, n in enumerate(fast_lens.tolist()):
            assert torch.allclose(fast[row, :n], ref[row, :n], atol=2e-4) and fast[row, n:].abs().max() == 0
        low = aug.lowrate(wave, lens)
        ref = AF.resample(AF.resample(wave, 2, 1), 1, 2)[:, :12000]
        assert torch.allclose(low[0], ref[0], atol=2e-4) and torch.allclose(low[1, :9000], ref[1, :9000], atol=2e-4)
        assert low[1, 9000:].abs().max() == 0
    assert len(aug._resamplers) == 3  # one kernel per ratio: 11 -> 10, 2 -> 1, 1 -> 2


def test_babble_is_made_of_the_other_utterances():
    torch.manual_seed(2)
    t = torch.arange(SR) / SR
    wave = torch.stack([torch.randn(SR) * 0.3, torch.sin(2 * math.pi * 700 * t)])
    out = _aug(babble_p=1.0, babble_voices=1, babble_snr=[10.0, 10.0]).babble(wave, torch.full((2,), SR))
    assert abs(_peak_hz(out[0] - wave[0]) - 700.0) < 2.0  # the noise row hears the tone, time-shifted


def test_reverb_of_an_impulse_decays_60_db_at_rt60():
    torch.manual_seed(3)
    impulse = torch.zeros(1, SR)
    impulse[0, 0] = 1.0
    out = _aug(reverb_p=1.0, rt60=[0.4, 0.4]).reverb(impulse, torch.tensor([SR]))[0]
    assert out[0] == 1.0  # the direct path leads
    win = int(0.02 * SR)

    def level(t):
        i = int(t * SR)
        return 10 * math.log10(float(out[i: i + win].pow(2).mean()))

    assert abs((level(0.05) - level(0.25)) - 60 * 0.2 / 0.4) < 4.0  # 30 dB over half the RT60


def test_vocal_tract_warp_moves_a_formant_by_alpha_and_keeps_identity():
    power = torch.zeros(1, 201, 3)
    power[0, 60] = 1.0  # 60 bins = 2400 Hz, below the warp boundary
    up = _aug(vtlp=[1.1, 1.1]).warp(power)
    assert int(up[0, :, 0].argmax()) == 66
    same = _aug().warp(power)
    assert torch.allclose(same, power)
    assert torch.allclose(_aug(vtlp=[0.9, 0.9]).warp(torch.ones(2, 201, 4)), torch.ones(2, 201, 4))  # flat stays flat


def test_drifting_warp_moves_a_formant_within_its_bounds_over_time():
    torch.manual_seed(1)
    power = torch.zeros(4, 201, 60)
    power[:, 60] = 1.0
    u = torch.linspace(0, 1, 60)[None].expand(4, -1)
    peaks = _aug(vtlp=[1.0, 1.0], vtlp_drift=0.1).warp(power, u).argmax(1).float()  # (B, T) in bins
    assert ((peaks >= 60 * math.exp(-0.1) - 1) & (peaks <= 60 * math.exp(0.1) + 1)).all()
    assert (peaks.max(1).values - peaks.min(1).values).max() >= 2  # the formant moves during an utterance
    steady = _aug(vtlp=[1.1, 1.1]).warp(power, u).argmax(1)
    assert (steady == 66).all()  # no drift: the constant warp


def test_time_warp_keeps_order_ends_and_padding():
    torch.manual_seed(2)
    frames = torch.tensor([80, 50])
    ramp = torch.arange(80.0)[None, None].expand(2, 3, -1).clone()  # each frame holds its own time
    u = torch.arange(80.0)[None] / (frames[:, None] - 1)
    out = _aug(time_warp=0.3).retime(ramp, u, frames)
    swings = []
    for row, n in enumerate(frames.tolist()):
        src = out[row, 0]
        assert src[0] == 0 and abs(float(src[n - 1]) - (n - 1)) < 1e-3  # the ends stay
        steps = src[:n].diff()
        assert (steps > 0).all()  # in order
        swings.append(float(steps.max() - steps.min()))
        assert bool((steps > math.exp(-0.3) * 0.9).all() and (steps < math.exp(0.3) * 1.1).all())
        assert torch.equal(src[n:], ramp[row, 0, n:])  # padding untouched
    assert max(swings) > 0.1  # the tempo drifts within an utterance
    assert torch.equal(_aug().retime(ramp, u, frames), ramp)  # time_warp 0: unchanged
    one = torch.tensor([1, 80])  # a one-frame utterance keeps its padding too
    u1 = torch.arange(80.0)[None] / (one[:, None] - 1).clamp(min=1)
    assert torch.equal(_aug(time_warp=0.3).retime(ramp, u1, one)[0], ramp[0])


def test_band_limit_and_equaliser_gains():
    torch.manual_seed(4)
    hz = _aug().frequencies(201, torch.device("cpu"))
    g = _aug(bandlimit_p=1.0, lowpass_hz=[4000.0, 4000.0], highpass_hz=[300.0, 300.0]).gain(2, 201, hz.device)
    at = {f: int(torch.argmin((hz - f).abs())) for f in (100, 1500, 4000, 6000)}
    assert torch.allclose(g[:, at[1500]], torch.ones(2), atol=0.01)
    assert (g[:, at[4000]] - 0.5).abs().max() < 0.05 and g[:, at[6000]].max() < 1e-2 and g[:, at[100]].max() < 1e-3
    eq = _aug(eq_p=1.0, eq_db=8.0).gain(8, 201, hz.device)
    db = 10 * torch.log10(eq)
    assert db.abs().max() <= 8.0 + 1e-4 and db.std() > 0.5
    assert (db[:, 1:] - db[:, :-1]).abs().max() < 1.0  # smooth across neighbouring bins
    assert torch.equal(_aug().gain(3, 201, hz.device), torch.ones(3, 201))  # nothing drawn: unchanged


def test_source_tilt_dims_a_voiced_frames_upper_harmonics_and_moves_unvoiced_frames():
    hz = _aug().frequencies(201, torch.device("cpu"))  # 40 Hz apart
    vowel = torch.where(hz < 1000, 1.0, 1e-3)  # its power lies low
    hiss = torch.where(hz > 2000, 1.0, 1e-3)  # a fricative's lies high
    power = torch.stack([vowel, hiss, torch.ones(201)], -1)[None]  # (1, F, 3): vowel, fricative, white noise
    aug = _aug(tilt_p=1.0, tilt_db=[12.0, 12.0], consonant_db=[-6.0, -6.0])
    assert torch.allclose(aug.voicing(power)[0, 0], torch.tensor([1.0, 0.0, 0.0]))
    db = 10 * torch.log10(aug.source_tilt(power) / power)[0]
    at = {f: int(torch.argmin((hz - f).abs())) for f in (200, 500, 1000, 2000, 4000)}
    # a loss of 12 dB at 4 kHz, three octaves above 500 Hz: 4 dB an octave, nothing at or below 500 Hz
    assert [round(float(db[at[f], 0]), 3) for f in (200, 500, 1000, 2000, 4000)] == [0.0, 0.0, -4.0, -8.0, -12.0]
    assert torch.allclose(db[:, 1:], torch.full((201, 2), -6.0), atol=1e-4)  # unvoiced frames: one gain
    assert torch.equal(_aug().source_tilt(power), power)  # not drawn: unchanged


def _reference_quantized(x, bits: int, mu_law: bool):
    """Independent numpy quantiser: scale to full scale, round to 2**(bits-1) steps per polarity, scale back."""
    import numpy as np

    peak = np.abs(x).max()
    y, steps = x / peak, 2.0 ** (bits - 1)
    if not mu_law:
        return np.round(y * steps) / steps * peak
    c = np.sign(y) * np.log(1 + 255 * np.abs(y)) / np.log(256)
    c = np.round(c * steps) / steps
    return np.sign(c) * ((1 + 255) ** np.abs(c) - 1) / 255 * peak


def test_quantisation_matches_a_linear_or_mu_law_reference_and_keeps_padding():
    torch.manual_seed(0)
    lens = torch.tensor([SR // 2] * 8)
    t = torch.arange(SR // 2) / SR
    wave = torch.zeros(8, SR)
    wave[:, : SR // 2] = 0.3 * torch.sin(2 * math.pi * 220 * t) * torch.linspace(0.01, 1, SR // 2)
    out, _ = _aug(quantize_p=1.0, bits=[4, 4]).wave(wave, lens)
    assert out[:, SR // 2:].abs().max() == 0
    kinds = set()
    for row in range(8):
        got, x = out[row, : SR // 2].double().numpy(), wave[row, : SR // 2].double().numpy()
        matches = [mu for mu in (False, True) if abs(got - _reference_quantized(x, 4, mu)).max() < 1e-5]
        assert len(matches) == 1, row
        kinds.add(matches[0])
        assert len(set(got.round(6))) <= 17  # 2 * 8 + 1 levels at 4 bits
    assert kinds == {False, True}  # both laws are drawn
    untouched, _ = _aug(quantize_p=0.0).wave(wave, lens)
    assert torch.equal(untouched, wave)


def test_a_lower_recording_rate_removes_the_band_above_its_nyquist():
    t = torch.arange(SR) / SR
    tones = torch.sin(2 * math.pi * 1000 * t) + torch.sin(2 * math.pi * 5000 * t)
    wave, lens = torch.stack([tones, tones]), torch.tensor([SR, SR // 2])
    out, _ = _aug(lowrate_p=1.0, low_rates=[8000]).wave(wave, lens)
    spec = torch.fft.rfft(out[0] * torch.hann_window(SR)).abs()
    at = lambda hz: float(spec[hz - 20: hz + 21].max())  # noqa: E731  (bins are 1 Hz wide)
    assert at(1000) > 0.9 * float(torch.fft.rfft(tones * torch.hann_window(SR)).abs()[1000])  # kept
    assert at(5000) < 1e-3 * at(1000)  # above 4 kHz: gone (a tone there would alias, not pass)
    assert out[1, SR // 2:].abs().max() == 0 and out.shape == wave.shape


def test_whole_pipeline_keeps_padding_silent_and_finite():
    torch.manual_seed(5)
    aug = SpeechAugment(sample_rate=SR, reverb_p=1, babble_p=1, noise_p=1, tilt_p=1)
    lens = torch.tensor([SR, SR // 3, SR // 2])
    wave = torch.randn(3, SR) * (torch.arange(SR)[None] < lens[:, None])
    out, new = aug.wave(wave, lens)
    assert torch.isfinite(out).all() and (out * (torch.arange(out.shape[1])[None] >= new[:, None])).abs().max() == 0
    spec = aug.spectrum(torch.rand(3, 201, 50))
    assert spec.shape == (3, 201, 50) and torch.isfinite(spec).all() and (spec >= 0).all()


def test_bad_settings_say_which():
    with pytest.raises(ValueError, match="reverb_p"):
        SpeechAugment(sample_rate=SR, reverb_p=1.5)
    with pytest.raises(ValueError, match="speeds"):
        SpeechAugment(sample_rate=SR, speeds=[0.0])
    with pytest.raises(ValueError, match="time_warp"):
        SpeechAugment(sample_rate=SR, time_warp=-0.1)
    with pytest.raises(ValueError, match="tilt_db"):
        SpeechAugment(sample_rate=SR, tilt_db=[10.0, 5.0])
    with pytest.raises(ValueError, match="tilt_p"):
        SpeechAugment(sample_rate=SR, tilt_p=2.0)
    with pytest.raises(ValueError, match="bits"):
        SpeechAugment(sample_rate=SR, bits=[8, 3])
    with pytest.raises(ValueError, match="low_rates"):
        SpeechAugment(sample_rate=SR, low_rates=[22050])
