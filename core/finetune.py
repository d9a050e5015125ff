"""Fine-tuning from a checkpoint: strict encoder transfer, head re-initialisation, PE resampling,
encoder freezing for the first epochs, layer-wise learning-rate decay.

Convention: every task model has one :class:`core.blocks.TransformerEncoder` named ``encoder``,
at the top or inside a backbone (``backbone.encoder``); keys are matched relative to the module
that holds the encoder, so a ViT classifier's weights reach a segmenter's backbone. Encoder
weights must all be found in the source
checkpoint with the same shapes (a learned PE table is resampled to the new grid or length);
everything else (embeddings, heads, decoders) is copied when names and shapes match and
re-initialised otherwise, and the run says so.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import lightning as L
from torch import nn

from core.blocks import TransformerEncoder
from core.errors import ConfigError, checkpoint_config, load_checkpoint
from core.pe import resample_table

__all__ = ["FreezeEncoder", "TransferReport", "find_encoder", "layer_decay_groups", "load_pretrained"]

log = logging.getLogger(__name__)


@dataclass
class TransferReport:
    loaded: list[str] = field(default_factory=list)
    resampled: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    source_task: str = ""

    def summary(self) -> str:
        parts = [f"fine-tuning from a '{self.source_task}' checkpoint: loaded {len(self.loaded)} tensors"]
        if self.resampled:
            parts.append(f"resampled {', '.join(self.resampled)}")
        if self.reinitialised:
            parts.append(f"re-initialised {', '.join(self.reinitialised)} (not in the source or another shape)")
        return "; ".join(parts) + "."


def find_encoder(model: nn.Module) -> tuple[str, TransformerEncoder]:
    """The shallowest :class:`TransformerEncoder` in ``model`` and the key prefix of its holder."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, TransformerEncoder)]
    if not found:
        raise ConfigError(f"finetune.from: model {type(model).__name__} has no transformer encoder to fine-tune.")
    name, enc = min(found, key=lambda nm: nm[0].count("."))
    return name[: -len("encoder")] if name.endswith("encoder") else name + ".", enc


def load_pretrained(model: nn.Module, path: str, *, prefix: str = "model.") -> TransferReport:
    """Copy weights from a mas-train checkpoint into ``model`` following the module docstring."""
    ckpt = load_checkpoint(path)
    report = TransferReport(source_task=str(checkpoint_config(ckpt, path).get("task")))
    src = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    anchor = next((k for k in src if "encoder.blocks." in k), None)
    if anchor is None:
        raise ConfigError(f"finetune.from={path} holds no transformer encoder weights.")
    src_root = anchor[: anchor.index("encoder.blocks.")]
    src = {k[len(src_root):]: v for k, v in src.items() if k.startswith(src_root)}
    root, _ = find_encoder(model)
    own = {k[len(root):]: v for k, v in model.state_dict().items() if k.startswith(root)}
    new_state = {}
    for key, value in own.items():
        s = src.get(key)
        is_encoder = key.startswith("encoder.")
        if s is not None and s.shape == value.shape:
            new_state[key] = s
            report.loaded.append(key)
        elif s is not None and key.endswith("pe.table") and s.ndim == value.ndim:
            new_state[key] = resample_table(s, tuple(value.shape[:-1]))
            report.resampled.append(f"{key} {tuple(s.shape[:-1])}->{tuple(value.shape[:-1])}")
        elif is_encoder:
            why = "missing" if s is None else f"shape {tuple(s.shape)} != {tuple(value.shape)}"
            raise ConfigError(f"finetune.from={path} does not fit this model's encoder ({key}: {why}); "
                              "use a checkpoint of the same encoder size.")
        else:
            report.reinitialised.append(root + key)
    model.load_state_dict({root + k: v for k, v in new_state.items()}, strict=False)
    log.info(report.summary())
    print(report.summary(), flush=True)
    return report


class FreezeEncoder(L.Callback):
    """Freeze ``model.encoder`` for the first ``epochs`` epochs, then train everything.

    Parameters stay in the optimizer throughout (a frozen parameter has no gradient, so AdamW
    leaves it and its moments untouched), which keeps the LR schedule of every group intact;
    Lightning's ``BaseFinetuning`` instead adds groups later, outside the scheduler.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = int(epochs)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        frozen = trainer.current_epoch < self.epochs
        for p in find_encoder(pl_module.model)[1].parameters():
            p.requires_grad_(not frozen)
        if trainer.current_epoch in (0, self.epochs) and self.epochs > 0:
            print(f"epoch {trainer.current_epoch}: encoder {'frozen' if frozen else 'unfrozen'}", flush=True)


_BLOCK = re.compile(r"(?:^|\.)encoder\.blocks\.(\d+)\.")


def layer_decay_groups(model: nn.Module, *, weight_decay: float, layer_decay: float) -> list[dict]:
    """Parameter groups with ``lr_scale = layer_decay ** (depth - layer)``: block ``i`` of the encoder is
    layer ``i + 1``, everything before the encoder (embeddings, PE, class token) layer 0, and the
    rest (heads, decoders, the final norm) layer ``depth``, at full rate."""
    root, encoder = find_encoder(model)
    depth = len(encoder.blocks)
    groups: dict[tuple[int, bool], dict] = {}
    for full_name, p in model.named_parameters():
        name = full_name[len(root):] if full_name.startswith(root) else full_name
        m = _BLOCK.search(name)
        if m:
            layer = int(m.group(1)) + 1
        elif name.startswith(("encoder.pe", "cls_token", "patch_embed", "embed", "src_embed", "subsampling",
                              "frontend")):
            layer = 0
        else:
            layer = depth
        no_wd = p.ndim <= 1 or name.endswith(("token", "table", "pos_embed"))
        g = groups.setdefault((layer, no_wd), {"params": [], "weight_decay": 0.0 if no_wd else weight_decay,
                                                "lr_scale": layer_decay ** (depth - layer)})
        g["params"].append(p)
    return list(groups.values())
