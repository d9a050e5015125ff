"""Spoken-command classification: clips, the embedded set, the Speech Commands layout, recipes, predict, bar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import run_cli, train_cfg
from core.train.errors import ConfigError
from speech.data.commands import (COMMANDS, LABELS, ClipBatches, CommandsSpec, build_spoken_commands, fit_clip,
                                  make_requests)
from speech.data.speech_commands import speech_commands_items
from speech_fabricate import tone

TINY = ["data.num_utterances={train:48,val:12,test:12}", "data.batch_size=8"]
SMALL_MODEL = ["model.dim=32", "model.depth=1", "model.num_heads=2", "model.subsample_channels=8"]


def test_labels_are_the_speech_commands_12():
    assert LABELS[:2] == ("_silence_", "_unknown_") and LABELS[2:] == COMMANDS and len(LABELS) == 12


def test_fit_clip_keeps_the_loudest_window_and_centres_short_waves():
    wave = torch.zeros(48000)
    wave[30000:34000] = 1.0  # a burst 1.9-2.1 s into 3 s
    clip = fit_clip(wave, 16000)
    assert len(clip) == 16000 and clip.sum() == 4000  # the whole burst is kept
    short = fit_clip(torch.ones(4000), 16000)
    assert short[:6000].sum() == 0 and short[6000:10000].sum() == 4000 and short[10000:].sum() == 0


def test_clip_batches_shift_with_zeros_in_training():
    items = [(torch.full((100,), 1000, dtype=torch.int16), torch.tensor(3))] * 4
    torch.manual_seed(0)
    wave, lens, y = ClipBatches(1000, shift_seconds=0.02)(items)
    assert wave.shape == (4, 100) and lens.tolist() == [100] * 4 and y.tolist() == [3] * 4
    assert ((wave == 0).sum(1) <= 20).all() and (wave.sum(1) >= 80 * 1000 / 32768 - 1e-6).all()
    plain, _, _ = ClipBatches(1000)(items)
    assert torch.allclose(plain, torch.full((4, 100), 1000 / 32768))


def test_embedded_set_holds_out_voices_and_is_deterministic():
    spec = CommandsSpec(num_utterances={"train": 40, "val": 8, "test": 8}, batch=16)
    reqs = make_requests(spec)
    voices = {split: {r[3].voice.split("+")[1] for r in reqs if r[0] == si and r[3] is not None}
              for si, split in enumerate(("train", "val", "test"))}
    assert voices["val"] <= {"m6", "f3"} and voices["test"] <= {"m7", "f5"} and not voices["train"] & {"m6", "m7"}
    a = build_spoken_commands(spec, num_workers=1, progress=False)
    b = build_spoken_commands(spec, num_workers=2, progress=False)
    assert torch.equal(a["audio"], b["audio"]) and a["audio"].shape == (56, 16000) and a["audio"].dtype == torch.int16
    silent = a["label"] == 0
    assert (a["audio"][silent].float().abs().amax(1) < 0.31 * 32768).all()
    assert all(w == "" for w, s in zip(a["word"], silent) if s)


def write_speech_commands(root: Path, per_word: int = 2) -> Path:
    """The Speech Commands v2 layout: word folders, the two lists, background noise."""
    words = ["yes", "no", "up", "stop", "bed", "marvin"]
    val, test = [], []
    for k, word in enumerate(words):
        (root / word).mkdir(parents=True)
        for j in range(per_word + 2):
            name = f"{word}/spk{j}_nohash_0.wav"
            sf.write(root / name, tone(0.9, 16000, freq=200 + 60 * k, seed=j), 16000)
            (val if j == per_word else test if j == per_word + 1 else []).append(name)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white.wav", np.random.default_rng(0).normal(0, 0.1, 48000), 16000)
    return root


def test_speech_commands_layout(tmp_path):
    root = write_speech_commands(tmp_path / "sc")
    items = speech_commands_items(root, unknown_fraction=0.5, silence_fraction=0.25)
    train = items["train"]
    labels = [LABELS[y] for _, y in train]
    assert labels.count("yes") == 2 and labels.count("_unknown_") == 4 and labels.count("_silence_") == 2
    assert all(Path(p).name.startswith(("spk0", "spk1")) for p, _ in train if p)
    assert {Path(p).name for p, _ in items["test"] if p} == {"spk3_nohash_0.wav"}
    with pytest.raises(Exception, match="Speech Commands not found"):
        speech_commands_items(tmp_path / "missing")


def test_real_recipe_fast_dev_run(tmp_path, out_dir):
    root = write_speech_commands(tmp_path / "sc")
    rec = train_cfg(["experiment=speech/speech_commands", f"data.root={root}", "data.num_workers=0",
                     "data.batch_size=4", "trainer.fast_dev_run=true", *SMALL_MODEL], out_dir)
    assert rec["task"] == "speech/commands" and 0.0 <= rec["test/acc"] <= 1.0


@pytest.mark.parametrize("variant", [[], ["pe=rope"], ["pe=alibi"], ["pe=none"], ["attention=linear"]])
def test_embedded_fast_dev_run(variant, out_dir):
    rec = train_cfg(["experiment=speech/commands", "trainer.fast_dev_run=true", *TINY, *SMALL_MODEL, *variant],
                    out_dir)
    assert 0.0 <= rec["test/acc"] <= 1.0 and rec["params"] > 0


def test_2d_pe_is_refused(out_dir):
    with pytest.raises(ConfigError, match="2-D"):
        train_cfg(["experiment=speech/commands", "pe=rope_2d", "trainer.fast_dev_run=true", *TINY], out_dir)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """Short learning check (~30 s): 12 balanced classes, chance is 1/12. SpecAugment is off: at this
    budget it slows the first epochs (the full recipe keeps it)."""
    out = tmp_path_factory.mktemp("kws")
    rec = train_cfg(["experiment=speech/commands", "data.num_utterances={train:2400,val:120,test:240}",
                     "data.batch_size=32", "model.dim=64", "model.depth=2", "model.freq_masks=0", "model.time_masks=0",
                     "trainer.max_epochs=6"], out)
    return out, rec


def test_commands_learn_quickly(learned):
    _, rec = learned
    print(json.dumps({k: rec[k] for k in ("test/acc", "val/acc", "train_seconds")}))
    assert rec["test/acc"] > 0.4, rec


def test_predict_prints_top_labels(learned, tmp_path):
    out, _ = learned
    from core.train.run import load_for_predict

    _, dm, module = load_for_predict(str(out / "checkpoints" / "last.ckpt"))
    dm.setup("test")
    wave, lens, y = next(iter(dm.test_dataloader()))
    sf.write(tmp_path / "clip.wav", wave[0].numpy(), 16000)  # a held-out-voice clip, as a file
    long = np.concatenate([np.zeros(16000), wave[0].numpy(), np.zeros(24000)])  # 3.5 s: the loudest second is kept
    sf.write(tmp_path / "long.wav", long, 16000)
    sf.write(tmp_path / "clip_8k.wav", wave[0].numpy()[::2], 8000)  # another rate: resampled on reading
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    proc = run_cli("mas-predict", f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}", f"input={tmp_path}", "top_k=3",
                   f"hydra.run.dir={tmp_path}/p", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]  # one file was bad: the others still get their labels
    lines = {Path(ln.split(": ")[0]).name: ln for ln in proc.stdout.strip().splitlines()}
    assert "1 of 4 input files could not be read (bad.wav)" in proc.stderr
    assert set(lines) == {"clip.wav", "long.wav", "clip_8k.wav"}
    top = [(part.rsplit(" ", 1)[0], float(part.rsplit(" ", 1)[1])) for part in lines["clip.wav"].split(": ")[1].split(", ")]
    assert len(top) == 3 and all(label in LABELS for label, _ in top) and top[0][1] >= top[1][1] >= top[2][1]
    with torch.no_grad():
        expected = LABELS[int(module.model(wave[:1], lens[:1]).argmax())]
    assert top[0][0] == expected
    assert lines["long.wav"].split(": ")[1].split(" ")[0] == expected
    ex = module.attention_example((wave, lens, y), dm)  # the gallery's view of this task
    assert ex["kind"] == "frames" and ex["attn"].shape[0] == ex["attn"].shape[1] == 26
    assert ex["title"].startswith(f"label {LABELS[int(y[0])]}, predicted ")


@pytest.mark.slow
@pytest.mark.parametrize("pe", ["sinusoidal", "none"])
def test_commands_bar(pe, out_dir):
    """Issue 11 bar: test/acc >= 0.95 on held-out voices with the default recipe, training under 3 minutes."""
    rec = train_cfg(["experiment=speech/commands", f"pe={pe}"], out_dir)
    print(json.dumps({"pe": pe, **{k: rec[k] for k in ("test/acc", "val/acc", "train_seconds")}}))
    if pe == "sinusoidal":
        assert rec["test/acc"] >= 0.95 and rec["train_seconds"] < 180, rec
