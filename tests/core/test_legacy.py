"""Checkpoints written before the core/{nn,train,report} layout still load and give the same outputs.

The fixtures were written by mas-train at commit 56378c2 (see tests/fixtures/legacy/README.md), with
each model's outputs on fixed inputs computed by that code: an independent reference.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import run_cli
from core.train.checkpoints import LAYOUT, load_checkpoint
from core.train.errors import ConfigError
from core.train.run import load_for_predict

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "legacy"
REFERENCE = torch.load(FIXTURES / "outputs.pt", weights_only=True)


@pytest.mark.parametrize("name", ["vision", "speech", "nlp"])
def test_old_layout_checkpoint_gives_the_old_outputs(name):
    ckpt = load_checkpoint(FIXTURES / f"{name}.ckpt")
    assert ckpt["mas_layout"] == LAYOUT and ckpt["mas_migrated_from"] == 1
    assert not any(str(v).startswith(("core.attention", "vision.model.", "speech.model.", "nlp.module."))
                   for v in _targets(ckpt["mas_config"]))
    _, _, module = load_for_predict(str(FIXTURES / f"{name}.ckpt"))
    ref, model = REFERENCE[name], module.model
    with torch.no_grad():
        if name == "vision":
            out = model(ref["x"])
        elif name == "speech":  # the Conformer modules moved from model.convs.<i> into encoder layer i
            out = model(ref["x"], torch.tensor([ref["x"].shape[1]]))[0]
            assert model.encoder.blocks[0].conv is not None
        else:
            out = model(ref["src"], None, ref["tgt"])
    torch.testing.assert_close(out, ref["y"], atol=1e-5, rtol=1e-5)


def _targets(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "_target_":
                yield v
            else:
                yield from _targets(v)


def test_old_layout_checkpoint_predicts_from_the_cli(tmp_path):
    from PIL import Image, ImageDraw

    im = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(im).line([(16, 4), (16, 28)], fill=255, width=3)  # a "1": a picture with a digit in it
    im.save(tmp_path / "one.png")
    proc = run_cli("mas-predict", f"ckpt_path={FIXTURES / 'vision.ckpt'}", f"input={tmp_path / 'one.png'}",
                   f"hydra.run.dir={tmp_path}/p", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"{tmp_path / 'one.png'}: ")


def test_unmappable_old_checkpoint_is_one_sentence(tmp_path):
    ckpt = torch.load(FIXTURES / "vision.ckpt", weights_only=True)
    ckpt["mas_config"]["model"]["_target_"] = "vision.vit_v0.ViT"  # a module that never existed
    torch.save(ckpt, tmp_path / "odd.ckpt")
    with pytest.raises(ConfigError, match=r"comes from an older layout of this suite \(layout 1\)") as err:
        load_for_predict(str(tmp_path / "odd.ckpt"))
    assert "\n" not in str(err.value)


def test_layout_2_sinusoidal_tables_keep_their_row_first_order():
    """Checkpoints of layout 2 trained with the row block first; new runs get MAE's column-first table."""
    from core.train.checkpoints import migrate_checkpoint

    pe = {"_target_": "core.nn.pe.SinusoidalPE", "_partial_": True}
    old = migrate_checkpoint({"mas_layout": 2, "state_dict": {}, "mas_config": {"model": {"pe": dict(pe)}}})
    assert old["mas_config"]["model"]["pe"]["axis_order"] == "rows_first" and old["mas_migrated_from"] == 2
    new = migrate_checkpoint({"mas_layout": LAYOUT, "state_dict": {}, "mas_config": {"model": {"pe": dict(pe)}}})
    assert "axis_order" not in new["mas_config"]["model"]["pe"]
