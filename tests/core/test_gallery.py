"""The attention gallery draws one example per domain through the tasks' ShowsAttention protocol."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from core.report.gallery import attention_gallery, domain_examples

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "legacy"


def test_one_example_per_domain(tmp_path):
    rows = [{"task": task, "experiment": exp, "attention": "sdpa", "pe": "sinusoidal", "run_dir": str(tmp_path),
             "best_checkpoint": str(FIXTURES / f"{name}.ckpt")}
            for name, task, exp in (("vision", "vision/classification", "vision/digits"),
                                    ("nlp", "nlp/translation", "nlp/numbers_de"),
                                    ("speech", "speech/ctc", "speech/spoken_digits"))]
    console = Console(record=True)
    examples = domain_examples(rows, console)
    assert sorted(e["kind"] for e in examples) == ["frames", "patches", "tokens"], console.export_text()
    patches = next(e for e in examples if e["kind"] == "patches")
    assert patches["query_map"].shape == (4, 4) and abs(patches["attn"].sum(-1) - 1).max() < 1e-4
    assert attention_gallery(rows, tmp_path / "g.png", console=console)
    assert (tmp_path / "g.png").stat().st_size > 10_000
