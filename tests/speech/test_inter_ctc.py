"""InterCTC: a middle encoder layer's CTC loss joins the final one in training, by its weight, and nowhere else."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F

from conftest import compose_cfg
from core.nn.attention import MultiHeadAttention
from core.nn.pe import SinusoidalPE
from speech.data.batching import ctc_tokenizer
from speech.models import CTCModel, TorchaudioConformerCTC
from speech.tasks import CTCTask

TOKENIZER = ctc_tokenizer()
BLOCKS = {"plain": {}, "conformer": {"macaron": True, "conv_kernel": 15, "mlp_ratio": 2.0}}


def tapped(**kw) -> CTCModel:
    """Three layers, the second tapped; nothing random in training (no dropout, masks or augmentation)."""
    args = dict(vocab=TOKENIZER.itos, dim=32, depth=3, num_heads=2, subsample_channels=8, n_mels=40, drop=0.0,
                freq_masks=0, time_masks=0, inter_ctc=2, attn=MultiHeadAttention, pe=functools.partial(SinusoidalPE))
    return CTCModel(**{**args, **kw})


def batch():
    torch.manual_seed(0)
    texts = ["one two", "nine"]
    ids = [torch.tensor(TOKENIZER.encode(t)) for t in texts]
    targets = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True)
    return torch.randn(2, 12000), torch.tensor([12000, 9000]), targets, torch.tensor([len(i) for i in ids]), texts


def cut_at(model: CTCModel, layers: int) -> CTCModel:
    """A copy whose encoder stops after ``layers`` layers: its plain forward is what that layer spells."""
    short = copy.deepcopy(model)
    short.encoder.blocks = short.encoder.blocks[:layers]
    short.inter_ctc = 0
    return short


def ctc(log_probs, lens, targets, target_lens):
    return F.ctc_loss(log_probs.transpose(0, 1), targets, lens, target_lens, blank=0, zero_infinity=True)


@pytest.mark.parametrize("blocks", BLOCKS)
def test_training_loss_weighs_the_tapped_layer_against_the_last(blocks):
    model = tapped(**BLOCKS[blocks]).train()
    task = CTCTask(model, inter_ctc_weight=0.25)
    task.log = lambda *a, **k: None
    wave, lens, targets, target_lens, texts = batch()
    loss = task.shared_step((wave, lens, targets, target_lens, texts), "train")
    final_lp, frames = model(wave, lens)  # the plain forward, still in training mode
    middle_lp, middle_frames = cut_at(model, 2)(wave, lens)
    assert torch.equal(frames, middle_frames)
    final, middle = ctc(final_lp, frames, targets, target_lens), ctc(middle_lp, frames, targets, target_lens)
    assert not torch.isclose(final, middle)  # the two terms differ, so the weighting is seen
    assert torch.isclose(loss, 0.75 * final + 0.25 * middle, rtol=1e-5)


def test_evaluation_reads_the_last_layer_alone_and_the_tap_reads_its_layer():
    model = tapped().eval()
    task = CTCTask(model, inter_ctc_weight=0.25)
    task.log = lambda *a, **k: None
    wave, lens, targets, target_lens, texts = batch()
    with torch.no_grad():
        loss = task.shared_step((wave, lens, targets, target_lens, texts), "val")
        plain, frames = model(wave, lens)
        final, frames_out, middle = model(wave, lens, intermediate=True)
        middle_ref, _ = cut_at(model, 2)(wave, lens)
    assert torch.isclose(loss, ctc(plain, frames, targets, target_lens), rtol=1e-5)
    assert torch.allclose(final, plain, atol=1e-5) and torch.allclose(middle, middle_ref, atol=1e-5)
    assert torch.equal(frames_out, frames)


def test_torchaudio_peer_taps_its_own_layers():
    """The peer baseline trains with the same objective: its last tapped state is torchaudio's own output."""
    torch.manual_seed(0)
    peer = TorchaudioConformerCTC(vocab=TOKENIZER.itos, dim=32, depth=3, num_heads=2, subsample_channels=8,
                                  n_mels=40, drop=0.0, inter_ctc=1, macaron=True, mlp_ratio=2.0).eval()
    wave, lens = batch()[:2]
    with torch.no_grad():
        final, frames, middle = peer(wave, lens, intermediate=True)
        ref, ref_frames = peer(wave, lens)
        x, _, pad = peer.subsample(*peer.features(wave, lens))
        first = peer.conformer.conformer_layers[0](x.transpose(0, 1), pad).transpose(0, 1)
    assert torch.allclose(final, ref, atol=1e-5) and torch.equal(frames, ref_frames)
    assert torch.allclose(middle, peer.head(first).log_softmax(-1), atol=1e-5)


@pytest.mark.parametrize("layer", [-1, 3, 5, None])
def test_a_layer_outside_the_encoder_is_refused(layer):
    with pytest.raises(ValueError, match=r"model.inter_ctc=.* must name an encoder layer below the last \(1..2\)"):
        tapped(inter_ctc=layer)


def test_bad_weight_and_an_untapped_model_are_refused():
    with pytest.raises(ValueError, match="this encoder has only one"):
        tapped(depth=1, inter_ctc=1)
    with pytest.raises(ValueError, match=r"module.inter_ctc_weight=1.0 must be in \[0, 1\)"):
        CTCTask(tapped(), inter_ctc_weight=1.0)
    with pytest.raises(ValueError, match="need model.inter_ctc"):
        tapped(inter_ctc=0)(*batch()[:2], intermediate=True)


@pytest.mark.parametrize(("overrides", "layer"), [([], 3), (["model.depth=4"], 2), (["model.depth=1"], 0),
                                                  (["model.inter_ctc=0"], 0)])
def test_the_recipe_taps_the_middle_layer_of_its_depth(overrides, layer):
    assert compose_cfg(["experiment=speech/spoken_digits", *overrides]).model.inter_ctc == layer
