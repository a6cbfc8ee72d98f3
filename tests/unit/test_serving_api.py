"""The service's request handling without a server: parsing, limits, language pair, settings, batching."""

import asyncio
import re

import pytest

from hat_engine.errors import CatalogError, ConfigError
from hat_engine.model.translate import split_sentences
from service.batcher import Batcher
from service.schemas import ApiError, clean_text, parse_fields, read_body, validate
from service.settings import Limits, load_settings, writable_cache_dir

LIMITS = Limits(max_chars=50, max_texts=4, max_total_chars=120)


def status(fields) -> int:
    try:
        validate(fields, LIMITS)
    except ApiError as exc:
        return exc.status
    return 200


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"q": "Hello", "source": "en", "target": "de"}, 200),
        ({"q": ["a", "b"], "source": "auto", "target": "DE "}, 200),
        ({"q": "", "source": "en", "target": "de"}, 200),
        ({"source": "en", "target": "de"}, 400),
        ({"q": 5, "source": "en", "target": "de"}, 400),
        ({"q": ["a", 5], "source": "en", "target": "de"}, 400),
        ({"q": [], "source": "en", "target": "de"}, 400),
        ({"q": {"a": 1}, "source": "en", "target": "de"}, 400),
        ({"q": "x" * 51, "source": "en", "target": "de"}, 413),
        ({"q": ["x"] * 5, "source": "en", "target": "de"}, 413),
        ({"q": ["x" * 50] * 3, "source": "en", "target": "de"}, 413),
        ({"q": "Hi", "source": "fr", "target": "de"}, 400),
        ({"q": "Hi", "source": "en", "target": "es"}, 400),
        ({"q": "Hi", "source": 1, "target": "de"}, 400),
        ({"q": "<b>Hi</b>", "source": "en", "target": "de", "format": "html"}, 200),
        ({"q": "Hi", "source": "en", "target": "de", "format": "xml"}, 400),
        ({"q": "Hi", "target": "de"}, 400),
        ({"q": "Hi", "source": "en"}, 400),
        ({"q": "Hi", "source": "", "target": "de"}, 400),
        ({"q": "Hi", "source": "en", "target": "de", "alternatives": "2"}, 200),
        ({"q": "Hi", "source": "en", "target": "de", "alternatives": "many"}, 400),
        ({"q": "Hi", "source": "en", "target": "de", "alternatives": 1.5}, 400),
        ({"q": "Hi", "source": "en", "target": "de", "alternatives": True}, 400),
        ({"q": "Hi", "source": "en", "target": "de", "max_latency_ms": "20"}, 200),
        ({"q": "Hi", "source": "en", "target": "de", "max_latency_ms": -1}, 400),
        ({"q": "Hi", "source": "en", "target": "de", "max_latency_ms": True}, 400),
        ({"q": "Hi", "source": "en", "target": "de", "max_latency_ms": "fast"}, 400),
        ({"q": "Hi", "source": "en", "target": "de", "api_key": "ignored", "alternatives": 3}, 200),
    ],
)
def test_validate_statuses(fields, code):
    assert status(fields) == code


def test_unsupported_pair_names_the_supported_one():
    with pytest.raises(ApiError, match="en -> de"):
        validate({"q": "Hi", "source": "de", "target": "en"}, LIMITS)


def test_parse_json_and_forms():
    assert parse_fields("application/json", b'{"q": ["a"]}') == {"q": ["a"]}
    form = parse_fields("application/x-www-form-urlencoded", b"q=Hello+world&q=Bye&source=en&target=de")
    assert form == {"q": ["Hello world", "Bye"], "source": "en", "target": "de"}
    assert parse_fields("", b'{"q": "a"}') == {"q": "a"}
    for bad in (b"{", b"[1, 2]", b'"text"', b"[" * 100_000):
        with pytest.raises(ApiError) as exc:
            parse_fields("application/json", bad)
        assert exc.value.status == 400
    with pytest.raises(ApiError) as exc:
        parse_fields("image/png", b"\x89PNG")
    assert exc.value.status == 415


def test_read_body_refuses_oversized_bodies_early():
    async def stream(chunks):
        for c in chunks:
            yield c

    assert asyncio.run(read_body({}, stream([b"ab", b"cd"]), 10)) == b"abcd"
    for headers, chunks in (({"content-length": "11"}, [b""]), ({}, [b"x" * 6, b"x" * 6])):
        with pytest.raises(ApiError) as exc:
            asyncio.run(read_body(headers, stream(chunks), 10))
        assert exc.value.status == 413


def test_clean_text_keeps_words_and_drops_control_characters():
    assert clean_text("a\x00b\x1bc\td\ne") == "a b c\td\ne"
    assert clean_text("\ud800x") == "\ufffd\ufffd\ufffdx"  # an unpaired surrogate from JSON
    assert clean_text("שלום 👋 <b>x</b>") == "שלום 👋 <b>x</b>"


def test_split_sentences_keeps_line_breaks():
    assert split_sentences("One. Two!  Three?\n\nFour") == (["One.", "Two!", "Three?", "Four"], [" ", " ", "\n\n"])
    assert split_sentences("  no end  ") == (["no end"], [])


def test_settings_from_env(tmp_path):
    env = {"HAT_CATALOG": str(tmp_path / "none")}
    with pytest.raises(CatalogError, match="no catalog"):
        load_settings(env)
    s = load_settings({**env, "HAT_SLA_MS": "40", "HAT_THREADS": "2", "HAT_CACHE_DIR": str(tmp_path / "c")},
                      check_catalog=False)  # fmt: skip
    assert (s.serving.sla_ms, s.threads, s.serving.backend, s.serving.cache_dir) == (40.0, 2, "onnxruntime",
                                                                                     tmp_path / "c")  # fmt: skip
    assert not s.serving.calibrate_always
    assert load_settings({**env, "HAT_CALIBRATE": "Always"}, check_catalog=False).serving.calibrate_always
    for name, value in (("HAT_SLA_MS", "-3"), ("HAT_SLA_MS", "abc"), ("HAT_THREADS", "0"), ("HAT_BACKEND", "tf"),
                        ("HAT_SLA_MS", "nan"), ("HAT_SLA_GUARD", "maybe"), ("HAT_CALIBRATE", "sometimes")):  # fmt: skip
        with pytest.raises(ConfigError, match=name):
            load_settings({**env, name: value}, check_catalog=False)


def test_cache_dir_falls_back_when_the_catalog_folder_is_not_writable(tmp_path):
    (tmp_path / "blocker").write_text("a file, so nothing can be created below it, even by root")
    catalog = tmp_path / "blocker" / "catalog"
    assert writable_cache_dir(catalog, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "hat-serving"
    writable = tmp_path / "catalog"
    writable.mkdir()
    assert writable_cache_dir(writable, {}) == writable / ".cache"


def test_batcher_merges_concurrent_requests_and_keeps_their_order():
    calls = []

    def run(entry_id, texts, alternatives):
        calls.append((entry_id, list(texts), alternatives))
        return entry_id, [t.upper() * (alternatives + 1) for t in texts]

    async def main():
        batcher = Batcher(run, max_texts=8)
        jobs = [batcher.submit("m", [f"t{i}", f"u{i}"]) for i in range(5)] + [batcher.submit("other", ["z"])]
        return await asyncio.gather(*jobs, batcher.submit("m", ["a"], alternatives=1))

    results = asyncio.run(main())
    assert [r.results for r in results[:5]] == [[f"T{i}", f"U{i}"] for i in range(5)]
    assert results[5].results == ["Z"] and results[5].entry_id == "other"
    assert results[6].results == ["AA"]  # batched apart: it asked for alternatives
    assert all(alternatives == 1 for _, texts, alternatives in calls if "a" in texts)
    assert len(calls) < 7 and max(len(texts) for _, texts, _ in calls) <= 8  # batched, within max_texts
    assert all(r.latency_ms >= 0 for r in results)


def test_batcher_survives_a_failing_batch():
    def run(entry_id, texts, alternatives):
        if "boom" in texts:
            raise RuntimeError("boom")
        return entry_id, texts

    async def main():
        batcher = Batcher(run, max_texts=1)
        bad = await asyncio.gather(batcher.submit("m", ["boom"]), return_exceptions=True)
        good = await batcher.submit("m", ["fine"])
        return bad, good

    bad, good = asyncio.run(main())
    assert isinstance(bad[0], RuntimeError) and good.results == ["fine"]


def test_a_backend_with_nothing_to_serve_is_one_clear_error(repo_root, tmp_path):
    """HAT_BACKEND=torch on a catalog of int8 entries only: served unquantised from their recipes; without a
    recipe (prebuilt int8 graphs only) refused before any worker starts (it used to start and answer 503 to every
    request)."""
    import json
    import shutil

    doc = json.loads((repo_root / "catalog/catalog.json").read_text())
    doc["entries"] = [e for e in doc["entries"] if all(a["format"] == "onnx-int8" for a in e["artifacts"])]
    assert doc["entries"]
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    shutil.copyfile(repo_root / "catalog/spm.model", tmp_path / "spm.model")
    env = {"HAT_CATALOG": str(tmp_path), "HAT_THREADS": "1", "HAT_CACHE_DIR": str(tmp_path / "c")}
    assert load_settings(env).serving.backend == "onnxruntime"
    assert load_settings({**env, "HAT_BACKEND": "torch"}).serving.backend == "torch"
    for e in doc["entries"]:
        for a in e["artifacts"]:
            a.pop("materialize", None)
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="HAT_BACKEND=torch: no entry of .* has an artifact this backend can serve"):
        load_settings({**env, "HAT_BACKEND": "torch"})


def test_threads_are_left_to_startup_measurement_on_a_host_kind_the_catalog_never_saw(repo_root, tmp_path):
    import json
    import shutil

    doc = json.loads((repo_root / "catalog/catalog.json").read_text())
    for record in doc["hardware_profiles"]:
        record["id"] = re.sub(r"^cpu-x86_64-[a-z0-9]+", "cpu-riscv64-base", record["id"])
    for e in doc["entries"]:
        e["hardware_profile"] = re.sub(r"^cpu-x86_64-[a-z0-9]+", "cpu-riscv64-base", e["hardware_profile"])
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    shutil.copyfile(repo_root / "catalog/spm.model", tmp_path / "spm.model")
    env = {"HAT_CATALOG": str(tmp_path), "HAT_CACHE_DIR": str(tmp_path / "c")}
    s = load_settings(env)
    assert s.serving.thread_choices == (tuple(range(1, s.threads + 1)) if s.threads > 1 else ())
    assert load_settings({**env, "HAT_THREADS": "1"}).serving.thread_choices == ()  # the user's count stands
