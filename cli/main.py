"""The `metalcubed` command: the composition root.

Each subcommand lives in its own module of this package with two functions,
`add_parser(subparsers)` and `run(args) -> int`; this module only dispatches. It is the one
place allowed to import every layer and wire adapters into ports (DESIGN.md).
"""

import argparse
import importlib
import sys

# subcommand -> module under metalcubed.cli; a module that is not there yet is skipped.
SUBCOMMANDS = ("validate", "sim", "manager", "crds", "kube", "devenv")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metalcubed",
        description="Metal3 bare-metal host management, simulation-first.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"metalcubed.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"metalcubed.cli.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
