"""Number pairs typed the way people type them, and a number-comparison checkpoint scored on them.

Independent of the training corpus: the words come from this file's own speller (not num2words),
the pairs from their own sampler (close pairs 1-12 apart across tens and hundreds, one digit changed,
independent numbers), and each phrase is typed in one style: as written ("one hundred and five"),
American ("one hundred five"), capitals, title case, or with spaces for hyphens.

    python bench/person_numbers.py --ckpt outputs/runs/<numbers_cls run>/checkpoints/last.ckpt [--pairs 600]

prints accuracy per pair kind and per typing style, and overall.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections import defaultdict

import numpy as np

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def spell(n: int, british_and: bool = True) -> str:
    """English words for 0..999 ("one hundred and five", or "one hundred five" without the "and")."""
    hundreds, rest = divmod(n, 100)
    if rest < 20:
        tail = ONES[rest]
    else:
        tail = TENS[rest // 10] + ("" if rest % 10 == 0 else "-" + ONES[rest % 10])
    if not hundreds:
        return tail
    head = ONES[hundreds] + " hundred"
    return head if rest == 0 else head + (" and " if british_and else " ") + tail


STYLES = {
    "as_written": lambda n: spell(n),
    "american": lambda n: spell(n, british_and=False),
    "capitals": lambda n: spell(n, british_and=False).upper(),
    "title_case": lambda n: spell(n).title(),
    "spaces_for_hyphens": lambda n: spell(n).replace("-", " "),
}


def make_pairs(count: int, seed: int = 0) -> list[tuple[str, int, str, str]]:
    """(text, label 0 = first larger, pair kind, style)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        kind = ["close", "one_digit", "independent"][len(out) % 3]
        a = int(rng.integers(0, 1000))
        if kind == "close":
            b = a + int(rng.choice([-1, 1]) * rng.integers(1, 13))
        elif kind == "one_digit":
            digits = list(f"{a:03d}")
            i = int(rng.integers(0, 3))
            digits[i] = str((int(digits[i]) + int(rng.integers(1, 10))) % 10)
            b = int("".join(digits))
        else:
            b = int(rng.integers(0, 1000))
        if a == b or not 0 <= b <= 999:
            continue
        style = list(STYLES)[int(rng.integers(0, len(STYLES)))]
        out.append((f"{STYLES[style](a)} | {STYLES[style](b)}", 0 if a > b else 1, kind, style))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from core.train.run import load_for_predict
    from nlp.predict import predict_classes

    pairs = make_pairs(args.pairs, args.seed)
    _, dm, module = load_for_predict(args.ckpt)
    with contextlib.redirect_stdout(io.StringIO()):
        results = predict_classes(module=module, datamodule=dm, request={"text": [p[0] for p in pairs]},
                                  out_dir=".")
    right: dict[str, list[bool]] = defaultdict(list)
    for (_, label, kind, style), r in zip(pairs, results):
        ok = r["label"] == dm.classes[label]
        for key in (f"kind {kind}", f"style {style}", "all"):
            right[key].append(ok)
    for key, oks in sorted(right.items()):
        print(f"{key:26s} accuracy {np.mean(oks):.3f}  (n={len(oks)})")


if __name__ == "__main__":
    main()
