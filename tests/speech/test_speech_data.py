"""Loaders on fabricated files, audio reading, length bucketing, the tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from core.train.errors import ConfigError, InputError
from speech.data.audio import read_audio
from core.train.tokenizers import CharTokenizer
from speech.data.batching import BucketBatchSampler, collate, ctc_tokenizer
from speech.data.digits import SpokenDigitsDataModule
from speech.data.files import LibriSpeechDataModule, ManifestDataModule, librispeech_items, manifest_items
from speech_fabricate import TEXTS, tone, write_librispeech, write_manifests

normalize_text = ctc_tokenizer().normalize


def test_tokenizer_roundtrip_and_normalisation():
    tok = ctc_tokenizer()
    assert tok.itos[0] == "<b>" and tok.itos[1] == " " and tok.vocab_size == 29
    assert normalize_text("  It's  A-TEST, 42! ") == "it's a test"
    ids = tok.encode("It's A TEST")
    assert tok.decode(ids) == "it's a test"
    assert CharTokenizer.from_state(tok.state_dict()).itos == tok.itos
    old = {"chars": " '" + "abcdefghijklmnopqrstuvwxyz"}  # the state older checkpoints stored
    dm = SpokenDigitsDataModule(cache_dir="unused")
    dm.load_state_dict({"tokenizer": old, "sample_rate": 16000})
    assert dm.tokenizer.itos == tok.itos and dm.tokenizer.encode("It's A TEST") == ids


def test_read_audio_resamples_and_mixes_down(tmp_path):
    x = tone(0.5, 8000, channels=2)
    sf.write(tmp_path / "a.flac", x, 8000)
    w = read_audio(tmp_path / "a.flac", 16000)
    assert w.dtype == torch.float32 and w.ndim == 1 and len(w) == 8000
    ref = torch.from_numpy(x.mean(1))
    assert torch.allclose(read_audio(tmp_path / "a.flac", 8000), ref, atol=1e-4)  # FLAC is 16-bit


@pytest.mark.parametrize("content,msg", [(b"", "empty"), (b"not audio at all" * 20, "not a readable audio")])
def test_read_audio_bad_files(tmp_path, content, msg):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(InputError, match=msg):
        read_audio(p, 16000)
    with pytest.raises(InputError, match="does not exist"):
        read_audio(tmp_path / "missing.wav", 16000)


def test_librispeech_layout(tmp_path):
    write_librispeech(tmp_path)
    items = librispeech_items(tmp_path, "dev-clean")
    assert len(items) == 6 and {it.text for it in items} == set(TEXTS[:3])
    assert all(it.path.endswith(".flac") for it in items)
    assert items[0].duration == pytest.approx(0.4)
    dm = LibriSpeechDataModule(root=str(tmp_path), train=["train-clean-100"], val=["dev-clean"], test=["test-clean"],
                               batch_size=4)
    dm.setup("fit")
    wave, wave_lens, targets, target_lens, texts = next(iter(dm.train_dataloader()))
    assert wave.shape == (len(texts), int(wave_lens.max())) and targets.shape[0] == len(texts)
    for row, n, t in zip(targets, target_lens, texts):
        assert dm.tokenizer.decode(row[:n].tolist()) == normalize_text(t)
    with pytest.raises(ConfigError, match="data.root"):
        librispeech_items(tmp_path, "test-other")


def test_manifest_layout(tmp_path):
    paths = write_manifests(tmp_path)
    items = manifest_items(paths["train"])
    assert len(items) == len(TEXTS) and items[1].path == str(tmp_path / "audio" / "train_1.flac")
    dm = ManifestDataModule(train=str(paths["train"]), val=str(paths["val"]), test=str(paths["test"]), batch_size=3,
                            sample_rate=16000)
    dm.setup("test")
    batches = list(dm.test_dataloader())
    assert sum(len(b[4]) for b in batches) == len(TEXTS)
    durations = sorted(it.duration for it in manifest_items(paths["test"]))
    got = sorted(float(n) / 16000 for b in batches for n in b[1])
    assert np.allclose(durations, got, atol=1e-3)  # 8 / 22.05 / 16 kHz files all resampled to 16 kHz
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"audio_filepath": "x.wav", "text": "no duration"}\n')
    with pytest.raises(ConfigError, match="line 1"):
        manifest_items(bad)


def test_bucket_sampler_groups_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1000, 50000, 200).tolist()
    s = BucketBatchSampler(lengths, batch_size=16, max_batch_samples=300000, shuffle=True, seed=1)
    batches = list(s)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(200))  # every item exactly once
    assert all(len(b) <= 16 and max(lengths[i] for i in b) * len(b) <= 300000 for b in batches)
    spread = np.mean([max(lengths[i] for i in b) / min(lengths[i] for i in b) for b in batches])
    assert spread < 1.3  # buckets hold similar lengths (random batches would be ~10x)
    s.set_epoch(1)
    assert list(s) != batches  # a new order each epoch
    s.set_epoch(0)
    assert list(s) == batches  # reproducible


def test_lightning_gives_the_bucket_sampler_a_new_epoch():
    # Lightning tells loader.sampler and loader.batch_sampler.sampler the epoch, not the batch sampler itself:
    # a real fit must still see new batches each epoch.
    import lightning as L

    class Recorder(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w, self.seen = torch.nn.Parameter(torch.zeros(1)), []

        def training_step(self, batch, _):
            self.seen.append((self.current_epoch, batch.tolist()))
            return (self.w - batch.float().mean()) ** 2

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    lengths = np.random.default_rng(0).integers(100, 1000, 64).tolist()
    loader = torch.utils.data.DataLoader(list(range(64)), batch_sampler=BucketBatchSampler(lengths, batch_size=8, seed=2))
    model = Recorder()
    L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(model, loader)
    epochs = [[b for e, b in model.seen if e == k] for k in (0, 1)]
    assert len(epochs[0]) == len(epochs[1]) == 8 and epochs[0] != epochs[1]
    assert [sorted(i for b in bs for i in b) for bs in epochs] == [list(range(64))] * 2


def test_first_epochs_draw_from_their_items_alone():
    lengths = np.random.default_rng(1).integers(1000, 5000, 90).tolist()
    first = list(range(0, 90, 3))  # a third of the set
    s = BucketBatchSampler(lengths, batch_size=10, seed=0, first_epochs=(first, 2))
    for epoch in (0, 1):
        s.set_epoch(epoch)
        drawn = [i for b in s for i in b]
        assert len(drawn) == 90 and set(drawn) == set(first)  # each of them three times
        assert np.bincount(drawn, minlength=90)[first].tolist() == [3] * 30
    s.set_epoch(2)
    assert sorted(i for b in s for i in b) == list(range(90))  # then the whole set, once each
    plain = BucketBatchSampler(lengths, batch_size=10, seed=0)
    assert list(plain) == list(BucketBatchSampler(lengths, batch_size=10, seed=0, first_epochs=(first, 0)))


def test_collate_pads():
    items = [(torch.ones(5), torch.tensor([2, 3]), "ab"), (torch.ones(3), torch.tensor([4]), "c")]
    wave, wl, tg, tl, texts = collate(items)
    assert wave.shape == (2, 5) and wl.tolist() == [5, 3] and tg.tolist() == [[2, 3], [4, 0]] and tl.tolist() == [2, 1]
    assert texts == ["ab", "c"] and wave[1, 3:].abs().sum() == 0


def test_bucket_sampler_shards_batches_across_ranks(monkeypatch):
    import speech.data.batching as sd

    lengths = list(range(100, 1100, 10))  # 100 items -> 13 batches of <= 8
    ranks = []
    for rank in (0, 1):
        monkeypatch.setattr(sd.dist, "is_initialized", lambda: True)
        monkeypatch.setattr(sd.dist, "get_world_size", lambda: 2)
        monkeypatch.setattr(sd.dist, "get_rank", lambda r=rank: r)
        s = BucketBatchSampler(lengths, batch_size=8, shuffle=True, seed=3)
        ranks.append(list(s))
        assert len(s) == len(ranks[-1])
    assert len(ranks[0]) == len(ranks[1]) == 7  # 13 batches padded to 14, split evenly
    seen = {i for r in ranks for b in r for i in b}
    assert seen == set(range(100))
