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


def _recorder():
    """A Lightning module that records its batches by epoch (lightning imported here: it is heavy)."""
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

    return Recorder()


def _bucketed_fit(epochs: int, root, resume_from=None) -> list:
    """Fit the recorder on 64 bucketed items (curriculum: epoch 0 on the first 20), as mas-train does (the
    reseeding callback on); return ``(epoch, batch)`` pairs it saw."""
    import lightning as L

    from core.train.callbacks import EpochReseed

    lengths = np.random.default_rng(0).integers(100, 1000, 64).tolist()

    class Items(L.LightningDataModule):
        def train_dataloader(self):
            sampler = BucketBatchSampler(lengths, batch_size=8, seed=2, first_epochs=(range(20), 1))
            return torch.utils.data.DataLoader(list(range(64)), batch_sampler=sampler)

    model = _recorder()
    L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, default_root_dir=root, enable_progress_bar=False,
              enable_model_summary=False, callbacks=[EpochReseed(7)]).fit(model, Items(), ckpt_path=resume_from)
    return model.seen


def test_lightning_gives_the_bucket_sampler_each_epoch_and_a_resumed_fit_the_same(tmp_path):
    # Lightning tells loader.sampler and loader.batch_sampler.sampler the epoch, not the batch sampler itself,
    # and only after building a fit's first iterator: a real fit must still see each epoch's own batches.
    seen = _bucketed_fit(3, tmp_path / "whole")
    epochs = [[b for e, b in seen if e == k] for k in range(3)]
    assert [len(bs) for bs in epochs] == [8, 8, 8] and epochs[1] != epochs[2]
    assert {i for b in epochs[0] for i in b} == set(range(20))  # the curriculum's epoch
    assert [sorted(i for b in bs for i in b) for bs in epochs[1:]] == [list(range(64))] * 2
    _bucketed_fit(2, tmp_path / "first")
    ckpt = next((tmp_path / "first").rglob("*.ckpt"))
    resumed = _bucketed_fit(3, tmp_path / "first", resume_from=str(ckpt))
    assert [b for e, b in resumed] == epochs[2]  # epoch 2 again, not epoch 0's draw


def test_first_epochs_draw_from_their_items_alone():
    lengths = np.random.default_rng(1).integers(1000, 5000, 95).tolist()
    first = list(range(0, 95, 3))  # 32 items, about a third of the set
    s = BucketBatchSampler(lengths, batch_size=10, max_batch_samples=40000, seed=0, first_epochs=(first, 2))
    whole = BucketBatchSampler(lengths, batch_size=10, max_batch_samples=40000, seed=0)
    for epoch in (0, 1):
        s.set_epoch(epoch)
        whole.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s) == len(list(whole))  # Lightning counts the batches once, at epoch 0
        assert {i for b in batches for i in b} == set(first)
        assert all(len(set(b)) == len(b) for b in batches)  # no batch holds one item twice
        counts = np.bincount([i for b in batches for i in b], minlength=95)[first]
        assert counts.max() - counts.min() <= 1  # round after round: all items equally often
    s.set_epoch(2)
    assert sorted(i for b in s for i in b) == list(range(95))  # then the whole set, once each
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
