"""`python -m bench.deploy`: the deploy bench (bench/deploy/__init__.py)."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
