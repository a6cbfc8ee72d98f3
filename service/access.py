"""API keys and rate limits (CONTRACT §4), off unless configured.

- `HAT_API_KEYS=FILE`: keys are required. One key a line, then optionally its requests per minute and characters
  per minute (`-` for no limit); `#` starts a comment. A request names its key in `api_key` (JSON or form field,
  as LibreTranslate) or in an `Authorization: Bearer KEY` header. Missing or unknown key -> 403.
- `HAT_REQ_LIMIT` / `HAT_CHAR_LIMIT`: requests / characters per minute for each client without a key (by its
  address), when keys are off.
- Over a limit -> 429 with `Retry-After` (seconds); a single request larger than its characters-per-minute limit
  could never pass -> 413.

Limits are token buckets (capacity = the per-minute limit, refilled continuously) kept in one SQLite file that
every BentoML worker of the server opens; each check-and-take is one `BEGIN IMMEDIATE` transaction, so the limits
hold across workers. Keys are never stored, logged or used as metric labels: a key is known by its id, the first
hex digits of its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hat_engine.errors import ConfigError
from service.errors import ApiError

WINDOW_S = 60.0
_SCHEMA = "CREATE TABLE IF NOT EXISTS buckets (subject TEXT, kind TEXT, tokens REAL, updated REAL, " \
          "PRIMARY KEY (subject, kind))"  # fmt: skip


def key_id(key: str) -> str:
    """A short, non-reversible name for a key (logs, metric labels, the limits file)."""
    return "k-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]


@dataclass(frozen=True)
class Quota:
    requests_per_min: int | None = None
    chars_per_min: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.requests_per_min is None and self.chars_per_min is None


@dataclass(frozen=True)
class AccessPolicy:
    keys: Mapping[str, Quota] | None  # key digest -> quota; None: keys off
    anonymous: Quota  # per client address, when keys are off
    db_path: Path

    @property
    def active(self) -> bool:
        return self.keys is not None or not self.anonymous.unlimited


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _limit(raw: str, where: str) -> int | None:
    if raw == "-":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{where}: limit {raw!r} must be a whole number >= 1 per minute, or - for none")
    return int(raw)


def read_keys(path: Path) -> dict[bytes, Quota]:
    """The keys file -> {sha256(key): quota}; a bad line names its number."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"HAT_API_KEYS={path}: cannot read it ({exc})") from None
    keys: dict[bytes, Quota] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        where = f"HAT_API_KEYS={path} line {number}"
        if len(fields) > 3:
            raise ConfigError(f"{where}: expected KEY [REQUESTS_PER_MIN [CHARS_PER_MIN]], got {len(fields)} fields")
        if len(fields[0]) < 8:
            raise ConfigError(f"{where}: a key needs at least 8 characters")
        digest = _digest(fields[0])
        if digest in keys:
            raise ConfigError(f"{where}: key {key_id(fields[0])} appears twice")
        keys[digest] = Quota(*(_limit(f, where) for f in fields[1:]))
    if not keys:
        raise ConfigError(f"HAT_API_KEYS={path}: the file holds no key")
    return keys


def load_policy(env: Mapping[str, str], state_dir: Path) -> AccessPolicy:
    keys_file = env.get("HAT_API_KEYS", "").strip()
    keys = read_keys(Path(keys_file).expanduser()) if keys_file else None
    anonymous = Quota(*(_limit(env[name].strip(), name) if env.get(name, "").strip() else None
                        for name in ("HAT_REQ_LIMIT", "HAT_CHAR_LIMIT")))  # fmt: skip
    return AccessPolicy(keys, anonymous, state_dir / "ratelimits.sqlite")


@dataclass(frozen=True)
class Grant:
    subject: str  # key id, or "anonymous"


class Access:
    """Checks one request's key and takes its cost from the buckets (raises ApiError 403/413/429)."""

    def __init__(self, policy: AccessPolicy):
        self.policy = policy
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._ids = {digest: "k-" + digest.hex()[:10] for digest in (policy.keys or {})}

    def check(self, key: str | None, client: str, chars: int) -> Grant:
        policy = self.policy
        if policy.keys is not None:
            if not key:
                raise ApiError(403, "Please contact the server operator to get an API key: send it as api_key "
                                    "or in an Authorization: Bearer header")  # fmt: skip
            digest = _digest(key)
            match = next((d for d in policy.keys if hmac.compare_digest(d, digest)), None)
            if match is None:
                raise ApiError(403, "Invalid API key")
            subject, quota = self._ids[match], policy.keys[match]
        else:
            subject, quota = "c-" + hashlib.sha256(client.encode()).hexdigest()[:12], policy.anonymous
        if not quota.unlimited:
            self._take(subject, quota, chars)
        return Grant(subject if policy.keys is not None else "anonymous")

    def label(self, key: str | None) -> str:
        """The metric label for `key`: its id when it is a configured key, else "anonymous" or "unknown"."""
        if self.policy.keys is None:
            return "anonymous"
        digest = _digest(key) if key else b""
        return next((self._ids[d] for d in self.policy.keys if hmac.compare_digest(d, digest)), "unknown")

    def _take(self, subject: str, quota: Quota, chars: int) -> None:
        costs = [(kind, cap, cost) for kind, cap, cost in (("requests", quota.requests_per_min, 1),
                 ("chars", quota.chars_per_min, chars)) if cap is not None]  # fmt: skip
        for _, cap, cost in costs:
            if cost > cap:
                raise ApiError(413, f"this request has {cost} characters; the limit is {cap} per minute")
        with self._lock:
            conn = self._connection()
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                levels, wait = [], 0.0
                for kind, cap, cost in costs:
                    row = conn.execute("SELECT tokens, updated FROM buckets WHERE subject = ? AND kind = ?",
                                       (subject, kind)).fetchone()  # fmt: skip
                    tokens = cap if row is None else min(cap, row[0] + max(0.0, now - row[1]) * cap / WINDOW_S)
                    levels.append(tokens - cost)
                    if tokens < cost:
                        wait = max(wait, (cost - tokens) * WINDOW_S / cap)
                if wait == 0.0:
                    rows = [(subject, kind, level, now) for (kind, _, _), level in zip(costs, levels, strict=True)]
                    conn.executemany("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if wait > 0.0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Slowdown: too many requests or characters for this client; retry in {seconds} s",
                           {"Retry-After": str(seconds)})  # fmt: skip

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.policy.db_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.policy.db_path, timeout=10.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn


def bearer_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
