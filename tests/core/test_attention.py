"""Attention numerics against torch's own implementations."""

import math

import pytest
import torch
from torch import nn

from core.nn.attention import (
    CPU_LOWP_FLASH_MIN_KEYS,
    AdditiveAttention,
    LinearAttention,
    MultiHeadAttention,
    kernel_dtype,
    record_attention,
)
from core.nn.pe import ALiBi, RoPE, sequence_coords

B, NQ, NK, C, H = 3, 6, 9, 32, 4


def _reference(m: MultiHeadAttention) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(C, H, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(m.qkv.weight)
        ref.in_proj_bias.copy_(m.qkv.bias)
        ref.out_proj.weight.copy_(m.proj.weight)
        ref.out_proj.bias.copy_(m.proj.bias)
    return ref.eval()


def _padding(n: int) -> torch.Tensor:
    kpm = torch.zeros(B, n, dtype=torch.bool)
    kpm[1, n - 3:] = True
    kpm[2, n - 1:] = True
    return kpm


@pytest.mark.parametrize("record", [False, True], ids=["sdpa", "explicit"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_self_attention_matches_torch(record, causal, padded):
    torch.manual_seed(0)
    m = MultiHeadAttention(C, H).eval()
    m.record = record
    x = torch.randn(B, NK, C)
    kpm = _padding(NK) if padded else None
    mask = torch.ones(NK, NK, dtype=torch.bool).triu(1) if causal else None
    ref, _ = _reference(m)(x, x, x, key_padding_mask=kpm, attn_mask=mask)
    out = m(x, key_padding_mask=kpm, causal=causal)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("padded", [False, True])
def test_cross_attention_matches_torch(padded):
    torch.manual_seed(1)
    m = MultiHeadAttention(C, H).eval()
    q, ctx = torch.randn(B, NQ, C), torch.randn(B, NK, C)
    kpm = _padding(NK) if padded else None
    ref, _ = _reference(m)(q, ctx, ctx, key_padding_mask=kpm)
    torch.testing.assert_close(m(q, ctx, key_padding_mask=kpm), ref, atol=1e-5, rtol=1e-5)


def test_sdpa_path_equals_explicit_path_with_bias_and_rotary():
    torch.manual_seed(2)
    m = MultiHeadAttention(C, H).eval()
    x, kpm = torch.randn(B, NK, C), _padding(NK)
    pos = sequence_coords(NK)
    kw = {**ALiBi(C, H, 1).attn_kwargs(pos), **RoPE(C, H, 1).attn_kwargs(pos)}
    fast = m(x, key_padding_mask=kpm, causal=True, **kw)
    with record_attention(m):
        slow = m(x, key_padding_mask=kpm, causal=True, **kw)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    assert m.record is False and m.last_attn is not None


@pytest.mark.parametrize("cls", [MultiHeadAttention, AdditiveAttention, LinearAttention])
def test_masked_keys_get_zero_weight_and_rows_sum_to_one(cls):
    torch.manual_seed(3)
    m = cls(C, H).eval()
    x, kpm = torch.randn(B, NK, C), _padding(NK)
    with record_attention(m):
        m(x, key_padding_mask=kpm)
    w = m.last_attn  # (B, H, N, N)
    assert w.shape == (B, H, NK, NK)
    assert torch.all(w.masked_select(kpm[:, None, None, :].expand_as(w)) == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, H, NK), atol=1e-5, rtol=0)


def test_padding_never_changes_unpadded_items():
    torch.manual_seed(4)
    for cls in (MultiHeadAttention, AdditiveAttention, LinearAttention):
        m = cls(C, H).eval()
        x = torch.randn(1, 5, C)
        padded = torch.cat([x, torch.randn(1, 4, C)], dim=1)
        kpm = torch.tensor([[False] * 5 + [True] * 4])
        torch.testing.assert_close(m(padded, key_padding_mask=kpm)[:, :5], m(x), atol=1e-5, rtol=1e-5)


def test_additive_attention_is_bahdanau():
    """Scores equal w_h . tanh(q_h + k_h) computed by hand for one head pair."""
    torch.manual_seed(5)
    m = AdditiveAttention(C, H).eval()
    x = torch.randn(1, 4, C)
    with record_attention(m):
        m(x)
    q, k, _ = m.qkv(x).chunk(3, dim=-1)
    d = C // H
    qh, kh = q[0, :, :d], k[0, :, :d]  # head 0
    scores = torch.stack([torch.stack([m.score[0] @ torch.tanh(qh[i] + kh[j]) for j in range(4)]) for i in range(4)])
    torch.testing.assert_close(m.last_attn[0, 0], scores.softmax(-1), atol=1e-6, rtol=1e-5)


def test_linear_attention_matches_quadratic_kernel_form():
    """O(N) result equals the explicit normalised kernel attention, causal and not."""
    torch.manual_seed(6)
    m = LinearAttention(C, H).eval()
    x = torch.randn(B, NK, C)
    q, k, v = (m._heads(t) for t in m.qkv(x).chunk(3, dim=-1))
    fq, fk = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    for causal in (False, True):
        s = fq @ fk.transpose(-2, -1)
        if causal:
            s = s.tril()
        o = (s / s.sum(-1, keepdim=True)) @ v
        ref = m.proj(o.transpose(1, 2).reshape(B, NK, C))
        torch.testing.assert_close(m(x, causal=causal), ref, atol=1e-5, rtol=1e-4)


def test_linear_attention_refuses_bias():
    m = LinearAttention(C, H)
    with pytest.raises(ValueError, match="logit bias"):
        m(torch.randn(1, 3, C), bias=torch.zeros(1, H, 3, 3))


def test_heads_must_divide_dim():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)


def test_scale_is_inverse_sqrt_head_dim():
    torch.manual_seed(7)
    m = MultiHeadAttention(C, H).eval()
    x = torch.randn(1, 3, C)
    with record_attention(m):
        m(x)
    q, k, _ = (m._heads(t) for t in m.qkv(x).chunk(3, dim=-1))
    torch.testing.assert_close(m.last_attn, (q @ k.transpose(-2, -1) / math.sqrt(C // H)).softmax(-1))


def test_kernel_dtype_rule():
    bf16, fp32 = torch.empty(1, dtype=torch.bfloat16), torch.empty(1)
    short, long = CPU_LOWP_FLASH_MIN_KEYS - 1, CPU_LOWP_FLASH_MIN_KEYS
    assert kernel_dtype(bf16, short) == torch.float32 and kernel_dtype(bf16, long) == torch.bfloat16
    assert kernel_dtype(fp32, short) == torch.float32 and kernel_dtype(fp32.half(), short) == torch.float32


@pytest.mark.parametrize("n", [17, CPU_LOWP_FLASH_MIN_KEYS + 8])
def test_bf16_autocast_runs_the_chosen_kernel_dtype(n, monkeypatch):
    """Under bf16 autocast, short sequences reach SDPA in fp32 (autocast must not cast them back)."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append((q.dtype, None if kw.get("attn_mask") is None else kw["attn_mask"].dtype))
        return sdpa(q, k, v, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    torch.manual_seed(0)
    m = MultiHeadAttention(C, H)
    x = torch.randn(2, n, C)
    kpm = torch.zeros(2, n, dtype=torch.bool)
    kpm[1, n // 2:] = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x, key_padding_mask=kpm)
    want = kernel_dtype(torch.empty(1, dtype=torch.bfloat16), n)
    assert seen == [(want, want)] and y.dtype == torch.bfloat16
    ref = m(x, key_padding_mask=kpm)  # fp32 end to end
    torch.testing.assert_close(y.float(), ref, atol=3e-2, rtol=3e-2)
    y.float().sum().backward()
    assert m.qkv.weight.grad is not None and torch.isfinite(m.qkv.weight.grad).all()


def test_causal_linear_attention_maps_are_what_each_query_sees():
    """Recorded causal maps are normalised over the keys a query sees: rows sum to 1, map @ v is the output."""
    torch.manual_seed(8)
    m = LinearAttention(C, H).eval()
    x = torch.randn(B, 6, C)
    for causal in (False, True):
        with record_attention(m):
            out = m(x, causal=causal)
        attn = m.last_attn
        torch.testing.assert_close(attn.sum(-1), torch.ones(B, H, 6), atol=1e-5, rtol=0)
        if causal:
            assert torch.all(attn.triu(1) == 0)
        v = m._heads(m.qkv(x).chunk(3, dim=-1)[2])
        torch.testing.assert_close(m.proj((attn @ v).transpose(1, 2).reshape(B, 6, C)), out, atol=1e-5, rtol=1e-4)
