"""Progress on long work: the tqdm bar (``progress=``) and the ELAPSED column of the INFO table."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from tqdm import tqdm

import pygmmis_ng as ng
from pygmmis_ng.fitting.problem import progress as prog


@pytest.fixture
def data():
    truth = ng.GMM(3, 2)
    truth.amp = np.array([0.3, 0.3, 0.4])
    truth.mean = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    truth.covar = np.tile(np.eye(2), (3, 1, 1))
    return truth, truth.draw(600, rng=0)


def _bar_text(err: str) -> str:
    """The last state of a tqdm bar written to a stream (carriage returns separate updates)."""
    return err.replace("\r", "\n").strip().splitlines()[-1]


def test_progress_bar_shows_iterations_logL_and_elapsed(data, capsys):
    _, X = data
    res = ng.fit(ng.GMM(3, 2), X, rng=0, progress=True)
    last = _bar_text(capsys.readouterr().err)
    assert last.startswith("pygmmis_ng fit")
    assert f"{res.n_iter + 1}it" in last                 # one step per row of the table
    assert f"logL={res.logL:.6f}" in last
    assert "delta=" in last and "00:0" in last           # the change and the elapsed time
    assert len(tqdm._instances) == 0                     # closed


def test_progress_bar_shows_the_imputed_count(data, capsys):
    truth, X = data
    sel = lambda x: (x[:, 0] < 5.0).astype(float)       # noqa: E731
    X = X[sel(X) > 0]
    with pytest.warns(ng.ConvergenceWarning):
        res = ng.fit(ng.GMM(3, 2), X, sel_callback=sel, rng=1, progress=True, maxiter=5,
                     miniter=5)
    last = _bar_text(capsys.readouterr().err)
    imputed = res.orig_size - len(X)
    assert f"imputed={imputed:.0f}" in last


def test_no_bar_when_off_or_not_interactive(settings, data, capsys, monkeypatch):
    _, X = data
    ng.fit(ng.GMM(3, 2), X, rng=0, progress=False)
    ng.fit(ng.GMM(3, 2), X, rng=0)                       # automatic: the tests are not a terminal
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(prog, "interactive", lambda: True)
    ng.fit(ng.GMM(3, 2), X, rng=0)                       # interactive, but done within the delay
    assert capsys.readouterr().err == ""
    settings(progress_delay=0.0)
    ng.fit(ng.GMM(3, 2), X, rng=0)                       # interactive and past the delay
    assert _bar_text(capsys.readouterr().err).startswith("pygmmis_ng fit")


def test_bad_progress_is_refused_before_the_fit_changes_anything(data):
    truth, X = data
    gmm = truth.copy()
    with pytest.raises(TypeError, match="progress must be None"):
        ng.fit(gmm, X, progress="yes")
    np.testing.assert_array_equal(gmm.mean, truth.mean)
    with pytest.raises(TypeError, match="progress must be None"):
        ng.IncompleteGaussianMixture(2, progress=1).fit(X)
    assert prog.check_progress(np.bool_(False)) is False


def test_bar_is_closed_after_an_error(data, capsys):
    _, X = data

    def broken(x):
        raise RuntimeError("selection failed")

    with pytest.raises(Exception, match="selection failed"):
        ng.fit(ng.GMM(3, 2), X, sel_callback=broken, rng=0, progress=True)
    assert len(tqdm._instances) == 0
    assert prog._CURRENT.get() is None


def test_scan_K_and_classifier_show_one_bar_over_their_fits(data, capsys):
    _, X = data
    ng.scan_K(X, [1, 2, 3], rng=0, progress=True)
    err = capsys.readouterr().err
    assert _bar_text(err).startswith("scan_K") and "3/3" in _bar_text(err)
    assert "pygmmis_ng fit" not in err                   # the fits inside draw no bars
    y = (X[:, 0] > 2).astype(int)
    ng.GenerativeClassifier(2, progress=True, random_state=0).fit(X, y)
    err = capsys.readouterr().err
    assert _bar_text(err).startswith("classes") and "2/2" in _bar_text(err)
    assert "pygmmis_ng fit" not in err


def test_estimator_passes_progress_to_the_fit(data, capsys):
    _, X = data
    est = ng.IncompleteGaussianMixture(3, progress=True, random_state=0).fit(X)
    assert f"logL={est.lower_bound_:.6f}" in _bar_text(capsys.readouterr().err)


def test_info_table_has_elapsed_seconds(data, caplog):
    _, X = data
    with caplog.at_level(logging.INFO, logger="pygmmis_ng"):
        res = ng.fit(ng.GMM(3, 2), X, rng=0, tol=1e-8)
    lines = [r.getMessage().split() for r in caplog.records if r.name == "pygmmis_ng"]
    assert lines[0][-1] == "ELAPSED"
    elapsed = [float(row[-1]) for row in lines[1:] if row[0].isdigit()]
    assert len(elapsed) == res.n_iter + 1
    assert elapsed == sorted(elapsed) and 0.0 <= elapsed[0]
    assert elapsed[-1] <= res.elapsed + 0.005                    # printed to 2 decimals
