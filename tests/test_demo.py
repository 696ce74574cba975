"""The README's main job and the examples run and say what they claim."""
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np

from pygmmis_ng.__main__ import main
from pygmmis_ng.tools.demo import METHODS, run_demo

ROOT = Path(__file__).resolve().parents[1]


def test_demo_imputation_with_deconvolution_is_best():
    out = run_demo(N=2000, seed=3)
    score = {name: m["heldout"] - out["truth_heldout"] for name, m in out["methods"].items()}
    assert list(score) == list(METHODS)
    # ignoring the selection is far off; GMMis + deconvolution comes close to the truth
    assert score["GMMis + deconvolution"] > score["standard EM"] + 0.5
    assert score["GMMis + deconvolution"] > score["deconvolution"] + 0.5
    assert score["GMMis + deconvolution"] > -0.25
    for m in out["methods"].values():
        np.testing.assert_allclose(m["gmm"].amp.sum(), 1.0)


def test_demo_command_prints_table_and_writes_figure(tmp_path, capsys):
    assert main(["demo", "--N", "400", "--seed", "1", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    for name in ("truth",) + METHODS:
        assert name in captured.out
    assert "[4/4] GMMis + deconvolution" in captured.err      # progress goes to stderr
    png = tmp_path / "demo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_module_entry_point_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pygmmis_ng", "demo", "--N", "300", "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "mean log-density" in r.stdout
    assert (tmp_path / "demo.png").exists()


def test_demo_makes_its_output_folder_and_refuses_a_file(tmp_path, capsys):
    target = tmp_path / "new" / "figures"
    assert main(["demo", "--N", "300", "--out", str(target)]) == 0
    assert (target / "demo.png").exists()
    (tmp_path / "a_file").write_text("x")
    r = subprocess.run([sys.executable, "-m", "pygmmis_ng", "demo", "--out", str(tmp_path / "a_file")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode != 0 and "is a file, not a folder" in r.stderr


def test_help_is_plain_text_and_examples_help_does_not_fit():
    r = subprocess.run([sys.executable, "-m", "pygmmis_ng", "--help"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "``" not in r.stdout and "demo" in r.stdout
    for name in ("deconvolve_2d.py", "dask_cluster.py", "seed000_gmm_pair.py"):
        r = subprocess.run([sys.executable, str(ROOT / "examples" / name), "--help"],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 0 and r.stdout.startswith("usage:"), (name, r.stderr)
        assert "iterations" not in r.stdout and "logL" not in r.stdout


def test_example_deconvolve_2d():
    mod = runpy.run_path(str(ROOT / "examples" / "deconvolve_2d.py"))
    truth, plain, xd = mod["main"](N=3000, seed=2)
    tw = np.trace(truth.covar.sum(0))
    assert abs(np.trace(xd.covar.sum(0)) - tw) < 0.1 * tw
    assert np.trace(plain.covar.sum(0)) > 1.3 * tw


def test_demo_figure_has_truth_panel_axes_legend_colour_scale_and_scores():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pygmmis_ng.tools.demo import figure_demo

    out = run_demo(N=400, seed=1)
    fig = figure_demo(out)
    try:
        panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        density, scores = panels[:5], panels[5]
        assert len(panels) == 6
        assert density[0].get_title().startswith("truth")
        for ax, name in zip(density[1:], METHODS):
            gap = out["methods"][name]["heldout"] - out["truth_heldout"]
            assert ax.get_title().startswith(name) and f"{gap:+.3f} vs truth" in ax.get_title()
        for ax in density:
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
            assert len(ax.get_xticks()) > 2 and len(ax.get_yticks()) > 2
            labels = [t.get_text() for t in ax.get_legend().get_texts()]
            assert "selection boundary" in labels
            assert any("samples" in label or "draws" in label for label in labels)
        colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "log10 density"
        assert [t.get_text() for t in scores.get_yticklabels()] == list(METHODS)
        assert "truth" in scores.get_xlabel()
    finally:
        plt.close(fig)
