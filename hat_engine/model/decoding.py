"""Greedy and beam search on a static Transformer, with fairseq's SequenceGenerator semantics (simplified).

- The decoder input starts with `bos_id` (fairseq starts with EOS; our vocabulary has a real BOS).
- A sentence of n source tokens (padding excluded) yields at most int(max_len_a * n + max_len_b) tokens,
  capped by max_positions - 1; at that length EOS is forced. Lengths are per sentence, so a sentence decodes
  alike alone or in a padded batch.
- Beam search keeps `beam` live hypotheses per sentence. A hypothesis ends when EOS ranks among the top `beam`
  candidates; its score is its log-probability / (generated length incl. EOS) ** length_penalty. A sentence
  is done once `beam` hypotheses have ended; the best-scoring one is returned (`beam_search_nbest`: all of
  them, best first, as n-best lists).
- PAD and BOS are never generated. Results exclude BOS and EOS.
- `min_len` bans EOS before that many tokens (a fixed-length workload for latency measurement).
- `use_cache=False` recomputes the whole decoder prefix each step: the reference path the tests compare with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from hat_engine.model.transformer import Cache, EncoderOut, Transformer, reorder_cache


@contextlib.contextmanager
def _eval_mode(model: Transformer) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class Hypothesis(NamedTuple):
    """One finished beam hypothesis: its length-normalised log-probability and its tokens (no BOS/EOS)."""

    score: float
    tokens: list[int]


class _Stepper:
    """Next-token log-probabilities for the prefix `tokens[:, : step + 1]`, with or without the KV cache."""

    def __init__(self, model: Transformer, encoder_out: EncoderOut, use_cache: bool):
        self.model, self.encoder_out, self.use_cache = model, encoder_out, use_cache
        self.cache: Cache = {}
        cfg = model.model_config
        self.banned = [cfg.pad_id, cfg.bos_id]

    def __call__(self, tokens: Tensor, step: int) -> Tensor:
        if self.use_cache:
            logits, self.cache = self.model.decode_step(tokens[:, step : step + 1], self.encoder_out, self.cache, step)
        else:
            logits = self.model.decode(tokens[:, : step + 1], self.encoder_out)[:, -1]  # (N, V)
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        lprobs = F.log_softmax(logits, dim=-1)  # (N, V)
        lprobs[:, self.banned] = -torch.inf
        return lprobs

    def reorder(self, new_order: Tensor) -> None:
        # Rows only move between beams of one sentence, which share cross-attention K/V: skip copying them.
        if self.use_cache:
            self.cache = reorder_cache(self.cache, new_order, include_cross=False)


def _max_lengths(model: Transformer, src_tokens: Tensor, max_len_a: float, max_len_b: int) -> list[int]:
    cfg = model.model_config
    lengths = src_tokens.ne(cfg.pad_id).sum(dim=1).tolist()
    return [max(1, min(int(max_len_a * n + max_len_b), cfg.max_positions - 1)) for n in lengths]


def _force_eos(lprobs: Tensor, rows: Tensor, eos_id: int) -> Tensor:
    """Rows where `rows` is True may only produce EOS (log-prob 0)."""
    only_eos = torch.full_like(lprobs[0], -torch.inf)
    only_eos[eos_id] = 0.0
    return torch.where(rows[:, None], only_eos, lprobs)


def _ban_eos(lprobs: Tensor, ban: bool, eos_id: int) -> Tensor:
    """Before `min_len` tokens, EOS is not allowed (the latency workload decodes a fixed number of steps)."""
    if ban:
        lprobs[:, eos_id] = -torch.inf
    return lprobs


def _until_eos(seq: list[int], eos_id: int) -> list[int]:
    return seq[: seq.index(eos_id)] if eos_id in seq else seq


@torch.inference_mode()
def greedy_search(
    model: Transformer,
    src_tokens: Tensor,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    use_cache: bool = True,
    min_len: int = 0,
) -> list[list[int]]:
    """Arg-max decoding of src_tokens (B, S) -> one token list per sentence."""
    cfg = model.model_config
    with _eval_mode(model):
        bsz = src_tokens.size(0)
        max_lens = _max_lengths(model, src_tokens, max_len_a, max_len_b)
        max_len = max(max_lens)
        limit = torch.tensor(max_lens, device=src_tokens.device)  # (B,)
        tokens = torch.full((bsz, max_len + 2), cfg.pad_id, dtype=torch.long, device=src_tokens.device)
        tokens[:, 0] = cfg.bos_id
        finished = torch.zeros(bsz, dtype=torch.bool, device=src_tokens.device)
        stepper = _Stepper(model, model.encode(src_tokens), use_cache)
        for step in range(max_len + 1):
            lprobs = _force_eos(_ban_eos(stepper(tokens, step), step < min_len, cfg.eos_id), limit <= step, cfg.eos_id)
            next_tokens = lprobs.argmax(dim=-1)  # (B,)
            tokens[:, step + 1] = next_tokens
            finished |= next_tokens.eq(cfg.eos_id)
            if bool(finished.all()):
                break
        return [_until_eos(row, cfg.eos_id) for row in tokens[:, 1:].tolist()]


def beam_search(
    model: Transformer,
    src_tokens: Tensor,
    beam: int = 4,
    length_penalty: float = 1.0,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    use_cache: bool = True,
    min_len: int = 0,
) -> list[list[int]]:
    """Beam search over src_tokens (B, S) -> the best hypothesis' tokens per sentence."""
    nbest = beam_search_nbest(model, src_tokens, beam, length_penalty, max_len_a, max_len_b, use_cache, min_len)
    return [hyps[0].tokens for hyps in nbest]


@torch.inference_mode()
def beam_search_nbest(
    model: Transformer,
    src_tokens: Tensor,
    beam: int = 4,
    length_penalty: float = 1.0,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    use_cache: bool = True,
    min_len: int = 0,
) -> list[list[Hypothesis]]:
    """Beam search over src_tokens (B, S), all B sentences x `beam` hypotheses in one batch of B * beam rows.
    Returns, per sentence, the (at most `beam`) finished hypotheses, best first; never an empty list."""
    if beam < 1:
        raise ValueError(f"beam={beam} must be >= 1")
    cfg, device = model.model_config, src_tokens.device
    with _eval_mode(model):
        bsz, k = src_tokens.size(0), beam
        max_lens = _max_lengths(model, src_tokens, max_len_a, max_len_b)
        max_len = max(max_lens)
        limit = torch.tensor(max_lens, device=device).repeat_interleave(k)  # (B*K,)
        encoder_out = model.encode(src_tokens).index_select(torch.arange(bsz, device=device).repeat_interleave(k))
        stepper = _Stepper(model, encoder_out, use_cache)
        tokens = torch.full((bsz * k, max_len + 2), cfg.pad_id, dtype=torch.long, device=device)
        tokens[:, 0] = cfg.bos_id
        scores = torch.zeros(bsz * k, device=device)  # (B*K,) cumulative log-prob
        beam_offsets = (torch.arange(bsz, device=device) * k)[:, None]  # (B, 1)
        cand_offsets = torch.arange(2 * k, device=device)  # (2K,)
        finalized: list[list[Hypothesis]] = [[] for _ in range(bsz)]
        done = [False] * bsz

        for step in range(max_len + 1):
            lprobs = _ban_eos(stepper(tokens, step), step < min_len, cfg.eos_id)  # (B*K, V)
            lprobs = _force_eos(lprobs, limit <= step, cfg.eos_id)
            vocab = lprobs.size(1)
            if step == 0:
                # All beams of a sentence are identical at the start: expand only the first.
                lprobs.view(bsz, k, vocab)[:, 1:] = -torch.inf
            cand = (lprobs + scores.to(lprobs.dtype)[:, None]).view(bsz, k * vocab)  # (B, K*V)
            cand_scores, cand_idx = cand.topk(2 * k, dim=1)  # (B, 2K), best first
            cand_beams, cand_tokens = cand_idx // vocab, cand_idx % vocab
            eos_mask = cand_tokens.eq(cfg.eos_id) & cand_scores.ne(-torch.inf)  # (B, 2K)

            # Hypotheses ending now: EOS among the top K candidates.
            ended = eos_mask[:, :k].nonzero().tolist()
            if ended:
                ended_scores, ended_beams = cand_scores.tolist(), cand_beams.tolist()
                for b, j in ended:
                    if done[b]:
                        continue
                    row = b * k + ended_beams[b][j]
                    score = ended_scores[b][j] / (step + 1) ** length_penalty
                    finalized[b].append(Hypothesis(score, tokens[row, 1 : step + 1].tolist()))
                    done[b] = len(finalized[b]) >= k
            if all(done):
                break

            # Live hypotheses: the first K non-EOS candidates, in score order.
            _, active = (eos_mask.long() * (2 * k) + cand_offsets).topk(k, dim=1, largest=False)  # (B, K)
            new_order = (cand_beams.gather(1, active) + beam_offsets).view(-1)  # (B*K,)
            tokens = tokens.index_select(0, new_order)
            tokens[:, step + 1] = cand_tokens.gather(1, active).view(-1)
            scores = cand_scores.gather(1, active).view(-1)
            stepper.reorder(new_order)

        results = []
        for b in range(bsz):
            if finalized[b]:  # a stable sort: among equal scores the first to finish ranks first
                results.append(sorted(finalized[b], key=lambda hyp: hyp.score, reverse=True))
            else:  # only reachable when the vocabulary is smaller than 2 * beam
                row = b * k + int(scores[b * k : (b + 1) * k].argmax())
                results.append([Hypothesis(float(scores[row]), _until_eos(tokens[row, 1:].tolist(), cfg.eos_id))])
        return results
