"""Bad input at scale, in seconds: schemathesis over the OpenAPI (every route: BentoML's and the LibreTranslate
ones, JSON and form bodies) and a hypothesis fuzz of `q` against a real server (fixture catalog). Zero 5xx, and the
service is still ready afterwards. `bench/robustness.py` runs the same with large counts on the shipped catalog."""

import httpx
import pytest

from harness.fixture_catalog import build_fixture_catalog
from harness.fuzz import hypothesis_fuzz, schemathesis_run
from harness.server import Server, server_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    build_fixture_catalog(root / "catalog", fake_p95_ms=[5.0, 10.0, 20.0, 40.0])
    with Server(server_env(root / "catalog", root), root / "server.log") as s:
        yield s


def test_schemathesis_fuzzes_every_route_json_and_form_and_finds_no_server_error(server, tmp_path):
    result = schemathesis_run(server.url, max_examples=15, seed=1, workdir=tmp_path, max_time_s=40)
    assert result["exit_code"] == 0, result["output_tail"]
    assert result["test_cases"] > 0 and "5xx" not in result["statuses"], result
    spec = httpx.get(server.url + "/docs.json", timeout=10).json()
    documented = {f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item}
    assert {"POST /translate", "POST /detect", "POST /translate_file", "GET /frontend/settings",
            "GET /download_file/{name}", "POST /v1/translate"} <= documented  # fmt: skip
    assert documented <= set(result["operations"]), documented - set(result["operations"])
    forms = {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
    for operation in ("POST /translate", "POST /detect"):
        assert forms <= set(result["operations"][operation]), result["operations"][operation]
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200


def test_hypothesis_fuzz_of_q_finds_no_server_error(server):
    result = hypothesis_fuzz(server.url, examples=150, seed=2)
    assert result["requests"] >= 150 and not result["server_errors"], result
    assert result["statuses"].get("2xx", 0) > 0 and result["statuses"].get("4xx", 0) > 0, result
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200


def test_multipart_without_boundary_is_a_400_on_every_route(server):
    # schemathesis found BentoML's typed route answering 500 here; the service's middleware makes it a 400
    for path in ("/v1/translate", "/translate"):
        r = httpx.post(server.url + path, content=b'{"texts": []}', headers={"content-type": "multipart/form-data"})
        assert r.status_code == 400 and "boundary" in r.json()["error"], (path, r.status_code, r.text[:200])
