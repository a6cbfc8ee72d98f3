"""How well the language identifiers tell English from German on this repository's test lines (service/langid.py).

`python bench/language_id.py [--data data/]` prints, per identifier installed (py3langid always; lingua when
`lingua-language-detector` is installed, which the project does not need), the share right on 100 Ding + 100 Bible
test lines per language, on 20 short phrases per language and on the lines' first two words, with load time,
time per text and resident memory. Run each identifier in its own process (`--only NAME`) for a fair memory figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path

SHORT = {
    "en": ["Hello", "Thank you", "Good morning", "Yes", "The house", "Where is the station?", "I am tired.", "Help",
           "Open the door", "See you tomorrow", "What time is it?", "Welcome", "Sign in", "Settings", "Cancel",
           "Save changes", "Goodbye", "Please wait", "Water", "I love you"],
    "de": ["Hallo", "Danke", "Guten Morgen", "Ja", "Das Haus", "Wo ist der Bahnhof?", "Ich bin müde.", "Hilfe",
           "Öffne die Tür", "Bis morgen", "Wie spät ist es?", "Willkommen", "Anmelden", "Einstellungen", "Abbrechen",
           "Änderungen speichern", "Auf Wiedersehen", "Bitte warten", "Wasser", "Ich liebe dich"],
}  # fmt: skip


def test_lines(data: Path, lang: str, per_source: int = 100) -> list[str]:
    out = []
    for name in ("ding_test", "bible_test"):
        lines = [line.strip() for line in (data / f"{name}.{lang}").read_text(encoding="utf-8").splitlines()]
        out += [line for line in lines if line][:per_source]
    return out


def _py3langid() -> Callable[[str], str]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return lambda text: ident.classify(text)[0]


def _lingua() -> Callable[[str], str]:
    from lingua import LanguageDetectorBuilder

    detector = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()

    def detect(text: str) -> str:
        lang = detector.detect_language_of(text)
        return lang.iso_code_639_1.name.lower() if lang else "?"

    return detect


IDENTIFIERS = {"py3langid": _py3langid, "lingua": _lingua}


def measure(name: str, data: Path) -> dict:
    t0 = time.perf_counter()
    detect = IDENTIFIERS[name]()
    result: dict = {"identifier": name, "load_s": round(time.perf_counter() - t0, 2)}
    t1, texts = time.perf_counter(), 0
    for lang in ("en", "de"):
        lines = test_lines(data, lang)
        for label, sample in (("lines", lines), ("short", SHORT[lang]),
                              ("two_words", [" ".join(s.split()[:2]) for s in lines])):  # fmt: skip
            right = sum(detect(s) == lang for s in sample)
            result[f"{lang}_{label}"] = f"{right}/{len(sample)} ({100.0 * right / len(sample):.1f} %)"
            texts += len(sample)
    result["ms_per_text"] = round((time.perf_counter() - t1) * 1000.0 / texts, 3)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--only", choices=sorted(IDENTIFIERS))
    args = parser.parse_args()
    for name in [args.only] if args.only else list(IDENTIFIERS):
        try:
            print(json.dumps(measure(name, args.data), ensure_ascii=False))
        except ImportError as exc:
            print(json.dumps({"identifier": name, "skipped": f"not installed ({exc.name})"}))


if __name__ == "__main__":
    main()
