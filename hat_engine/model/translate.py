"""English text in, German text out, with any SubTransformer runner (the static `Transformer` or an ONNX Runtime
translator): the one text path of the product, for serving, `hat translate` and every BLEU score.

Texts are split into sentences (and overlong sentences into chunks that fit the model's positions), translated
in length-sorted batches with beam search (greedy for beam 1), and joined again, so a paragraph comes back whole
and no input is silently cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hat_engine.data.tokenizer import Tokenizer
from hat_engine.model.decoding import beam_search_nbest, greedy_search

MAX_SOURCE_TOKENS = 200  # the corpus' length filter: longer sentences are translated in chunks
BATCH_SENTENCES = 16
# A hypothesis never repeats a token n-gram of this size (decoding.py): chosen on the modern valid set, where it
# ended the one-decoder-layer SubTransformers' repetition loops (docs/training.md, "Repetition loops").
NO_REPEAT_NGRAM = 4
# Sentence ends (kept with the sentence) and line breaks (kept as separators).
_SPLIT = re.compile(r"(\s*\n\s*|(?<=[.!?])\s+)")


@dataclass(frozen=True)
class Translation:
    text: str
    tokens: int  # target tokens generated (the sum over the text's sentences)
    alternatives: tuple[str, ...] = ()  # other translations, distinct, best first (when asked for)


def split_sentences(text: str) -> tuple[list[str], list[str]]:
    """(sentences, separators) with len(separators) == len(sentences) - 1; line breaks survive, other runs of
    whitespace between sentences become one space."""
    parts = _SPLIT.split(text.strip())
    sentences, separators = parts[0::2], parts[1::2]
    separators = ["\n" * max(s.count("\n"), 1) if "\n" in s else " " for s in separators]
    return sentences, separators


def translate_texts(
    model,
    tokenizer: Tokenizer,
    texts: list[str],
    beam: int = 4,
    alternatives: int = 0,
    no_repeat_ngram: int = NO_REPEAT_NGRAM,
) -> list[Translation]:
    """English texts -> German, sentence by sentence; empty or blank texts come back empty without decoding.

    With `alternatives` > 0, each text also gets up to that many other translations, distinct from the best and
    from each other: alternative j takes every sentence's j-th best hypothesis (its best where it has fewer).
    The beam then widens to 2 * (alternatives + 1), since hypotheses that differ in their tokens can still
    decode to the same text. `no_repeat_ngram` (0: off) bans repeating a token n-gram within a sentence."""
    max_tokens = min(MAX_SOURCE_TOKENS, model.model_config.max_positions - 1)
    pieces: list[list[int]] = []  # token ids (with EOS) of each chunk, over all texts
    layout: list[tuple[list[list[int]], list[str]]] = []  # per text: chunk indices per sentence, separators
    for text in texts:
        sentences, separators = split_sentences(text) if text.strip() else ([], [])
        chunks_of = []
        for ids in tokenizer.encode(sentences) if sentences else []:
            chunks = [ids[i : i + max_tokens] for i in range(0, len(ids), max_tokens)] or [[]]
            chunks_of.append(list(range(len(pieces), len(pieces) + len(chunks))))
            pieces.extend(chunk + [tokenizer.eos_id] for chunk in chunks)
        layout.append((chunks_of, separators))
    width = max(beam, 2 * (alternatives + 1)) if alternatives > 0 else beam
    nbest = _decode(model, pieces, tokenizer.pad_id, width, no_repeat_ngram)
    texts_of = [[tokenizer.decode(hyp) for hyp in hyps] for hyps in nbest]  # per chunk, best first

    def join(chunks_of: list[list[int]], separators: list[str], rank: int) -> str:
        sentences = [" ".join(texts_of[i][min(rank, len(texts_of[i]) - 1)] for i in idx).strip() for idx in chunks_of]
        text = sentences[0] if sentences else ""
        for sep, sentence in zip(separators, sentences[1:], strict=True):
            text += sep + sentence
        return text

    out = []
    for chunks_of, separators in layout:
        best = join(chunks_of, separators, 0)
        others: list[str] = []
        for rank in range(1, width if alternatives > 0 else 1):
            candidate = join(chunks_of, separators, rank)
            if len(others) < alternatives and candidate and candidate != best and candidate not in others:
                others.append(candidate)
        tokens = sum(len(nbest[i][0]) + 1 for idx in chunks_of for i in idx)
        out.append(Translation(best, tokens, tuple(others)))
    return out


def _decode(model, pieces: list[list[int]], pad_id: int, beam: int, no_repeat_ngram: int) -> list[list[list[int]]]:
    """Beam search over all chunks, batched by length; per chunk its hypotheses, best first, in input order."""
    hyps: list[list[list[int]]] = [[[]] for _ in pieces]
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
    for start in range(0, len(order), BATCH_SENTENCES):
        rows = order[start : start + BATCH_SENTENCES]
        src = np.full((len(rows), max(len(pieces[i]) for i in rows)), pad_id, dtype=np.int64)
        for r, i in enumerate(rows):
            src[r, : len(pieces[i])] = pieces[i]
        if beam == 1:
            out = [[tokens] for tokens in greedy_search(model, src, no_repeat_ngram=no_repeat_ngram)]
        else:
            nbest = beam_search_nbest(model, src, beam=beam, no_repeat_ngram=no_repeat_ngram)
            out = [[hyp.tokens for hyp in hyps] for hyps in nbest]
        for i, hyp in zip(rows, out, strict=True):
            hyps[i] = hyp
    return hyps
