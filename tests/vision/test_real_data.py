"""CIFAR, ImageFolder and Oxford-IIIT Pet loaders and recipes on tiny fabricated copies."""

from __future__ import annotations

import pytest
import torch
from conftest import train_cfg
from fabricate import write_cifar, write_imagefolder, write_pet

from core.train.errors import InputError
from vision.data.folders import ImageClassDataModule
from vision.data.pet import PetSegDataModule

FAST = ["trainer.fast_dev_run=true", "data.num_workers=0", "data.batch_size=4"]
TINY = ["model.dim=24", "model.depth=1", "model.num_heads=2"]


@pytest.mark.parametrize("name,k", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_loader(name, k, tmp_path):
    write_cifar(tmp_path, name)
    dm = ImageClassDataModule(dataset=name, root=str(tmp_path), batch_size=8, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.num_classes == k and dm.classes[:2] == ["c0", "c1"]
    assert len(dm.sets["train"]) + len(dm.sets["val"]) == 40 and len(dm.sets["test"]) == 20
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.max() < k
    xv, _ = next(iter(dm.val_dataloader()))
    xv2, _ = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(xv, xv2)  # evaluation is not augmented


def test_cifar_md5_check_is_optional(tmp_path):
    write_cifar(tmp_path, "cifar10")
    with pytest.raises(InputError, match="cifar10"):
        ImageClassDataModule(dataset="cifar10", root=str(tmp_path), verify_md5=True).prepare_data()
    with pytest.raises(InputError, match="data.root"):
        ImageClassDataModule(dataset="cifar10", root=str(tmp_path / "nowhere")).prepare_data()


def test_imagefolder_loader_any_mode(tmp_path):
    write_imagefolder(tmp_path, splits=("train", "val"))
    dm = ImageClassDataModule(dataset="folder", root=str(tmp_path), img_size=32, batch_size=4, num_workers=0)
    dm.setup("fit")
    assert dm.classes == ["cat", "dog"] and dm.model_kwargs() == {"num_classes": 2}
    assert len(dm.sets["val"]) == 12 and dm.sets["test"] is dm.sets["val"]
    x, _ = next(iter(dm.val_dataloader()))
    assert x.shape == (4, 3, 32, 32)
    restored = ImageClassDataModule(dataset="folder", root="/nowhere", img_size=32)
    restored.load_state_dict(dm.state_dict())
    assert restored.classes == ["cat", "dog"]


@pytest.mark.parametrize("recipe", ["cifar10", "cifar100"])
def test_cifar_recipe_fast_dev_run(recipe, tmp_path, out_dir):
    write_cifar(tmp_path, recipe)
    rec = train_cfg([f"experiment=vision/{recipe}", f"data.root={tmp_path}", *FAST, *TINY], out_dir)
    assert 0 <= rec["test/acc"] <= 1


def test_imagefolder_recipe_fast_dev_run(tmp_path, out_dir):
    write_imagefolder(tmp_path / "tree", splits=("train", "val", "test"))
    rec = train_cfg(["experiment=vision/imagefolder", f"data.root={tmp_path / 'tree'}", "data.img_size=32",
                     "model.patch_size=8", *FAST, *TINY], out_dir)
    assert 0 <= rec["test/acc"] <= 1 and rec["params"] > 0


def test_pet_loader(tmp_path):
    write_pet(tmp_path)
    dm = PetSegDataModule(root=str(tmp_path), img_size=32, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.sets["train"]) + len(dm.sets["val"]) == 12 and len(dm.sets["test"]) == 6
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (4, 3, 32, 32) and y.shape == (4, 32, 32) and y.dtype == torch.int64
    assert set(y.unique().tolist()) == {0, 1, 2}  # background, pet, border
    assert y[0, 16, 16] == 1 and y[0, 0, 0] == 0  # pet in the middle, background in the corner
    with pytest.raises(InputError, match="Oxford-IIIT Pet not found"):
        PetSegDataModule(root=str(tmp_path / "nowhere")).prepare_data()


def test_pet_recipe_fast_dev_run(tmp_path, out_dir):
    write_pet(tmp_path)
    rec = train_cfg(["experiment=vision/pet_seg", f"data.root={tmp_path}", "data.img_size=32", "model.patch_size=8",
                     *FAST, *TINY], out_dir)
    assert 0 <= rec["test/miou"] <= 1


def test_randaugment_strongest_posterize_runs():
    """The recipes' policy (rand-m9-mstd0.5-inc1) reaches magnitude 10, where timm posterizes to 0 bits."""
    from PIL import Image
    from timm.data.auto_augment import AugmentOp

    img = Image.new("RGB", (8, 8), (200, 100, 50))
    out = AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=10)(img)
    assert out.getpixel((0, 0)) == (0, 0, 0)  # no bits kept
    assert AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=5)(img).getpixel((0, 0)) == (192, 64, 0)  # 2 bits: x & 0b11000000
