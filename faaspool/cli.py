"""The ``faaspool`` command: ``faaspool new`` (starter projects) and ``faaspool simulate``
(the local fleet simulator). Each subcommand lives in its own module, imported on use."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help). Each module offers add_arguments(parser) and
# run(args) -> int.
_COMMANDS = {
    "new": ("faaspool.scaffold", "create a starter project for lambda, gcf or azure"),
    "simulate": ("faaspool.simulate", "run a local FaaS fleet against Redis, with faults"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``faaspool`` console script."""
    parser = argparse.ArgumentParser(prog="faaspool", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in _COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            command.set_defaults(_missing=f"faaspool {name} is unavailable: {exc}")
            continue
        module.add_arguments(command)
        modules[name] = module
    args = parser.parse_args(argv)
    missing = getattr(args, "_missing", None)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    result: int = modules[args.command].run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
