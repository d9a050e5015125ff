"""Every command the README shows is exercised: CLI lines compose into valid configs, bench scripts have tests."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from core.train.overrides import check_command_line, split_free_text

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
APPS = {"mas-train": "train", "mas-eval": "eval", "mas-predict": "predict", "mas-compare": "compare",
        "mas-export": "export", "mas-demo": "demo"}


def _bash_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


CLI_LINES = [ln for ln in _bash_lines() if ln.split()[0] in APPS and "--config-dir" not in ln]
BENCH_LINES = [ln for ln in _bash_lines() if re.match(r"(python|bash) bench/", ln)]


def test_readme_shows_commands():
    assert len(CLI_LINES) >= 6 and len(BENCH_LINES) >= 4
    assert "python -m pytest -q" in README and (ROOT / ".ci" / "run").read_text().count("python -m pytest -q") == 1


@pytest.mark.parametrize("line", CLI_LINES)
def test_readme_cli_line_composes(line):
    """Placeholders (<ckpt>, <run>) become a path; every key, group option and value must compose."""
    args = shlex.split(re.sub(r"<[^>]+>", "placeholder", line))
    rest = split_free_text(args[1:], "text")[0] if args[0] == "mas-predict" else args[1:]  # as predict_main does
    check_command_line(APPS[args[0]], rest, args[0])


@pytest.mark.parametrize("line", BENCH_LINES)
def test_readme_bench_line_has_a_test(line):
    script = line.split()[1]
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_readme.py")
    name = Path(script).stem
    exercised = f'_bench("{name}")' in tests or f'"{name}.py"' in tests or f"{script}" in tests
    assert exercised, f"{script} (shown in the README) has no test that runs it"
