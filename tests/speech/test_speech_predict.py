"""mas-predict on speech checkpoints: any rate, mono or stereo, long audio in chunks; bad files get one sentence."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import load_bench, run_cli, train_cfg
from hydra.utils import instantiate
from speech_fabricate import tone

from core.train.errors import InputError
from core.train.run import load_for_predict
from speech.data.audio import read_audio
from speech.predict import segments, shorten_pauses, split_chunks, trim_and_level

SHORT = ["experiment=speech/spoken_digits", "data.num_utterances={train:24,val:8,test:8}", "data.batch_size=8",
         "model.dim=32", "model.depth=1", "model.num_heads=2", "model.subsample_channels=8", "trainer.max_epochs=1",
         "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("asr_run")
    train_cfg(SHORT, out)
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    sf.write(d / "stereo_44k.wav", tone(1.2, 44100, channels=2), 44100)
    sf.write(d / "mono_8k.flac", tone(0.8, 8000), 8000)
    sf.write(d / "long.wav", tone(3.5, 16000), 16000)
    sf.write(d / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(d / "tiny.wav", tone(0.01, 16000), 16000)
    (d / "empty.wav").write_bytes(b"")
    (d / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" * 3)
    (d / "notes.txt").write_text("not audio")
    return d


def _predict(ckpt, request, out_dir):
    cfg, dm, module = load_for_predict(str(ckpt))
    req = {"beam_size": 1, "chunk_seconds": 20.0, "device": "cpu", **request}
    return instantiate(cfg.predictor)(module=module, datamodule=dm, request=req, out_dir=str(out_dir))


def _records(out_dir):
    return [json.loads(ln) for ln in (out_dir / "transcripts.jsonl").read_text().splitlines()]


def test_good_and_bad_files_in_one_call(ckpt, audio, tmp_path, capsys):
    files = [str(audio / n) for n in ("stereo_44k.wav", "mono_8k.flac", "long.wav", "silent.wav", "tiny.wav",
                                      "empty.wav", "corrupt.wav", "notes.txt")]
    with pytest.raises(InputError, match=r"3 of 8 input files could not be read \(empty.wav, corrupt.wav, notes.txt\)"):
        _predict(ckpt, {"input": files, "beam_size": 3, "chunk_seconds": 1.0}, tmp_path)
    res = _records(tmp_path)
    by = {r["file"].rsplit("/", 1)[1]: r for r in res}
    for good in ("stereo_44k.wav", "mono_8k.flac", "long.wav", "tiny.wav"):
        assert isinstance(by[good]["text"], str) and "error" not in by[good]
    assert by["stereo_44k.wav"]["seconds"] == pytest.approx(1.2, abs=1e-3)  # resampled, mixed down
    assert by["silent.wav"]["text"] == ""
    assert "empty" in by["empty.wav"]["error"] and "not a readable audio" in by["corrupt.wav"]["error"]
    assert "not a readable audio" in by["notes.txt"]["error"]
    out, err = capsys.readouterr()
    assert "silent audio" in out and "x real time" in out and err.count("error:") == 3
    assert len(res) == len(files)


def test_folder_input_takes_audio_suffixes_only(ckpt, audio, tmp_path):
    with pytest.raises(InputError, match="could not be read"):  # the folder holds a corrupt and an empty WAV
        _predict(ckpt, {"input": str(audio)}, tmp_path)
    res = _records(tmp_path)
    assert {r["file"].rsplit("/", 1)[1] for r in res if "error" not in r} >= {"stereo_44k.wav", "mono_8k.flac"}
    assert not any(r["file"].endswith(".txt") for r in res)


def test_single_bad_file_raises_one_sentence(ckpt, audio, tmp_path):
    with pytest.raises(InputError, match="corrupt.wav is not a readable audio file"):
        _predict(ckpt, {"input": str(audio / "corrupt.wav")}, tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        _predict(ckpt, {"input": str(audio / "missing.wav")}, tmp_path)


def test_chunked_transcript_matches_unchunked_on_short_audio(ckpt, audio, tmp_path):
    a = _predict(ckpt, {"input": str(audio / "mono_8k.flac"), "chunk_seconds": 30.0}, tmp_path)
    b = _predict(ckpt, {"input": str(audio / "mono_8k.flac"), "chunk_seconds": 0.9}, tmp_path)  # one chunk too
    assert a[0]["text"] == b[0]["text"]


def test_split_chunks_cuts_in_silence():
    sr = 1000
    speech = torch.ones(700)
    wave = torch.cat([speech, torch.zeros(100), speech, torch.zeros(100), speech])  # 2.3 s
    pieces = split_chunks(wave, sr, chunk_seconds=1.0)
    assert torch.equal(torch.cat(pieces), wave) and all(len(p) <= 1000 for p in pieces)
    assert len(pieces) == 3 and all(float(p[-5:].abs().sum()) == 0 for p in pieces[:-1])  # cuts land in the gaps


def _bursts(gaps: list[float], sr: int = 16000, burst: float = 0.5, lead: float = 0.0) -> torch.Tensor:
    """Noise bursts of ``burst`` seconds (0.3 RMS) separated by faint gaps of the given seconds."""
    g = torch.Generator().manual_seed(0)

    def noise(seconds: float, level: float) -> torch.Tensor:
        return level * torch.randn(round(seconds * sr), generator=g)

    parts = [noise(lead, 1e-3)] if lead else []
    for gap in gaps:
        parts += [noise(burst, 0.3), noise(gap, 1e-3)]
    return torch.cat(parts + [noise(burst, 0.3)])


def test_shorten_pauses_cuts_only_long_interior_pauses():
    sr = 16000
    wave = torch.cat([_bursts([1.0, 0.1, 0.25], sr, lead=0.6), 1e-3 * torch.randn(sr)])  # and a 1 s tail
    out, _ = shorten_pauses(wave, sr, max_pause=0.3)
    assert (len(wave) - len(out)) / sr == pytest.approx(0.7, abs=0.01)  # the 1 s pause, down to 0.3 s; no end
    assert torch.equal(out[: int(1.1 * sr)], wave[: int(1.1 * sr)])  # the lead-in and the first burst intact
    assert torch.equal(out[-int(2.95 * sr):], wave[-int(2.95 * sr):])  # everything after the long pause intact
    assert (out.abs() > 0.05).sum() == (wave.abs() > 0.05).sum()  # no burst sample was cut
    at_cap = _bursts([0.3], sr)
    assert torch.equal(shorten_pauses(at_cap, sr, max_pause=0.3)[0], at_cap)  # a pause of max_pause is kept whole


def _loud_frames(piece: torch.Tensor) -> torch.Tensor:
    return (piece.abs() > 0.05).float().reshape(-1, 160).mean(1) > 0.5  # 10 ms frames inside a burst


def test_segments_keep_a_short_recording_whole_and_cut_a_long_one_evenly_in_pauses():
    sr = 16000
    wave = _bursts([0.3] * 9, sr, burst=1.0)  # ten 1 s bursts, 0.3 s apart: 12.7 s
    assert len(segments(wave, sr, chunk_seconds=20.0)) == 1  # whole, though it has nine pauses
    pieces = segments(wave, sr, chunk_seconds=5.0)
    assert torch.equal(torch.cat(pieces), wave) and all(len(p) <= 5 * sr for p in pieces)
    assert not any(_loud_frames(a)[-1] or _loud_frames(b)[0] for a, b in itertools.pairwise(pieces))  # cut in pauses
    # four pieces is the fewest (four bursts and their pauses overrun 5 s), and no burst is left alone
    assert [round(float(_loud_frames(p).sum()) / 100) for p in pieces] == [3, 3, 2, 2]


def test_segments_find_pauses_before_shortening_them():
    """Thirteen 2.5 s bursts 1 s apart: shortened to 0.3 s, the pauses are under a tenth of the frames, too few
    for quiet_frames' noise floor (its 10th percentile) to stay below the bursts; the cuts still land in them."""
    sr = 16000
    wave = _bursts([1.0] * 12, sr, burst=2.5)
    pieces = segments(wave, sr, chunk_seconds=20.0)
    assert sum(len(p) for p in pieces) == len(wave) - round(12 * 0.7 * sr)  # every pause cut to 0.3 s
    assert len(pieces) == 2 and all(len(p) <= 20 * sr for p in pieces)
    assert not any(_loud_frames(a)[-1] or _loud_frames(b)[0] for a, b in itertools.pairwise(pieces))
    assert sorted(round(float(_loud_frames(p).sum()) / 250) for p in pieces) == [6, 7]  # 36.1 s cut near its middle


def test_segments_cut_a_long_stretch_without_pauses_at_its_quietest_frames():
    sr = 1000
    wave = torch.cat([torch.ones(2400), torch.zeros(20), torch.ones(600)]) * torch.linspace(1.0, 0.5, 3020)
    pieces = segments(wave, sr, chunk_seconds=2.5)  # a 20 ms dip is no pause: split_chunks cuts there
    assert torch.equal(torch.cat(pieces), wave) and len(pieces) == 2 and float(pieces[0][-5:].abs().sum()) == 0


def test_quiet_recording_with_long_silences_is_trimmed_and_levelled(ckpt, tmp_path):
    """A quiet 8 kHz WAV: 3 s of room noise, 0.6 s of speech-like sound at 1% of full scale, 4 s of noise."""
    rng = np.random.default_rng(1)
    sr = 8000
    noise = lambda s: (1e-4 * rng.standard_normal(int(s * sr))).astype(np.float32)  # noqa: E731
    voiced = tone(0.6, sr, freq=220.0) / 30  # peak about 0.01
    sf.write(tmp_path / "quiet.wav", np.concatenate([noise(3.0), voiced, noise(4.0)]), sr)
    wave = read_audio(tmp_path / "quiet.wav", 16000)
    out = trim_and_level(wave, 16000, margin=0.15)
    assert abs(len(out) / 16000 - (0.6 + 2 * 0.15)) < 0.05  # the voiced part and its margins, nothing else
    assert float(out.abs().max()) == pytest.approx(0.55, abs=1e-4)  # the level of the training clips
    silent = torch.zeros(16000)
    assert torch.equal(trim_and_level(silent, 16000), silent)
    res = _predict(ckpt, {"input": str(tmp_path / "quiet.wav")}, tmp_path / "p")
    assert res[0]["seconds"] == pytest.approx(7.6, abs=0.01)  # the record keeps the file's own duration


def test_cli_exit_codes(ckpt, audio):
    ok = run_cli("mas-predict", f"ckpt_path={ckpt}", f"input={audio / 'stereo_44k.wav'}", "beam_size=2")
    assert ok.returncode == 0, ok.stderr
    assert "stereo_44k.wav:" in ok.stdout and "x real time" in ok.stdout
    bad = run_cli("mas-predict", f"ckpt_path={ckpt}", f"input={audio / 'empty.wav'}")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: audio file")
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("engine,module_name", [("sam", "samtts"), ("pico", "ttspico")])
def test_other_engine_bench_writes_recordings_and_scores_wer(engine, module_name, ckpt, tmp_path, capsys,
                                                             monkeypatch):
    """bench/other_engine_digits.py end to end; an engine that is not installed (SAM needs
    ``pip install --no-deps samtts``, Pico ``pip install ttspico``) is swapped for a tone, so the recording,
    rates and WER report are checked here either way."""
    bench = load_bench("other_engine_digits")
    rate = bench.ENGINES[engine][1]
    try:
        __import__(module_name)
    except ImportError:
        monkeypatch.setitem(bench.ENGINES, engine, (lambda text, rng: tone(0.3 * len(text.split()), rate), rate))
    recs = bench.make_recordings(tmp_path, per_length=3, seed=1, engine=engine)
    assert len(recs) == 6
    for path, text, group, rate in recs:
        n = len(text.split())
        assert (3 <= n <= 7) if group.startswith("short") else (10 <= n <= 16)
        wave, sr = sf.read(path)
        assert sr == rate and sr in (8000, 16000, 22050) and 0.1 * 0.9 < np.abs(wave).max() <= 0.91
    bench.main(["--ckpt", str(ckpt), "--engine", engine, "--per-length", "2", "--keep", str(tmp_path / "keep")])
    lines = {ln.split(" WER ")[0].strip(): ln for ln in capsys.readouterr().out.splitlines() if " WER " in ln}
    by_rate = {k for k in lines if k.startswith("stored at ")}
    assert set(lines) - by_rate == {"short (3-7 digits)", "long (10-16 digits)", "all"}
    assert lines["all"].endswith("(n=4)")
    assert by_rate and by_rate <= {"stored at 8000 Hz", "stored at 16000 Hz", "stored at 22050 Hz"}
    assert sum(int(lines[k].split("(n=")[1].rstrip(")")) for k in by_rate) == 4  # each recording at one rate
    wer = {k: float(v.split(" WER ")[1].split()[0]) for k, v in lines.items()}
    for split in (["short (3-7 digits)", "long (10-16 digits)"], sorted(by_rate)):
        groups = [wer[k] for k in split]
        assert min(groups) - 1e-3 <= wer["all"] <= max(groups) + 1e-3  # pooled over words: between the groups


def test_other_engine_bench_joins_sequences_into_one_recording(tmp_path, monkeypatch):
    """``--join``: k digit sequences in one file, their words in order, one level and noise floor (write_wav's),
    and 0.6-1.2 s of silence between the sequences."""
    bench = load_bench("other_engine_digits")
    rate = 16000
    monkeypatch.setitem(bench.ENGINES, "sam", (lambda text, rng: 0.5 * tone(0.2 * len(text.split()), rate), rate))
    joined = bench.make_joined(tmp_path, 3, 2, seed=0, engine="sam")
    assert len(joined) == 3
    for r in joined:
        words = r.text.split()
        assert 6 <= len(words) <= 14 and set(words) <= set(bench.DIGIT_WORDS) and r.group == "joined (2 sequences)"
        wave, sr = sf.read(r.path)
        assert sr == r.rate and sr in bench.STORED_RATES and 0.09 < np.abs(wave).max() <= 0.91
        loud = np.abs(wave).reshape(-1)[: len(wave) // (sr // 100) * (sr // 100)].reshape(-1, sr // 100).max(1)
        quiet = loud < 0.05 * loud.max()
        inner = [run for run in np.split(np.flatnonzero(quiet), np.flatnonzero(np.diff(np.flatnonzero(quiet)) > 1) + 1)
                 if run[0] > 0 and run[-1] < len(quiet) - 1]  # quiet runs between the two sequences' tones
        assert len(inner) == 1 and 0.58 <= len(inner[0]) / 100 <= 1.22
        assert len(wave) / sr == pytest.approx(0.2 * len(words) + len(inner[0]) / 100, abs=1.7)  # + lead/trail pads
