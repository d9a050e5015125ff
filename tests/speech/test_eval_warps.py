"""Warp averaging: outside training a CTC model reads the recording at several vocal-tract-length warps and
averages their posteriors; in training it reads it once, as before."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from conftest import compose_cfg
from core.nn.attention import MultiHeadAttention
from core.nn.pe import SinusoidalPE
from speech.augment import warp_frequencies
from speech.data.batching import ctc_tokenizer
from speech.models import CTCModel

TOKENIZER = ctc_tokenizer()
WARPS = [0.9, 1.0, 1.1]


def model(**kw) -> CTCModel:
    """Nothing random in training (no dropout, masks or augmentation), so both modes can be compared."""
    torch.manual_seed(0)
    args = dict(vocab=TOKENIZER.itos, dim=32, depth=2, num_heads=2, subsample_channels=8, n_mels=40, drop=0.0,
                freq_masks=0, time_masks=0, attn=MultiHeadAttention, pe=functools.partial(SinusoidalPE))
    return CTCModel(**{**args, **kw})


def wave_batch():
    gen = torch.Generator().manual_seed(1)
    return 0.1 * torch.randn(2, 12000, generator=gen), torch.tensor([12000, 9000])


def one_pass(m: CTCModel, wave, lens, warp: float) -> np.ndarray:
    """Probabilities of one pass with the spectrum warped by ``warp``, built step by step outside ``forward``."""
    feats, n = m.frontend(wave, lens, None if warp == 1.0 else (lambda p: warp_frequencies(p, warp)))
    x, pos, pad = m.subsample(feats, n)
    return m.head(m.encoder(x, pos, key_padding_mask=pad)).softmax(-1).numpy()


def test_evaluation_averages_the_warps_posteriors_in_probability():
    m = model(eval_warps=WARPS).eval()
    wave, lens = wave_batch()
    with torch.no_grad():
        log_probs, frames = m(wave, lens)
        passes = [one_pass(m, wave, lens, w) for w in WARPS]
    np.testing.assert_allclose(log_probs.exp().numpy(), np.mean(passes, axis=0), atol=1e-5)
    assert np.abs(passes[0] - passes[1]).max() > 1e-3  # the warps do read the recording differently
    assert frames.tolist() == [int(n) for n in m.subsampling.out_frames(m.frontend.frames(lens))]


def test_a_single_warp_reads_the_spectrum_warped_and_none_reads_it_as_recorded():
    wave, lens = wave_batch()
    with torch.no_grad():
        warped = model(eval_warps=[1.1]).eval()(wave, lens)[0].exp().numpy()
        plain_model = model().eval()
        plain = plain_model(wave, lens)[0].exp().numpy()
        np.testing.assert_allclose(warped, one_pass(plain_model, wave, lens, 1.1), atol=1e-5)
        np.testing.assert_allclose(plain, one_pass(plain_model, wave, lens, 1.0), atol=1e-5)


def test_training_reads_the_recording_once_whatever_the_warps():
    wave, lens = wave_batch()
    averaged, single = model(eval_warps=WARPS).train(), model().train()
    assert averaged.state_dict().keys() == single.state_dict().keys()  # the warps add no weights
    with torch.no_grad():
        np.testing.assert_allclose(averaged(wave, lens)[0].numpy(), single(wave, lens)[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(single(wave, lens)[0].exp().numpy(), one_pass(single, wave, lens, 1.0), atol=1e-5)


def test_warping_by_one_leaves_the_spectrum_as_it_is_and_rows_take_their_own_factor():
    power = torch.rand(3, 201, 5)
    assert torch.allclose(warp_frequencies(power, 1.0), power, atol=1e-6)
    rows = warp_frequencies(power, torch.tensor([0.9, 1.0, 1.1])[:, None, None])
    for i, w in enumerate([0.9, 1.0, 1.1]):
        assert torch.allclose(rows[i], warp_frequencies(power[i:i + 1], w)[0], atol=1e-6)


@pytest.mark.parametrize("warps", [[], [0.0], [1.0, 3.0], ["wide"]])
def test_warps_outside_the_range_are_refused(warps):
    with pytest.raises(ValueError, match=r"model.eval_warps=.* must list warp factors in \[0.5, 2\]"):
        model(eval_warps=warps)


def test_the_recipe_averages_three_warps_and_the_default_model_one():
    assert list(compose_cfg(["experiment=speech/spoken_digits"]).model.eval_warps) == WARPS
    assert compose_cfg(["experiment=speech/librispeech"]).model.eval_warps is None
