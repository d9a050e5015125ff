"""Training throughput of our ViT vs timm's ``VisionTransformer`` of the same size, timed in one run.

    python bench/vit_throughput.py                      # CPU, 32x32 input, patch 4, dim 192, depth 12, 3 heads
    python bench/vit_throughput.py --device cuda --batch-size 256

For each precision (fp32, bf16 autocast) it times full training steps (forward, backward, AdamW
update) of both models on the same random batch, alternating rounds so that drifting machine load
hits both alike, and prints steps/s, the ratio ours/timm, and the achieved GFLOP/s against a large
matrix product timed in the same run (its GFLOP/s is the practical peak of this device).

Model FLOPs per step are counted analytically (multiply-adds x 2; backward = 2 x forward).
No Hydra, no Lightning: only torch, timm and ``vision.models``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.nn.pe import LearnedPE  # noqa: E402
from vision.models import ViT  # noqa: E402


def vit_flops(*, img: int, patch: int, in_chans: int, dim: int, depth: int, mlp_ratio: float, num_classes: int,
              batch: int, cls: bool) -> float:
    """Training FLOPs of one step (3 x forward), counting matrix products only."""
    n = (img // patch) ** 2 + int(cls)
    hidden = int(dim * mlp_ratio)
    per_block = 2 * n * (dim * 3 * dim + dim * dim + 2 * dim * hidden) + 2 * 2 * n * n * dim  # linears + attention
    fwd = depth * per_block + 2 * (img // patch) ** 2 * in_chans * patch * patch * dim + 2 * dim * num_classes
    return 3.0 * fwd * batch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def make_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, autocast):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with autocast():
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_steps(step, device: torch.device, steps: int) -> float:
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--patch-size", type=int, default=4)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--num-heads", type=int, default=3)
    ap.add_argument("--mlp-ratio", type=float, default=4.0)
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    ap.add_argument("--matmul-size", type=int, default=0, help="0: 2048 on CPU, 8192 on CUDA")
    ap.add_argument("--precisions", default="fp32,bf16")
    args = ap.parse_args(argv)

    from timm.models.vision_transformer import VisionTransformer

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kw = dict(img_size=args.img_size, patch_size=args.patch_size, in_chans=3, num_classes=args.num_classes,
              depth=args.depth, num_heads=args.num_heads, mlp_ratio=args.mlp_ratio)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
    y = torch.randint(0, args.num_classes, (args.batch_size,), device=device)
    flops = vit_flops(img=args.img_size, patch=args.patch_size, in_chans=3, dim=args.dim, depth=args.depth,
                      mlp_ratio=args.mlp_ratio, num_classes=args.num_classes, batch=args.batch_size, cls=True)
    mm_n = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch_size} img={args.img_size} "
          f"patch={args.patch_size} dim={args.dim} depth={args.depth} heads={args.num_heads} "
          f"model GFLOP/step={flops / 1e9:.2f}")
    print(f"{'precision':<10}{'ours steps/s':>14}{'timm steps/s':>14}{'ours/timm':>11}"
          f"{'ours GFLOP/s':>14}{'timm GFLOP/s':>14}{'matmul GFLOP/s':>16}{'ours % mm':>11}")
    for prec in args.precisions.split(","):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[prec]

        def autocast(dtype=dtype):
            if dtype == torch.float32:
                return contextlib.nullcontext()
            return torch.autocast(device_type=device.type, dtype=dtype)

        ours = ViT(dim=args.dim, pool="cls", pe=LearnedPE, **kw).to(device)  # learned table, as timm's
        theirs = VisionTransformer(embed_dim=args.dim, **kw).to(device)
        steps = {"ours": make_step(ours, x, y, autocast), "timm": make_step(theirs, x, y, autocast)}
        for s in steps.values():
            time_steps(s, device, args.warmup)
        rates: dict[str, list[float]] = {"ours": [], "timm": []}
        for r in range(args.rounds):  # alternate the order each round
            for name in (("ours", "timm") if r % 2 == 0 else ("timm", "ours")):
                rates[name].append(time_steps(steps[name], device, args.steps))
        mm = matmul_gflops(device, dtype, mm_n, reps=10 if device.type == "cuda" else 3)
        o, t = statistics.median(rates["ours"]), statistics.median(rates["timm"])
        print(f"{prec:<10}{o:>14.3f}{t:>14.3f}{o / t:>11.3f}{o * flops / 1e9:>14.1f}{t * flops / 1e9:>14.1f}"
              f"{mm:>16.1f}{100 * o * flops / 1e9 / mm:>10.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
