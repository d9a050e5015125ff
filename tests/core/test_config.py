"""Config tree: every recipe composes; bad configurations fail at start-up with one sentence."""

import re

import pytest
from conftest import CONF_DIR, compose_cfg, run_cli, train_cfg
from hydra.utils import instantiate

from core.train.errors import ConfigError

RECIPES = sorted(str(p.relative_to(CONF_DIR / "experiment").with_suffix(""))
                 for p in (CONF_DIR / "experiment").rglob("*.yaml"))


def test_recipes_exist_for_every_domain():
    assert "vision/digits" in RECIPES


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_with_every_attention(recipe, tmp_path):
    for attention in ("sdpa", "additive", "linear"):
        cfg = compose_cfg([f"experiment={recipe}", f"attention={attention}"], tmp_path)
        for key in ("task", "data", "model", "module", "monitor"):
            assert cfg.get(key) is not None, f"{recipe} lacks {key}"
        assert cfg.model.get("attn") is not None or "bow" in recipe  # attention= reaches the model
        assert instantiate(cfg.attention).func.__name__ in {"MultiHeadAttention", "AdditiveAttention", "LinearAttention"}


@pytest.mark.parametrize("overrides, key", [
    (["model.num_heads=5"], "model.num_heads"),
    (["model.patch_size=3"], "model.patch_size"),
    (["attention=linear", "pe=alibi"], "pe=alibi"),
    (["trainer.precision=16-mixed"], "trainer.precision"),
    (["trainer=gpu"], "trainer.accelerator"),
    (["data.batch_size=0"], "data.batch_size"),
    (["module.optimizer.lr=-1"], "module.optimizer.lr"),
    (["model.depth=0"], "model.depth"),
    (["model.pool=max"], "model.pool"),
    (["trainer.precision=fp8"], "trainer.precision"),
    (["ckpt_path=/nonexistent/x.ckpt"], "/nonexistent/x.ckpt"),
    (["resume=true"], "resume=true"),
])
def test_bad_config_is_one_sentence_naming_the_key(overrides, key, out_dir):
    with pytest.raises(ConfigError if "ckpt" not in key else ValueError) as err:
        train_cfg(["trainer.fast_dev_run=true", *overrides], out_dir)
    msg = str(err.value)
    assert key in msg and "\n" not in msg and msg.rstrip().endswith(".")
    assert not (out_dir / "metrics.json").exists()


def _one_error_line(proc):
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines


def test_cli_bad_config_exits_2_with_one_sentence(tmp_path):
    proc = run_cli("mas-train", "model.num_heads=5", f"hydra.run.dir={tmp_path}/r", cwd=tmp_path)
    lines = _one_error_line(proc)
    assert proc.returncode == 2
    assert re.fullmatch(r"error: model\.dim=\d+ is not divisible by model\.num_heads=5\.", lines[-1]), lines[-1]


@pytest.mark.parametrize("app,args,sentence", [
    ("mas-train", ["pe=rope2"], "error: pe=rope2: there is no such pe config; did you mean rope or rope_2d? choose one "
                                "of alibi, learned, none, rope, rope_2d, rope_mixed, sinusoidal, sinusoidal_2d."),
    ("mas-train", ["attention=flash9"], "error: attention=flash9: there is no such attention config; choose one of "
                                        "additive, linear, sdpa."),
    ("mas-train", ["model.dimm=3"], "error: model.dimm is not a key of mas-train's config; did you mean model.dim"),
    ("mas-train", ["experiment=vision/nope"], "error: experiment=vision/nope: there is no such experiment config"),
    ("mas-train", ["-m", "pe=rope,rope3"], "error: pe=rope3: there is no such pe config"),
    ("mas-train", ["seed=1,2"], "error: seed=1,2 holds comma-separated values"),
    ("mas-predict", ["ckpt_path=x.ckpt", "topk=3"], "error: topk is not a key of mas-predict's config; did you mean top_k?"),
    ("mas-eval", ["ckpt_path=x.ckpt", "trainer.precison=bf16"], "error: trainer.precison is not a key of mas-eval's "
                                                                 "config; did you mean trainer.precision"),
    ("mas-compare", ["preset=quik"], "error: preset=quik: there is no such preset config; did you mean quick?"),
])
def test_cli_wrong_key_or_option_is_one_sentence_naming_the_closest(app, args, sentence, tmp_path):
    """Every CLI: a wrong key or group option ends with one `error:` line (no Hydra text) and exit 2."""
    proc = run_cli(app, *args, f"hydra.run.dir={tmp_path}/r", cwd=tmp_path)
    lines = _one_error_line(proc)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(sentence), lines[0]
    assert not (tmp_path / "r").exists()  # refused before Hydra made a run directory


def test_cli_multirun_with_ddp_is_refused(tmp_path):
    proc = run_cli("mas-train", "-m", "trainer=ddp_cpu", "seed=1,2", f"hydra.sweep.dir={tmp_path}/m", cwd=tmp_path)
    assert proc.returncode == 2
    assert "trainer.strategy=ddp cannot run inside a Hydra multirun" in proc.stderr
    assert "ddp_spawn" in proc.stderr
