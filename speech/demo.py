"""``mas-demo`` for speech checkpoints: an uploaded recording (WAV/FLAC, any rate), its transcript or top
commands, and one head of one encoder layer over the subsampled frames, under the log-mel input.

The recording becomes the model's input as ``mas-predict`` makes it (:mod:`speech.predict`: read at the
model's rate, trimmed to its voiced part and levelled; a command clip is then fitted to the training clips'
length). A transcript's map covers the first piece ``mas-predict`` transcribes: the voiced recording with its
long pauses shortened, up to ``chunk_seconds`` (the predictor's chunk).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from core.serve.maps import LayerDemo, attention_layers, head_map
from speech.data.audio import read_audio
from speech.predict import SILENCE_PEAK, segments, trim_and_level

__all__ = ["DEMOS", "Commands", "Transcripts"]


class Transcripts(LayerDemo):
    """A recogniser's demo: the transcript; the map is encoder self-attention over frames."""

    input_kind = "audio"
    outputs = {"text": "transcript"}
    shown = {"text": "text"}

    def __init__(self, *, module: Any, datamodule: Any) -> None:
        self.model, self.datamodule = module.model, datamodule
        self.layers = attention_layers(getattr(self.model, "encoder", None))  # torchaudio's Conformer has none

    def model_wave(self, wave: Tensor, request: dict[str, Any]) -> Tensor:
        """The first piece ``mas-predict`` transcribes: the voiced part, levelled, long pauses shortened, at
        most one predictor chunk long (:func:`speech.predict.segments`)."""
        chunk = float(request.get("chunk_seconds") or 20.0)
        sr = self.model.sample_rate
        return segments(trim_and_level(wave, sr), sr, chunk)[0]

    @torch.no_grad()
    def attention(self, request: dict[str, Any], *, layer: int, head: int) -> dict[str, Any] | None:
        model = self.model
        wave = read_audio(Path(request["input"]), model.sample_rate)
        if not len(wave) or float(wave.abs().max()) < SILENCE_PEAK:
            return None  # silence: mas-predict gives an empty transcript and there is nothing to attend to
        x = self.model_wave(wave, request)
        min_len = max(model.frontend.mel.n_fft, model.sample_rate // 10)  # transcribe_wave's: a few STFT windows
        x = torch.nn.functional.pad(x, (0, max(0, min_len - len(x))))[None]
        x = x.to(next(model.parameters()).device)
        lens = torch.tensor([x.shape[1]], device=x.device)
        attn = head_map(self.layers, layer, head, lambda: model(x, lens))  # (N, N)
        feats, _ = model.features(x, lens)  # (1, T, n_mels)
        return {"kind": "frames", "attn": attn.numpy(), "spectrogram": feats[0].T.float().cpu().numpy(),
                "source": "encoder self-attention over frames"}


class Commands(Transcripts):
    """A spoken-command classifier's demo: top-k commands of one clip."""

    outputs = {"top": "command"}
    shown = {"top": "top"}

    def model_wave(self, wave: Tensor, request: dict[str, Any]) -> Tensor:
        """The clip as ``classify_files`` fits it: voiced part, levelled, loudest window of the training length."""
        from speech.data.commands import fit_clip

        samples = int(round(self.datamodule.clip_seconds * self.model.sample_rate))
        return fit_clip(trim_and_level(wave, self.model.sample_rate), samples)


#: predictor ``_target_`` -> demo (read by :mod:`core.serve.session`)
DEMOS = {"speech.predict.transcribe_files": Transcripts, "speech.predict.classify_files": Commands}
