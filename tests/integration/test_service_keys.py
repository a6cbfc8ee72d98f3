"""API keys and rate limits over real HTTP (CONTRACT §4, issue 18): a `hat serve` with two BentoML workers and a
keys file; the right key passes however it is sent, a wrong or missing one gets 403, a burst gets 429s with
Retry-After (the limit holding across both workers) while everything else keeps working, and no key reaches the
log or the metrics. A second server has the anonymous per-client limit."""

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from libretranslatepy import LibreTranslateAPI

from harness.fixture_catalog import build_fixture_catalog
from harness.server import Server, server_env
from service.access import key_id

pytestmark = pytest.mark.integration

GOOD, BURST, CHARS = "good-key-0001", "burst-key-0002", "chars-key-0003"
KEYS = f"# key  requests/min  chars/min\n{GOOD}\n{BURST} 5\n{CHARS} - 40\n"
HI = {"q": "The house is small.", "source": "en", "target": "de"}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys-catalog")
    build_fixture_catalog(root, fake_p95_ms=[5.0, 10.0, 20.0, 40.0])
    return root


@pytest.fixture(scope="module")
def server(catalog, tmp_path_factory):
    home = tmp_path_factory.mktemp("keys")
    (home / "keys.txt").write_text(KEYS)
    env = server_env(catalog, home, HAT_API_KEYS=str(home / "keys.txt"))
    with Server(env, home / "server.log", workers=2) as s:
        yield s


def post(server, path="/translate", **kw) -> httpx.Response:
    return httpx.post(server.url + path, timeout=60, **kw)


def test_the_right_key_passes_however_it_is_sent(server):
    assert post(server, json={**HI, "api_key": GOOD}).status_code == 200
    assert post(server, data={**HI, "api_key": GOOD}).status_code == 200
    assert post(server, files={k: (None, v) for k, v in {**HI, "api_key": GOOD}.items()}).status_code == 200
    assert post(server, json=HI, headers={"Authorization": f"Bearer {GOOD}"}).status_code == 200
    r = post(server, "/v1/translate", json={"texts": ["Hi."]}, headers={"Authorization": f"Bearer {GOOD}"})
    assert r.status_code == 200 and r.json()["translations"], r.text
    lt = LibreTranslateAPI(server.url, api_key=GOOD)
    assert isinstance(lt.translate("The house is small.", "en", "de"), str)
    assert lt.detect("Das Haus ist klein und die Stadt ist groß.")[0]["language"] == "de"
    assert lt.languages()[0]["code"] == "en"
    assert httpx.get(server.url + "/frontend/settings", timeout=10).json()["keyRequired"] is True


@pytest.mark.parametrize("how", ["missing", "wrong", "wrong bearer", "empty"])
def test_a_missing_or_wrong_key_is_refused_with_403_everywhere(server, how):
    kw = {"missing": {"json": HI}, "wrong": {"json": {**HI, "api_key": "good-key-0002"}},
          "wrong bearer": {"json": HI, "headers": {"Authorization": "Bearer nope-nope-nope"}},
          "empty": {"data": {**HI, "api_key": ""}}}[how]  # fmt: skip
    for path in ("/translate", "/detect"):
        r = post(server, path, **kw)
        assert r.status_code == 403 and ("API key" in r.json()["error"]), (path, r.text)
    key = {"api_key": "wrong-key-000"} if how == "wrong" else {}
    r = post(server, "/translate_file", files={"file": ("a.txt", b"Hi.")}, data={"source": "en", "target": "de", **key})
    assert r.status_code == 403
    r = post(server, "/v1/translate", json={"texts": ["Hi."], **key}, headers=kw.get("headers", {}))
    assert r.status_code == 403 and r.json()["error"]


def test_a_burst_gets_429s_with_retry_after_and_nothing_else_breaks(server):
    def one(_):
        return post(server, json={**HI, "api_key": BURST})

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(one, range(14)))
    codes = [r.status_code for r in replies]
    assert codes.count(200) == 5 and codes.count(429) == 9, codes  # 5 a minute, across both workers
    for r in replies:
        if r.status_code == 429:
            assert 1 <= int(r.headers["retry-after"]) <= 60 and "Slowdown" in r.json()["error"]
    assert post(server, json={**HI, "api_key": GOOD}).status_code == 200  # other keys are untouched
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
    assert httpx.get(server.url + "/models", timeout=10).status_code == 200


def test_a_characters_per_minute_limit(server):
    text = {"q": "x" * 30, "source": "en", "target": "de", "api_key": CHARS}
    assert post(server, json=text).status_code == 200
    r = post(server, json=text)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert post(server, json={**text, "q": "x" * 50}).status_code == 413  # more than a minute's worth


def test_keys_never_reach_the_log_or_the_metrics(server):
    post(server, json={**HI, "api_key": "leaked-secret-123"})
    post(server, json={**HI, "api_key": BURST})
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert re.search(rf'hat_api_requests_total\{{key_id="{key_id(BURST)}",outcome="limited"\}} [1-9]', metrics)
    assert re.search(r'hat_api_requests_total\{key_id="unknown",outcome="forbidden"\} [1-9]', metrics)
    log = server.log_tail(2_000_000)
    assert "method=POST,path=/translate" in log  # the access log is there, and knows no key
    for key in (GOOD, BURST, CHARS, "leaked-secret-123"):
        assert key not in metrics and key not in log


def test_the_anonymous_per_client_limit(catalog, tmp_path):
    env = server_env(catalog, tmp_path, HAT_REQ_LIMIT="3")
    with Server(env, tmp_path / "anon.log") as s:
        codes = [post(s, json=HI).status_code for _ in range(5)]
        assert httpx.get(s.url + "/languages", timeout=10).status_code == 200  # only translating costs
        metrics = httpx.get(s.url + "/metrics", timeout=10).text
    assert codes == [200, 200, 200, 429, 429]
    assert 'hat_api_requests_total{key_id="anonymous",outcome="limited"} 2.0' in metrics
