"""Attention benchmark: our modules against raw SDPA, and linear vs full attention memory.

Part 1 times forward+backward of ``core.nn.attention.MultiHeadAttention`` against the same
projections wired by hand around ``F.scaled_dot_product_attention`` (identical weights and
inputs), in the same run, and prints the ratio (target <= 1.05).
With ``--kernels``, it instead times the SDPA kernel alone (forward+backward, B=16, H=4, head dim 36)
in fp32 and bf16 at short and medium lengths, and the dtype ``core.nn.attention.kernel_dtype`` picks:
the evidence for ``CPU_LOWP_FLASH_MIN_KEYS``.
Part 2 measures time and peak memory of ``LinearAttention`` and full attention (SDPA) at long
sequence lengths, each in a fresh subprocess (peak RSS above the inputs on CPU,
``max_memory_allocated`` on CUDA). On CPU and GPU, SDPA picks a fused flash kernel for full
attention, whose memory is also linear in N; the quadratic cost shows up in time.

    python bench/attention.py [--device cuda] [--sizes 256 1024 4096] [--long 4096 16384] [--kernels]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch.utils import benchmark

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.nn.attention import (  # noqa: E402
    CPU_LOWP_FLASH_MIN_KEYS,
    LinearAttention,
    MultiHeadAttention,
    kernel_dtype,
)

B, H, D = 8, 4, 32


class RawSDPA(torch.nn.Module):
    """Baseline: the same parameters, SDPA called directly in the same kernel dtype as ours (the
    :func:`kernel_dtype` rule: fp32 below ``CPU_LOWP_FLASH_MIN_KEYS`` keys under bf16 autocast on CPU),
    nothing else; so the ratio measures our module's overhead, not a different kernel."""

    def __init__(self, ours: MultiHeadAttention) -> None:
        super().__init__()
        self.qkv, self.proj, self.h = ours.qkv, ours.proj, ours.num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.h, c // self.h).permute(2, 0, 3, 1, 4)
        out_dtype, dtype = q.dtype, kernel_dtype(q, n)
        with torch.autocast(x.device.type, enabled=False):
            o = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype)).to(out_dtype)
        return self.proj(o.transpose(1, 2).reshape(b, n, c))


def sdpa_kernel_dtype(x: torch.Tensor, n: int, autocast_dtype: torch.dtype) -> str:
    """The dtype SDPA runs in for a length-``n`` input under ``autocast_dtype`` (both sides use it)."""
    queries = torch.empty(1, device=x.device, dtype=autocast_dtype)
    return str(kernel_dtype(queries, n)).replace("torch.", "")


def _time(fn, min_run: float) -> float:
    return benchmark.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run).median


def compare_sdpa(device: str, sizes: list[int], min_run: float, rounds: int = 3) -> Table:
    table = Table(title=f"MultiHeadAttention vs raw SDPA, forward+backward (B={B}, H={H}, head dim {D}, {device})")
    for col in ("N", "autocast", "SDPA kernel (both)", "ours ms", "raw SDPA ms", "ratio"):
        table.add_column(col, justify="right")
    torch.manual_seed(0)
    ours = MultiHeadAttention(H * D, H).to(device)
    raw = RawSDPA(ours)
    for n in sizes:
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(B, n, H * D, device=device, requires_grad=True)

            def step(m):
                def run():
                    with torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32):
                        y = m(x)
                    y.float().sum().backward()
                    if device == "cuda":
                        torch.cuda.synchronize()
                return run

            with torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32):
                a, b = ours(x), raw(x)
            assert a.dtype == b.dtype, (a.dtype, b.dtype)
            torch.testing.assert_close(a, b)  # same kernel, same dtype: tolerances of that dtype
            raws, ours_t = [], []
            for _ in range(rounds):  # alternate, so drifting machine load hits both alike
                raws.append(_time(step(raw), min_run))
                ours_t.append(_time(step(ours), min_run))
            t_raw, t_ours = statistics.median(raws), statistics.median(ours_t)
            table.add_row(str(n), str(dtype).replace("torch.", ""), sdpa_kernel_dtype(x, n, dtype),
                          f"{t_ours * 1e3:.2f}", f"{t_raw * 1e3:.2f}", f"{t_ours / t_raw:.3f}")
    return table


def compare_kernels(device: str, lengths: list[int], min_run: float, b: int = 16, h: int = 4, d: int = 36) -> Table:
    """SDPA forward+backward in fp32 and in bf16, and which one ``kernel_dtype`` runs for bf16 queries."""
    table = Table(title=f"SDPA kernel, forward+backward, B={b}, H={h}, head dim {d}, {device} "
                        f"(CPU_LOWP_FLASH_MIN_KEYS = {CPU_LOWP_FLASH_MIN_KEYS})")
    for col in ("N", "fp32 ms", "bf16 ms", "bf16 / fp32", "kernel for bf16 queries"):
        table.add_column(col, justify="right")
    torch.manual_seed(0)
    for n in lengths:
        ms = {}
        for dtype in (torch.float32, torch.bfloat16):
            q, k, v = (torch.randn(b, h, n, d, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
            g = torch.randn(b, h, n, d, device=device, dtype=dtype)

            def run(q=q, k=k, v=v, g=g):
                F.scaled_dot_product_attention(q, k, v).backward(g)
                if device == "cuda":
                    torch.cuda.synchronize()

            ms[dtype] = _time(run, min_run) * 1e3
        picked = kernel_dtype(torch.empty(1, device=device, dtype=torch.bfloat16), n)
        table.add_row(str(n), f"{ms[torch.float32]:.2f}", f"{ms[torch.bfloat16]:.2f}",
                      f"{ms[torch.bfloat16] / ms[torch.float32]:.2f}", str(picked).replace("torch.", ""))
    return table


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


def _measure_one(kind: str, n: int, device: str, batch: int) -> dict:
    """Run in a subprocess: time and peak memory (above the inputs) of one forward+backward."""
    import time

    torch.manual_seed(0)
    m = (LinearAttention if kind == "linear" else MultiHeadAttention)(H * D, H).to(device)
    x = torch.randn(batch, n, H * D, device=device, requires_grad=True)
    m(x[:, :64]).sum().backward()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    t0 = time.perf_counter()
    m(x).sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"seconds": time.perf_counter() - t0, "peak_mb": peak / 2**20}


def compare_long(device: str, lengths: list[int], batch: int) -> Table:
    table = Table(title=f"Linear vs full (SDPA) attention, forward+backward, B={batch}, H={H}, head dim {D}, {device}")
    for col in ("N", "variant", "seconds", "extra peak MB", "MB per 1k tokens"):
        table.add_column(col, justify="right")
    for n in lengths:
        for kind in ("linear", "full"):
            proc = subprocess.run([sys.executable, __file__, "--one", kind, str(n), "--device", device,
                                   "--batch", str(batch)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                table.add_row(str(n), kind, "failed", proc.stderr.strip().splitlines()[-1][:40], "")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            table.add_row(str(n), kind, f"{r['seconds']:.3f}", f"{r['peak_mb']:.1f}", f"{r['peak_mb'] / n * 1000:.2f}")
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--long", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--batch", type=int, default=8, help="batch size of the long-sequence comparison")
    ap.add_argument("--min-run", type=float, default=1.0, help="seconds of timing per cell")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds per cell (median)")
    ap.add_argument("--kernels", type=int, nargs="*", metavar="N",
                    help="only time the SDPA kernel in fp32 vs bf16 at these lengths (default 17 64 128 256 384 512 1024)")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(_measure_one(args.one[0], int(args.one[1]), args.device, args.batch)))
        return
    console = Console()
    if args.kernels is not None:
        console.print(compare_kernels(args.device, args.kernels or [17, 64, 128, 256, 384, 512, 1024], args.min_run))
        return
    console.print(compare_sdpa(args.device, args.sizes, args.min_run, args.rounds))
    console.print(compare_long(args.device, args.long, args.batch))


if __name__ == "__main__":
    main()
