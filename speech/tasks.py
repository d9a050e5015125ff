"""Lightning task for CTC speech recognition: CTC loss, WER/CER with torchmetrics."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.text import CharErrorRate, WordErrorRate

from core.train.tasks import BaseTask
from speech.decode import decode

__all__ = ["CTCTask"]


class CTCTask(BaseTask):
    """CTC training; validation decodes greedily, test with ``beam_size`` (1 = greedy).

    ``lexicon``: the words transcripts may contain; test and ``mas-predict`` then decode with a beam search
    held to them (:mod:`speech.decode`), and the test also reports the free greedy transcript's
    ``test/wer_free`` (what the acoustic model alone spells). A model that taps a middle layer
    (``model.inter_ctc``) adds that layer's CTC loss in training: ``(1 - w) final + w middle``, ``w`` =
    ``inter_ctc_weight``.

    Batches: ``(wave, wave_lens, targets, target_lens, texts)`` (see :mod:`speech.data.batching`). Logs
    ``{stage}/loss``, ``val|test/wer`` and ``val|test/cer``.
    """

    def __init__(self, model: nn.Module, *, beam_size: int = 1, decoder: str = "auto",
                 lexicon: list[str] | None = None, inter_ctc_weight: float = 0.3, **kw) -> None:
        super().__init__(model, **kw)
        if not 0.0 <= inter_ctc_weight < 1.0:
            raise ValueError(f"module.inter_ctc_weight={inter_ctc_weight} must be in [0, 1).")
        self.beam_size, self.decoder, self.inter_ctc_weight = beam_size, decoder, float(inter_ctc_weight)
        self.lexicon = [str(w) for w in lexicon] if lexicon else None
        self.wer_free = WordErrorRate()
        self.wer = nn.ModuleDict({s: WordErrorRate() for s in ("val_", "test_")})
        self.cer = nn.ModuleDict({s: CharErrorRate() for s in ("val_", "test_")})

    def forward(self, wave: Tensor, wave_lens: Tensor) -> tuple[Tensor, Tensor]:
        return self.model(wave, wave_lens)

    def transcribe(self, wave: Tensor, wave_lens: Tensor, beam_size: int = 1) -> list[str]:
        log_probs, lens = self(wave, wave_lens)
        return decode(log_probs, lens, self.model.vocab, beam_size=beam_size, backend=self.decoder,
                      lexicon=self.lexicon)

    def attention_example(self, batch: Any, datamodule: Any = None) -> dict:
        """Last encoder layer's attention over the frames of the first test utterance (core.report.gallery)."""
        from speech.plots import frame_attention

        wave, wave_lens, *_, texts = batch
        attn, _, feats = frame_attention(self.model, wave[0, : int(wave_lens[0])])
        return {"kind": "frames", "attn": attn.numpy(), "spectrogram": feats.T.numpy(), "title": f'"{texts[0]}"'}

    def shared_step(self, batch: Any, stage: str) -> Tensor:
        wave, wave_lens, targets, target_lens, texts = batch
        bs = len(texts)
        if stage == "train" and getattr(self.model, "inter_ctc", 0) and self.inter_ctc_weight > 0:
            log_probs, lens, middle = self.model(wave, wave_lens, intermediate=True)
            final, inter = (self._ctc(lp, lens, targets, target_lens) for lp in (log_probs, middle))
            # train/loss mixes the two; train/ctc is the last layer's alone, the one val/loss measures
            self.log("train/ctc", final, on_step=False, on_epoch=True, batch_size=bs)
            self.log("train/inter_ctc", inter, on_step=False, on_epoch=True, batch_size=bs)
            loss = (1 - self.inter_ctc_weight) * final + self.inter_ctc_weight * inter
        else:
            log_probs, lens = self(wave, wave_lens)  # (B, N, V) float32
            loss = self._ctc(log_probs, lens, targets, target_lens)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=on_step, on_step=on_step, on_epoch=True, batch_size=bs)
        if stage == "train":
            self.count(bs)
            return loss
        beam = self.beam_size if stage == "test" else 1
        lexicon = self.lexicon if stage == "test" else None
        hyps = decode(log_probs.detach(), lens, self.model.vocab, beam_size=beam, backend=self.decoder,
                      lexicon=lexicon)
        refs = [" ".join(t.split()) for t in self._refs(targets, target_lens)]
        if lexicon:
            self.wer_free(decode(log_probs.detach(), lens, self.model.vocab), refs)
            self.log("test/wer_free", self.wer_free, on_step=False, on_epoch=True, batch_size=bs)
        wer, cer = self.wer[stage + "_"], self.cer[stage + "_"]
        wer(hyps, refs)
        cer(hyps, refs)
        self.log(f"{stage}/wer", wer, prog_bar=True, on_step=False, on_epoch=True, batch_size=bs)
        self.log(f"{stage}/cer", cer, prog_bar=True, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    @staticmethod
    def _ctc(log_probs: Tensor, lens: Tensor, targets: Tensor, target_lens: Tensor) -> Tensor:
        return F.ctc_loss(log_probs.transpose(0, 1), targets, lens, target_lens, blank=0, reduction="mean",
                          zero_infinity=True)

    def _refs(self, targets: Tensor, target_lens: Tensor) -> list[str]:
        """Reference texts as the model's vocabulary spells them (normalised transcripts)."""
        vocab = self.model.vocab
        return ["".join(vocab[i] for i in row[:n].tolist()) for row, n in zip(targets, target_lens.tolist())]
