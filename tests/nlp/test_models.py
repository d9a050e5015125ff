"""Text models: padding never changes the results of non-padded items; config errors; attention maps."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from core.nn.attention import AdditiveAttention, LinearAttention, MultiHeadAttention, record_attention
from core.nn.pe import ALiBi, LearnedPE, NoPE, RoPE, SinusoidalPE
from nlp.data.modules import pad_sequences
from nlp.models import BagOfTokens, Seq2SeqTransformer, TextClassifier

PES = {"sinusoidal": SinusoidalPE, "learned": partial(LearnedPE, init_std=0.02), "rope": RoPE, "alibi": ALiBi,
       "none": NoPE}
ATTNS = {"sdpa": MultiHeadAttention, "additive": AdditiveAttention, "linear": LinearAttention}


def _seqs(lengths, vocab=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, vocab, (n,), generator=g) for n in lengths]


COMBOS = [("sdpa", pe, pool) for pe in PES for pool in ("cls", "mean")] + [
    (attn, pe, "cls") for attn in ("additive", "linear") for pe in ("sinusoidal", "rope")]


@pytest.mark.parametrize(("attn", "pe", "pool"), COMBOS)
def test_classifier_padding_invariance(attn, pe, pool):
    torch.manual_seed(0)
    model = TextClassifier(vocab_size=20, num_classes=3, max_len=16, dim=32, depth=2, num_heads=4, pool=pool,
                           attn=ATTNS[attn], pe=PES[pe]).eval()
    seqs = _seqs([3, 9, 6])
    tokens, mask = pad_sequences(seqs)
    with torch.no_grad():
        batched = model(tokens, mask)
        alone = torch.cat([model(s[None], torch.zeros(1, len(s), dtype=torch.bool)) for s in seqs])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)


def test_bag_of_tokens_ignores_order_and_padding():
    model = BagOfTokens(vocab_size=20, num_classes=2, dim=16, hidden=32).eval()
    seqs = _seqs([5, 2])
    tokens, mask = pad_sequences(seqs)
    with torch.no_grad():
        out = model(tokens, mask)
        torch.testing.assert_close(out[0:1], model(seqs[0].flip(0)[None], None))
        torch.testing.assert_close(out[1:2], model(seqs[1][None], None))


@pytest.mark.parametrize("cross", ["sdpa", "additive"])
def test_seq2seq_source_padding_invariance(cross):
    torch.manual_seed(0)
    model = Seq2SeqTransformer(vocab_size=20, max_len=16, dim=32, enc_depth=2, dec_depth=2, num_heads=4,
                               attn=MultiHeadAttention, cross_attn=ATTNS[cross], pe=SinusoidalPE).eval()
    assert isinstance(model.decoder.blocks[0].cross_attn, ATTNS[cross])
    src = _seqs([4, 10], seed=1)
    tgt = _seqs([6, 3], seed=2)
    s, sm = pad_sequences(src)
    t, _ = pad_sequences(tgt)
    with torch.no_grad():
        batched = model(s, sm, t)
        for i in range(2):
            alone = model(src[i][None], None, tgt[i][None])  # (1, T_i, V)
            torch.testing.assert_close(batched[i:i + 1, : len(tgt[i])], alone, atol=1e-5, rtol=1e-4)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="model.num_heads"):
        TextClassifier(vocab_size=10, num_classes=2, dim=30, num_heads=4)
    with pytest.raises(ValueError, match="model.pool"):
        TextClassifier(vocab_size=10, num_classes=2, dim=32, num_heads=4, pool="max")
    with pytest.raises(ValueError, match="attention=LinearAttention"):
        TextClassifier(vocab_size=10, num_classes=2, dim=32, num_heads=4, attn=LinearAttention, pe=ALiBi)


def test_embedding_scale_does_not_drown_the_pe():
    model = TextClassifier(vocab_size=50, num_classes=2, dim=64, num_heads=4, pe=SinusoidalPE)
    emb_std = model.embed.weight[4:].std().item()
    pe_std = model.encoder.pe.embed(torch.arange(64.0)[None, :, None]).std().item()  # ~0.7
    assert 0.5 < emb_std / pe_std < 2.0


def test_record_attention_on_text_tokens():
    model = TextClassifier(vocab_size=20, num_classes=2, max_len=16, dim=32, depth=2, num_heads=4,
                           pe=SinusoidalPE).eval()
    tokens, mask = pad_sequences(_seqs([7, 4]))
    with record_attention(model) as mods, torch.no_grad():
        model(tokens, mask)
    attn = mods["encoder.blocks.0.attn"].last_attn  # (B, H, 1 + N, 1 + N): class token first
    assert attn.shape == (2, 4, 8, 8)
    assert attn[1, :, :, 5:].abs().max() < 1e-6  # padded keys get no weight
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 4, 8))


@pytest.mark.parametrize(("attn", "cross", "pe"), [("sdpa", "sdpa", "sinusoidal"), ("sdpa", "additive", "rope"),
                                                   ("sdpa", "sdpa", "alibi"), ("linear", "sdpa", "learned")])
def test_incremental_decoder_equals_full_decode(attn, cross, pe):
    from nlp.decode import beam_search
    from nlp.models import IncrementalDecoder

    torch.manual_seed(0)
    model = Seq2SeqTransformer(vocab_size=20, max_len=16, dim=32, enc_depth=1, dec_depth=2, num_heads=4,
                               attn=ATTNS[attn], cross_attn=ATTNS[cross], pe=PES[pe]).eval()
    s, sm = pad_sequences(_seqs([5, 9], seed=3))
    tgt = torch.cat([torch.full((2, 1), 2), torch.randint(4, 20, (2, 6))], dim=1)  # <s> + 6 tokens
    with torch.no_grad():
        memory = model.encode(s, sm)
        full = model.decode(tgt, memory, sm).log_softmax(-1)  # (2, 7, V)
        dec = IncrementalDecoder(model, memory, sm)
        steps = torch.stack([dec.step(tgt[:, : t + 1]) for t in range(tgt.shape[1])], dim=1)
        torch.testing.assert_close(steps, full, atol=1e-4, rtol=1e-4)
        # beam search with the cache (and its reorder hook) equals beam search recomputing every prefix
        k = 3
        mem, mask = memory.repeat_interleave(k, 0), sm.repeat_interleave(k, 0)
        cached = IncrementalDecoder(model, mem, mask)
        kw = dict(beam_size=k, max_len=8, bos=2, eos=3, pad=0, length_penalty=1.0)
        a, sa = beam_search(cached.step, 2, reorder=cached.reorder, **kw)
        b, sb = beam_search(lambda p: model.decode(p, mem, mask)[:, -1].log_softmax(-1), 2, **kw)
        assert a.tolist() == b.tolist()
        torch.testing.assert_close(sa, sb, atol=1e-4, rtol=1e-4)
