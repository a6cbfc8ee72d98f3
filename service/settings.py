"""The service's settings, read from the environment once (CONTRACT §4), validated with one clear message each.
Without HAT_THREADS the thread count is the catalog's best for this host kind, or, for a host kind it never saw,
the one each worker measures fastest at startup (`ServingSettings.thread_choices`).

| variable | default | meaning |
|---|---|---|
| HAT_CATALOG | the repository's `catalog/` | catalog folder |
| HAT_SLA_MS | none (serve the best entry) | p95 latency budget on the reference workload, ms |
| HAT_BACKEND | onnxruntime | or torch |
| HAT_THREADS | the fastest measured count <= CPU limit / HAT_WORKERS | intra-op threads per worker (torch, ORT) |
| HAT_CACHE_DIR | `<catalog>/.cache`, else `$XDG_CACHE_HOME/hat-serving`, else a temp dir | materialised artifacts |
| HAT_WORKERS | 1 | BentoML worker processes (each loads its own models) |
| HAT_MAX_LOADED | 3 | translators kept loaded (LRU; the selected one stays) |
| HAT_MAX_BATCH | 32 | texts per adaptive batch (1 turns batching off) |
| HAT_SLA_GUARD | on | off: never switch models at run time |
| HAT_CALIBRATE | unseen | always: time the entries at startup on the catalog's own host kind too |
| HAT_MAX_CHARS / HAT_MAX_TEXTS / HAT_MAX_TOTAL_CHARS | 5000 / 128 / 20000 | input limits per request |
| HAT_API_KEYS | none (no keys) | file of API keys with optional per-key limits (`service.access`) |
| HAT_REQ_LIMIT / HAT_CHAR_LIMIT | none | requests / characters per minute per client without a key |
| HAT_CORS_ORIGINS | none (no CORS headers) | comma-separated origins allowed to call from a browser, or `*` |
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hat_engine.catalog.schema import load_catalog, verify_file
from hat_engine.errors import ConfigError
from hat_engine.hardware import BACKENDS, detect
from hat_engine.serving.engine import ServingSettings
from hat_engine.serving.guard import GuardConfig
from hat_engine.serving.pool import artifact_format
from hat_engine.serving.selection import best_thread_count
from service.access import AccessPolicy, load_policy

DEFAULT_CATALOG = Path(__file__).resolve().parents[1] / "catalog"


@dataclass(frozen=True)
class Limits:
    max_chars: int = 5000  # per text
    max_texts: int = 128  # per request
    max_total_chars: int = 20_000  # per request

    @property
    def max_body_bytes(self) -> int:
        """Generous for the character limits (JSON escapes, UTF-8, form encoding), small enough to refuse early."""
        return 8 * self.max_total_chars + 64 * self.max_texts + 16_384


@dataclass(frozen=True)
class Settings:
    serving: ServingSettings
    threads: int
    workers: int
    max_batch: int
    limits: Limits
    access: AccessPolicy
    cors_origins: tuple[str, ...] = ()


def _number(env: Mapping[str, str], name: str, default, kind=int, minimum=1):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def writable_cache_dir(catalog_dir: Path, env: Mapping[str, str]) -> Path:
    """`<catalog>/.cache` when the catalog folder is writable (a dev checkout), else the XDG cache, else a temp dir
    (a read-only root filesystem with an emptyDir at /tmp, as in k8s)."""
    candidates = [catalog_dir / ".cache"]
    xdg = env.get("XDG_CACHE_HOME") or (str(Path(env["HOME"]) / ".cache") if env.get("HOME") else "")
    if xdg:
        candidates.append(Path(xdg) / "hat-serving")
    candidates.append(Path(tempfile.gettempdir()) / "hat-serving-cache")
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK | os.X_OK):
            return path
    raise ConfigError("no writable cache folder for materialised models; set HAT_CACHE_DIR to one")


def load_settings(env: Mapping[str, str] | None = None, check_catalog: bool = True) -> Settings:
    """Settings from `env` (default os.environ); the catalog is parsed and its tokenizer checked (cheap) so that
    a missing or invalid catalog stops the process before any worker starts."""
    env = os.environ if env is None else env
    catalog_dir = Path(env.get("HAT_CATALOG") or DEFAULT_CATALOG).expanduser().resolve()
    if check_catalog:
        catalog = load_catalog(catalog_dir)
        verify_file(catalog_dir, catalog.tokenizer, "tokenizer")
    backend = env.get("HAT_BACKEND", "").strip() or "onnxruntime"
    if backend not in BACKENDS:
        raise ConfigError(f"HAT_BACKEND={backend!r}: use one of {', '.join(BACKENDS)}")
    if check_catalog and not any(artifact_format(e, backend) for e in catalog.entries):
        raise ConfigError(f"HAT_BACKEND={backend}: no entry of {catalog_dir} has an artifact this backend can serve")
    sla_ms = _number(env, "HAT_SLA_MS", None, float, minimum=1e-3)
    workers = _number(env, "HAT_WORKERS", 1)
    threads = _number(env, "HAT_THREADS", None)
    thread_choices: tuple[int, ...] = ()
    if threads is None:  # at most the effective CPU limit shared by the workers; measurements decide
        host = detect(backend, probe_cuda=False)
        threads = max(1, math.floor(host.cpu_limit / workers))
        measured = best_thread_count(catalog, host.profile_id, threads, sla_ms) if check_catalog else None
        if measured is not None:  # the catalog's own measurements of this host kind
            threads = measured
        elif check_catalog and threads > 1:  # a host kind the catalog never saw: each worker times the counts
            thread_choices = tuple(range(1, threads + 1))
    if env.get("HAT_CACHE_DIR"):
        cache_dir = Path(env["HAT_CACHE_DIR"]).expanduser().resolve()
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"HAT_CACHE_DIR={cache_dir} cannot be created: {exc.strerror}") from None
    else:
        cache_dir = writable_cache_dir(catalog_dir, env)
    guard_flag = env.get("HAT_SLA_GUARD", "on").strip().lower()
    if guard_flag not in ("on", "off", "1", "0", "true", "false"):
        raise ConfigError(f"HAT_SLA_GUARD={guard_flag!r}: use on or off")
    calibrate = env.get("HAT_CALIBRATE", "unseen").strip().lower() or "unseen"
    if calibrate not in ("unseen", "always"):
        raise ConfigError(f"HAT_CALIBRATE={calibrate!r}: use unseen (calibrate on a host kind the catalog never "
                          "saw) or always (on its own host kind too)")  # fmt: skip
    serving = ServingSettings(
        catalog_dir=catalog_dir,
        cache_dir=cache_dir,
        backend=backend,
        sla_ms=sla_ms,
        max_loaded=_number(env, "HAT_MAX_LOADED", 3),
        guard=GuardConfig() if guard_flag in ("on", "1", "true") else None,
        thread_choices=thread_choices,
        calibrate_always=calibrate == "always",
    )
    limits = Limits(_number(env, "HAT_MAX_CHARS", 5000), _number(env, "HAT_MAX_TEXTS", 128),
                    _number(env, "HAT_MAX_TOTAL_CHARS", 20_000))  # fmt: skip
    origins = tuple(o.strip().rstrip("/") for o in env.get("HAT_CORS_ORIGINS", "").split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(f"HAT_CORS_ORIGINS: {origin!r} is not an origin such as https://example.org, or *")
    access = load_policy(env, cache_dir)
    return Settings(serving, threads, workers, _number(env, "HAT_MAX_BATCH", 32), limits, access, origins)
