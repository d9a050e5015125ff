"""mas-predict on vision checkpoints: any image mode and size; clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_bench, run_cli, train_cfg
from PIL import Image

from core.train.errors import InputError
from core.train.run import load_for_predict

SHORT = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1", "model.dim=32", "model.depth=1", "model.num_heads=2"]


def _images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    arr = rng.randint(0, 256, (37, 23, 3)).astype(np.uint8)
    Image.fromarray(arr).save(folder / "rgb.png")
    Image.fromarray(arr).convert("L").save(folder / "gray.png")
    Image.fromarray(arr).convert("P").save(folder / "palette.png")
    rgba = Image.fromarray(np.dstack([arr, np.full((37, 23), 128, np.uint8)]), mode="RGBA")
    rgba.save(folder / "rgba.png")
    Image.fromarray(arr[:5, :9]).save(folder / "tiny.jpg")
    return folder


@pytest.fixture(scope="module")
def cls_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls_run")
    train_cfg(["experiment=vision/digits", *SHORT], out)
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def seg_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg_run")
    train_cfg(["experiment=vision/digits_seg", *SHORT], out)
    return out / "checkpoints" / "last.ckpt"


def _predict(ckpt, request, out_dir):
    cfg, dm, module = load_for_predict(str(ckpt))
    from hydra.utils import instantiate

    return instantiate(cfg.predictor)(module=module, datamodule=dm, request={"top_k": 3, **request}, out_dir=str(out_dir))


def test_classification_any_mode_and_size(cls_ckpt, tmp_path, capsys):
    res = _predict(cls_ckpt, {"input": str(_images(tmp_path / "imgs"))}, tmp_path)
    assert len(res) == 5
    for r in res:
        labels, probs = zip(*r["top"])
        assert len(labels) == 3 and set(labels) <= {str(i) for i in range(10)}
        assert all(0 <= p <= 1 for p in probs) and list(probs) == sorted(probs, reverse=True)
    assert "rgba.png" in capsys.readouterr().out


def test_segmentation_writes_mask_and_overlay_at_image_size(seg_ckpt, tmp_path):
    res = _predict(seg_ckpt, {"input": [str(p) for p in sorted(_images(tmp_path / "imgs").iterdir())]},
                   tmp_path / "masks")
    assert len(res) == 5
    for r in res:
        mask, overlay = Image.open(r["mask"]), Image.open(r["overlay"])
        src = Image.open(r["file"])
        assert mask.size == src.size == overlay.size and mask.mode == "P" and overlay.mode == "RGB"
        assert np.asarray(mask).max() <= 10
        assert sum(r["fractions"].values()) == pytest.approx(1.0, abs=1e-3)


def test_bad_inputs_raise_one_sentence(cls_ckpt, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image\n")
    with pytest.raises(InputError, match="not a readable image"):
        _predict(cls_ckpt, {"input": str(bad)}, tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        _predict(cls_ckpt, {"input": str(tmp_path / "missing.png")}, tmp_path)
    with pytest.raises(InputError, match="no image files"):
        _predict(cls_ckpt, {"input": str((tmp_path / "empty").mkdir() or tmp_path / "empty")}, tmp_path)


def test_cli_good_and_bad(cls_ckpt, seg_ckpt, tmp_path):
    imgs = _images(tmp_path / "imgs")
    ok = run_cli("mas-predict", f"ckpt_path={cls_ckpt}", f"input={imgs / 'rgba.png'}", "top_k=2",
                 f"hydra.run.dir={tmp_path / 'p1'}")
    assert ok.returncode == 0, ok.stderr
    line = [ln for ln in ok.stdout.splitlines() if "rgba.png" in ln][0]
    assert line.count(",") == 1  # two labels
    seg = run_cli("mas-predict", f"ckpt_path={seg_ckpt}", f"input={imgs / 'gray.png'}",
                  f"out_dir={tmp_path / 'm'}", f"hydra.run.dir={tmp_path / 'p2'}")
    assert seg.returncode == 0, seg.stderr
    assert (tmp_path / "m" / "gray_mask.png").is_file() and (tmp_path / "m" / "gray_overlay.png").is_file()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00\x01garbage")
    for target in (bad, tmp_path / "missing.png"):
        r = run_cli("mas-predict", f"ckpt_path={cls_ckpt}", f"input={target}", f"hydra.run.dir={tmp_path / 'p3'}")
        assert r.returncode == 2
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and str(target) in err[0]


def test_16_bit_greyscale_png_is_scaled_by_its_bit_depth(tmp_path):
    """A 16-bit PNG of a ramp reads as the same ramp in 8 bits (not clipped to white above 255)."""
    from vision.predict import read_image

    ramp = (np.linspace(0, 65535, 64).reshape(8, 8)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode.startswith("I")
    got = np.asarray(read_image(tmp_path / "ramp16.png", 1), dtype=np.float64)
    np.testing.assert_allclose(got, ramp / 257.0, atol=0.51)  # 65535 / 255 = 257
    assert len(np.unique(got)) > 32  # a ramp, not a binary image


@pytest.mark.parametrize("which", ["cls", "seg"])
def test_one_bad_file_in_a_folder_leaves_the_others_their_output(which, cls_ckpt, seg_ckpt, tmp_path):
    ckpt = cls_ckpt if which == "cls" else seg_ckpt
    imgs = _images(tmp_path / "imgs")
    (imgs / "broken.png").write_bytes(b"\x89PNG not really")
    proc = run_cli("mas-predict", f"ckpt_path={ckpt}", f"input={imgs}", f"out_dir={tmp_path / 'm'}",
                   f"hydra.run.dir={tmp_path / 'p'}")
    assert proc.returncode == 2
    good = [ln for ln in proc.stdout.splitlines() if ln.startswith(str(imgs))]
    assert len(good) == 5 and not any("broken.png" in ln for ln in good)
    err = proc.stderr.strip().splitlines()
    assert len(err) == 2 and "broken.png is not a readable image" in err[0]
    assert err[1] == "error: 1 of 6 input files could not be read (broken.png); the others got their output."


def test_person_digits_bench_writes_both_polarities_and_scores_a_checkpoint(cls_ckpt, tmp_path, capsys):
    """bench/person_digits.py: every picture holds ink of the stated polarity on a canvas of its own size,
    and the checkpoint is scored per kind through mas-predict's loader."""
    bench = load_bench("person_digits")
    (tmp_path / "pics").mkdir()
    pictures = bench.make_pictures(tmp_path / "pics", per_class=2, seed=4)
    assert len(pictures) == 20 and {d for _, d, _, _ in pictures} == set(range(10))
    for file, _, kind, _ in pictures:
        a = np.asarray(Image.open(file).convert("L"), dtype=np.float32)
        ink_is_dark = kind.endswith("dark")
        background = np.median(a)
        assert (background > 127) == ink_is_dark  # paper is the majority of the picture
        assert np.abs(a - background).max() > 100  # and there is ink on it
    bench.main(["--ckpt", str(cls_ckpt), "--per-class", "1", "--keep", str(tmp_path / "keep")])
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if "accuracy" in ln}
    assert lines["all"].endswith("(n=10)") and 0.0 <= float(lines["all"].split()[2]) <= 1.0
