"""Decoding: the KV-cached path matches full recomputation; beam 1 is greedy; batching changes nothing.

Models run in float64 so that path-dependent rounding cannot flip a near-tie between tokens.
"""

import random

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from hat_engine.config import ModelConfig
from hat_engine.model.decoding import (
    beam_search,
    beam_search_nbest,
    check_no_repeat_ngram,
    greedy_search,
    repeated_ngram_bans,
)
from hat_engine.model.stepping import Cache, TorchStepper, reorder_cache
from hat_engine.model.supernet import SuperTransformer
from hat_engine.model.transformer import EncoderOut, Transformer


def sharpen(supernet: SuperTransformer) -> None:
    """A freshly initialised model repeats one token up to the length limit whatever the source. Larger
    weights, sharper attention and a bias towards EOS make its outputs depend on the source and end at
    varied lengths, so that the comparisons below have something to compare."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in supernet.named_parameters():
            if name.startswith("embed_tokens"):
                continue
            if p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            else:
                gain = 4.0 if ("q_proj" in name or "k_proj" in name) else 2.0
                p.copy_(torch.randn(p.shape, generator=gen) * gain * p.shape[1] ** -0.5)
        supernet.decoder_norm.bias.copy_(0.5 * supernet.embed_tokens.weight[3])  # raises the EOS logit


@pytest.fixture
def models(tiny_supernet) -> list[Transformer]:
    sharpen(tiny_supernet)
    rng = random.Random(7)
    return [tiny_supernet.extract(tiny_supernet.space.sample(rng)).double().eval() for _ in range(4)]


class MarkovModel(nn.Module):
    """A stand-in decoder whose next-token distribution depends only on the last token."""

    def __init__(self, probs: dict[int, dict[int, float]], vocab: int = 8):
        super().__init__()
        self.model_config = ModelConfig(vocab_size=vocab, max_positions=32)
        self.table = torch.full((vocab, vocab), 1e-6, dtype=torch.float64)
        for last, nxt in probs.items():
            for token, p in nxt.items():
                self.table[last, token] = p
        self.table = self.table.log()

    def encode(self, src_tokens: Tensor) -> EncoderOut:
        return EncoderOut((src_tokens[..., None].double(),), src_tokens.ne(0))

    def decode(self, prev_tokens: Tensor, encoder_out: EncoderOut) -> Tensor:
        return self.table[prev_tokens]  # (N, T, V)

    def decode_step(self, tokens: Tensor, encoder_out: EncoderOut, cache: Cache, step: int) -> tuple[Tensor, Cache]:
        return self.table[tokens[:, 0]], cache  # (N, V)

    def stepper(self, src_tokens, rows, use_cache=True) -> TorchStepper:
        return TorchStepper(self, src_tokens, rows, use_cache)


def test_decode_step_matches_teacher_forcing(models, random_batch):
    src, prev = random_batch(3, 6, seed=5), random_batch(3, 5, seed=6)
    prev[:, 0] = 2
    prev[prev.eq(0)] = 7  # no padding in decoder inputs, as during search
    for model in models:
        encoder_out = model.encode(src)
        full = model.decode(prev, encoder_out)  # (B, T, V)
        cache = None
        for step in range(prev.size(1)):
            logits, cache = model.decode_step(prev[:, step : step + 1], encoder_out, cache, step)
            torch.testing.assert_close(logits, full[:, step], rtol=0, atol=1e-10)


def test_reorder_cache_selects_rows(models, random_batch):
    model = models[0]
    src = random_batch(2, 4, seed=8)
    encoder_out = model.encode(src)
    _, cache = model.decode_step(torch.full((2, 1), 2), encoder_out, None, 0)
    order = torch.tensor([1, 1])
    reordered = reorder_cache(cache, order)
    assert set(reordered) == set(cache)
    for key, value in reordered.items():
        assert torch.equal(value[0], cache[key][1])
    kept = reorder_cache(cache, order, include_cross=False)
    assert all(kept[k] is cache[k] for k in cache if k.startswith("cross"))


def test_beam_search_with_cache_equals_without(models, random_batch):
    src = random_batch(3, 6, seed=9)
    lengths = []
    for model in models:
        cached = beam_search(model, src, beam=4, max_len_a=1.0, max_len_b=3, use_cache=True)
        plain = beam_search(model, src, beam=4, max_len_a=1.0, max_len_b=3, use_cache=False)
        assert cached == plain
        lengths += [len(hyp) for hyp in cached]
    assert min(lengths) < max(lengths)  # some hypotheses ended with EOS before the length limit


def test_greedy_with_cache_equals_without(models, random_batch):
    src = random_batch(3, 6, seed=10)
    for model in models:
        assert greedy_search(model, src, use_cache=True) == greedy_search(model, src, use_cache=False)


def test_beam_one_equals_greedy(models, random_batch):
    src = random_batch(4, 6, seed=11)
    for model in models:
        assert beam_search(model, src, beam=1) == greedy_search(model, src)


def test_batched_beam_equals_per_sentence_beam(models, random_batch):
    src = random_batch(3, 7, seed=12)
    for model in models:
        batched = beam_search(model, src, beam=3, length_penalty=0.6)
        for row, hyp in zip(src, batched, strict=True):
            alone = row[row.ne(0)][None, :]  # (1, n) without padding
            assert beam_search(model, alone, beam=3, length_penalty=0.6) == [hyp]


def test_outputs_respect_length_limit_and_specials(models, random_batch):
    src = random_batch(3, 6, seed=13)
    n = src.ne(0).sum(1).tolist()
    for model in models:
        for hyps in (beam_search(model, src, beam=2, max_len_a=0.5, max_len_b=2), greedy_search(model, src, 0.5, 2)):
            for hyp, length in zip(hyps, n, strict=True):
                assert len(hyp) <= int(0.5 * length + 2)
                assert not {0, 2, 3} & set(hyp)  # no PAD, BOS or EOS in results


def test_decoding_restores_training_mode(models, random_batch):
    model = models[0].train()
    greedy_search(model, random_batch(1, 4))
    assert model.training


def test_beam_finds_a_better_hypothesis_than_greedy():
    bos, eos, a, b = 2, 3, 4, 5
    model = MarkovModel({bos: {a: 0.6, b: 0.4}, a: {eos: 0.35, a: 0.33, b: 0.32}, b: {eos: 0.9, a: 0.05, b: 0.05}})
    src = torch.tensor([[6, 7]])
    assert greedy_search(model, src) == [[a]]  # P = 0.6 * 0.35 = 0.21
    assert beam_search(model, src, beam=2) == [[b]]  # P = 0.4 * 0.9 = 0.36
    assert beam_search(model, src, beam=2, use_cache=False) == [[b]]


def test_length_penalty_favours_longer_hypotheses():
    bos, eos, a, b = 2, 3, 4, 5
    # Without a penalty the total log-prob ranks, and [a] (P = 0.25) wins; length**3 favours a longer one.
    model = MarkovModel({bos: {a: 0.5, b: 0.5}, a: {eos: 0.5, a: 0.5}, b: {b: 0.9, eos: 0.1}, 6: {eos: 1.0}})
    src = torch.tensor([[6, 7, 6, 7]])
    short = beam_search(model, src, beam=2, length_penalty=0.0, max_len_a=0, max_len_b=3)
    long = beam_search(model, src, beam=2, length_penalty=3.0, max_len_a=0, max_len_b=3)
    assert short == [[a]]
    assert len(long[0]) > 1


def test_never_ending_model_stops_at_the_length_limit():
    # EOS is the least likely token (below the 1e-6 floor of the rest, so that no tie decides where it ranks)
    model = MarkovModel({2: {4: 1.0, 3: 1e-9}, 4: {4: 1.0, 3: 1e-9}})
    src = torch.tensor([[6, 7, 6, 0], [6, 0, 0, 0]])
    assert greedy_search(model, src, max_len_a=1.0, max_len_b=2) == [[4] * 5, [4] * 3]
    assert beam_search(model, src, beam=3, max_len_a=1.0, max_len_b=2) == [[4] * 5, [4] * 3]


def test_left_and_right_padding_decode_alike(models):
    right = torch.tensor([[5, 6, 7, 8, 9], [9, 10, 11, 0, 0]])
    left = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 9, 10, 11]])
    for model in models:
        assert beam_search(model, right, beam=2) == beam_search(model, left, beam=2)


def test_nbest_is_the_beam_best_first_and_distinct(models, random_batch):
    src = random_batch(3, 6, seed=9)
    for model in models:
        nbest = beam_search_nbest(model, src, beam=4, max_len_a=1.0, max_len_b=3)
        assert [hyps[0].tokens for hyps in nbest] == beam_search(model, src, beam=4, max_len_a=1.0, max_len_b=3)
        for hyps in nbest:
            assert 1 <= len(hyps) <= 4
            assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
            assert len({tuple(h.tokens) for h in hyps}) == len(hyps)  # finished hypotheses never repeat


def test_nbest_ranks_the_markov_models_hypotheses():
    bos, eos, a, b = 2, 3, 4, 5
    model = MarkovModel({bos: {a: 0.6, b: 0.4}, a: {eos: 0.35, a: 0.33, b: 0.32}, b: {eos: 0.9, a: 0.05, b: 0.05}})
    (hyps,) = beam_search_nbest(model, torch.tensor([[6, 7]]), beam=2)
    assert [h.tokens for h in hyps][:2] == [[b], [a]]  # 0.36 before 0.21


def ngrams(tokens: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def test_repeated_ngram_bans_the_tokens_that_followed_the_last_tokens_before():
    # BOS, then 4 5 6 4 5: the bigram (4, 5) was followed by 6, so 6 is banned at n = 3; at n = 2, 5 was followed
    # by 6 and so 6 is banned; nothing else is.
    tokens = np.array([[2, 4, 5, 6, 4, 5, 0, 0]])
    ids = np.array([[6, 4, 5, 7]])
    assert repeated_ngram_bans(tokens, 5, ids, 3).tolist() == [[True, False, False, False]]
    assert repeated_ngram_bans(tokens, 5, ids, 2).tolist() == [[True, False, False, False]]
    assert repeated_ngram_bans(tokens, 5, ids, 4) is None  # (6, 4, 5) is new: nothing banned
    two_rows = np.array([[2, 4, 5, 6, 4, 5, 0, 0], [2, 4, 5, 4, 5, 4, 0, 0]])  # row 2: 4 was followed by 5 twice
    assert repeated_ngram_bans(two_rows, 5, np.array([[6, 4], [4, 5]]), 2).tolist() == [[True, False], [False, True]]
    assert repeated_ngram_bans(tokens, 2, ids, 3) is None  # two tokens hold no trigram yet
    with pytest.raises(ValueError, match="at least 2"):
        check_no_repeat_ngram(1)


def test_no_repeat_ngram_breaks_a_loop_and_never_repeats_an_ngram():
    bos, eos, a, b, c = 2, 3, 4, 5, 6
    # a and b call each other; c is the way out, EOS follows it.
    loop = MarkovModel({bos: {a: 0.9, c: 0.1}, a: {b: 0.9, c: 0.1}, b: {a: 0.9, c: 0.1}, c: {eos: 1.0}})
    src = torch.tensor([[6, 7, 6, 7, 6, 7]])
    assert greedy_search(loop, src, max_len_a=0, max_len_b=12) == [[a, b] * 6]
    for n in (2, 3, 4):
        for out in (
            greedy_search(loop, src, max_len_a=0, max_len_b=12, no_repeat_ngram=n)[0],
            beam_search(loop, src, beam=3, max_len_a=0, max_len_b=12, no_repeat_ngram=n)[0],
        ):
            assert out[-1] == c and len(out) <= n + 2  # the loop ends where it would repeat an n-gram
            assert len(set(ngrams(out, n))) == len(ngrams(out, n))


def test_no_repeat_ngram_holds_for_real_models_with_and_without_cache(models, random_batch):
    src = random_batch(3, 6, seed=21)
    banned_something = False
    for model in models:
        plain = beam_search(model, src, beam=4)
        for n in (2, 3):
            outs = beam_search(model, src, beam=4, no_repeat_ngram=n)
            assert outs == beam_search(model, src, beam=4, no_repeat_ngram=n, use_cache=False)
            for out in outs:
                assert len(set(ngrams(out, n))) == len(ngrams(out, n))
            banned_something |= outs != plain
    assert banned_something  # the random models repeat themselves, so the rule had something to ban
