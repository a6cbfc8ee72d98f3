"""The BentoML service over real HTTP (CONTRACT §4): `hat serve` subprocesses on free loopback ports, against
fixture catalogs whose latencies were measured on this host (tests/fixtures_catalog.py)."""

import json
import re
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest
from libretranslatepy import LibreTranslateAPI

from harness.fixture_catalog import ARCHS, build_fixture_catalog
from harness.server import HAT, Server, server_env

pytestmark = pytest.mark.integration

LOOSE_SLA_MS = "10000"


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    """(clean folder, its catalog, a copy whose best entry's weights were altered after cataloguing)."""
    root = tmp_path_factory.mktemp("catalogs")
    clean = build_fixture_catalog(root / "clean", threads=1)
    p95 = {e.id: e.p95 for e in clean.entries}
    build_fixture_catalog(root / "corrupt", corrupt="source", fake_p95_ms=[p95[name] for name in ARCHS])
    return root / "clean", clean, root / "corrupt"


@pytest.fixture(scope="module")
def server(catalogs, tmp_path_factory):
    home = tmp_path_factory.mktemp("server")
    with Server(server_env(catalogs[0], home, HAT_SLA_MS=LOOSE_SLA_MS), home / "server.log") as s:
        yield s


def best(catalog):
    return max(catalog.entries, key=lambda e: e.mean_bleu)


def fastest(catalog):
    return min(catalog.entries, key=lambda e: e.p95)


def post(server, **kw) -> httpx.Response:
    return httpx.post(server.url + "/translate", timeout=60, **kw)


def test_json_form_and_list_requests(server, catalogs):
    r = post(server, json={"q": "The house is small.", "source": "en", "target": "de"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["translatedText"], str) and body["translatedText"]
    assert body["model"] == best(catalogs[1]).id and body["latency_ms"] > 0
    r = post(server, data={"q": "The city is big.", "source": "auto", "target": "de", "api_key": "x"})
    assert r.status_code == 200 and isinstance(r.json()["translatedText"], str)
    assert r.json()["detectedLanguage"]["language"] == "en"
    r = post(server, json={"q": ["We go.", "", "The weather is good."], "source": "en", "target": "de"})
    texts = r.json()["translatedText"]
    assert r.status_code == 200 and isinstance(texts, list) and len(texts) == 3 and texts[1] == ""
    r = post(server, files={"q": (None, "Hello."), "source": (None, "en"), "target": (None, "de")})  # multipart
    assert r.status_code == 200 and isinstance(r.json()["translatedText"], str)
    r = httpx.post(server.url + "/v1/translate", json={"texts": ["The house is small."]}, timeout=60)
    assert r.status_code == 200 and len(r.json()["translations"]) == 1, r.text


def test_libretranslatepy_works_unchanged(server):
    lt = LibreTranslateAPI(server.url + "/")
    assert isinstance(lt.translate("The house is small.", "en", "de"), str)
    codes = {lang["code"]: lang for lang in lt.languages()}
    assert codes["en"]["targets"] == ["de"]


def test_models_shows_profile_sla_selected_and_entries(server, catalogs):
    models = httpx.get(server.url + "/models", timeout=10).json()
    assert models["selected"]["entry_id"] == best(catalogs[1]).id
    assert models["sla_ms"] == float(LOOSE_SLA_MS) and models["exact_profile_match"]
    assert models["hardware_profile"] == catalogs[1].entries[0].hardware_profile
    assert {e["id"] for e in models["entries"]} == set(ARCHS) and models["threads"] == 1


def test_openapi_documents_both_apis(server):
    assert "/v1/translate" in httpx.get(server.url + "/docs.json", timeout=10).json()["paths"]
    spec = httpx.get(server.url + "/libretranslate.json", timeout=10).json()
    assert {"/translate", "/languages", "/models"} <= set(spec["paths"])
    assert "swagger-ui" in httpx.get(server.url + "/docs", timeout=10).text  # BentoML's Swagger UI, moved to /docs


def test_max_latency_ms_routes_to_a_faster_entry(server, catalogs):
    fast = fastest(catalogs[1])
    r = post(server, json={"q": "The house is small.", "source": "en", "target": "de", "max_latency_ms": fast.p95})
    assert r.status_code == 200 and r.json()["model"] == fast.id != best(catalogs[1]).id
    r = post(server, data={"q": "Hi.", "source": "en", "target": "de", "max_latency_ms": str(fast.p95)})
    assert r.json()["model"] == fast.id


BAD_INPUTS = {
    "empty": {"json": {"q": "", "source": "en", "target": "de"}},
    "whitespace": {"json": {"q": "  \n\t ", "source": "en", "target": "de"}},
    "1 MB text": {"json": {"q": "word " * 200_000, "source": "en", "target": "de"}},
    "10k-item list": {"json": {"q": ["hi"] * 10_000, "source": "en", "target": "de"}},
    "q a number": {"json": {"q": 123, "source": "en", "target": "de"}},
    "q null": {"json": {"q": None, "source": "en", "target": "de"}},
    "q an object": {"json": {"q": {"a": 1}, "source": "en", "target": "de"}},
    "nested list": {"json": {"q": [["a"]], "source": "en", "target": "de"}},
    "source a number": {"json": {"q": "Hi", "source": 5, "target": "de"}},
    "budget a word": {"json": {"q": "Hi", "source": "en", "target": "de", "max_latency_ms": "soon"}},
    "budget infinite": {"content": b'{"q": "Hi", "source": "en", "target": "de", "max_latency_ms": 1e999}',
                        "headers": {"content-type": "application/json"}},
    "body a list": {"json": ["Hi"]},
    "invalid JSON": {"content": b'{"q": "Hi",', "headers": {"content-type": "application/json"}},
    "deep JSON": {"content": b"[" * 50_000, "headers": {"content-type": "application/json"}},
    "no body": {},
    "binary body": {"content": b"\x89PNG\x00\xff", "headers": {"content-type": "image/png"}},
    "unknown target": {"json": {"q": "Hi", "source": "en", "target": "xx"}},
    "unknown source": {"json": {"q": "Bonjour", "source": "fr", "target": "de"}},
    "html format": {"json": {"q": "<b>Hi</b>", "source": "en", "target": "de", "format": "html"}},
    "control characters": {"json": {"q": "a\x00b\x01\x1b[31m c\x7f", "source": "en", "target": "de"}},
    "lone surrogate": {"content": b'{"q": "\\ud800 x", "source": "en", "target": "de"}',
                       "headers": {"content-type": "application/json"}},
    "emoji": {"json": {"q": "I \u2764\ufe0f \U0001f40d and \U0001f468\u200d\U0001f469\u200d\U0001f467", "source": "en",
                       "target": "de"}},
    "RTL": {"json": {"q": "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u202eabc", "source": "en",
                     "target": "de"}},
    "HTML text": {"json": {"q": "<script>alert(1)</script><b>bold</b> &amp;", "source": "en", "target": "de"}},
    "long paragraph": {"json": {"q": "The house is small. " * 200, "source": "en", "target": "de"}},
    "form without q": {"data": {"source": "en", "target": "de"}},
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_4xx_json_error_or_a_sane_translation(server, case):
    r = post(server, **BAD_INPUTS[case])
    assert r.status_code < 500, f"{case}: {r.status_code} {r.text[:300]}"
    body = r.json()
    if r.status_code >= 400:
        assert isinstance(body["error"], str) and body["error"], case
    else:
        assert isinstance(body["translatedText"], str | list), case
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200


def test_wrong_method_and_limits_are_4xx_json(server):
    r = httpx.get(server.url + "/translate", timeout=10)
    assert r.status_code == 405 and "error" in r.json()
    r = post(server, json={"q": "x" * 6000, "source": "en", "target": "de"})
    assert r.status_code == 413 and "5000" in r.json()["error"]
    r = post(server, json={"q": "Hi", "source": "de", "target": "en"})
    assert r.status_code == 400 and "en -> de" in r.json()["error"]


def test_metrics_show_the_latency_histogram_for_the_selected_model(server, catalogs):
    post(server, json={"q": "The house is small.", "source": "en", "target": "de"})
    text = httpx.get(server.url + "/metrics", timeout=10).text
    profile, model = catalogs[1].entries[0].hardware_profile, best(catalogs[1]).id
    count = re.search(rf'hat_translation_latency_seconds_count\{{hardware_profile="{profile}",model="{model}"\}} (\S+)',
                      text)  # fmt: skip
    assert count and float(count.group(1)) > 0, text[-3000:]
    info = f'hat_selected_model_info{{hardware_profile="{profile}",model="{model}",sla_ms="{LOOSE_SLA_MS}"}} 1.0'
    assert info in text
    assert re.search(rf'hat_generated_tokens_total\{{model="{model}"\}} [1-9]', text)
    assert "hat_sla_violations_total" in text


def test_tight_sla_selects_a_faster_entry_than_a_loose_one(catalogs, tmp_path):
    fast = fastest(catalogs[1])
    env = server_env(catalogs[0], tmp_path, HAT_SLA_MS=str(fast.p95 + 1e-3), HAT_SLA_GUARD="off")
    with Server(env, tmp_path / "tight.log") as s:
        models = httpx.get(s.url + "/models", timeout=10).json()
    assert models["selected"]["entry_id"] == fast.id != best(catalogs[1]).id
    assert not models["sla_violation"] and models["selected"]["p95_ms"] <= fast.p95 + 1e-3


def test_corrupted_artifact_is_refused_and_the_next_entry_served(catalogs, tmp_path):
    ranked = sorted(catalogs[1].entries, key=lambda e: e.mean_bleu, reverse=True)
    with Server(server_env(catalogs[2], tmp_path), tmp_path / "corrupt.log") as s:
        models = httpx.get(s.url + "/models", timeout=10).json()
        r = post(s, json={"q": "The house is small.", "source": "en", "target": "de"})
        metrics = httpx.get(s.url + "/metrics", timeout=10).text
    status = {e["id"]: e for e in models["entries"]}
    assert status[ranked[0].id]["status"] == "refused" and "refused" in status[ranked[0].id]["reason"]
    assert models["selected"]["entry_id"] == ranked[1].id and r.json()["model"] == ranked[1].id
    assert f'hat_refused_artifacts_total{{model="{ranked[0].id}"}} 1.0' in metrics
    assert "refused catalog entry" in s.log_tail(20_000)


def test_unseen_host_profile_is_calibrated_at_startup(catalogs, tmp_path):
    """2 threads: a profile id the catalog (measured with 1) never saw -> measure a few entries, map the rest."""
    with Server(server_env(catalogs[0], tmp_path, HAT_THREADS="2"), tmp_path / "calibrate.log") as s:
        models = httpx.get(s.url + "/models", timeout=10).json()
        r = post(s, json={"q": "The house is small.", "source": "en", "target": "de"})
    assert not models["exact_profile_match"] and models["hardware_profile"].endswith("-2t-onnxruntime")
    cal = models["calibration"]
    assert cal["source_profile"] == catalogs[1].entries[0].hardware_profile and cal["seconds"] < 20
    assert len(cal["measured_p95_ms"]) >= 2 and all(v > 0 for v in cal["scales"].values()) and cal["rounds"] >= 1
    assert set(cal["scales"]) == set(cal["formats"].values())
    assert r.status_code == 200 and r.json()["model"] == models["selected"]["entry_id"]
    assert "calibration: here_ms =" in s.log_tail(50_000)


@pytest.mark.parametrize("how", ["hat serve", "bentoml serve"])
def test_missing_catalog_exits_with_one_clear_line(tmp_path, how):
    env = server_env(tmp_path / "no-catalog", tmp_path)
    cmd = [*HAT, "serve", "--port", "1"] if how == "hat serve" else [
        HAT[0], "-m", "bentoml", "serve", "service.service:Translator", "--port", "1"]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, lines
    assert "no catalog at" in lines[0] and "HAT_CATALOG" in lines[0]
    assert "Traceback" not in json.dumps(lines)


def test_bentoml_build_works_offline(catalogs, tmp_path, repo_root):
    """CONTRACT §5: the Bento builds from bentofile.yaml with no registry (no network namespace when we can)."""
    env = server_env(catalogs[0], tmp_path)
    cmd = [HAT[0], "-m", "bentoml", "build", str(repo_root), "--output", "tag"]
    offline = subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    result = subprocess.run((["unshare", "-n"] if offline else []) + cmd, env=env, capture_output=True, text=True,
                            timeout=300, cwd=repo_root)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "hat-translator:" in result.stdout
    bento = next(p for p in (tmp_path / "bentoml" / "bentos" / "hat-translator").iterdir() if p.is_dir())
    assert (bento / "src" / "service" / "service.py").is_file()
    assert "torch==2.13.0" in (bento / "env" / "python" / "requirements.txt").read_text()


def test_unseen_host_kind_measures_its_thread_count_at_startup(tmp_path):
    """No HAT_THREADS and a catalog measured on another host kind: the worker times 1..N intra-op threads on the
    fastest entry, serves with the fastest count, and says so in /models."""
    folder = tmp_path / "catalog"
    build_fixture_catalog(folder, threads=1, fake_p95_ms=[10.0, 20.0, 30.0], entries=3,
                          host_profile="cpu-riscv64-base-1t-onnxruntime")  # fmt: skip
    with Server(server_env(folder, tmp_path, HAT_THREADS=""), tmp_path / "threads.log") as s:
        models = httpx.get(s.url + "/models", timeout=10).json()
        r = post(s, json={"q": "The house is small.", "source": "en", "target": "de"})
    p50 = {int(k): v for k, v in models["thread_p50_ms"].items()}
    if len(p50) < 2:
        pytest.fail(f"this machine offers one core: nothing to choose ({models['thread_p50_ms']})")
    chosen = min(p50, key=p50.__getitem__)
    assert models["threads"] == chosen and models["hardware_profile"].endswith(f"-{chosen}t-onnxruntime")
    assert r.status_code == 200 and "thread choice: p50" in s.log_tail(50_000)


def _process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def test_an_onnx_serving_process_never_loads_torch(server, catalogs):
    """The arbiter and its workers serve ONNX Runtime graphs with numpy beam search: none maps libtorch, even
    after every entry of the ladder has translated (per-request budgets route to each in turn)."""
    for entry in sorted(catalogs[1].entries, key=lambda e: e.p95):
        r = post(server, json={"q": "The house is small.", "source": "en", "target": "de",
                               "max_latency_ms": entry.p95})  # fmt: skip
        assert r.status_code == 200, r.text
    processes = _process_tree(server.proc.pid)
    assert len(processes) >= 2  # the arbiter and at least one worker
    for process in processes:
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        assert "onnxruntime" in maps or process.pid == server.proc.pid, process.cmdline()
        assert "libtorch" not in maps, f"{process.pid} {process.cmdline()[:4]} has torch loaded"
