"""Fine-tuning: strict encoder transfer, head re-initialisation, PE resampling, freezing, layer decay."""

import pytest
import torch

from conftest import compose_cfg, train_cfg
from core.train.errors import ConfigError
from core.train.finetune import FreezeEncoder, load_pretrained
from core.train.optim import param_groups
from core.train.run import build

SMALL = ["model.dim=32", "model.depth=2", "model.num_heads=2", "model.mlp_ratio=1.0", "pe=learned"]


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("src")
    record = train_cfg([*SMALL, "trainer.max_epochs=1", "trainer.limit_train_batches=5"], out)
    return out / "checkpoints" / "last.ckpt", record


def _model(overrides, tmp_path):
    cfg = compose_cfg(["callbacks.progress_bar=null", *SMALL, *overrides], tmp_path)
    return build(cfg)[1].model


def test_encoder_loads_head_reinitialised_and_pe_resampled(source_ckpt, tmp_path):
    path, _ = source_ckpt
    src = torch.load(path, weights_only=True)["state_dict"]
    model = _model(["model.patch_size=4", "model.num_classes=12"], tmp_path)  # 2x2 grid, 12 classes
    report = load_pretrained(model, str(path))
    state = model.state_dict()
    for k, v in state.items():
        if k.startswith("encoder.blocks") or k == "encoder.norm.weight":
            torch.testing.assert_close(v, src["model." + k])
    assert {"head.weight", "head.bias", "patch_embed.proj.weight"} <= set(report.reinitialised)
    assert report.resampled == ["encoder.pe.table (4, 4)->(2, 2)"]
    table = src["model.encoder.pe.table"]  # align_corners: the corners of the grid are kept
    torch.testing.assert_close(state["encoder.pe.table"][0, 0], table[0, 0])
    torch.testing.assert_close(state["encoder.pe.table"][1, 1], table[3, 3])


def test_encoder_of_another_size_is_refused(source_ckpt, tmp_path):
    path, _ = source_ckpt
    model = _model(["model.dim=48", "model.num_heads=2"], tmp_path)
    with pytest.raises(ConfigError, match="does not fit this model's encoder"):
        load_pretrained(model, str(path))


def test_freeze_encoder_then_layer_decay(source_ckpt, tmp_path):
    path, _ = source_ckpt
    src = torch.load(path, weights_only=True)["state_dict"]
    out = tmp_path / "ft"
    train_cfg([*SMALL, f"finetune.from={path}", "finetune.freeze_encoder_epochs=1", "trainer.max_epochs=1",
               "trainer.limit_train_batches=4", "model.num_classes=12"], out)
    after = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    key = "model.encoder.blocks.0.attn.qkv.weight"
    torch.testing.assert_close(after[key], src[key])  # frozen for the one epoch
    assert not torch.equal(after["model.head.weight"][:10], src["model.head.weight"])  # the head trained

    model = _model([], tmp_path)  # depth 2: stem, block 0, block 1 (+ final norm), head (BEiT / timm rule)
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.5)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert scale[id(model.head.weight)] == 1.0
    assert scale[id(model.encoder.blocks[1].mlp.fc1.weight)] == scale[id(model.encoder.norm.weight)] == 0.5
    assert scale[id(model.encoder.blocks[0].mlp.fc1.weight)] == 0.25
    assert scale[id(model.patch_embed.proj.weight)] == scale[id(model.cls_token)] == 0.125
    assert scale[id(model.encoder.pe.table)] == 0.125
    assert decay[id(model.encoder.pe.table)] == decay[id(model.cls_token)] == decay[id(model.head.bias)] == 0.0
    assert decay[id(model.encoder.blocks[0].attn.qkv.weight)] == 0.05
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_conformer_convolutions_decay_and_freeze_with_their_block(tmp_path):
    """Each Conformer convolution module lives in its encoder layer: same LR scale, frozen together."""
    cfg = compose_cfg(["experiment=speech/spoken_digits", "model.depth=3", "model.dim=32", "model.num_heads=2",
                       "model.subsample_channels=4", "data.num_utterances={train:0,val:0,test:0}"], tmp_path)
    model = build(cfg, setup_stage="predict")[1].model
    groups = param_groups(model, weight_decay=0.01, layer_decay=0.5)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    for i, blk in enumerate(model.encoder.blocks):
        want = 0.5 ** (3 - i)  # block i is group i + 1 of 5 (stem, 3 blocks, head)
        assert {scale[id(p)] for p in blk.parameters()} == {want}, i
        assert {scale[id(p)] for p in blk.conv.parameters()} == {want}, i
    assert {scale[id(p)] for p in model.subsampling.parameters()} == {0.5 ** 4}
    assert scale[id(model.head.weight)] == 1.0

    class _Trainer:
        current_epoch = 0

    FreezeEncoder(1).on_train_epoch_start(_Trainer(), type("M", (), {"model": model})())
    assert not any(p.requires_grad for blk in model.encoder.blocks for p in blk.conv.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


LIMITS = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
          "trainer.limit_test_batches=2"]


TINY_SPEECH = ["data.num_utterances={train:24,val:8,test:8}", "data.batch_size=8"]


@pytest.mark.parametrize("source, target, extra", [("vision/digits", "vision/digits_seg_ft", []),
                                                   ("nlp/numbers_cls", "nlp/numbers_de_ft", []),
                                                   ("speech/spoken_digits", "speech/spoken_digits_ft", TINY_SPEECH)])
def test_cross_task_finetune_recipes(source, target, extra, tmp_path, capsys):
    """Classification encoder -> segmentation / translation encoder; ASR -> new voices."""
    src_dir = tmp_path / "src"
    src_record = train_cfg([f"experiment={source}", *LIMITS, *extra], src_dir)
    src = torch.load(src_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    out = tmp_path / "ft"
    train_cfg([f"experiment={target}", f"finetune.from={src_dir}/checkpoints/last.ckpt", *LIMITS, *extra], out)
    said = capsys.readouterr().out
    assert f"fine-tuning from a '{src_record['task']}' checkpoint: loaded" in said
    if source.startswith("speech"):  # same model: everything loads
        assert "re-initialised" not in said
    else:  # new heads / embeddings, never encoder weights
        assert "re-initialised" in said and "encoder." not in said.split("re-initialised")[1].split("(")[0]
    after = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    suffix = "encoder.blocks.0.mlp.fc1.weight"
    a = next(v for k, v in after.items() if k.endswith(suffix))
    b = next(v for k, v in src.items() if k.endswith(suffix))
    if target.startswith("vision"):  # encoder frozen during the only epoch: exactly the source weights
        torch.testing.assert_close(a, b)
    else:  # trained with layer decay from the source weights
        assert a.shape == b.shape and not torch.equal(a, b)
