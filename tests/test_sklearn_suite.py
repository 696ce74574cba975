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
import warnings
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


#: the tests that pass with scikit-learn 1.9 (those of its private helpers included): they must
#: keep passing with any version that has them
PASSING = {
    "test_bic_1d_1component", "test_check_means", "test_check_precisions", "test_check_weights",
    "test_compute_log_det_cholesky", "test_convergence_detected_with_warm_start",
    "test_fitted_precision_covariance_concistency", "test_gaussian_mixture_aic_bic",
    "test_gaussian_mixture_attributes", "test_gaussian_mixture_estimate_log_prob_resp",
    "test_gaussian_mixture_fit", "test_gaussian_mixture_fit_best_params",
    "test_gaussian_mixture_fit_convergence_warning", "test_gaussian_mixture_fit_predict",
    "test_gaussian_mixture_fit_predict_n_init", "test_gaussian_mixture_log_probabilities",
    "test_gaussian_mixture_n_parameters", "test_gaussian_mixture_precisions_init_diag",
    "test_gaussian_mixture_predict_predict_proba", "test_gaussian_mixture_setting_best_params",
    "test_gaussian_mixture_single_component_stable", "test_gaussian_mixture_verbose",
    "test_gaussian_suffstat_sk_spherical", "test_init", "test_init_means_not_duplicated",
    "test_max_iter_zero", "test_means_for_all_inits", "test_multiple_init", "test_sample",
    "test_score", "test_score_samples", "test_suffstat_sk_diag", "test_suffstat_sk_full",
    "test_suffstat_sk_tied", "test_warm_start",
}


def _outcomes(tmp_path: Path) -> dict[str, str]:
    xml = tmp_path / "suite.xml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "sklearn_gm_adapter", "-p",
           "no:cacheprovider", f"--rootdir={SUITE.parent.parent.parent}", "-o", "addopts=",
           f"--junitxml={xml}", str(SUITE)]
    subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    states: dict[str, set] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        state = "failed" if kinds & {"failure", "error"} else \
            "skipped" if "skipped" in kinds else "passed"
        states.setdefault(case.get("name").split("[")[0], set()).add(state)
    # a test fails if any of its parametrizations fails, passes if any other one ran
    return {name: next(s for s in ("failed", "passed", "skipped") if s in seen)
            for name, seen in states.items()}


@pytest.mark.skipif(not SUITE.exists(), reason="scikit-learn installed without its tests")
def test_sklearn_gaussian_mixture_suite_passes_but_the_documented_differences(tmp_path):
    outcomes = _outcomes(tmp_path)
    failed = {name for name, state in outcomes.items() if state == "failed"}
    passed = {name for name, state in outcomes.items() if state == "passed"}
    assert not PASSING & failed, f"no longer passing: {sorted(PASSING & failed)}"
    assert len(passed) >= 30, sorted(passed)           # the suite really ran
    new = failed - set(DOCUMENTED) - PASSING
    if sklearn.__version__.startswith("1.9."):
        # the version these lists were made with: exactly the documented differences fail
        assert failed == set(DOCUMENTED), f"unexpected: {sorted(failed ^ set(DOCUMENTED))}"
    elif new:
        warnings.warn(f"scikit-learn {sklearn.__version__}: tests new to us fail on "
                      f"IncompleteGaussianMixture: {sorted(new)}", stacklevel=1)
