"""The `act3d` command line: one sub-command per job, each a thin wrapper over the library."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from act3d import __version__
from act3d.errors import Act3dError

log = logging.getLogger("act3d")


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (the command's --help says the rest)."""

    def error(self, message: str):  # type: ignore[override]
        fail(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(2)


def fail(message: str) -> None:
    """An expected failure, as the one line the user sees on stderr."""
    print("act3d: error: " + " ".join(str(message).split()), file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="act3d",
        description="Self-supervised 3D point-cloud learning with cross-modal teachers (ACT, ICLR 2023).",
    )
    parser.add_argument("--version", action="version", version=f"act3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for register in _COMMANDS:
        register(commands)
    return parser


from act3d.cli import data, demo, evaluate, infer, interop, train  # noqa: E402

_COMMANDS = [
    demo.register,
    data.register,
    train.register,
    evaluate.register,
    infer.register,
    interop.register,
]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error already reported in one line
        return int(done.code or 0)
    level = logging.DEBUG if args.verbose else logging.INFO
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 informs; every rank warns and fails
        level = max(level, logging.WARNING)
    logging.basicConfig(level=level, format="%(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except Act3dError as err:  # bad values, files, checkpoints, devices: the message says which and why
        fail(str(err))
        return 2
    except OSError as err:  # no space, no permission, a folder that vanished
        fail(f"{err.filename}: {err.strerror}" if err.filename else str(err))
        return 2
    except KeyboardInterrupt:
        fail(
            "interrupted; finished stages and the last checkpoint are kept, re-run with --resume to continue"
        )
        return 130
    except Exception:  # anything else is a bug in act3d: show the traceback and say so
        traceback.print_exc()
        print(
            "act3d: this is a bug in act3d, not a problem with your input (traceback above); please report it",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
