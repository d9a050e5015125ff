"""vision/hf_images and vision/hf_seg: Hugging Face image datasets on disk through the recipe configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose_cfg, train_cfg
from hydra.utils import instantiate

from core.train.errors import InputError

pytest.importorskip("datasets")
from hf_fabricate import image_classes, image_masks, save  # noqa: E402 - needs datasets

NAMES = ["tabby", "beagle", "ara"]  # a ClassLabel's own order, not alphabetical
TINY = ["model.dim=24", "model.depth=1", "model.num_heads=2"]


def _data(overrides, out_dir):
    cfg = compose_cfg(overrides, out_dir)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("how", ["disk", "parquet"])
def test_images_and_classlabel_through_the_recipe(how, tmp_path, out_dir):
    train, pixels = image_classes(18, NAMES, seed=0)
    test, test_pixels = image_classes(6, NAMES, seed=1)
    root = save({"train": train, "test": test}, tmp_path / "ds", how)  # no validation split: carved from train
    dm = _data(["experiment=vision/hf_images", f"data.path={root}", "data.img_size=16", "data.val_fraction=0.2",
                "data.num_workers=0", "data.batch_size=4", f"data.cache_dir={tmp_path / 'cache'}"], out_dir)
    assert dm.classes == NAMES and dm.model_kwargs() == {"num_classes": 3}
    assert (len(dm.sets["train"]), len(dm.sets["val"]), len(dm.sets["test"])) == (14, 4, 6)
    raw = dm._raw()
    image, label = raw["test"][4]
    assert image.size == (8, 8) and label == 4 % 3
    np.testing.assert_array_equal(np.asarray(image), test_pixels[4])  # the PNG's pixels, decoded with PIL
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (4, 3, 16, 16) and y.max() < 3


def test_images_recipe_trains_two_steps(tmp_path, out_dir):
    train, _ = image_classes(16, NAMES)
    val, _ = image_classes(6, NAMES, seed=2)
    root = save({"train": train, "validation": val}, tmp_path / "ds")
    rec = train_cfg(["experiment=vision/hf_images", f"data.path={root}", "data.img_size=16", "model.patch_size=8",
                     "data.num_workers=0", "data.batch_size=4", "trainer.max_steps=2", "trainer.limit_val_batches=1",
                     "trainer.limit_test_batches=1", "threads=1", *TINY], out_dir)
    assert rec["task"] == "vision/classification" and 0 <= rec["test/acc"] <= 1
    state = torch.load(out_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["HFImageClassDataModule"]["classes"] == NAMES  # mas-predict names its classes


def test_segmentation_masks_through_the_recipe_and_two_steps(tmp_path, out_dir):
    ds, images, masks = image_masks(10, 3, size=16)
    root = save({"train": ds, "validation": ds.select(range(3))}, tmp_path / "seg")
    over = ["experiment=vision/hf_seg", f"data.path={root}", "data.num_classes=3", "data.img_size=16",
            "data.columns.image=pixel_values", "data.columns.mask=label_mask", "data.num_workers=0",
            "data.batch_size=2", "model.patch_size=4"]
    dm = _data(over, out_dir)
    assert (len(dm.sets["train"]), len(dm.sets["val"])) == (10, 3) and dm.sets["test"] is dm.sets["val"]
    x, y = dm.sets["val"][2]
    np.testing.assert_array_equal(y.numpy(), masks[2])  # mask pixel values are the class indices
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), images[2] / 255.0, atol=1e-6)
    rec = train_cfg([*over, "trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
                     "module.num_overlays=0", "threads=1", *TINY], out_dir)
    assert rec["task"] == "vision/segmentation" and 0 <= rec["test/miou"] <= 1


def test_mask_class_out_of_range_is_one_sentence(tmp_path, out_dir):
    ds, _, _ = image_masks(4, 5, size=8)
    root = save({"train": ds, "validation": ds}, tmp_path / "seg")
    dm = _data(["experiment=vision/hf_seg", f"data.path={root}", "data.num_classes=2", "data.img_size=8",
                "data.columns.image=pixel_values", "data.columns.mask=label_mask", "data.num_workers=0"], out_dir)
    with pytest.raises(InputError, match=r"column 'label_mask' \(data.columns.mask\) has class 4, but "
                                         r"data.num_classes=2\.$"):
        dm.sets["train"][0]
