"""``mas-export``: a checkpoint to ONNX graphs (checked by onnxruntime) or to safetensors + JSON.

Both formats write ``config.json`` (run config, class names, tokenizer) beside the model, so an
export directory is self-contained; ``format=onnx`` adds ``export.json`` with each graph's inputs,
outputs, dynamic axes and measured differences from PyTorch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from core.train.cli import CONF, guarded
from core.train.errors import ConfigError
from core.train.overrides import check_command_line

FORMATS = ("onnx", "safetensors")


def _export(cfg: DictConfig) -> None:
    from core.export.onnx import export_onnx
    from core.train.checkpoints import load_checkpoint
    from core.train.run import restore, set_threads
    from core.train.weights_file import CONFIG_FILE, save_weights_dir

    if not cfg.get("ckpt_path"):
        raise ConfigError("mas-export needs ckpt_path=<a .ckpt written by mas-train, or a safetensors export>.")
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not '{fmt}'.")
    set_threads(cfg)
    out = Path(cfg.out or HydraConfig.get().runtime.output_dir)
    ckpt = load_checkpoint(cfg.ckpt_path)
    _, _, module = restore(cfg.ckpt_path, "predict")  # proves the checkpoint rebuilds before anything is written
    if fmt == "safetensors":
        for path in save_weights_dir(ckpt, out):
            print(f"wrote {path}")
        return
    records = export_onnx(module.model, out, opset=int(cfg.opset), atol=float(cfg.atol))
    save_weights_dir(ckpt, out, weights=False)
    (out / "export.json").write_text(json.dumps({"graphs": records}, indent=1) + "\n")
    for r in records:
        sizes = ", ".join(f"{d:.1e} at [{', '.join('x'.join(map(str, s)) for s in shapes)}]"
                          for d, shapes in zip(r["max_abs_diff"], r["checked_shapes"]))
        print(f"wrote {out / r['file']}: max |onnxruntime - torch| = {sizes}")
    print(f"wrote {out / CONFIG_FILE}, {out / 'export.json'}")


@hydra.main(version_base="1.3", config_path=CONF, config_name="export")
def _export_app(cfg: DictConfig) -> None:
    guarded(lambda: _export(cfg))


def export_main() -> None:
    guarded(lambda: check_command_line("export", sys.argv[1:], "mas-export"))
    _export_app()
