"""Fine-tuning from a checkpoint: strict encoder transfer, head re-initialisation, PE resampling and
encoder freezing for the first epochs (layer-wise learning-rate decay: :mod:`core.train.optim`).

Convention: every task model has one :class:`core.nn.blocks.TransformerEncoder` named ``encoder``,
at the top or inside a backbone (``backbone.encoder``); keys are matched relative to the module
that holds the encoder, so a ViT classifier's weights reach a segmenter's backbone. Encoder
weights must all be found in the source
checkpoint with the same shapes (a learned PE table is resampled to the new grid or length);
everything else (embeddings, heads, decoders) is copied when names and shapes match and
re-initialised otherwise, and the run says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import lightning as L
from torch import nn

from core.nn.blocks import TransformerEncoder
from core.nn.pe import resample_table
from core.train.checkpoints import checkpoint_config, load_checkpoint
from core.train.errors import ConfigError

__all__ = ["FreezeEncoder", "TransferReport", "find_encoder", "load_pretrained"]

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
    """Freeze the model's :class:`TransformerEncoder` (its PE, every layer with its convolution module,
    the final norm) for the first ``epochs`` epochs, then train everything.

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
