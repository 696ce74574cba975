"""The README's main job and the examples run and say what they claim."""
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np

from pygmmis_ng.__main__ import main
from pygmmis_ng.demo import run_demo

ROOT = Path(__file__).resolve().parents[1]


def test_demo_deconvolution_beats_standard_em():
    out = run_demo(N=2000, seed=3)
    m = out["methods"]
    # deconvolution predicts noise-free truth draws much better than EM on noisy data,
    # and comes close to the truth itself
    assert m["deconvolution"]["heldout"] > m["standard EM"]["heldout"] + 0.1
    assert m["deconvolution"]["heldout"] > out["truth_heldout"] - 0.05


def test_demo_command_prints_report(capsys):
    assert main(["demo", "--N", "500", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "deconvolution" in text and "standard EM" in text and "truth" in text


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "pygmmis_ng", "demo", "--N", "300"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "mean log-density" in r.stdout


def test_example_deconvolve_2d():
    mod = runpy.run_path(str(ROOT / "examples" / "deconvolve_2d.py"))
    truth, plain, xd = mod["main"](N=3000, seed=2)
    tw = np.trace(truth.covar.sum(0))
    assert abs(np.trace(xd.covar.sum(0)) - tw) < 0.1 * tw
    assert np.trace(plain.covar.sum(0)) > 1.3 * tw
