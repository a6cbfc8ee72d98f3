"""`hat detect [--backend B] [--threads N]`: print this host's hardware profile as JSON, with its `profile_id`."""

import argparse
import json

from hat_engine.hardware import BACKENDS, detect


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("detect", help="print this host's hardware profile (JSON, with profile_id)")
    p.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="inference runtime (default onnxruntime)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: the effective CPU limit, at least 1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(json.dumps(detect(args.backend, args.threads).to_dict(), indent=2))
    return 0
