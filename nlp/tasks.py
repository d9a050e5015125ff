"""Lightning task for translation (text classification is :class:`core.train.tasks.ClassificationTask`).

:class:`TranslationTask` trains with teacher forcing and label smoothing and evaluates by decoding:
validation decodes greedily (a ``val_decode_size`` subset, to keep epochs short), test decodes with
both greedy search and beam search. Metrics: ``{stage}/bleu`` and ``{stage}/chrf`` from sacrebleu,
``{stage}/exact_match`` (a torchmetrics ``MeanMetric`` of per-sentence matches); at test time the
beam results carry the plain names and the greedy ones the ``greedy_`` prefix
(``test/greedy_bleu``...). After testing, cross-attention alignment maps of a few test sentences are
written as PNGs under ``<run dir>/alignments``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sacrebleu
import torch
import torch.nn.functional as F
import torch.distributed as dist
import torchmetrics
from torch import Tensor, nn

from core.train.tasks import BaseTask
from nlp.models import translate
from nlp.tokenizers import PAD

__all__ = ["TranslationTask"]


def _gather_strings(items: list[str]) -> list[str]:
    """All ranks' strings (DDP), in rank order; the list itself on one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items
    parts: list[list[str]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(parts, items)
    return [s for p in parts for s in p]


class TranslationTask(BaseTask):
    """Seq2seq training and evaluation.

    Args:
        model: a :class:`nlp.models.Seq2SeqTransformer`.
        label_smoothing: for the training cross-entropy.
        beam_size, length_penalty: test-time beam search.
        max_len: longest generated output (tokens; ``None`` = the model's ``max_len``).
        val_decode_size: validation sentences decoded per epoch (``None`` = all).
        num_alignment_plots: test sentences whose cross-attention maps are saved as PNG.
        bleu_tokenize: sacrebleu's BLEU tokenizer (``13a`` for text; ``char`` when outputs are single
            words, e.g. German number compounds, where word 4-grams do not exist and word BLEU is 0).
        **kw: optimizer, scheduler, weight_decay (see :class:`core.train.tasks.BaseTask`).
    """

    def __init__(self, model: nn.Module, *, label_smoothing: float = 0.1, beam_size: int = 4,
                 length_penalty: float = 1.0, max_len: int | None = None, val_decode_size: int | None = 256,
                 num_alignment_plots: int = 3, bleu_tokenize: str = "13a", **kw: Any) -> None:
        super().__init__(model, **kw)
        self.bleu_tokenize = bleu_tokenize
        self.label_smoothing, self.beam_size, self.length_penalty = label_smoothing, beam_size, length_penalty
        self.max_len, self.val_decode_size, self.num_alignment_plots = max_len, val_decode_size, num_alignment_plots
        self.exact = nn.ModuleDict({k: torchmetrics.MeanMetric() for k in ("val", "test", "test_greedy")})
        self._texts: dict[str, tuple[list[str], list[str]]] = {}
        self._decoded = 0

    def forward(self, src: Tensor, src_mask: Tensor | None, tgt_in: Tensor) -> Tensor:
        return self.model(src, src_mask, tgt_in)

    @property
    def tokenizer(self):
        return self.trainer.datamodule.tokenizer

    def _decode(self, keys: tuple[str, ...], src: Tensor, src_mask: Tensor, refs: list[str], beam_size: int) -> None:
        """Decode once and score the hypotheses under every name in ``keys``."""
        ids = translate(self.model, src, src_mask, beam_size=beam_size, length_penalty=self.length_penalty,
                        max_len=self.max_len)
        hyps = [self.tokenizer.decode(row.tolist()) for row in ids]
        for key in keys:
            self.exact[key].update(torch.tensor([float(h == r) for h, r in zip(hyps, refs)], device=src.device))
            h, r = self._texts.setdefault(key, ([], []))
            h += hyps
            r += refs

    @torch.no_grad()
    def attention_example(self, batch: Any, datamodule: Any = None) -> dict:
        """Cross-attention of the last decoder layer for the first test sentence (core.report.gallery)."""
        from nlp.plots import cross_attention, pieces

        src, src_mask, tgt, _ = batch
        self.eval()
        n_src = int((~src_mask[0]).sum()) if src_mask is not None else src.shape[1]
        n_tgt = int((tgt[0] != PAD).sum()) - 1
        attn = cross_attention(self.model, src[:1, :n_src], tgt[:1, :n_tgt])[0]  # (T, S)
        tok = datamodule.tokenizer
        return {"kind": "tokens", "attn": attn.numpy(), "labels": pieces(tok, tgt[0, :n_tgt].tolist()),
                "xlabels": pieces(tok, src[0, :n_src].tolist()), "title": "cross-attention (target x source)"}

    def shared_step(self, batch: Any, stage: str) -> Tensor:
        src, src_mask, tgt, refs = batch
        logits = self(src, src_mask, tgt[:, :-1])  # (B, T-1, V): teacher forcing
        smoothing = self.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits.float().transpose(1, 2), tgt[:, 1:], ignore_index=PAD,
                               label_smoothing=smoothing)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=on_step, on_step=on_step, on_epoch=True, batch_size=len(src))
        if stage == "train":
            self.count(len(src))
        elif stage == "val":
            limit = self.val_decode_size
            if limit is None or self._decoded < limit:
                n = len(src) if limit is None else min(len(src), limit - self._decoded)
                self._decode(("val",), src[:n], src_mask[:n], refs[:n], beam_size=1)
                self._decoded += n
        elif self.beam_size == 1:  # a beam of one is greedy search: decode once, report both names
            self._decode(("test_greedy", "test"), src, src_mask, refs, beam_size=1)
        else:
            self._decode(("test_greedy",), src, src_mask, refs, beam_size=1)
            self._decode(("test",), src, src_mask, refs, beam_size=self.beam_size)
        return loss

    def subset_step(self, batch: Any, subset: str) -> None:
        """A typed variant of the test sources, decoded greedily."""
        src, src_mask, _, refs = batch
        key = f"test_{subset}"
        if key not in self.exact:
            self.exact[key] = torchmetrics.MeanMetric().to(self.device)
        self._decode((key,), src, src_mask, refs, beam_size=1)

    def _log_corpus(self, key: str, prefix: str, suffix: str = "") -> None:
        hyps, refs = self._texts.pop(key, ([], []))
        hyps, refs = _gather_strings(hyps), _gather_strings(refs)
        if not hyps:
            return
        bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize=self.bleu_tokenize).score
        chrf = sacrebleu.corpus_chrf(hyps, [refs]).score
        self.log(f"{prefix}bleu{suffix}", bleu, sync_dist=False, rank_zero_only=False)
        self.log(f"{prefix}chrf{suffix}", chrf, sync_dist=False, rank_zero_only=False)
        self.log(f"{prefix}exact_match{suffix}", self.exact[key], metric_attribute=f"exact.{key}")

    def on_validation_epoch_start(self) -> None:
        self._decoded = 0
        self._texts.pop("val", None)

    def on_validation_epoch_end(self) -> None:
        self._log_corpus("val", "val/")

    def on_test_epoch_end(self) -> None:
        self._log_corpus("test", "test/")
        self._log_corpus("test_greedy", "test/greedy_")
        for subset in getattr(self.trainer.datamodule, "test_subsets", []):
            self._log_corpus(f"test_{subset}", "test/", f"_{subset}")

    def on_test_end(self) -> None:
        if self.num_alignment_plots <= 0 or not self.trainer.is_global_zero:
            return
        from nlp.plots import save_alignments

        dm = self.trainer.datamodule
        items = dm.items.get("test", [])[: self.num_alignment_plots]
        if items:
            out = Path(self.trainer.default_root_dir) / "alignments"
            save_alignments(self.model, dm.tokenizer, [dm.tokenizer.decode(s.tolist()) for s, _, _ in items],
                            dm.src_encoder(), out, max_len=self.max_len)
