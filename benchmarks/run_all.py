"""Run every benchmark and write benchmarks/RESULTS.md anew from their output.

    python benchmarks/run_all.py [--quick] [--only bench_core bench_hipparcos ...]

Needs ``pip install ".[bench,dask]"``; set ``XD_PY`` to compare with Bovy's C
extreme deconvolution (see bench_data_model.py). Each script runs in its own
process, one after the other, on an otherwise idle machine; its docstring (what
it measures) and its printed output (the tables) become one section of
RESULTS.md, under a header with the date, the versions and the machine. So no
figure in RESULTS.md can be older than the code that produced the rest.

``--quick`` runs each script's smoke size and writes RESULTS.quick.md instead
(a check that everything runs; its figures are not results). ``--only`` runs
the named scripts and replaces only their sections in the existing file.
``--log SCRIPT=FILE`` takes that script's output from a log of an earlier run
of it (``python bench_X.py > FILE``, e.g. on another machine) instead of
running it again (alone: only those sections are replaced).
"""
from __future__ import annotations

import argparse
import ast
import datetime
import itertools
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: script -> (arguments of the full run, arguments of the smoke run)
BENCHMARKS = {
    "bench_core": ([], ["--quick"]),
    "bench_scale": ([], ["--quick"]),
    "bench_data_model": ([], ["--quick"]),
    "bench_incompleteness": ([], ["--N", "4000", "--seeds", "2"]),
    "bench_tol": ([], ["--seeds", "1"]),
    "bench_covariance_types": ([], ["--n", "10000"]),
    "bench_kernels": ([], []),
    "bench_kernels_more": ([], []),
    "bench_float32": ([], ["--quick"]),
    "bench_hipparcos": ([], ["--quick"]),
    "bench_dask": ([], []),
    "bench_out_of_core": ([], ["--sizes", "1e5"]),
    "bench_online": (["--plot", "online_passes.png"], ["--quick"]),
    "bench_dask_stress": ([], ["--quick"]),
    "bench_convergence": ([], ["--quick"]),
    "bench_censored": ([], ["--quick"]),
    "bench_online_selection": ([], ["--seeds", "1", "--large", "2e5", "--large-batch", "4096"]),
}

SECTION = re.compile(r"^## `(bench_\w+)\.py`", re.M)
LEGACY = "## Earlier results, assembled by hand (not yet re-run by run_all.py)"


def describe(script: str) -> tuple[str, str]:
    """The script's docstring: its first line and the rest."""
    doc = ast.get_docstring(ast.parse((HERE / f"{script}.py").read_text())) or script
    first, _, rest = doc.partition("\n")
    return first.strip(), rest.strip()


def render_output(text: str) -> str:
    """Markdown tables stay tables; every other run of lines becomes a text block."""
    blocks = []
    for is_table, group in itertools.groupby(text.splitlines(), key=lambda ln: ln.startswith("|")):
        lines = list(group)
        if is_table:
            blocks.append("\n".join(lines))
        elif any(line.strip() for line in lines):
            blocks.append("```text\n" + "\n".join(lines).strip("\n") + "\n```")
    return "\n\n".join(blocks)


def render_section(script: str, output: str, seconds: float | None, returncode: int) -> str:
    first, rest = describe(script)
    status = "" if returncode == 0 else f" **(exited with code {returncode})**"
    ran = "*From a saved log of its output.*" if seconds is None else \
        f"*Ran in {seconds / 60:.1f} min{status}.*"
    parts = [f"## `{script}.py`: {first}", rest, ran, render_output(output)]
    return "\n\n".join(p for p in parts if p) + "\n"


def header() -> str:
    def version(name):
        try:
            from importlib.metadata import version as v
            return v(name)
        except Exception:
            return "not installed"
    versions = ", ".join(f"{n} {version(n)}" for n in
                         ("pygmmis_ng", "numpy", "scipy", "scikit-learn", "numba", "pygmmis", "dask"))
    return (f"# Benchmark results\n\nProduced by `python benchmarks/run_all.py` on "
            f"{datetime.date.today().isoformat()}: Python {platform.python_version()}, {versions}; "
            f"{os.cpu_count()} cores, {platform.machine()}. Bovy's C XD: "
            f"{'built, from ' + os.environ['XD_PY'] if os.environ.get('XD_PY') else 'not built'}.\n"
            "Every section below is one script's docstring and its complete output; speed-ups "
            "compare codes run in one process on the same data from the same start.\n")


def merge(old: str, sections: dict[str, str]) -> str:
    """Replace (or add) the given scripts' sections in an existing RESULTS.md.

    Text of the old file outside any script's section (results assembled by hand
    before this script existed) is kept at the end, under a heading that says so,
    until a full run replaces it.
    """
    old, marker, legacy = old.partition(LEGACY)
    starts = [(m.start(), m.group(1)) for m in SECTION.finditer(old)]
    kept = {name: old[s:(starts[i + 1][0] if i + 1 < len(starts) else len(old))]
            for i, (s, name) in enumerate(starts)}
    kept.update(sections)
    if not marker and not starts:                  # a file written by hand: demote its headings
        hand = old.strip().removeprefix("# Benchmark results")
        legacy = re.sub(r"^(#+) ", r"\1## ", hand.strip(), flags=re.M)
    body = "\n".join(kept[s].rstrip() + "\n" for s in BENCHMARKS if s in kept)
    if legacy.strip():
        body += f"\n{LEGACY}\n\n{legacy.strip()}\n"
    return header() + "\n" + body


def run(script: str, args: list[str]) -> tuple[str, float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, f"{script}.py", *args], cwd=HERE, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(proc.stdout, flush=True)
    return proc.stdout, time.perf_counter() - t0, proc.returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes, to RESULTS.quick.md")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="SCRIPT",
                        help=f"some of: {' '.join(BENCHMARKS)}")
    parser.add_argument("--log", nargs="+", default=[], metavar="SCRIPT=FILE",
                        help="use a saved output of SCRIPT instead of running it")
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.log):
        parser.error("--log takes SCRIPT=FILE, e.g. bench_core=core.log")
    logs = dict(item.split("=", 1) for item in args.log)
    if not set(logs) <= set(BENCHMARKS):
        parser.error(f"--log names unknown scripts: {sorted(set(logs) - set(BENCHMARKS))}")
    target = HERE / ("RESULTS.quick.md" if args.quick else "RESULTS.md")
    sections = {}
    to_run = args.only if args.only else ([] if logs else list(BENCHMARKS))
    for script in to_run:
        print(f"==> {script}", flush=True)
        output, seconds, code = run(script, BENCHMARKS[script][1 if args.quick else 0])
        sections[script] = render_section(script, output, seconds, code)
    for script, path in logs.items():
        sections[script] = render_section(script, Path(path).read_text(), None, 0)
    partial = args.only or logs
    old = target.read_text() if (partial and target.exists()) else ""
    target.write_text(merge(old, sections))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
