"""benchmarks/run_all.py: every benchmark is listed, and RESULTS.md is rebuilt from outputs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load():
    spec = importlib.util.spec_from_file_location("run_all", BENCH / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_benchmark_script_is_run():
    scripts = {p.stem for p in BENCH.glob("bench_*.py")}
    assert set(load().BENCHMARKS) == scripts


def test_output_keeps_tables_and_boxes_the_rest():
    r = load()
    md = r.render_output("start\n| a | b |\n|---|---|\n| 1 | 2 |\nend\n")
    assert md == "```text\nstart\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```text\nend\n```"


def test_merge_replaces_sections_and_keeps_hand_written_results(tmp_path):
    r = load()
    hand = "# Benchmark results\n\nold figures\n\n## Core\n| 9 | 9 |\n"
    one = r.merge(hand, {"bench_core": r.render_section("bench_core", "| 1 |\n", 60.0, 0)})
    assert "## `bench_core.py`" in one and "| 1 |" in one
    assert r.LEGACY in one and "#### Core" in one and "old figures" in one
    two = r.merge(one, {"bench_core": r.render_section("bench_core", "| 2 |\n", 60.0, 3),
                        "bench_tol": r.render_section("bench_tol", "| t |\n", None, 0)})
    assert "| 1 |" not in two and "| 2 |" in two and "exited with code 3" in two
    assert two.index("bench_core.py") < two.index("bench_tol.py") < two.index(r.LEGACY)
    assert two.count("#### Core") == 1 and "From a saved log" in two
    assert two.count("# Benchmark results\n") == 1
