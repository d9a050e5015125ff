"""Speech batches: waveform datasets, length-bucketed batching, and the datamodule base of every speech set.

A batch is ``(wave (B, T) float, wave_lens (B,), targets (B, L) long, target_lens (B,), texts)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, Sampler

from core.train.data import SplitDataModule
from core.train.tokenizers import CTC_SPECIALS, CharTokenizer

__all__ = ["BucketBatchSampler", "SpeechDataModuleBase", "ctc_tokenizer", "WaveDataset", "collate"]


CTC_CHARS = " '" + "abcdefghijklmnopqrstuvwxyz"
CTC_NORMALIZE = ("lower", "letters", "spaces")  # transcripts as the recogniser spells them


def ctc_tokenizer(chars: str = CTC_CHARS) -> CharTokenizer:
    """Blank (id 0), space (id 1: the word separator), apostrophe and the letters; other characters dropped."""
    return CharTokenizer(chars, specials=CTC_SPECIALS, normalize=CTC_NORMALIZE)


def collate(items: Sequence[tuple[Tensor, Tensor, str]]) -> tuple[Tensor, Tensor, Tensor, Tensor, list[str]]:
    """Pad waveforms and targets of ``(wave (T,), ids (L,), text)`` items."""
    waves, ids, texts = zip(*items)
    wave_lens = torch.tensor([len(w) for w in waves], dtype=torch.long)
    target_lens = torch.tensor([len(i) for i in ids], dtype=torch.long)
    return (pad_sequence(list(waves), batch_first=True), wave_lens,
            pad_sequence(list(ids), batch_first=True), target_lens, list(texts))


class WaveDataset(Dataset):
    """Waveforms from one flat int16 tensor with ``offsets``, and their transcripts."""

    def __init__(self, audio: Tensor, offsets: Tensor, index: np.ndarray, texts: list[str],
                 tokenizer: CharTokenizer) -> None:
        self.audio, self.offsets, self.index, self.texts, self.tok = audio, offsets, index, texts, tokenizer
        self.lengths = (offsets[1:] - offsets[:-1])[torch.as_tensor(index)].tolist()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, str]:
        j = int(self.index[i])
        wave = self.audio[self.offsets[j]: self.offsets[j + 1]].float() / 32768.0
        text = self.texts[j]
        return wave, torch.tensor(self.tok.encode(text), dtype=torch.long), text


class _Epoch:
    """The epoch a :class:`BucketBatchSampler` draws. Lightning sets the epoch on ``loader.sampler`` and
    ``loader.batch_sampler.sampler``, never on the batch sampler itself, so the batch sampler exposes this as
    its ``sampler`` (PyTorch's ``BatchSampler`` has one too) to be told which epoch it is."""

    def __init__(self) -> None:
        self.value = 0

    def set_epoch(self, epoch: int) -> None:
        self.value = int(epoch)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length: sort by length, cut into batches holding at most ``batch_size``
    items and ``max_batch_samples`` padded samples, shuffle the batch order per epoch.

    ``first_epochs = (items, k)``: a curriculum whose first ``k`` epochs draw from ``items`` alone, in rounds
    that each hold every one of them once (no batch holds an item twice), cut or cycled to as many batches as
    the whole set makes that epoch: Lightning reads the number of batches once, at the first epoch.

    Under DDP each rank takes every ``world_size``-th batch (set ``trainer.use_distributed_sampler=false``);
    the batch list is padded by repetition so every rank runs the same number of steps.
    """

    def __init__(self, lengths: Sequence[int], *, batch_size: int, max_batch_samples: int | None = None,
                 shuffle: bool = True, seed: int = 0,
                 first_epochs: tuple[Sequence[int], int] | None = None) -> None:
        self.lengths, self.batch_size, self.max_samples = list(lengths), batch_size, max_batch_samples
        self.shuffle, self.seed, self.sampler = shuffle, seed, _Epoch()
        items, epochs = first_epochs if first_epochs is not None else ((), 0)
        self.curriculum_items = np.asarray(items, dtype=np.int64)
        self.curriculum_epochs = int(epochs) if len(self.curriculum_items) else 0

    @property
    def epoch(self) -> int:
        return self.sampler.value

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _buckets(self, items: np.ndarray, rng: np.random.Generator) -> list[list[int]]:
        """``items`` sorted by length (jittered, so batches differ between epochs) and cut into batches."""
        lengths = np.asarray(self.lengths)[items]
        noise = rng.uniform(0.0, 0.1, len(items)) if self.shuffle else np.zeros(len(items))
        batches, cur, longest = [], [], 0
        for i in items[np.argsort(lengths * (1 + noise), kind="stable")].tolist():
            longest_new = max(longest, self.lengths[i])
            too_many = self.max_samples is not None and cur and longest_new * (len(cur) + 1) > self.max_samples
            if len(cur) == self.batch_size or too_many:
                batches.append(cur)
                cur, longest_new = [], self.lengths[i]
            cur.append(i)
            longest = longest_new
        return batches + [cur] if cur else batches

    def _curriculum(self, count: int, rng: np.random.Generator) -> list[list[int]]:
        """``count`` batches from the curriculum's items, round after round."""
        batches: list[list[int]] = []
        while len(batches) < count:
            round_ = self._buckets(rng.permutation(self.curriculum_items), rng)
            batches += [round_[k] for k in rng.permutation(len(round_))]  # a cut round loses random lengths
        return batches[:count]

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = self._buckets(np.arange(len(self.lengths)), rng)
        if self.epoch < self.curriculum_epochs:
            batches = self._curriculum(len(batches), rng)
        if self.shuffle:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        return batches

    def _shard(self, batches: list[list[int]]) -> list[list[int]]:
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return batches
        world, rank = dist.get_world_size(), dist.get_rank()
        while len(batches) % world:
            batches = batches + batches[: world - len(batches) % world]
        return batches[rank::world]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._shard(self._batches()))

    def __len__(self) -> int:
        return len(self._shard(self._batches()))


class SpeechDataModuleBase(SplitDataModule):
    """Loaders, tokenizer state and model facts shared by the speech datamodules.

    Subclasses fill ``self.datasets`` (split -> dataset with a ``lengths`` list) in ``setup``.
    """

    def __init__(self, *, batch_size: int = 32, max_batch_seconds: float | None = None, num_workers: int = 0,
                 sample_rate: int = 16000, seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.max_batch_seconds, self.num_workers = batch_size, max_batch_seconds, num_workers
        self.sample_rate, self.seed = sample_rate, seed
        self.tokenizer = ctc_tokenizer()
        self.datasets: dict[str, Dataset] = {}
        self.first_epochs: tuple[Sequence[int], int] | None = None  # a training curriculum (BucketBatchSampler)

    def model_kwargs(self) -> dict:
        return {"vocab": list(self.tokenizer.itos), "sample_rate": self.sample_rate}

    def state_dict(self) -> dict:
        return {"tokenizer": self.tokenizer.state_dict(), "sample_rate": self.sample_rate}

    def load_state_dict(self, state: dict) -> None:
        # older checkpoints stored only the characters
        self.tokenizer = CharTokenizer.from_state(state["tokenizer"], specials=CTC_SPECIALS, normalize=CTC_NORMALIZE)
        self.sample_rate = int(state.get("sample_rate", self.sample_rate))

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        ds = self.datasets[split]
        cap = None if self.max_batch_seconds is None else int(self.max_batch_seconds * self.sample_rate)
        sampler = BucketBatchSampler(ds.lengths, batch_size=self.batch_size, max_batch_samples=cap,
                                     shuffle=train, seed=self.seed, first_epochs=self.first_epochs if train else None)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)
