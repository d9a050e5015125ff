"""bench/vit_throughput.py runs end to end on a tiny model (a smoke test, not a timing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_vit_throughput_smoke(capsys):
    spec = importlib.util.spec_from_file_location("vit_throughput", ROOT / "bench" / "vit_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert "hydra" not in bench.__dict__ and "lightning" not in bench.__dict__
    rc = bench.main(["--dim", "24", "--depth", "1", "--num-heads", "2", "--batch-size", "4", "--steps", "1",
                     "--rounds", "1", "--warmup", "1", "--matmul-size", "64", "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "ours/timm" in out
    rows = [ln.split() for ln in out.splitlines() if ln.startswith(("fp32", "bf16"))]
    assert [r[0] for r in rows] == ["fp32", "bf16"] and all(float(r[3]) > 0 for r in rows)
    # the analytic FLOP count of one linear layer's share: 2 * N * dim * 3dim for qkv, checked on a 1-block model
    f = bench.vit_flops(img=8, patch=4, in_chans=3, dim=8, depth=1, mlp_ratio=4.0, num_classes=2, batch=1, cls=True)
    n = 5
    want = 3 * (2 * n * (8 * 24 + 64 + 2 * 8 * 32) + 4 * n * n * 8 + 2 * 4 * 48 * 8 + 2 * 8 * 2)
    assert f == want
    sys.modules.pop("vit_throughput", None)
