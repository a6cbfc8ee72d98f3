"""Greedy and beam search with fairseq's SequenceGenerator semantics (simplified), in numpy, for every back end.

- The decoder input starts with `bos_id` (fairseq starts with EOS; our vocabulary has a real BOS).
- A sentence of n source tokens (padding excluded) yields at most int(max_len_a * n + max_len_b) tokens,
  capped by max_positions - 1; at that length EOS is forced. Lengths are per sentence, so a sentence decodes
  alike alone or in a padded batch.
- Beam search keeps `beam` live hypotheses per sentence. A hypothesis ends when EOS ranks among the top `beam`
  candidates; its score is its log-probability / (generated length incl. EOS) ** length_penalty. A sentence
  is done once `beam` hypotheses have ended; the best-scoring one is returned (`beam_search_nbest`: all of
  them, best first, as n-best lists). Among equal scores the lower candidate index (beam, then token) ranks first.
- PAD and BOS are never generated. Results exclude BOS and EOS.
- `min_len` bans EOS before that many tokens (a fixed-length workload for latency measurement).
- `no_repeat_ngram` n (0: off) bans a token that would complete a token n-gram the hypothesis already holds
  (fairseq's `--no-repeat-ngram-size`): it stops the repetition loops small decoders fall into. The served text
  path turns it on (`model.translate.NO_REPEAT_NGRAM`, chosen by measurement); the searches default to off.
- `use_cache=False` recomputes the whole decoder prefix each step: the reference path the tests compare with.

The search needs no deep-learning framework: a model offers `model_config` and `stepper(src_tokens, rows,
use_cache)`, a context manager yielding a `Stepper` that turns a token prefix into each row's few likeliest next
tokens (the torch `Transformer`: `model.stepping.TorchStepper`; ONNX Runtime: `runtime.ort_decoding.OrtStepper`,
whose decoder graph ranks them itself). So an ONNX-serving process never imports torch, both back ends run the
very same search, and no step handles a vocabulary-wide array in Python.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

BANNABLE = 3  # PAD, BOS and EOS: tokens a row's candidates may lose to the rules
REPEAT_BANNABLE = 8  # candidates asked beyond those when repeated n-grams are banned too
MAX_BEAM = 32  # a stepper ranks up to 2 * MAX_BEAM + BANNABLE tokens per row (the ONNX decoder graph's TopK)


class Stepper(Protocol):
    """One decoding pass over a batch of N rows (the source rows in `rows` order, set up on entering)."""

    def __call__(self, tokens: np.ndarray, step: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """tokens (N, T) int64, of which [:, : step + 1] is the prefix -> the k likeliest next tokens of each row:
        (log-probabilities (N, k) float32 or float64, ids (N, k) int64), best first, equal values in id order,
        in fresh arrays the search may write to."""
        ...

    def reorder(self, order: np.ndarray) -> None:
        """Rows of the decoder state in `order` (N,); rows only move between beams of one sentence."""
        ...


class Hypothesis(NamedTuple):
    """One finished beam hypothesis: its length-normalised log-probability and its tokens (no BOS/EOS)."""

    score: float
    tokens: list[int]


def as_tokens(src_tokens) -> np.ndarray:
    """Token ids (B, S) from a numpy array, a list of lists or a CPU torch tensor, as a C-contiguous int64 array."""
    src = np.ascontiguousarray(np.asarray(src_tokens, dtype=np.int64))
    if src.ndim != 2:
        raise ValueError(f"source tokens must be 2-D (batch, length), got shape {src.shape}")
    return src


def _max_lengths(model, src: np.ndarray, max_len_a: float, max_len_b: int) -> list[int]:
    cfg = model.model_config
    lengths = (src != cfg.pad_id).sum(axis=1).tolist()
    return [max(1, min(int(max_len_a * n + max_len_b), cfg.max_positions - 1)) for n in lengths]


def candidates_asked(width: int, vocab_size: int, no_repeat_ngram: int = 0) -> int:
    """How many candidates per row a search asks its stepper for when it needs `width` allowed ones (beam search:
    2 x beam; greedy: 1): BANNABLE more, so that at least `width` survive the rules, or the whole vocabulary.
    Banning repeated n-grams asks REPEAT_BANNABLE more, within what the widest beam asks (the decoder graph's
    TopK); a row that loses more than that to the ban keeps fewer candidates."""
    if no_repeat_ngram:
        return min(width + BANNABLE + REPEAT_BANNABLE, 2 * MAX_BEAM + BANNABLE, vocab_size)
    return min(width + BANNABLE, vocab_size)


def check_no_repeat_ngram(n: int) -> int:
    """`n` as a valid `no_repeat_ngram` (0 or at least 2), else a ValueError that says so."""
    if n != 0 and n < 2:
        raise ValueError(f"no_repeat_ngram={n}: 0 (off) or an n-gram size of at least 2")
    return n


def repeated_ngram_bans(tokens: np.ndarray, step: int, ids: np.ndarray, n: int) -> np.ndarray | None:
    """Which candidates `ids` (N, W) would complete a token n-gram the row's generated prefix (tokens[:, 1 : step
    + 1], after BOS) already holds: a boolean mask (N, W), or None when nothing is banned."""
    if n < 2 or step < n:
        return None
    generated = tokens[:, 1 : step + 1]  # (N, L), L = step
    last = step - n + 1  # where the last n - 1 tokens start; the n-grams starting before it are the earlier ones
    seen = generated[:, :last] == generated[:, last : last + 1]  # (N, last): earlier copies of the last n - 1
    for j in range(1, n - 1):
        seen &= generated[:, j : last + j] == generated[:, last + j : last + j + 1]
    rows, starts = np.nonzero(seen)  # few: only where the last n - 1 tokens occurred before
    if rows.size == 0:
        return None
    hits = ids[rows] == generated[rows, starts + n - 1][:, None]  # the token that followed that earlier copy
    banned = np.zeros(ids.shape, dtype=bool)
    np.logical_or.at(banned, rows, hits)
    return banned


def _candidates(stepper, tokens: np.ndarray, step: int, width: int, cfg, min_len: int, limit: np.ndarray,
                first_limit: int, no_repeat_ngram: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Each row's best next tokens (log-probs, ids), best first, under the rules: PAD and BOS are never generated;
    EOS is banned before `min_len` tokens (the latency workload decodes a fixed number of steps); a token that
    would repeat an n-gram is banned (`no_repeat_ngram`); a row at its length limit (`limit`, per row;
    `first_limit` its smallest) may only produce EOS (log-prob 0). A banned token stays in its place at -inf; the
    stepper is asked for `candidates_asked(width, vocab, no_repeat_ngram)`."""
    lprobs, ids = stepper(tokens, step, candidates_asked(width, cfg.vocab_size, no_repeat_ngram))
    banned = ids == cfg.pad_id
    banned |= ids == cfg.bos_id
    if step < min_len:
        banned |= ids == cfg.eos_id
    repeats = repeated_ngram_bans(tokens, step, ids, no_repeat_ngram)
    if repeats is not None:
        banned |= repeats & (ids != cfg.eos_id)
    lprobs[banned] = -np.inf
    if step >= first_limit:
        at_limit = limit <= step
        lprobs[at_limit], ids[at_limit] = -np.inf, cfg.eos_id
        lprobs[at_limit, 0] = 0.0
    return lprobs, ids


def _until_eos(seq: list[int], eos_id: int) -> list[int]:
    return seq[: seq.index(eos_id)] if eos_id in seq else seq


def greedy_search(
    model,
    src_tokens,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    use_cache: bool = True,
    min_len: int = 0,
    no_repeat_ngram: int = 0,
) -> list[list[int]]:
    """Arg-max decoding of src_tokens (B, S) -> one token list per sentence."""
    check_no_repeat_ngram(no_repeat_ngram)
    cfg, src = model.model_config, as_tokens(src_tokens)
    bsz = src.shape[0]
    max_lens = _max_lengths(model, src, max_len_a, max_len_b)
    max_len = max(max_lens)
    limit, first_limit = np.array(max_lens), min(max_lens)  # (B,)
    tokens = np.full((bsz, max_len + 2), cfg.pad_id, dtype=np.int64)
    tokens[:, 0] = cfg.bos_id
    finished = np.zeros(bsz, dtype=bool)
    rows = np.arange(bsz)
    with model.stepper(src, None, use_cache) as stepper:
        for step in range(max_len + 1):
            lprobs, ids = _candidates(stepper, tokens, step, 1, cfg, min_len, limit, first_limit, no_repeat_ngram)
            next_tokens = ids[rows, lprobs.argmax(axis=1)]  # (B,), the first (lowest id) of equal maxima
            tokens[:, step + 1] = next_tokens
            finished |= next_tokens == cfg.eos_id
            if finished.all():
                break
    return [_until_eos(row, cfg.eos_id) for row in tokens[:, 1:].tolist()]


def beam_search(
    model,
    src_tokens,
    beam: int = 4,
    length_penalty: float = 1.0,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    use_cache: bool = True,
    min_len: int = 0,
    no_repeat_ngram: int = 0,
) -> list[list[int]]:
    """Beam search over src_tokens (B, S) -> the best hypothesis' tokens per sentence."""
    nbest = beam_search_nbest(
        model, src_tokens, beam, length_penalty, max_len_a, max_len_b, use_cache, min_len, no_repeat_ngram
    )
    return [hyps[0].tokens for hyps in nbest]


def beam_search_nbest(
    model,
    src_tokens,
    beam: int = 4,
    length_penalty: float = 1.0,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    use_cache: bool = True,
    min_len: int = 0,
    no_repeat_ngram: int = 0,
) -> list[list[Hypothesis]]:
    """Beam search over src_tokens (B, S), all B sentences x `beam` hypotheses in one batch of B * beam rows.
    Returns, per sentence, the (at most `beam`) finished hypotheses, best first; never an empty list."""
    if not 1 <= beam <= MAX_BEAM:
        raise ValueError(f"beam={beam} must lie in 1..{MAX_BEAM}")
    check_no_repeat_ngram(no_repeat_ngram)
    cfg, src = model.model_config, as_tokens(src_tokens)
    bsz, k = src.shape[0], beam
    max_lens = _max_lengths(model, src, max_len_a, max_len_b)
    max_len, first_limit = max(max_lens), min(max_lens)
    limit = np.repeat(np.array(max_lens), k)  # (B*K,)
    tokens = np.full((bsz * k, max_len + 2), cfg.pad_id, dtype=np.int64)
    tokens[:, 0] = cfg.bos_id
    # Each row's cumulative log-probability, negated (an ascending stable sort then ranks best first, equal scores
    # in candidate order), (B*K, 1). All beams of a sentence are identical at the start: only the first expands,
    # the others start at -inf.
    neg_scores = np.full((bsz, k), np.inf, dtype=np.float32)
    neg_scores[:, 0] = 0.0
    neg_scores = neg_scores.reshape(-1, 1)
    width = candidates_asked(2 * k, cfg.vocab_size, no_repeat_ngram)  # per row, from the stepper
    rows = np.arange(bsz)[:, None]  # (B, 1)
    cand_starts, live_starts = rows * (k * width), rows * (2 * k)  # each sentence's first flat index, (B, 1)
    finalized: list[list[Hypothesis]] = [[] for _ in range(bsz)]
    done = [False] * bsz

    with model.stepper(src, np.repeat(np.arange(bsz), k), use_cache) as stepper:
        for step in range(max_len + 1):
            # A row's 2K best tokens hold every candidate of that row among its sentence's 2K best.
            lprobs, ids = _candidates(  # (B*K, W)
                stepper, tokens, step, 2 * k, cfg, min_len, limit, first_limit, no_repeat_ngram
            )
            neg = np.subtract(neg_scores, lprobs).reshape(bsz, k * width)  # beam-major, each beam best first
            # A stable sort keeps equal scores in candidate order (beam, then token id), as if sorted over the
            # whole (K x V) table. Indices into the flat (B * K * W) candidates, best first per sentence:
            picked = np.argsort(neg, axis=1, kind="stable")[:, : 2 * k] + cand_starts  # (B, 2K)
            cand_neg, cand_tokens = neg.ravel().take(picked), ids.ravel().take(picked)
            cand_rows = picked // width  # the row (B*K) each candidate extends
            eos_mask = cand_tokens == cfg.eos_id  # (B, 2K)

            if eos_mask.any():
                eos_mask &= cand_neg != np.inf
                # Hypotheses ending now: EOS among the top K candidates.
                for b, j in zip(*np.nonzero(eos_mask[:, :k]), strict=True):
                    if done[b]:
                        continue
                    row = int(cand_rows[b, j])
                    score = -float(cand_neg[b, j]) / (step + 1) ** length_penalty
                    finalized[b].append(Hypothesis(score, tokens[row, 1 : step + 1].tolist()))
                    done[b] = len(finalized[b]) >= k
                if all(done):
                    break
                # Live hypotheses: the first K non-EOS candidates, in score order.
                live = np.argsort(eos_mask, axis=1, kind="stable")[:, :k] + live_starts  # (B, K)
                new_order, new_tokens = cand_rows.ravel().take(live), cand_tokens.ravel().take(live)
                neg_scores = cand_neg.ravel().take(live).reshape(-1, 1)
            else:  # no candidate ends: the first K live on
                new_order, new_tokens = cand_rows[:, :k], cand_tokens[:, :k]
                neg_scores = cand_neg[:, :k].reshape(-1, 1)
            new_order = new_order.ravel()  # (B*K,)
            tokens = tokens.take(new_order, axis=0)
            tokens[:, step + 1] = new_tokens.ravel()
            stepper.reorder(new_order)

    results = []
    for b in range(bsz):
        if finalized[b]:  # a stable sort: among equal scores the first to finish ranks first
            results.append(sorted(finalized[b], key=lambda hyp: hyp.score, reverse=True))
        else:  # only reachable when the vocabulary is smaller than 2 * beam
            row = b * k + int(neg_scores[b * k : (b + 1) * k, 0].argmin())
            results.append([Hypothesis(-float(neg_scores[row, 0]), _until_eos(tokens[row, 1:].tolist(), cfg.eos_id))])
    return results
