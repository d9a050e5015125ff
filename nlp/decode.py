"""Batched greedy and beam-search decoding over any next-token model.

Both take ``step(prefix (R, t) long) -> log_probs (R, V)``: the log-probabilities of the next token
after each row's prefix (rows of one source sentence are contiguous; beam search asks for ``B * K``
rows, ordered ``b * K + k``). Sequences start with ``bos``; generated tokens exclude it.

Beam search ranks finished hypotheses by ``score / length ** length_penalty`` (length counts the
generated tokens including ``</s>``; ``length_penalty = 0`` is the raw log-probability). A finished
beam keeps its slot and competes with the active ones at every step (its only continuation is
``<pad>`` at log-probability 0), and the search stops when every beam has finished or after
``max_len`` tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["beam_search", "greedy_search"]

Step = Callable[[Tensor], Tensor]


@torch.no_grad()
def greedy_search(step: Step, batch_size: int, *, max_len: int, bos: int, eos: int, pad: int,
                  device: torch.device | str = "cpu") -> Tensor:
    """Most probable next token at every step: ``(B, L)`` generated ids, ``pad`` after ``</s>``."""
    seq = torch.full((batch_size, 1), bos, dtype=torch.long, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    for _ in range(max_len):
        nxt = step(seq).argmax(dim=-1)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        done |= nxt == eos
        if bool(done.all()):
            break
    return seq[:, 1:]


def _norm(score: Tensor, length: Tensor, alpha: float) -> Tensor:
    return score / length.clamp_min(1).to(score.dtype) ** alpha


@torch.no_grad()
def beam_search(step: Step, batch_size: int, *, beam_size: int, max_len: int, bos: int, eos: int, pad: int,
                length_penalty: float = 1.0, device: torch.device | str = "cpu",
                reorder: Callable[[Tensor], None] | None = None) -> tuple[Tensor, Tensor]:
    """Best hypothesis per batch item: ids ``(B, L)`` (``pad`` after ``</s>``) and normalised scores ``(B,)``.

    ``reorder(rows)`` (optional) is called whenever the rows are re-selected, so a stateful ``step``
    (a decoder cache) can follow its hypotheses.
    """
    b, k = batch_size, beam_size
    seq = torch.full((b * k, 1), bos, dtype=torch.long, device=device)
    score = torch.full((b, k), float("-inf"), device=device)
    score[:, 0] = 0.0  # only the first beam is live at the start (no duplicate hypotheses)
    length = torch.zeros(b, k, dtype=torch.long, device=device)
    done = torch.zeros(b, k, dtype=torch.bool, device=device)
    for t in range(max_len):
        logp = step(seq).float().view(b, k, -1)  # (B, K, V)
        v = logp.shape[-1]
        frozen = torch.full_like(logp, float("-inf"))
        frozen[..., pad] = 0.0  # a finished beam continues with <pad> only, at no cost
        logp = torch.where(done[..., None], frozen, logp)
        cand = score[..., None] + logp  # (B, K, V)
        cand_len = torch.where(done, length, length + 1)[..., None].expand(-1, -1, v)
        rank = _norm(cand, cand_len, length_penalty).view(b, k * v)
        rank = torch.where(torch.isnan(rank), torch.full_like(rank, float("-inf")), rank)
        top = rank.topk(k, dim=-1).indices  # (B, K)
        src_beam, tok = top // v, top % v
        score = cand.view(b, k * v).gather(1, top)
        length = cand_len.reshape(b, k * v).gather(1, top)
        was_done = done.gather(1, src_beam)
        done = was_done | (tok == eos)
        rows = (src_beam + torch.arange(b, device=device)[:, None] * k).view(-1)
        seq = torch.cat([seq[rows], tok.view(-1, 1)], dim=1)
        if bool(done.all()):
            break
        if reorder is not None:
            reorder(rows)
    final = _norm(score, length, length_penalty)
    final = torch.where(torch.isnan(final), torch.full_like(final, float("-inf")), final)
    best = final.argmax(dim=-1)  # (B,)
    out = seq.view(b, k, -1)[torch.arange(b, device=device), best, 1:]
    return out, final.gather(1, best[:, None])[:, 0]
