"""One compatibility check, read from the classes' declared capabilities, behind start-up validation,
the blocks and mas-compare."""

from __future__ import annotations

import functools

import pytest

from conftest import compose_cfg
from core.nn.attention import AdditiveAttention, LinearAttention, MultiHeadAttention
from core.nn.blocks import TransformerEncoder
from core.nn.capabilities import IncompatibleError, check_compatible, incompatibility, served_ndims
from core.nn.pe import ALiBi, LearnedPE, NoPE, RoPE, SinusoidalPE
from core.report.compare import combination_problem, expand_grid
from core.train.validate import combination_error


def test_declared_capabilities():
    assert LinearAttention.supports_bias is False
    assert MultiHeadAttention.supports_bias and AdditiveAttention.supports_bias
    assert all(c.supports_rotary for c in (MultiHeadAttention, AdditiveAttention, LinearAttention))
    assert (ALiBi.kind, RoPE.kind, SinusoidalPE.kind, NoPE.kind) == ("bias", "rotary", "additive", "none")
    assert LearnedPE.serves == (1, 2) and SinusoidalPE.serves is None
    assert served_ndims(functools.partial(SinusoidalPE, only_ndim=2)) == (2,)


@pytest.mark.parametrize("attn", [LinearAttention, functools.partial(LinearAttention), LinearAttention(8, 2)])
def test_classes_partials_and_instances_agree(attn):
    why = incompatibility(attn, functools.partial(ALiBi), names=("linear", "alibi"))
    assert why == "attention=linear cannot apply the logit bias of pe=alibi; choose another attention= or pe=."
    assert incompatibility(attn, RoPE) is None
    with pytest.raises(IncompatibleError, match="serves 2-D positions, but this model's tokens have 1-D"):
        check_compatible(attn, functools.partial(RoPE, only_ndim=2), ndim=1)


def test_causal_only_encodings_need_causal_attention():
    class CausalOnly(NoPE):
        causal_only = True

    assert incompatibility(MultiHeadAttention, CausalOnly, causal=True) is None
    assert "needs causal attention" in incompatibility(MultiHeadAttention, CausalOnly, causal=False)


def test_blocks_validation_and_compare_give_the_same_sentence(tmp_path):
    with pytest.raises(IncompatibleError, match="attention=LinearAttention cannot apply the logit bias of pe=ALiBi"):
        TransformerEncoder(dim=8, depth=1, num_heads=2, attn=LinearAttention, pe=ALiBi)
    cfg = compose_cfg(["experiment=nlp/numbers_cls", "attention=linear", "pe=alibi"], tmp_path)
    assert combination_error(cfg) == combination_problem("nlp/numbers_cls", "linear", "alibi") == \
        "attention=linear cannot apply the logit bias of pe=alibi; choose another attention= or pe=."
    assert "1-D positions" in combination_problem("nlp/numbers_cls", "sdpa", "rope_2d")
    assert combination_problem("vision/digits", "sdpa", "rope_2d") is None
    cells = expand_grid(["vision/digits", "speech/spoken_digits"], ["sdpa"], ["rope_2d", "alibi"], [0])
    assert [(c.task, c.pe) for c in cells] == [("vision/digits", "rope_2d"), ("vision/digits", "alibi"),
                                               ("speech/spoken_digits", "alibi")]
