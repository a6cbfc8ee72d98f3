"""Translate text with a SubTransformer (any runner) and score it with sacrebleu (BLEU + chrF, corpus level)."""

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import sacrebleu

from hat_engine.data.batching import read_references, splits_with_role
from hat_engine.data.tokenizer import Tokenizer
from hat_engine.model.translate import NO_REPEAT_NGRAM, translate_texts

LOOPS_HEAD = 200  # loops are also counted among a set's first 200 outputs (the supernet issue's bar)
GROUP_LINES = 256  # lines handed to the text path at once: its length sorting spans a group; progress per group


def translate(
    model,
    tokenizer: Tokenizer,
    lines: list[str],
    beam: int = 4,
    on_batch: Callable[[int], None] = lambda _: None,
    no_repeat_ngram: int = NO_REPEAT_NGRAM,
) -> list[str]:
    """English lines -> German lines, through the serving text path (`model.translate.translate_texts`), so a
    score measures what is served (`no_repeat_ngram` as served unless given); the output keeps the input
    order."""
    out: list[str] = []
    for start in range(0, len(lines), GROUP_LINES):
        group = list(lines[start : start + GROUP_LINES])
        out += [t.text for t in translate_texts(model, tokenizer, group, beam=beam, no_repeat_ngram=no_repeat_ngram)]
        on_batch(len(group))
    return out


def repeats_a_trigram(text: str, times: int = 3) -> bool:
    """A repetition loop: some word 3-gram occurs `times` or more times in one output."""
    words = text.split()
    counts = Counter(zip(words, words[1:], words[2:], strict=False))
    return bool(counts) and max(counts.values()) >= times


def score(hypotheses: list[str], references: list[list[str]]) -> dict:
    """Corpus BLEU and chrF against one or more reference streams, with sacrebleu's signatures."""
    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    b, c = bleu.corpus_score(hypotheses, references), chrf.corpus_score(hypotheses, references)
    return {
        "bleu": round(b.score, 2),
        "chrf": round(c.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def test_sets(data_dir: Path, role: str = "test") -> dict[str, tuple[list[str], list[list[str]]]]:
    """Every test (or valid) split of a built corpus: (sources, reference streams). Extra references (`de2`)
    are used."""
    return {name: read_references(data_dir, name) for name in splits_with_role(data_dir, role)}


def evaluate(
    model,
    tokenizer: Tokenizer,
    data_dir: Path,
    beam: int = 4,
    limit: int | None = None,
    on_batch: Callable[[int], None] = lambda _: None,
    role: str = "test",
    with_outputs: bool = False,
    no_repeat_ngram: int = NO_REPEAT_NGRAM,
) -> dict[str, dict]:
    """BLEU/chrF and the count of outputs caught in a repetition loop on each test set (or valid set: `role`),
    in all and among the first LOOPS_HEAD, the first `limit` sentences when given; `with_outputs` adds the
    translations themselves."""
    results = {}
    for name, (src, refs) in test_sets(data_dir, role).items():
        src, refs = src[:limit], [r[:limit] for r in refs]
        hyps = translate(model, tokenizer, src, beam=beam, on_batch=on_batch, no_repeat_ngram=no_repeat_ngram)
        looping = [repeats_a_trigram(h) for h in hyps]
        results[name] = {
            **score(hyps, refs),
            "sentences": len(src),
            "references": len(refs),
            "loops": sum(looping),
            f"loops_first_{LOOPS_HEAD}": sum(looping[:LOOPS_HEAD]),
        }
        if with_outputs:
            results[name]["outputs"] = hyps
    return results
