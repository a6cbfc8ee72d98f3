"""Bad input at scale against a running service: schemathesis over its OpenAPI, and a hypothesis fuzz of `q`.

Both count responses by status class; the service must answer every one below 500 and still be ready after.
Used by `bench/robustness.py` (large counts, into RESULTS.md) and `tests/integration/test_service_fuzz.py`
(small counts, in `make test`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as seed_
from hypothesis import strategies as st

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def schemathesis_run(url: str, max_examples: int, seed: int, workdir: Path, max_time_s: int = 300) -> dict:
    """`schemathesis run` on the service's OpenAPI (`/docs.json`: every route, the LibreTranslate ones included)
    with the not-a-server-error check. Returns its exit code, the number of test cases generated, their statuses
    and, per operation ("POST /translate"), how many cases each request content type got."""
    workdir.mkdir(parents=True, exist_ok=True)
    report = workdir / "schemathesis.ndjson"
    cmd = [str(SCHEMATHESIS), "run", f"{url}/docs.json", "--checks", "not_a_server_error", "--max-examples",
           str(max_examples), "--seed", str(seed), "--workers", "1", "--max-time", str(max_time_s),
           "--request-timeout", "60", "--report", "ndjson", "--report-ndjson-path", str(report)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=max_time_s + 120)
    cases, statuses, operations = 0, Counter(), {}
    for line in report.read_text().splitlines() if report.is_file() else []:
        event = json.loads(line)
        label = ((event.get("ScenarioFinished") or {}).get("recorder") or {}).get("label", "?")
        for interaction in _interactions(event):
            cases += 1
            status = (interaction.get("response") or {}).get("status_code")
            statuses[f"{status // 100}xx" if isinstance(status, int) else "no response"] += 1
            headers = (interaction.get("request") or {}).get("headers") or {}
            media = (headers.get("Content-Type") or headers.get("content-type") or ["none"])[0].split(";")[0]
            operations.setdefault(label, Counter())[media] += 1
    return {"exit_code": result.returncode, "test_cases": cases, "statuses": dict(statuses),
            "operations": {label: dict(media) for label, media in operations.items()},
            "output_tail": result.stdout[-1500:]}  # fmt: skip


def _interactions(event: dict):
    """The recorded request/response pairs inside one ndjson event (schemathesis' ScenarioFinished)."""
    finished = event.get("ScenarioFinished") or {}
    recorder = finished.get("recorder") or {}
    yield from (recorder.get("interactions") or {}).values()


# What a careless or hostile client sends as `q` and around it.
_texts = st.text(max_size=400)
_huge = st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=4), st.integers(2_000, 8_000))
_leaf = st.one_of(_texts, st.integers(), st.floats(allow_nan=True), st.none(), st.booleans())
_nested = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                      st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                       max_leaves=12)  # fmt: skip
Q = st.one_of(_texts, _huge, st.lists(_texts, max_size=20), st.lists(_huge, max_size=3), _nested)
LANG = st.one_of(st.sampled_from(["en", "de", "auto", "fr", ""]), st.none(), st.integers(), st.text(max_size=8))
BUDGET = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**9),
                   st.text(max_size=6))  # fmt: skip
# source and target are required (as on LibreTranslate); about half of each are the valid ones (LANG holds None,
# which reads as missing), so a fair share of the bodies reaches the model.
SOURCE = st.one_of(st.sampled_from(["en", "auto"]), LANG)
TARGET = st.one_of(st.just("de"), LANG)
JSON_BODY = st.fixed_dictionaries({"q": Q, "source": SOURCE, "target": TARGET},
                                  optional={"format": LANG, "max_latency_ms": BUDGET,
                                            "alternatives": BUDGET})  # fmt: skip
_FORM_LANG = st.text(max_size=8)
FORM_BODY = st.fixed_dictionaries({"q": st.one_of(_texts, _huge), "source": st.one_of(st.just("en"), _FORM_LANG),
                                   "target": st.one_of(st.just("de"), _FORM_LANG)},
                                  optional={"max_latency_ms": st.text(max_size=8), "format": _FORM_LANG})  # fmt: skip
RAW = st.tuples(st.binary(max_size=2000), st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                                          "text/plain", "multipart/form-data"]))  # fmt: skip
REQUEST = st.one_of(st.tuples(st.just("json"), JSON_BODY), st.tuples(st.just("form"), FORM_BODY),
                    st.tuples(st.just("raw"), RAW))  # fmt: skip


def hypothesis_fuzz(url: str, examples: int, seed: int = 0) -> dict:
    """POST `examples` generated bodies to /translate; count statuses; keep every 5xx (status and body)."""
    statuses: Counter = Counter()
    server_errors: list[dict] = []
    client = httpx.Client(timeout=120)

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(request=REQUEST)
    def send(request) -> None:
        kind, body = request
        try:
            if kind == "json":
                r = client.post(url + "/translate", content=json.dumps(body, allow_nan=True),
                                headers={"content-type": "application/json"})  # fmt: skip
            elif kind == "form":
                r = client.post(url + "/translate", data=body)
            else:
                r = client.post(url + "/translate", content=body[0], headers={"content-type": body[1]})
        except httpx.HTTPError as exc:
            statuses["no response"] += 1
            server_errors.append({"request": repr(request)[:300], "error": repr(exc)})
            return
        statuses[f"{r.status_code // 100}xx"] += 1
        if r.status_code >= 500:
            server_errors.append({"request": repr(request)[:300], "status": r.status_code, "body": r.text[:300]})

    seed_(seed)(send)()
    client.close()
    return {"requests": sum(statuses.values()), "statuses": dict(statuses), "server_errors": server_errors}
