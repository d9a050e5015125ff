"""mas-eval / mas-predict from a checkpoint alone: good input, empty text, unknown characters, over-long input."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
import torch
from conftest import load_bench, run_cli, train_cfg

from core.train.data import main_test_loader
from core.train.errors import InputError
from core.train.run import load_for_predict
from nlp.models import translate

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:lightning")


@pytest.fixture(scope="module")
def cls_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls")
    train_cfg(["experiment=nlp/numbers_cls", "data.corpus_size=2000", "data.max_number=99", "model.dim=32",
               "model.depth=1", "model.num_heads=2", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
               "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "data.max_len=40"], out)
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def mt_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("mt")
    train_cfg(["experiment=nlp/numbers_de", "data.max_number=999", "data.train_size=64", "data.val_size=16",
               "data.test_size=16", "model.dim=32", "model.enc_depth=1", "model.dec_depth=1", "model.num_heads=2",
               "trainer.max_epochs=1", "module.num_alignment_plots=0", "data.max_src_len=30",
               "data.max_tgt_len=24", "module.beam_size=3"], out)
    return out / "checkpoints" / "last.ckpt"


def test_classification_predict(cls_ckpt, tmp_path, capsys):
    cfg, dm, module = load_for_predict(str(cls_ckpt))
    predictor = __import__("hydra").utils.instantiate(cfg.predictor)
    res = predictor(module=module, datamodule=dm, request={"text": "twelve | three", "top_k": 2}, out_dir=str(tmp_path))
    assert res[0]["label"] in ("first", "second") and 0.5 <= res[0]["prob"] <= 1.0
    assert math.isclose(sum(p for _, p in res[0]["top"]), 1.0, abs_tol=1e-5)
    assert res[0]["label"] in capsys.readouterr().out
    # typed as a person types: the checkpoint's normalisation makes these the same phrase
    both = {"text": ["TWENTY ONE | Fifty-Two", "twenty-one | fifty-two"]}
    typed = predictor(module=module, datamodule=dm, request=both, out_dir=str(tmp_path))
    assert typed[0]["label"] == typed[1]["label"] and typed[0]["prob"] == pytest.approx(typed[1]["prob"], abs=1e-6)
    # unknown characters: <unk> with a warning; over-long input: truncated with a warning
    with pytest.warns(UserWarning, match="<unk>"):
        predictor(module=module, datamodule=dm, request={"text": "zwölf ☃ | drei"}, out_dir=str(tmp_path))
    with pytest.warns(UserWarning, match="truncated"):
        predictor(module=module, datamodule=dm, request={"text": "one " * 50}, out_dir=str(tmp_path))
    lines = tmp_path / "lines.txt"
    lines.write_text("five | six\n\nseventy | seven\n")
    assert len(predictor(module=module, datamodule=dm, request={"input": str(lines)}, out_dir=str(tmp_path))) == 2
    for bad in ({"text": "   "}, {}, {"input": str(tmp_path / "missing.txt")}):
        with pytest.raises(InputError):
            predictor(module=module, datamodule=dm, request=bad, out_dir=str(tmp_path))


def test_translation_predict_and_bleu_matches_sacrebleu(mt_ckpt, tmp_path, capsys):
    cfg, dm, module = load_for_predict(str(mt_ckpt))
    predictor = __import__("hydra").utils.instantiate(cfg.predictor)
    res = predictor(module=module, datamodule=dm, request={"text": ["twenty-one", "three hundred"], "beam_size": 3,
                                                           "length_penalty": 1.0}, out_dir=str(tmp_path))
    assert len(res) == 2 and all(isinstance(r["translation"], str) for r in res)
    with pytest.warns(UserWarning, match="truncated"):
        predictor(module=module, datamodule=dm, request={"text": "seven " * 20, "beam_size": 2}, out_dir=str(tmp_path))
    with pytest.raises(InputError, match="empty"):
        predictor(module=module, datamodule=dm, request={"text": ""}, out_dir=str(tmp_path))


def test_eval_bleu_equals_sacrebleu_on_the_same_outputs(mt_ckpt, tmp_path):
    """mas-eval's test/bleu and test/chrf equal sacrebleu on translations decoded independently here."""
    proc = run_cli("mas-eval", f"ckpt_path={mt_ckpt}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {ln.split(" = ")[0]: float(ln.split(" = ")[1]) for ln in proc.stdout.splitlines() if " = " in ln}
    cfg, dm, module = load_for_predict(str(mt_ckpt))
    dm.setup("test")
    hyps, refs = [], []
    for src, mask, _, r in main_test_loader(dm):
        ids = translate(module.model, src, mask, beam_size=cfg.module.beam_size, length_penalty=1.0)
        hyps += [dm.tokenizer.decode(row.tolist()) for row in ids]
        refs += r
    assert got["test/bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="char").score, abs=1e-3)
    assert got["test/chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-3)
    exact = torch.tensor([h == r for h, r in zip(hyps, refs)], dtype=torch.float).mean().item()
    assert got["test/exact_match"] == pytest.approx(exact, abs=1e-4)
    assert got["test/bleu"] > 0  # character BLEU of a barely trained model is small but not zero


def test_cli_predict_bad_input_exits_2(cls_ckpt, tmp_path):
    proc = run_cli("mas-predict", f"ckpt_path={cls_ckpt}", "text=''", f"hydra.run.dir={tmp_path / 'p'}")
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error:") and "empty" in proc.stderr
    proc = run_cli("mas-predict", f"ckpt_path={cls_ckpt}", "text='nine | ten'", f"hydra.run.dir={tmp_path / 'q'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\t")[0] in ("first", "second")


TYPED = ["one hundred, two | seven", "Zwölf | drei", "dix-sept | vingt", "dieciséis | cinco", "七 | 八 😀",
         "it's \"quoted\" [x]={y} | $HOME ~ #5"]


def _labels(stdout: str) -> list[str]:
    return [ln.split("\t")[0] for ln in stdout.strip().splitlines()]


def test_text_of_any_content_works_as_typed(cls_ckpt, tmp_path):
    """Commas, accents, emoji, CJK, quotes, brackets: from text=, from a file and from standard input."""
    from core.train.run import load_for_predict as load

    _, dm, module = load(str(cls_ckpt))
    direct = predict_direct(module, dm, TYPED)
    # text= goes through Hydra's override grammar: the comma and the quotes/brackets/$ are the cases it could
    # misread; accents and CJK take the same path as the file and standard-input runs below
    for i in (0, 5):
        text = TYPED[i]
        proc = run_cli("mas-predict", f"ckpt_path={cls_ckpt}", f"text={text}", f"hydra.run.dir={tmp_path / str(i)}")
        assert proc.returncode == 0, (text, proc.stderr[-1500:])
        assert proc.stdout.strip().split("\t")[2] == text.strip() and _labels(proc.stdout) == [direct[i]]
    lines = tmp_path / "typed.txt"
    lines.write_text("\n".join(TYPED) + "\n", encoding="utf-8")
    from_file = run_cli("mas-predict", f"ckpt_path={cls_ckpt}", f"input={lines}", f"hydra.run.dir={tmp_path / 'f'}")
    assert from_file.returncode == 0 and _labels(from_file.stdout) == direct
    exe = Path(sys.executable).parent / "mas-predict"
    piped = subprocess.run([str(exe), f"ckpt_path={cls_ckpt}", "input=-", f"hydra.run.dir={tmp_path / 's'}"],
                           input="\n".join(TYPED), capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0, piped.stderr[-1500:]
    assert _labels(piped.stdout) == direct


def predict_direct(module, dm, texts):
    """The labels the model gives the same texts, computed without the CLI."""
    with torch.no_grad():
        ids = dm.encoder().encode(texts, what="inputs")
        from nlp.data.modules import pad_sequences

        tokens, mask = pad_sequences(ids)
        return [dm.classes[int(i)] for i in module.model.eval()(tokens, mask).argmax(-1)]


def test_folder_of_text_files_and_one_bad_file(cls_ckpt, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("five | six\nseventy | seven\n")
    (folder / "b.txt").write_text("twelve | three\n")
    (folder / "c.txt").write_bytes(b"\xff\xfe\xfa not utf-8")
    (folder / "ignored.bin").write_bytes(b"\x00")
    proc = run_cli("mas-predict", f"ckpt_path={cls_ckpt}", f"input={folder}", f"hydra.run.dir={tmp_path / 'p'}")
    assert proc.returncode == 2  # one file failed; the others got their output
    assert len(_labels(proc.stdout)) == 3
    err = proc.stderr.strip().splitlines()
    assert "c.txt is not UTF-8 text" in err[0]
    assert err[-1] == "error: 1 of 3 input files could not be read (c.txt); the others got their output."
    ok = run_cli("mas-predict", f"ckpt_path={cls_ckpt}", f"input={folder / 'a.txt'}", "threads=1",
                 f"hydra.run.dir={tmp_path / 'q'}")
    assert ok.returncode == 0 and len(_labels(ok.stdout)) == 2, ok.stderr[-1500:]


def test_person_numbers_bench_spells_like_num2words_and_scores_a_checkpoint(cls_ckpt, capsys):
    """bench/person_numbers.py: its own speller agrees with num2words on 0..999, its labels say which number
    is larger, and it scores a checkpoint per pair kind and typing style."""
    from num2words import num2words

    bench = load_bench("person_numbers")
    assert all(bench.spell(n) == num2words(n).replace(",", "") for n in range(1000))
    assert bench.spell(105, british_and=False) == "one hundred five"
    pairs = bench.make_pairs(60, seed=3)
    words = {bench.spell(n): n for n in range(1000)}
    for text, label, kind, style in pairs:
        left, right = (t.strip() for t in text.split("|"))
        if style == "as_written":
            a, b = words[left], words[right]
            assert label == (0 if a > b else 1) and a != b
            if kind == "close":
                assert 1 <= abs(a - b) <= 12
    assert {k for _, _, k, _ in pairs} == {"close", "one_digit", "independent"}
    bench.main(["--ckpt", str(cls_ckpt), "--pairs", "30"])
    lines = {ln.split(" accuracy ")[0].strip(): ln for ln in capsys.readouterr().out.splitlines() if "accuracy" in ln}
    assert lines["all"].endswith("(n=30)") and "kind close" in lines and "style capitals" in lines
    assert 0.0 <= float(lines["all"].split()[2]) <= 1.0
