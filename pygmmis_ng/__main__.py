"""Command line: ``python -m pygmmis_ng demo [--N N] [--seed S]``."""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pygmmis_ng", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="deconvolve noisy 2D data and print the recovered model")
    demo.add_argument("--N", type=int, default=5000, help="number of samples (default 5000)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("-v", "--verbose", action="store_true", help="log the EM iterations")
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "demo":
        from .demo import format_report, run_demo

        if args.N < 10:
            parser.error("--N must be at least 10")
        print(format_report(run_demo(N=args.N, seed=args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
