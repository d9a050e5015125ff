"""Digits classification recipe: composition, a short learning check, and the full-budget bars (slow)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import compose_cfg, train_cfg

TINY = ["model.dim=32", "model.depth=1", "model.num_heads=2"]


@pytest.mark.parametrize("variant", [[], ["pe=learned"], ["pe=rope"], ["pe=alibi"], ["pe=none"],
                                     ["attention=additive"], ["attention=linear", "pe=rope"], ["model.pool=cls"]])
def test_digits_fast_dev_run(variant, out_dir):
    rec = train_cfg(["experiment=vision/digits", "trainer.fast_dev_run=true", *TINY, *variant], out_dir)
    assert 0.0 <= rec["test/acc"] <= 1.0
    assert rec["task"] == "vision/classification"


def test_digits_default_is_the_default_experiment():
    cfg = compose_cfg([])
    assert cfg.model._target_ == "vision.models.ViT" and cfg.data._target_ == "vision.data.digits.DigitsDataModule"


def test_linear_attention_refuses_alibi(out_dir):
    from core.train.errors import ConfigError

    with pytest.raises(ConfigError, match="alibi|ALiBi"):
        train_cfg(["experiment=vision/digits", "attention=linear", "pe=alibi", "trainer.fast_dev_run=true"], out_dir)


def test_digits_learns_quickly(out_dir):
    """Loss falls and accuracy clears chance (0.10) by a wide margin in a few epochs."""
    rec = train_cfg(["experiment=vision/digits", "trainer.max_epochs=10"], out_dir)
    assert rec["test/acc"] >= 0.7, rec
    assert rec["val/loss"] < 1.2, rec  # started at ln(10) = 2.30
    assert json.loads((out_dir / "metrics.json").read_text())["test/acc"] == pytest.approx(rec["test/acc"])


def test_attention_maps_on_demand():
    from core.nn.attention import record_attention
    from vision.models import ViT

    model = ViT(img_size=8, patch_size=2, in_chans=1, num_classes=10, dim=32, depth=2, num_heads=2, pool="cls").eval()
    with record_attention(model) as mods:
        model(torch.randn(3, 1, 8, 8))
    maps = [m.last_attn for m in mods.values()]
    assert len(maps) == 2 and maps[0].shape == (3, 2, 17, 17)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(3, 2, 17))


BARS = [([], 0.97), (["pe=learned"], 0.95), (["pe=rope"], 0.95),
        (["pe=alibi"], 0.95),
        (["attention=additive"], 0.95)]


@pytest.mark.slow
@pytest.mark.parametrize("overrides,bar", BARS, ids=["default", "learned", "rope", "alibi", "additive"])
def test_digits_bars(overrides, bar, out_dir):
    """Foundation bars: default config >= 0.97, every other PE (but none) and additive >= 0.95, < 3 min."""
    rec = train_cfg(["experiment=vision/digits", *overrides], out_dir)
    print(json.dumps({k: rec[k] for k in ("pe", "attention", "test/acc", "train_seconds")}))
    assert rec["test/acc"] >= bar, rec
    assert rec["train_seconds"] < 180, rec
