"""The page at `/` in a real headless browser (Debian's chromium over CDP, tests/browser.py): type English, submit,
read German back, see the entry, its latency, the host profile, the SLA and the live p95; nothing is loaded from
anywhere but the server. The server serves a one-entry catalog cut from the shipped one (a real trained model, so
the answer is German). Without chromium the test skips, or fails when HAT_REQUIRE_REAL=1."""

import dataclasses
import os
import shutil

import httpx
import pytest

from harness.server import Server, server_env
from hat_engine.catalog.schema import load_catalog, save_catalog
from service import langid
from tests.browser import Browser, chromium_binary

pytestmark = pytest.mark.integration

SHOT_COPY = "/tmp/hat-page.png"


@pytest.fixture(scope="module")
def browser_binary():
    binary = chromium_binary()
    if binary is None:
        if os.environ.get("HAT_REQUIRE_REAL") == "1":
            pytest.fail("chromium is not installed and HAT_REQUIRE_REAL=1 (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); HAT_REQUIRE_REAL=1 makes this fail")
    return binary


@pytest.fixture(scope="module")
def one_entry_catalog(repo_root, tmp_path_factory):
    """The shipped catalog's best entry on 1 thread (int8 ONNX), alone (the server materialises only it)."""
    shipped, folder = repo_root / "catalog", tmp_path_factory.mktemp("page-catalog")
    for item in shipped.iterdir():
        if item.name not in ("catalog.json", ".cache"):
            (folder / item.name).symlink_to(item)
    catalog = load_catalog(shipped)
    profile = next(p for p in catalog.hardware_profiles if "-1t-" in p.id)
    entry = max(catalog.entries_for(profile.id), key=lambda e: e.mean_bleu)
    save_catalog(dataclasses.replace(catalog, hardware_profiles=(profile,), entries=(entry,)), folder)
    return folder, entry


@pytest.fixture(scope="module")
def server(one_entry_catalog, tmp_path_factory):
    home = tmp_path_factory.mktemp("page-server")
    with Server(server_env(one_entry_catalog[0], home, HAT_SLA_MS="250"), home / "server.log") as s:
        yield s


def test_the_page_translates_and_shows_what_served_it(browser_binary, server, one_entry_catalog, tmp_path):
    browser = Browser(tmp_path / "chromium-profile", browser_binary)
    try:
        browser.navigate(server.url + "/")
        browser.wait_for("document.getElementById('host-profile').textContent.startsWith('cpu-')")
        browser.type_text("#source", "The house is small. We go home tomorrow.")
        browser.click("#submit")
        german = browser.wait_for("document.getElementById('status').textContent === 'done' &&"
                                  " document.getElementById('target').textContent")  # fmt: skip
        browser.wait_for("document.getElementById('live-p95').textContent.includes('last')")
        ids = ["answer-model", "answer-ms", "host-profile", "sla", "live-p95", "active-entry"]
        shown = browser.evaluate(f"Object.fromEntries({ids}.map(id => [id, document.getElementById(id).textContent]))")
        shot = browser.screenshot(tmp_path / "page.png")
        urls = browser.requested_urls()
    finally:
        browser.close()
    shutil.copyfile(shot, SHOT_COPY)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert langid.rank(german)[0].language == "de" and "house" not in german, german
    entry = one_entry_catalog[1]
    assert shown["answer-model"] == shown["active-entry"] == entry.id
    assert float(shown["answer-ms"]) > 0 and "ms over the last" in shown["live-p95"], shown
    assert shown["sla"].startswith("250 ms") and shown["host-profile"] == httpx.get(
        server.url + "/models", timeout=10).json()["hardware_profile"]  # fmt: skip
    assert urls and all(u.startswith(server.url) or u.startswith("data:") for u in urls), urls
    assert {server.url + "/static/app.js", server.url + "/translate", server.url + "/models"} <= set(urls)
