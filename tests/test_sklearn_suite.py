"""scikit-learn's own GaussianMixture tests, pointed at IncompleteGaussianMixture (issue 15).

The installed ``sklearn/mixture/tests/test_gaussian_mixture.py`` runs in a
separate pytest process with the plugin ``sklearn_gm_adapter`` (nothing of
scikit-learn's is copied here). Every test must pass except the documented
differences below (README, "Coming from scikit-learn"); the set of failures
must be exactly that, so a regression and a fixed difference both show.
"""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sklearn

SUITE = Path(sklearn.__file__).parent / "mixture" / "tests" / "test_gaussian_mixture.py"

#: test -> why it fails on IncompleteGaussianMixture
DOCUMENTED = {
    # diag on overlapping blobs: plain EM needs ~4500 steps to our criterion (the gain still to
    # come, estimated, below tol); scikit-learn stops after ~30 while the fit is still 1e-4 short
    "test_monotonic_likelihood": "stricter convergence test",
    # 10 components on 2 distinct points: components keep collapsing; we raise CollapseError
    # also with reg_covar=1e-6 where scikit-learn leaves components empty
    "test_regularisation": "CollapseError with reg_covar > 0 on degenerate data",
    # call scikit-learn's private GaussianMixture._initialize / _set_parameters
    "test_gaussian_mixture_precisions_init": "private API",
    # counts calls of scikit-learn's private _estimate_gaussian_parameters
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": "private function",
}


def _outcomes(tmp_path: Path) -> dict[str, str]:
    xml = tmp_path / "suite.xml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "sklearn_gm_adapter", "-p",
           "no:cacheprovider", f"--rootdir={SUITE.parent.parent.parent}", "-o", "addopts=",
           f"--junitxml={xml}", str(SUITE)]
    subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    out: dict[str, str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = case.get("name").split("[")[0]
        kinds = {child.tag for child in case}
        state = "failed" if kinds & {"failure", "error"} else \
            "skipped" if "skipped" in kinds else "passed"
        # a test fails if any of its parametrizations fails
        if out.get(name) != "failed":
            out[name] = state if out.get(name) in (None, "skipped") or state == "failed" \
                else out[name]
    return out


@pytest.mark.skipif(not SUITE.exists(), reason="scikit-learn installed without its tests")
def test_sklearn_gaussian_mixture_suite_passes_but_the_documented_differences(tmp_path):
    outcomes = _outcomes(tmp_path)
    failed = {name for name, state in outcomes.items() if state == "failed"}
    passed = {name for name, state in outcomes.items() if state == "passed"}
    assert failed == set(DOCUMENTED), f"unexpected: {failed ^ set(DOCUMENTED)}"
    # the suite really ran: 35 of its 39 test functions (not counting the array-API ones) pass
    assert len(passed) >= 30, sorted(passed)
