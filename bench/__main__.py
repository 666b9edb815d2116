"""`python -m bench [serving|servers|cost|soak|fuzz|all]`: run benchmarks, print Markdown for the
README.

Exits 1 when the soak or the fuzz run misses its criteria; the figures are never asserted.
"""

from __future__ import annotations

import argparse
import sys

from . import cost, fuzz, servers, serving, soak

BENCHMARKS = ("serving", "servers", "cost", "soak", "fuzz")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", nargs="?", default="all", choices=(*BENCHMARKS, "all"))
    parser.add_argument("--workers", type=int, default=2, help="workers per server (default 2)")
    parser.add_argument("--seconds", type=float, help="seconds per serving point / soak run")
    parser.add_argument("--rounds", type=int, default=1, help="serving: best of N rounds")
    parser.add_argument(
        "--server",
        action="append",
        dest="servers",
        metavar="NAME",
        help="serving: only this server (aiship, floor, mlflow, mlserver, kserve, bentoml, "
        "litserve); repeat for more (default: all)",
    )
    args = parser.parse_args(argv)

    seconds = {"seconds": args.seconds} if args.seconds else {}
    serving_options = {"names": args.servers, "rounds": args.rounds, **seconds}
    passed = True
    for name in BENCHMARKS if args.benchmark == "all" else (args.benchmark,):
        print(f"## {name}\n", flush=True)
        if name == "serving":
            ok, text = True, serving.run(args.workers, **serving_options)
        elif name == "servers":
            ok, text = True, servers.run(args.workers, rounds=args.rounds, **seconds)
        elif name == "cost":
            ok, text = True, cost.run()
        elif name == "soak":
            ok, text = soak.run(args.workers, **seconds)
        else:
            ok, text = fuzz.run(args.workers)
        passed = passed and ok
        print(text, flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
