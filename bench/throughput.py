"""Training throughput, fp32 vs bf16-mixed, and model FLOPs utilisation, per recipe.

For each recipe the real training step (Lightning, the recipe's model, data and optimizer) runs
for ``--warmup`` + ``--steps`` steps in fp32 and then in bf16-mixed, in the same process. FLOPs
per step are counted once with ``torch.utils.flop_counter.FlopCounterMode`` (forward, backward);
achieved GFLOP/s is divided by the GFLOP/s of a large matrix product timed in the same run.

Two groups of recipes:

* the embedded recipes (their default data, built on first use);
* ``vision/cifar10`` (ViT, dim 192, depth 12, batch 128) and ``speech/librispeech`` (Conformer CTC,
  dim 256, depth 12, 320 s of audio per batch), the ViT and ASR recipes at their real size, on
  files fabricated in the real CIFAR-10 / LibriSpeech layouts (random images; 10-16 s tones, as
  long as LibriSpeech's ~12.7 s mean): throughput does not depend on what the pixels or samples are.

Target on this CPU: bf16-mixed >= 1.5x fp32 for the ViT and ASR recipes.

    python bench/throughput.py [--recipes vision/digits speech/librispeech] [--steps 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from rich.console import Console
from rich.table import Table
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RECIPES = ["vision/digits", "vision/digits_seg", "nlp/numbers_cls", "nlp/numbers_de", "speech/spoken_digits"]
AT_SCALE = ["vision/cifar10", "speech/librispeech"]


def fabricate(recipe: str, root: Path) -> list[str]:
    """Files in the real layout for an ``AT_SCALE`` recipe; returns the overrides that point at them.

    A few batches' worth: training runs epochs until ``max_steps``, and a step's cost does not
    depend on how many distinct samples exist.
    """
    if recipe == "vision/cifar10":
        sys.path.insert(0, str(ROOT / "tests" / "vision"))
        from fabricate import write_cifar

        write_cifar(root, "cifar10", n_train=1000, n_test=10)
    elif recipe == "speech/librispeech":
        sys.path.insert(0, str(ROOT / "tests" / "speech"))
        from speech_fabricate import write_librispeech

        write_librispeech(root / "librispeech", utterances=30, seconds=(10.0, 16.0))
    return [f"paths.data_dir={root}", "data.num_workers=0"]


def matmul_gflops(device: str, dtype: torch.dtype, n: int = 2048) -> float:
    """GFLOP/s of an ``n x n`` matrix product: the reference peak for utilisation."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)

    def mm():
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()

    t = benchmark.Timer(stmt="mm()", globals={"mm": mm}).blocked_autorange(min_run_time=1.0).median
    return 2 * n**3 / t / 1e9


# Ops whose cost bf16 can cut (matrix products, convolutions, attention kernels); the rest of a step
# (elementwise, norms, dropout RNG, optimizer, casts) costs the same or more in bf16 on a CPU.
DENSE_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
             "aten::convolution_backward", "aten::_scaled_dot_product_flash_attention_for_cpu",
             "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


class StepTimer(L.Callback):
    """Per-step wall times after ``warmup`` steps.

    The first step is counted with ``FlopCounterMode`` and, with ``profile`` (CPU only), the last
    warm-up step is profiled for the share of time spent in :data:`DENSE_OPS`; neither is timed.
    """

    def __init__(self, warmup: int, device: str, profile: bool) -> None:
        self.warmup, self.device, self.profile = warmup, device, profile and device == "cpu"
        self.times: list[float] = []
        self.samples: list[int] = []
        self.flops = 0
        self.dense_share: float | None = None
        self._step = 0
        self._counter: FlopCounterMode | None = None
        self._prof: torch.profiler.profile | None = None

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._step == 0:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
        elif self._step == self.warmup - 1 and self.profile:
            self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._prof.__enter__()
        self._sync()
        self._t0 = time.perf_counter()
        self._seen = pl_module.samples_seen

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._sync()
        self._step += 1
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops, self._counter = self._counter.get_total_flops(), None
        elif self._prof is not None:
            self._prof.__exit__(None, None, None)
            ops = self._prof.key_averages()
            total = sum(e.self_cpu_time_total for e in ops)
            self.dense_share = sum(e.self_cpu_time_total for e in ops if e.key in DENSE_OPS) / max(total, 1)
            self._prof = None
        elif self._step > self.warmup:
            self.times.append(time.perf_counter() - self._t0)
            self.samples.append(pl_module.samples_seen - self._seen)


def measure(recipe: str, precision: str, args, cache: str, overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    import core.train.cli  # noqa: F401 - resolvers
    from core.train.run import build

    GlobalHydra.instance().clear()
    with tempfile.TemporaryDirectory(prefix="mas-bench-") as out:
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={recipe}", f"hydra.runtime.output_dir={out}",
                                              f"paths.cache_dir={cache}", *overrides], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        L.seed_everything(0, verbose=False)
        dm, module = build(cfg)
        warmup = max(args.warmup, 2)  # step 0 counts FLOPs, the last warm-up step is profiled
        timer = StepTimer(warmup, args.device, profile=precision == "32-true")
        trainer = L.Trainer(accelerator=args.device, devices=1, precision=precision,
                            max_steps=warmup + args.steps, limit_val_batches=0, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[timer], num_sanity_val_steps=0,
                            gradient_clip_val=cfg.trainer.get("gradient_clip_val"))
        trainer.fit(module, datamodule=dm)
    step = statistics.median(timer.times)
    per_step = statistics.mean(timer.samples)
    return {"samples_per_s": per_step / step, "gflops": timer.flops / step / 1e9, "step_ms": step * 1e3,
            "dense_share": timer.dense_share}


def dense_columns(share: float | None, speedup: float) -> tuple[str, str]:
    """fp32 share of step time in dense ops, and Amdahl's bound on bf16 / fp32 if bf16 sped only
    those up, by the large-matmul ratio ``speedup``: ``1 / ((1 - share) + share / speedup)``."""
    if share is None:
        return "-", "-"
    return f"{share:.0%}", f"{1 / ((1 - share) + share / speedup):.2f}x"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=RECIPES + AT_SCALE)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--peak-size", type=int, default=2048,
                    help="side of the square matmul that sets the reference peak (a CPU without bf16 "
                         "instructions emulates bf16: 2048^3 there takes minutes)")
    args = ap.parse_args(argv)
    cache = os.environ.get("MAS_CACHE_DIR", str(Path.home() / ".cache" / "mas"))
    console = Console(width=max(Console().width, 120))
    peak = {p: matmul_gflops(args.device, d, args.peak_size)
            for p, d in (("32-true", torch.float32), ("bf16-mixed", torch.bfloat16))}
    console.print(f"matmul {args.peak_size}^3 on {args.device}: fp32 {peak['32-true']:.0f} GFLOP/s, bf16 {peak['bf16-mixed']:.0f} GFLOP/s "
                  f"(MFU is relative to these; cache-sized products can run faster, so it may pass 100%)")
    threads = torch.get_num_threads() if args.device == "cpu" else "-"
    table = Table(title=f"training throughput ({args.device}, {threads} threads, {args.steps} timed steps per cell)")
    table.add_column("recipe", no_wrap=True)
    for col in ("fp32 samples/s", "bf16 samples/s", "bf16 / fp32", "fp32 GFLOP/s (MFU)", "bf16 GFLOP/s (MFU)",
                "fp32 time in dense ops", "bf16 / fp32 bound"):
        table.add_column(col, justify="right")
    speedup = peak["bf16-mixed"] / peak["32-true"]
    for recipe in args.recipes:
        with tempfile.TemporaryDirectory(prefix="mas-bench-data-") as data:
            overrides = fabricate(recipe, Path(data)) if recipe in AT_SCALE else []
            r = {p: measure(recipe, p, args, cache, overrides) for p in ("32-true", "bf16-mixed")}
        f, b = r["32-true"], r["bf16-mixed"]
        table.add_row(recipe + (" (at scale)" if recipe in AT_SCALE else ""),
                      f"{f['samples_per_s']:.3g}", f"{b['samples_per_s']:.3g}",
                      f"{b['samples_per_s'] / f['samples_per_s']:.2f}x",
                      f"{f['gflops']:.1f} ({f['gflops'] / peak['32-true']:.1%})",
                      f"{b['gflops']:.1f} ({b['gflops'] / peak['bf16-mixed']:.1%})",
                      *dense_columns(f["dense_share"], speedup))
        console.print(f"done: {recipe}")
    console.print(table)
    console.print(f"dense ops: {', '.join(DENSE_OPS)}; the bound assumes they run {speedup:.1f}x faster in bf16 "
                  f"(the {args.peak_size}^3 matmul ratio) and everything else costs the same.")


if __name__ == "__main__":
    main()
