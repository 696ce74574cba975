"""User callbacks get copies: one that writes into its ``coords`` changes neither the caller's
data nor the fit's own imputation draws -- the fit is bit for bit the fit with a callback that
keeps its hands off, for sel_callback and covar_callback, n_jobs=1 and 2, with and without
missing values."""
from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

import pygmmis_ng as ng
from pygmmis_ng.selection import imputation

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

NOISE = np.array([[0.05, 0.01], [0.01, 0.04]])


def selection(coords):
    """A smooth cut in x_0 (> 0 everywhere; NaN in x_1 does not matter)."""
    return 1.0 / (1.0 + np.exp(3.0 * (coords[:, 0] - 1.0)))


def noise(coords):
    return NOISE


def scribbling(callback, value=np.nan):
    """``callback``, which then overwrites its argument."""
    def scribbler(coords):
        out = callback(coords)
        coords[...] = value
        return out
    return scribbler


def observed(missing: bool) -> np.ndarray:
    rng = np.random.default_rng(5)
    truth = ng.GMM(2, 2)
    truth.amp = [0.6, 0.4]
    truth.mean = [[-0.5, 0.0], [1.5, 1.0]]
    truth.covar = [np.eye(2) * 0.5, [[0.4, 0.1], [0.1, 0.3]]]
    x = truth.draw(3000, rng=rng)
    x = x + rng.multivariate_normal(np.zeros(2), NOISE, size=len(x))
    x = x[rng.random(len(x)) < selection(x)]
    if missing:
        x[rng.random(len(x)) < 0.15, 1] = np.nan
    return x


def fit(data, n_jobs, sel_callback=selection, covar_callback=noise):
    gmm = ng.GMM(2, 2)
    result = ng.fit(gmm, data, covar=NOISE, sel_callback=sel_callback,
                    covar_callback=covar_callback, init_method="kmeans", maxiter=25, rng=1,
                    n_jobs=n_jobs)
    return gmm, result


_reference: dict = {}


def reference(n_jobs, missing):
    """The fit with callbacks that leave their argument alone (once per case)."""
    if (n_jobs, missing) not in _reference:
        _reference[n_jobs, missing] = fit(observed(missing), n_jobs)
    return _reference[n_jobs, missing]


@pytest.fixture(autouse=True)
def small_blocks(settings, monkeypatch):
    # several blocks of imputation draws per iteration: with n_jobs=2 both workers draw
    settings(imputation_block=1024)
    yield
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("missing", [False, True], ids=["complete", "missing"])
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("which", ["sel_callback", "covar_callback"])
def test_a_callback_writing_into_coords_changes_nothing(which, n_jobs, missing):
    data = observed(missing)
    pristine = data.copy()
    plain = {"sel_callback": selection, "covar_callback": noise}
    kwargs = dict(plain, **{which: scribbling(plain[which])})
    g, r = fit(data, n_jobs, **kwargs)
    assert data.tobytes() == pristine.tobytes()            # bitwise, NaN included
    g0, r0 = reference(n_jobs, missing)
    assert r.n_imputed > 100 and r.n_iter > 1              # the draws did matter
    assert r.logL == r0.logL and r.n_iter == r0.n_iter and r.orig_size == r0.orig_size
    for key in ("amp", "mean", "covar"):
        assert getattr(g, key).tobytes() == getattr(g0, key).tobytes(), key


def test_callbacks_never_see_the_callers_array():
    data = observed(missing=True)
    shared = []

    def watching(coords):
        shared.append(np.shares_memory(coords, data))
        return selection(coords)

    fit(data, 1, sel_callback=watching)
    assert shared and not any(shared)


def test_evaluate_functions_pass_copies():
    coords = np.random.default_rng(0).normal(size=(50, 2))
    pristine = coords.copy()
    omega = imputation.evaluate_selection(scribbling(selection, 0.0), coords, "test")
    S = imputation.evaluate_noise(scribbling(noise, 0.0), coords, "test")
    assert coords.tobytes() == pristine.tobytes()
    np.testing.assert_array_equal(omega, selection(pristine))
    np.testing.assert_array_equal(S, NOISE)


def test_draw_with_writing_callbacks_is_unchanged():
    gmm = reference(1, False)[0]
    plain = ng.draw(gmm, 500, sel_callback=selection, covar_callback=noise, rng=3)
    written = ng.draw(gmm, 500, sel_callback=scribbling(selection),
                      covar_callback=scribbling(noise), rng=3)
    for a, b in zip(plain, written):
        if isinstance(a, np.ndarray):
            assert a.tobytes() == b.tobytes()
        else:
            assert a == b
