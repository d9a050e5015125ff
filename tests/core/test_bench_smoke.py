"""The README's benchmark commands run end to end on tiny sizes (smoke tests, not timings)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import load_bench

ROOT = Path(__file__).resolve().parents[2]


def test_attention_bench_compares_like_with_like(capsys):
    """Below and above the CPU dispatch threshold, in fp32 and bf16, ours and raw SDPA run the same kernel dtype
    and agree within that dtype's tolerance (bf16 at 256 keys used to stop with an AssertionError)."""
    bench = load_bench("attention")
    short, long = 64, bench.CPU_LOWP_FLASH_MIN_KEYS + 16
    bench.main(["--device", "cpu", "--sizes", str(short), str(long), "--long", "256", "--batch", "1",
                "--min-run", "0.01", "--rounds", "1"])
    out = capsys.readouterr().out
    rows = [ln.split("│") for ln in out.splitlines() if ln.count("│") >= 6]
    cells = {(r[1].strip(), r[2].strip()): r[3].strip() for r in rows if r[1].strip().isdigit()}
    assert cells[(str(short), "bfloat16")] == "float32" and cells[(str(long), "bfloat16")] == "bfloat16"
    assert cells[(str(short), "float32")] == "float32"
    assert "linear" in out.lower()


def test_attention_bench_kernel_table(capsys):
    load_bench("attention").main(["--device", "cpu", "--kernels", "17", "400", "--min-run", "0.01"])
    assert "kernel for bf16 queries" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore")
def test_throughput_bench_runs_one_recipe(capsys):
    load_bench("throughput").main(["--device", "cpu", "--recipes", "vision/digits", "--steps", "1", "--warmup", "1",
                                    "--peak-size", "256"])
    out = capsys.readouterr().out
    assert "done: vision/digits" in out and "bf16 / fp32" in out
    sys.modules.pop("bench_throughput", None)


def test_gpu_check_script_parses_and_calls_flags_that_exist():
    """bench/gpu_check.sh needs a GPU to run; here: bash accepts it and every bench call's flags parse."""
    import shlex
    import subprocess

    script = ROOT / "bench" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    calls = [ln.split("$PY ", 1)[1] for ln in script.read_text().splitlines() if ln.startswith("$PY bench/")]
    assert len(calls) == 2
    for call in calls:
        name, *flags = shlex.split(call.replace('"$DEVICE"', "cpu"))
        module = load_bench(Path(name).stem)
        parsed = _parse_only(module, flags)
        assert parsed.device == "cpu"


def _parse_only(module, flags):
    """Run the script's argument parser on ``flags`` without running the benchmark."""
    import argparse

    captured = {}
    original = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        captured["ns"] = original(self, args, namespace)  # an unknown flag exits 2 here, before "ns" is set
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = stop
    try:
        with pytest.raises(SystemExit):
            module.main(flags)
    finally:
        argparse.ArgumentParser.parse_args = original
    assert "ns" in captured, f"{module.__name__} refused the flags {flags}"
    return captured["ns"]


def test_time_to_quality_runs_ours_and_the_timm_peer(capsys):
    bench = load_bench("time_to_quality")
    assert bench.time_to_bar([{"step": 2, "seconds": 3.0, "value": 0.96}, {"step": 1, "seconds": 1.5, "value": 0.9}],
                             0.95, True) == 3.0
    assert bench.time_to_bar([{"step": 1, "seconds": 1.0, "value": 0.2}], 0.08, False) is None
    rc = bench.main(["--recipes", "vision/digits", "--threads", "1", "--val-every", "1.0", "--extra",
                     "model.dim=32", "model.depth=1", "model.num_heads=2", "trainer.max_epochs=1",
                     "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"])
    out = capsys.readouterr().out
    assert rc == 0 and "timm_vit" in out and "not reached" in out  # two steps reach no bar


def test_speech_peer_trains_both_encoders_and_prints_ratios(capsys):
    tiny = ["data.num_utterances={train:16,val:4,test:4}", "data.batch_size=8", "model.dim=32", "model.depth=1",
            "model.num_heads=2", "model.subsample_channels=8", "trainer.max_epochs=1", "trainer.limit_train_batches=1"]
    rc = load_bench("speech_peer").main(["--seeds", "0", "--threads", "1", "--extra", *tiny])
    out = capsys.readouterr().out
    assert rc == 0 and "torchaudio_conformer" in out and "ours / peer" in out
    row = next(ln for ln in out.splitlines() if "ours / peer" in ln)
    assert float(row.split("│")[2]) == 1.0  # equal size: ours has only the encoder's closing norm more


def test_other_engine_levers_table_and_plot(tmp_path, capsys):
    """The levers record prints means with t intervals over its own seeds and draws one PNG."""
    csv = tmp_path / "levers.csv"
    csv.write_text("lever,change,seed,sam_wer,pico_wer,scorer,trained_on\n"
                   "recipe,,0,0.10,0.30,bench,espeak\nrecipe,,1,0.20,0.20,bench,espeak\n"
                   "with sam,data.sam_fraction=0.25,0,0.02,0.31,bench,espeak+sam\n")
    png = tmp_path / "levers.png"
    load_bench("plot_other_engine_levers").main(["--csv", str(csv), "--png", str(png)])
    out = capsys.readouterr().out
    half = 12.706 * 0.0707107 / 2**0.5  # t(0.975, 1) * sd / sqrt(2) for 0.10, 0.20
    assert f"0.150 ± {half:.3f} (n=2)" in out and "0.020 (n=1)" in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
