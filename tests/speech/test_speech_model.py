"""Front end shapes and frame times, SpecAugment, the PE sees time, attention/PE choices, CTC loss path."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torchaudio
import torchaudio.transforms as T

from core.nn.attention import LinearAttention, MultiHeadAttention, record_attention
from core.nn.pe import ALiBi, LearnedPE, RoPE, SinusoidalPE
from core.nn.conformer import ConformerConv
from speech.models import CTCModel
from speech.data.batching import ctc_tokenizer

VOCAB = ctc_tokenizer().itos


def small(**kw) -> CTCModel:
    args = dict(vocab=VOCAB, dim=32, depth=2, num_heads=2, subsample_channels=8, n_mels=40,
                attn=MultiHeadAttention, pe=functools.partial(SinusoidalPE))
    return CTCModel(**{**args, **kw})


def test_features_match_torchaudio_and_count_frames():
    torch.manual_seed(0)
    m = small().eval()
    wave = torch.randn(2, 16000)
    lens = torch.tensor([16000, 8000])
    feats, n = m.features(wave, lens)
    assert feats.shape == (2, 101, 40) and n.tolist() == [101, 51]  # hop 10 ms, centred frames: L // 160 + 1
    ref = T.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)(wave[0]).add(1e-6).log().T  # (T, M)
    ref = (ref - ref.mean(0)) / (ref.var(0, unbiased=False) + 1e-5).sqrt()
    assert torch.allclose(feats[0], ref, atol=1e-3)
    assert feats[1, 51:].abs().sum() == 0  # padding frames are zero
    assert torch.allclose(feats[1, :51].mean(0), torch.zeros(40), atol=1e-4)


def test_lifter_keeps_the_first_cepstral_coefficients_per_frame():
    from scipy.fft import dct, idct

    t = torch.arange(16000) / 16000
    wave = sum(torch.sin(2 * torch.pi * 220 * k * t) / k for k in range(1, 30))[None]  # a 220 Hz buzz
    lens = torch.tensor([16000])
    m = small(lifter=12).eval()
    feats, _ = m.features(wave, lens)
    ref = T.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)(wave[0]).add(1e-6).log().T.numpy()
    ceps = dct(ref, type=2, norm="ortho", axis=1)
    ceps[:, 12:] = 0
    ref = torch.from_numpy(idct(ceps, type=2, norm="ortho", axis=1)).float()
    ref = (ref - ref.mean(0)) / (ref.var(0, unbiased=False) + 1e-5).sqrt()
    assert torch.allclose(feats[0], ref, atol=2e-3)
    full, _ = small(lifter=40).eval().features(wave, lens)
    assert torch.allclose(full, small().eval().features(wave, lens)[0], atol=1e-3)  # all coefficients: no change
    with pytest.raises(ValueError, match="model.lifter"):
        small(lifter=41)


def test_f_max_reads_only_the_band_below_it():
    torch.manual_seed(0)
    t = torch.arange(16000) / 16000
    low = torch.randn(16000) * (1.2 + torch.sin(2 * torch.pi * 3 * t))  # noise, its loudness moving in time
    high = 0.8 * torch.sin(2 * torch.pi * 6000 * t)  # above every filter of a 0-4 kHz bank
    wave, lens = torch.stack([low, low + high]), torch.tensor([16000, 16000])
    feats, _ = small(f_max=4000.0).eval().features(wave, lens)
    inner = slice(2, -2)  # the edge frames' reflect padding spreads the tone over every band
    assert (feats[0] - feats[1])[inner].abs().max() < 0.05
    ref = T.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40, f_max=4000.0)(low).add(1e-6).log().T
    ref = (ref - ref.mean(0)) / (ref.var(0, unbiased=False) + 1e-5).sqrt()
    assert torch.allclose(feats[0], ref, atol=1e-3)
    full, _ = small().eval().features(wave, lens)
    assert (full[0] - full[1])[inner].abs().max() > 1.0  # the whole band does hear the tone
    with pytest.raises(ValueError, match="model.f_max"):
        small(f_max=9000.0)


def test_top_db_floors_each_utterance_below_its_loudest_bin():
    torch.manual_seed(0)
    loud = torch.randn(16000) * 0.3
    quiet = torchaudio.functional.resample(torchaudio.functional.resample(torch.randn(16000) * 0.05, 16000, 8000),
                                           8000, 16000)  # stored at 8 kHz: the top band holds resampling leakage
    wave, lens = torch.stack([loud, quiet]), torch.tensor([16000, 16000])
    feats, _ = small(top_db=50.0).eval().features(wave, lens)
    for i in range(2):  # numpy reference: natural-log mel power floored 50 dB below the utterance's maximum
        ref = np.log(T.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)(wave[i]).numpy().T + 1e-6)
        ref = np.maximum(ref, ref.max() - 5 * np.log(10))
        ref = (ref - ref.mean(0)) / np.sqrt(ref.var(0) + 1e-5)
        assert np.allclose(feats[i].numpy(), ref, atol=1e-3)
    band = (slice(2, -2), slice(35, 40))  # mel bands above 5 kHz, frames clear of the resampler's edges
    assert feats[1][band].std(0).max() < 1e-6  # the empty band is the floor, flat in time ...
    unfloored, _ = small().eval().features(wave, lens)
    assert unfloored[1][band].std(0).min() > 0.1  # ... where without it the leakage, stretched, moves
    short = torch.cat([quiet[:11600], torch.zeros(400)])  # ends in silence: zero padding = reflect padding
    alone, _ = small(top_db=50.0).eval().features(short[None], torch.tensor([12000]))
    batch = torch.stack([loud, torch.cat([short, torch.zeros(4000)])])
    padded, n = small(top_db=50.0).eval().features(batch, torch.tensor([16000, 12000]))
    assert n[1] == alone.shape[1] == 76
    assert torch.allclose(padded[1, :76], alone[0], atol=1e-4)  # a louder batch mate and padding change nothing
    with pytest.raises(ValueError, match="model.top_db"):
        small(top_db=0)


def test_subsampling_frame_times_and_padding():
    m = small().eval()
    feats = torch.randn(2, 101, 40)
    x, pos, pad = m.subsample(feats, torch.tensor([101, 50]))
    assert x.shape == (2, 26, 32) and pos.shape == (1, 26, 1)  # ceil(101 / 4)
    assert m.frame_seconds == pytest.approx(0.04)
    assert torch.allclose(pos[0, :, 0], torch.arange(26) * 0.04)
    assert m.coord_scale == 100  # one PE unit = one 10 ms frame
    assert pad[0].sum() == 0 and pad[1].tolist() == [False] * 13 + [True] * 13


def test_pe_sees_time_in_frames():
    m = small(pe=functools.partial(SinusoidalPE))
    pos = m.frame_times(5)
    emb = m.encoder.pe.embed(pos)
    ref = SinusoidalPE(dim=32, num_heads=2, ndim=1).embed(torch.arange(5.0)[None, :, None] * 4)  # 0, 4, 8 ... frames
    assert torch.allclose(emb, ref, atol=1e-6)


def test_spec_augment_only_in_training():
    torch.manual_seed(0)
    m = small(freq_mask_param=20, time_mask_frac=0.2)
    wave, lens = torch.randn(2, 16000), torch.tensor([16000, 16000])
    m.eval()
    a, _ = m.features(wave, lens)
    b, _ = m.features(wave, lens)
    assert torch.equal(a, b)
    m.train()
    c, _ = m.features(wave, lens)
    masked = (c == 0) & (a != 0)
    assert masked.any(dim=1).any() and masked.any(dim=2).any()  # whole mel bins and whole frames zeroed


@pytest.mark.parametrize("attn,pe", [(MultiHeadAttention, RoPE), (MultiHeadAttention, ALiBi),
                                     (LinearAttention, SinusoidalPE), (MultiHeadAttention, LearnedPE)])
def test_forward_with_any_1d_pe_and_ctc_backward(attn, pe):
    m = small(attn=attn, pe=functools.partial(pe), conv_kernel=7, max_seconds=2.0)
    wave, lens = torch.randn(3, 12000), torch.tensor([12000, 9000, 4000])
    lp, out_lens = m(wave, lens)
    assert lp.shape == (3, 19, len(VOCAB)) and out_lens.tolist() == [19, 15, 7]
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3, 19), atol=1e-5)
    targets = torch.tensor([[3, 4, 5], [6, 7, 0], [8, 0, 0]])
    loss = torch.nn.functional.ctc_loss(lp.transpose(0, 1), targets, out_lens, torch.tensor([3, 2, 1]))
    loss.backward()
    assert torch.isfinite(loss) and m.head.weight.grad is not None


def test_linear_attention_refuses_alibi():
    with pytest.raises(ValueError, match="alibi|ALiBi"):
        small(attn=LinearAttention, pe=functools.partial(ALiBi))


def test_bad_model_keys_name_the_key():
    with pytest.raises(ValueError, match="model.dim"):
        small(dim=30, num_heads=4)
    with pytest.raises(ValueError, match="model.conv_kernel"):
        small(conv_kernel=4)


def test_attention_maps_over_frames():
    m = small().eval()
    with torch.no_grad(), record_attention(m) as mods:
        m(torch.randn(1, 16000), torch.tensor([16000]))
    maps = [mod.last_attn for mod in mods.values()]
    assert len(maps) == 2 and maps[0].shape == (1, 2, 26, 26)
    assert torch.allclose(maps[0].sum(-1), torch.ones(1, 2, 26), atol=1e-5)


def test_attention_plot_over_frames(tmp_path):
    from speech.plots import frame_attention, plot_frame_attention

    m = small()
    wave = torch.randn(12000)
    attn, times, feats = frame_attention(m, wave)
    assert attn.shape == (19, 19) and times.shape == (19,) and feats.shape == (76, 40)
    assert torch.allclose(attn.sum(-1), torch.ones(19), atol=1e-5)
    png = plot_frame_attention(m, wave, tmp_path / "attn.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_conformer_conv_equals_its_conv1d_form():
    """The token-layout computation (linear pointwise, (1, K) depthwise conv2d, norms over valid frames) == the
    Conv1d modules applied directly to each utterance alone, without its padding."""
    torch.manual_seed(0)
    m = ConformerConv(dim=24, kernel_size=7).eval()
    x = torch.randn(3, 11, 24)
    pad = torch.zeros(3, 11, dtype=torch.bool)
    pad[1, 8:] = True
    got = m(x, pad)
    for i, n in enumerate([11, 8, 11]):
        y = m.norm(x[i: i + 1, :n]).transpose(1, 2)  # (1, C, n) for the Conv1d modules
        y = m.pw2(torch.nn.functional.silu(m.bn(m.dw(torch.nn.functional.glu(m.pw1(y), dim=1)))))
        torch.testing.assert_close(got[i: i + 1, :n], x[i: i + 1, :n] + y.transpose(1, 2), atol=1e-5, rtol=1e-5)
