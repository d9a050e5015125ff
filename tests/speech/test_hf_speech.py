"""speech/hf_asr and speech/hf_commands: Hugging Face audio datasets on disk through the recipe configs, audio
decoded with soundfile (not datasets' torchcodec decoder)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose_cfg, train_cfg
from hydra.utils import instantiate

from core.train.errors import InputError

pytest.importorskip("datasets")
from hf_fabricate import commands, dataset, pcm16, save, utterances  # noqa: E402

TEXTS = ["hello world", "it's a test", "one two three", "good morning", "the end", "speech"]
TINY_MODEL = ["model.dim=32", "model.depth=1", "model.num_heads=2", "model.subsample_channels=8"]
NAMES = ["yes", "no", "_silence_"]


def _data(overrides, out_dir):
    dm = instantiate(compose_cfg(overrides, out_dir).data)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("how", ["disk", "parquet"])
def test_asr_audio_bytes_decode_to_the_wav_samples(how, tmp_path, out_dir):
    train, waves = utterances(TEXTS)
    test, test_waves = utterances(TEXTS[:3], seed=10)
    root = save({"train": train, "test": test}, tmp_path / "a", how)
    dm = _data(["experiment=speech/hf_asr", f"data.path={root}", "data.val_fraction=0.34", "data.num_workers=0",
                f"data.cache_dir={tmp_path / 'cache'}"], out_dir)
    dm.setup("test")  # as Lightning does: fit builds train and val, test the test split
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 4, "val": 2, "test": 3}
    wave, ids, text = dm.datasets["test"][1]
    assert text == TEXTS[1] and dm.tokenizer.decode(ids.tolist()) == TEXTS[1]
    np.testing.assert_array_equal(wave.numpy(), test_waves[1])  # soundfile's samples of the stored WAV
    assert dm.datasets["test"].lengths == [len(w) for w in test_waves]  # read from the WAV headers
    batch = next(iter(dm.test_dataloader()))
    assert batch[0].shape[0] == 3 and batch[1].tolist() == sorted(len(w) for w in test_waves)


def test_asr_sample_arrays_at_their_rate_are_resampled(tmp_path, out_dir):
    waves = [pcm16(800 + 80 * i, i) for i in range(4)]
    ds = dataset({"samples": [w.tolist() for w in waves], "rate": [8000] * 4, "sentence": TEXTS[:4],
                  "secs": [len(w) / 8000 for w in waves]})
    root = save({"train": ds, "validation": ds}, tmp_path / "arr")
    over = ["experiment=speech/hf_asr", f"data.path={root}", "data.columns.audio=samples",
            "data.columns.transcript=sentence", "data.num_workers=0"]
    dm = _data([*over, "data.columns.sampling_rate=rate"], out_dir)
    wave, _, text = dm.datasets["val"][2]
    assert text == TEXTS[2] and len(wave) == 2 * len(waves[2])  # 8 kHz -> the model's 16 kHz
    dm = _data([*over, "data.audio_rate=16000", "data.columns.duration=secs"], out_dir)
    np.testing.assert_array_equal(dm.datasets["val"][2][0].numpy(), waves[2])  # a fixed rate: samples as stored
    assert dm.datasets["val"].lengths[2] == 2 * len(waves[2])  # from the duration column (8 kHz seconds)
    with pytest.raises(InputError, match=r"holds sample arrays without a rate; set data.columns.sampling_rate"):
        _data(over, out_dir)


def test_asr_recipe_trains_two_steps(tmp_path, out_dir):
    train, _ = utterances(TEXTS)
    root = save({"train": train, "validation": train.select(range(2))}, tmp_path / "a")
    rec = train_cfg(["experiment=speech/hf_asr", f"data.path={root}", "data.num_workers=0", "data.batch_size=3",
                     "trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "threads=1",
                     *TINY_MODEL], out_dir)
    assert rec["task"] == "speech/ctc" and 0.0 <= rec["test/wer"]


def test_commands_classlabel_and_clips(tmp_path, out_dir):
    train, _ = commands(9, NAMES)
    val, val_waves = commands(3, NAMES, seed=50)
    root = save({"train": train, "validation": val}, tmp_path / "c")
    over = ["experiment=speech/hf_commands", f"data.path={root}", "data.num_workers=0", "data.batch_size=3"]
    dm = _data(over, out_dir)
    assert dm.classes == NAMES and dm.model_kwargs()["num_classes"] == 3
    assert (len(dm.sets["train"]), len(dm.sets["val"]), len(dm.sets["test"])) == (9, 3, 3)
    clip, label = dm.sets["val"][1]
    assert int(label) == 1 and clip.dtype == torch.int16
    stored = torch.from_numpy(val_waves[1])  # the WAV's samples, scaled to int16 as the command sets store clips
    torch.testing.assert_close(clip, (stored * 32767).to(torch.int16), rtol=0, atol=0)
    rec = train_cfg([*over, "trainer.fast_dev_run=true", "threads=1", "model.dim=32", "model.depth=1",
                     "model.num_heads=2", "model.subsample_channels=8"], out_dir)
    assert rec["task"] == "speech/commands" and 0.0 <= rec["test/acc"] <= 1.0
    state = torch.load(out_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["HFCommandsDataModule"]["classes"] == NAMES
