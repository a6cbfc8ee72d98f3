"""`hat serve [--host H] [--port N] [--workers N]`: start the BentoML translation service (CONTRACT §4).

Settings come from the environment (`service.settings`: HAT_CATALOG, HAT_SLA_MS, HAT_BACKEND, HAT_THREADS, ...).
They and the catalog are checked here first, so a bad setting or a missing catalog is one line on stderr; then
this process becomes `bentoml serve` (same PID, so stopping it stops the server).
"""

import argparse
import os
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="serve the catalog with BentoML (default 127.0.0.1:3000)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    p.add_argument("--workers", type=int, help="BentoML worker processes (default HAT_WORKERS or 1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise SystemExit(f"hat: error: --port {args.port} must lie in 1..65535")
    if args.workers is not None:
        if args.workers < 1:
            raise SystemExit(f"hat: error: --workers {args.workers} must be at least 1")
        os.environ["HAT_WORKERS"] = str(args.workers)
    import service
    from service.settings import load_settings

    load_settings()  # raises HatError (one line, exit 1) on a bad setting or catalog
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    root = Path(service.__file__).resolve().parents[1]
    argv = [sys.executable, "-m", "bentoml", "serve", "service.service:Translator", "--host", args.host,
            "--port", str(args.port), "--working-dir", str(root)]  # fmt: skip
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return 0  # not reached
