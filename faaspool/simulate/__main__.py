"""``python -m faaspool.simulate [options]``: the same as ``faaspool simulate``."""

from __future__ import annotations

import sys

from faaspool.cli import main

if __name__ == "__main__":
    sys.exit(main(["simulate", *sys.argv[1:]]))
