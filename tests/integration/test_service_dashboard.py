"""The Grafana dashboard (k8s/monitoring/grafana-dashboard.json): every panel's PromQL, run against a real
Prometheus that scrapes a real server, returns series.

One server (1 worker) with API keys on, a catalog whose best entry's weights were altered (refused at startup)
and fake catalog latencies far below what the tiny models really take, with an SLA between them: the startup
choice meets the SLA on paper, every request violates it, and a sustained burst makes the SLA guard step down.
Prometheus (Debian's package, fetched as in test_service_prometheus.py) scrapes it every second under the job
name of k8s/monitoring/prometheus.yml, with `node_class` set as that file's relabelling would, and evaluates the
repository's own rules file (the dashboard graphs one of its recording rules).
"""

import json
import math
import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from harness.fixture_catalog import build_fixture_catalog
from harness.server import Server, server_env
from tests.prometheus import prometheus_binary, running_prometheus

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "k8s/monitoring/grafana-dashboard.json"
RULES = REPO / "k8s/monitoring/hat-rules.yml"
NODE_CLASS = "cpu-small"
# Fake catalog p95s (ms) far below any real decode, and an SLA between them: tiny-c (0.3) is chosen at startup,
# tiny-d (0.4, the best) is the corrupted one, and the ladder tiny-a < tiny-b < tiny-c leaves room to step down.
FAKE_P95_MS = [0.1, 0.2, 0.3, 0.4]
SLA_MS = "0.35"
KEY, TINY_KEY = "dashboard-key-0123456789", "tiny-key-0123456789"
SUBSTITUTE = {"$node_class": NODE_CLASS, "$__rate_interval": "30s", "$__range": "5m", "$sla_ms": SLA_MS}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dash: dict) -> list[dict]:
    out = []
    for p in dash["panels"]:
        out.extend([p] if p["type"] != "row" else p.get("panels", []))
    return out


def promql(expr: str) -> str:
    for var, value in sorted(SUBSTITUTE.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + var[1:] + "}", value).replace(var, value)
    assert "$" not in expr, f"a template variable the test does not know: {expr}"
    return expr


def test_dashboard_is_a_grafana_10_dashboard_on_a_datasource_variable():
    dash = dashboard()
    assert 38 <= dash["schemaVersion"] <= 41 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    node_class = variables["node_class"]
    assert node_class["type"] == "query" and node_class["datasource"]["uid"] == "${datasource}"
    assert "node_class" in node_class["definition"] and node_class["includeAll"]
    # The SLA variable's default is HAT_SLA_MS of k8s/base.
    base = (REPO / "k8s/base/kustomization.yaml").read_text()
    assert f"HAT_SLA_MS={variables['sla_ms']['current']['value']}" in base
    ids, seen = [p["id"] for p in dash["panels"]], []
    assert len(ids) == len(set(ids))
    for p in panels(dash):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}" and t["expr"].strip(), p["title"]
            if "node_class" not in t["expr"] and not t["expr"].startswith("vector("):
                pytest.fail(f"{p['title']}: {t['expr']} does not filter by the node_class variable")
            seen.append(t["expr"])
    metrics = set(re.findall(r"\b(hat_[a-z_]+|hat:[a-z_:0-9]+)", " ".join(seen)))
    names = {"hat_translation_latency_seconds", "hat_sla_violations_total", "hat_selected_model_info",
             "hat_refused_artifacts_total", "hat_model_switches_total", "hat_translate_requests_total",
             "hat_api_requests_total"}  # fmt: skip
    assert all(any(m.startswith(n) for m in metrics) for n in names), metrics


def _query(prom: str, expr: str) -> list[dict]:
    r = httpx.get(prom + "/api/v1/query", params={"query": expr}, timeout=10)
    assert r.status_code == 200, f"{expr}: {r.text[:500]}"
    return r.json()["data"]["result"]


def _burst(server: Server, seconds: float, stop: threading.Event, answers: list) -> None:
    """Sequential translate requests with the key until `stop` or `seconds`; each reply's status into `answers`."""
    deadline, i = time.monotonic() + seconds, 0
    while time.monotonic() < deadline and not stop.is_set():
        body = {"q": f"The house {i} is small and the city is big.", "source": "en", "target": "de", "api_key": KEY}
        try:
            answers.append(httpx.post(server.url + "/translate", json=body, timeout=60).status_code)
        except httpx.HTTPError as exc:
            answers.append(repr(exc))
        i += 1


def test_every_dashboard_query_returns_series_from_a_real_prometheus(tmp_path):
    prometheus_binary()  # fetched before the server starts
    started = time.monotonic()
    catalog = tmp_path / "catalog"
    build_fixture_catalog(catalog, corrupt="source", fake_p95_ms=FAKE_P95_MS)
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# key  requests/min  characters/min\n{KEY} - -\n{TINY_KEY} 1 -\n")
    env = server_env(catalog, tmp_path, HAT_SLA_MS=SLA_MS, HAT_API_KEYS=str(keys))
    with Server(env, tmp_path / "server.log") as server:
        config = (
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES}\n"
            "scrape_configs:\n  - job_name: hat-translator\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{server.port}']\n        labels:\n          node_class: {NODE_CLASS}\n"
        )
        with running_prometheus(config, tmp_path) as prom:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if _query(prom, 'up{job="hat-translator"} == 1'):
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                tail = (tmp_path / "prometheus.log").read_text()[-2000:]
                pytest.fail(f"Prometheus never scraped the server:\n{tail}")

            # Traffic: a keyed burst until the SLA guard steps down (>= 20 samples over the SLA for 5 s) ...
            stop, answers = threading.Event(), []
            worker = threading.Thread(target=_burst, args=(server, 25, stop, answers))
            worker.start()
            switches: list = []
            while worker.is_alive() and not switches:
                time.sleep(0.5)
                switches = httpx.get(server.url + "/models", timeout=10).json()["sla_guard"]["switches"]
            time.sleep(2)  # a few more requests on the new entry, scraped
            stop.set()
            worker.join(timeout=60)
            assert answers and set(answers) == {200}, answers[-5:]
            switches = httpx.get(server.url + "/models", timeout=10).json()["sla_guard"]["switches"]
            assert switches and switches[0]["direction"] == "down", server.log_tail()
            # ... and the key outcomes: none, a wrong key, and a 1/minute key spent twice.
            translate = {"q": "The house is small.", "source": "en", "target": "de"}
            assert httpx.post(server.url + "/translate", json=translate, timeout=60).status_code == 403
            wrong = {**translate, "api_key": "not-a-key-at-all"}
            assert httpx.post(server.url + "/translate", json=wrong, timeout=60).status_code == 403
            tiny = {**translate, "api_key": TINY_KEY}
            assert httpx.post(server.url + "/translate", json=tiny, timeout=60).status_code == 200
            assert httpx.post(server.url + "/translate", json=tiny, timeout=60).status_code == 429
            time.sleep(3)  # scraped, and the rules evaluated

            results = {}
            for p in panels(dashboard()):
                for t in p["targets"]:
                    series = _query(prom, promql(t["expr"]))
                    finite = [s for s in series if math.isfinite(float(s["value"][1]))]
                    results[(p["title"], t["refId"])] = (series, finite)
            print(f"\n{len(answers)} keyed requests, switch {switches[0]}, {time.monotonic() - started:.1f} s")
            for (title, ref), (series, finite) in results.items():
                print(f"  {title} [{ref}]: {len(series)} series, {len(finite)} finite")
            empty = [f"{title} [{ref}]" for (title, ref), (_, finite) in results.items() if not finite]
            assert not empty, f"queries without a finite series: {empty}"

            def labels(title: str, ref: str = "A") -> list[dict]:
                return [s["metric"] for s in results[(title, ref)][0]]

            assert all(m.get("node_class") == NODE_CLASS for series, _ in results.values() for m in
                       (s["metric"] for s in series) if m)  # fmt: skip
            switched = labels("Model switches (SLA guard, since pod start)")
            assert {(m["direction"], m["from_model"], m["to_model"]) for m in switched} >= {
                ("down", switches[0]["from_id"], switches[0]["to_id"])}  # fmt: skip
            assert [m["model"] for m in labels("Refused artifacts (since pod start)")] == ["tiny-d"]
            (selected,) = labels("Selected entry per node class")
            assert selected["model"] == switches[-1]["to_id"] and selected["sla_ms"] == SLA_MS
            outcomes = {(m["key_id"], m["outcome"]) for m in labels("Key checks by outcome (since pod start)")}
            assert {("none", "forbidden"), ("unknown", "forbidden")} <= outcomes
            assert {o for _, o in outcomes} == {"ok", "forbidden", "limited"}
            assert {m["status"] for m in labels("Requests/s by HTTP status")} >= {"200", "403", "429"}
            violations = results[("SLA violations/s per entry", "A")][1]
            assert any(float(s["value"][1]) > 0 for s in violations)
            assert not any(KEY in json.dumps(series) for series, _ in results.values())
