"""A real headless browser for the page test: Debian's `chromium`, driven over the Chrome DevTools Protocol.

CDP rather than Selenium: no extra package and no driver binary whose version must match the browser (the
websocket client is httpx-ws, which BentoML already brings), and the protocol reports every network request the
page makes, which is what shows that the page loads nothing from elsewhere. Chromium runs with a fresh profile,
no background networking, and a host resolver that resolves nothing but loopback: a page that reached out would
fail to, and the recorded requests would show it.
"""

from __future__ import annotations

import base64
import itertools
import shutil
import subprocess
import time
from pathlib import Path

import httpx
from httpx_ws import connect_ws

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--window-size=1200,1000"]  # fmt: skip


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One chromium process with one page; `call` sends a CDP command and returns its result, keeping the
    events that arrive meanwhile in `events`."""

    def __init__(self, profile_dir: Path, binary: str | None = None):
        binary = binary or chromium_binary()
        if binary is None:
            raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
        profile_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(profile_dir / "chromium.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile_dir}", "--remote-debugging-port=0",
                                      "about:blank"], stdout=self.log, stderr=subprocess.STDOUT)  # fmt: skip
        port = self._devtools_port(profile_dir / "DevToolsActivePort")
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        self._client = httpx.Client()
        self._ws_cm = connect_ws(page["webSocketDebuggerUrl"], self._client, max_message_size_bytes=64 << 20)
        self.ws = self._ws_cm.__enter__()
        self.events: list[dict] = []
        self._ids = itertools.count(1)

    def _devtools_port(self, path: Path, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            if path.is_file() and path.read_text().strip():
                return int(path.read_text().split()[0])
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port")

    def call(self, method: str, timeout: float = 30.0, **params) -> dict:
        message_id = next(self._ids)
        self.ws.send_json({"id": message_id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            message = self.ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0):
        """Poll `expression` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"still false after {timeout}s: {expression}")

    def navigate(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.evaluate(f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
                            " return [r.x + r.width / 2, r.y + r.height / 2]; })()")  # fmt: skip
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type_text(self, selector: str, text: str) -> None:
        """Focus the element and type `text` into it as keyboard input."""
        self.evaluate(f"document.querySelector({selector!r}).focus()")
        self.call("Input.insertText", text=text)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self._ws_cm.__exit__(None, None, None)
            self._client.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.log.close()
