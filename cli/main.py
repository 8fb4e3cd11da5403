"""The `metalcubed` command: the composition root.

Each subcommand lives in its own module of this package with two functions,
`add_parser(subparsers)` and `run(args) -> int`; this module only dispatches. It is the one
place allowed to import every layer and wire adapters into ports (DESIGN.md).

Only the chosen subcommand's module is imported and its parser built, so one subcommand's
environment (say `LEASE_DURATION_SECONDS=abc`, read by `manager`) cannot break another, and a
problem building the chosen one is a one-line error (exit 2), not a traceback. A closed stdout
(`metalcubed crds | head -1`) ends the command quietly with 141 (128 + SIGPIPE), as a shell
tool killed by SIGPIPE would; Ctrl-C with 130.
"""

import argparse
import importlib
import os
import sys
from types import ModuleType

from metalcubed.cli import checks

# subcommand -> module under metalcubed.cli; a module that is not there yet is skipped.
SUBCOMMANDS = ("validate", "sim", "manager", "crds", "kube", "devenv")
EXIT_BROKEN_PIPE = 141
EXIT_INTERRUPTED = 130


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"metalcubed.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"metalcubed.cli.{name}":
            return None
        raise


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with `only` that one.

    Raises:
        checks.BadInput: building the `only` subcommand's parser failed (bad environment).
    """
    parser = argparse.ArgumentParser(
        prog="metalcubed",
        description="Metal3 bare-metal host management, simulation-first.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (only,) if only else SUBCOMMANDS:
        module = _module(name)
        if module is None:
            continue
        try:
            module.add_parser(sub)
        except (ValueError, TypeError, OSError) as exc:
            if only:
                raise checks.BadInput(f"metalcubed {name}: {exc}") from exc
            # Listing every command (help, a typo): still list this one.
            sub.add_parser(name, help=f"(unavailable here: {exc})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    chosen = args_in[0] if args_in and args_in[0] in SUBCOMMANDS else None
    try:
        parser = build_parser(chosen)
    except checks.BadInput as exc:
        print(exc, file=sys.stderr)
        return checks.EXIT_BAD_INPUT
    args = parser.parse_args(args_in)
    if not getattr(args, "run", None):
        parser.print_help()
        return checks.EXIT_BAD_INPUT
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


def _silence_stdout() -> None:
    """The reader went away: point stdout at /dev/null so the exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
