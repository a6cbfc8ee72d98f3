"""The `hat` command: one argparse tree; each subcommand lives in its own small module."""

import argparse
import logging
import os
import sys

from hat_engine.errors import HatError
from search_jobs import (
    catalog_cmd,
    data_build,
    data_tokenizer,
    detect,
    latency,
    pipeline,
    search,
    serve,
    supernet_average,
    supernet_evaluate,
    supernet_train,
    translate,
)


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one clear line on stderr, exit 2, no usage dump."""

    def error(self, message: str) -> None:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hat", description="Hardware-aware translation serving (HAT).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    data = commands.add_parser("data", help="the En->De corpus").add_subparsers(
        dest="data_command", metavar="ACTION", parser_class=_Parser
    )
    data.required = True
    data_build.register(data)
    data_tokenizer.register(data)
    supernet = commands.add_parser("supernet", help="the SuperTransformer").add_subparsers(
        dest="supernet_command", metavar="ACTION", parser_class=_Parser
    )
    supernet.required = True
    supernet_train.register(supernet)
    supernet_evaluate.register(supernet)
    supernet_average.register(supernet)
    translate.register(commands)
    latency.register(commands)
    catalog_cmd.register(commands)
    pipeline.register(commands)
    search.register(commands)
    detect.register(commands)
    serve.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.run(args) or 0
    except HatError as exc:
        sys.stderr.write(f"hat: error: {exc}\n")
        return 1
    except BrokenPipeError:  # `hat ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("hat: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
