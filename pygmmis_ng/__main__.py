"""Command line: ``python -m pygmmis_ng demo [--N N] [--seed S] [--out DIR]``."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DESCRIPTION = "pygmmis_ng: Gaussian mixtures for noisy, incomplete, selected data."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pygmmis_ng", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the pyGMMis paper's 2D test: four methods compared")
    demo.add_argument("--N", type=int, default=4000,
                      help="samples before noise and selection (default 4000)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--out", default=".",
                      help="folder for demo.png, made if needed (default: the current one)")
    demo.add_argument("-v", "--verbose", action="store_true", help="log the EM iterations")
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "demo":
        from .tools.demo import format_report, plot_demo, run_demo

        if args.N < 50:
            parser.error("--N must be at least 50")
        out_dir = Path(args.out)
        if out_dir.exists() and not out_dir.is_dir():
            parser.error(f"--out {args.out} is a file, not a folder")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            parser.error(f"--out {args.out}: cannot make the folder ({exc.strerror})")

        def progress(msg: str) -> None:
            print(msg, file=sys.stderr, flush=True)

        out = run_demo(N=args.N, seed=args.seed, progress=progress)
        print(format_report(out))
        try:
            path = plot_demo(out, out_dir / "demo.png")
        except ImportError:
            print('\n(no figure: matplotlib is not installed; pip install "pygmmis_ng[plot]")')
        else:
            print(f"\nfigure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
