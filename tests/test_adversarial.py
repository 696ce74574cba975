"""A hostile user's inputs (issue 16): every one gives a clean error or a correct result.

"Clean" means: an exception of the library's documented kinds (ValueError,
TypeError and our subclasses, CallbackError, FileNotFoundError), raised by
pygmmis_ng's (or scikit-learn's parameter checks') own code -- not by numpy or
scipy deep inside a computation -- whose message names the argument; the GMM
and the caller's arrays are left exactly as they were. "Correct" means: an
accepted input gives finite parameters, valid covariances and a finite logL
(no silent NaN/inf result). The generated part (hypothesis) throws random
dtypes, shapes and special values at every array argument.
"""
from __future__ import annotations

import atexit
import json
import os
import traceback
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pygmmis_ng as ng
from pygmmis_ng import GenerativeClassifier, IncompleteGaussianMixture

PKG = os.path.dirname(ng.__file__)
#: outcome counts of this run ("clean", "accepted", ...); written as JSON to the file named by
#: $ADVERSARIAL_COUNTS_FILE at exit (for the closing note), asserted on by the tests
COUNTS: dict = {}


def _dump_counts() -> None:
    path = os.environ.get("ADVERSARIAL_COUNTS_FILE")
    if path:
        with open(path, "w") as fh:
            json.dump(COUNTS, fh)


atexit.register(_dump_counts)
CLEAN = (ValueError, TypeError, ng.CallbackError, FileNotFoundError)
rng0 = np.random.default_rng(0)
X0 = np.vstack([rng0.normal(0, 1, (30, 2)), rng0.normal(4, 1, (30, 2))])
S0 = np.array([0.1 * np.eye(2)] * 60)
SEL = lambda c: (c[:, 0] < 5).astype(float) * 0.9 + 0.05          # noqa: E731


def start_gmm() -> ng.GMM:
    g = ng.GMM(2, 2)
    g.amp, g.mean, g.covar = np.array([0.5, 0.5]), np.array([[0.0, 0], [4, 4]]), \
        np.array([np.eye(2)] * 2)
    return g


def raised_by_us(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1].filename if frames else ""
    return last.startswith(PKG) or f"{os.sep}sklearn{os.sep}" in last


def outcome(call, watched: list) -> tuple[str, BaseException | None]:
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in watched]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
        result = ("accepted", None)
    except CLEAN as exc:
        result = ("clean" if raised_by_us(exc) else "raw", exc)
    except Exception as exc:                     # noqa: BLE001 (what the test is looking for)
        result = ("raw", exc)
    COUNTS[result[0]] = COUNTS.get(result[0], 0) + 1
    for a, b in zip(watched, before):
        if b is not None:
            same = all(p is q for p, q in zip(a.flat, b.flat)) if b.dtype.kind == "O" else \
                np.array_equal(a, b, equal_nan=b.dtype.kind in "fc")
            assert same, "the caller's array was changed"
    return result


def assert_valid_fit(g: ng.GMM, res) -> None:
    """An accepted fit must be a valid mixture with a finite logL (no silent wrong result)."""
    assert np.isfinite(res.logL)
    assert np.isfinite(g.amp).all() and abs(g.amp.sum() - 1) < 1e-9 and (g.amp >= 0).all()
    assert np.isfinite(g.mean).all() and np.isfinite(g.covar).all()
    assert (np.linalg.eigvalsh(g.covar)[:, 0] > 0).all()


def fit_case(kwargs: dict, token: str, expect: str) -> None:
    g = start_gmm()
    before = g.copy()
    kw = dict(kwargs)
    data = kw.pop("data", X0.copy())
    kw.setdefault("maxiter", 15)
    kw.setdefault("rng", 0)
    holder: dict = {}
    state, exc = outcome(lambda: holder.setdefault("res", ng.fit(g, data, **kw)),
                         [data] + [v for v in kw.values() if isinstance(v, np.ndarray)])
    assert state != "raw", f"raw error: {type(exc).__name__}: {exc}"
    if expect == "error":
        assert state == "clean", "bad input accepted silently"
        assert token.lower() in str(exc).lower(), f"message does not name {token!r}: {exc}"
        for name in ("amp", "mean", "covar"):
            assert np.array_equal(getattr(g, name), getattr(before, name)), "GMM changed"
    elif state == "accepted":
        assert_valid_fit(g, holder["res"])
    else:
        assert expect == "either", f"valid input refused: {exc}"


def _cb(value):
    return lambda c: value(c) if callable(value) else value


BAD_FIT = {
    # data
    "data": [np.array([["1", "2"]] * 5), X0.astype(str), X0 + 1j, np.zeros((0, 2)), np.zeros(5),
             np.zeros((3, 2, 2)), [[1, 2], [3]], np.full((10, 2), np.inf), X0 * 1e300,
             X0 + 1e300, np.array([[np.datetime64("2020-01-01")] * 2] * 5), "data", None,
             np.full((10, 2), np.nan), X0[:, :1], np.array([[1, None]] * 4, dtype=object)],
    "covar": [S0[:10], np.eye(3), -S0, S0 * np.nan, S0 + 1j, S0.astype(str), S0 * 1e300,
              np.array([[1.0, 2.0], [0.0, 1.0]]), np.array([[1.0, 2.0], [2.0, 1.0]]), "covar",
              np.ones((60, 2, 3))],
    "R": [np.eye(2) * 1e200, np.eye(3), np.full((2, 2), np.nan), np.zeros((2, 2)), "R",
          np.ones((59, 2, 2)), np.eye(2) + 1j],
    "sample_weight": [-np.ones(60), np.ones(59), np.full(60, np.nan), np.zeros(60),
                      np.full(60, "1"), np.full(60, np.inf), np.full(60, 1e308), "w"],
    "init_method": ["kmeanz", 3, "", lambda g, d, covar=None, rng=None: 1 / 0,
                    lambda g, d, covar=None, rng=None: setattr(g, "mean", np.full((2, 2), np.nan)),
                    lambda g, d, covar=None, rng=None: setattr(g, "covar", -np.ones((2, 2, 2)))],
    "w": [-1.0, np.inf, np.nan, 1e155, 1e30, "0.1", 1j, None, [0.1]],
    "cutoff": [0.0, -1.0, np.inf, "5", 1j],
    "tol": [-1e-3, np.nan, "1e-3", None],
    "maxiter": [-1, 1.5, "10", None, np.inf],
    "miniter": [-1, 2.5, 10**6, "1"],
    "oversampling": [0, -3, 10**9, 2.5, "10"],
    "n_init": [0, -1, 10**8, 1.5, "2"],
    "n_jobs": [0, -2, 1.5, "2"],
    "frozen": [{"amp": "x"}, {"bogus": [0]}, [5], ["a"], {"amp": [0, 1]}, "all"],
    "split_n_merge": [-1, "2", np.inf, 2],
    "rng": [-1, 1.5, "seed", object()],
    "background": ["x", 3, np.zeros((2, 2))],
    "covariance_type": ["Full", 3, None, "banded"],
    "reg_covar": [-1.0, np.inf, 1e200, "1e-6"],
    "accelerate": ["yes", 1, None],
    "sel_callback": [3, "sel", _cb(lambda c: np.ones((len(c), 1))), _cb(lambda c: np.full(len(c), "1")),
                     _cb(lambda c: np.ones(len(c)) + 0j), _cb(lambda c: np.full(len(c), 2.0)),
                     _cb(lambda c: -np.ones(len(c))), _cb(lambda c: np.full(len(c), np.nan)),
                     _cb(1.0), _cb(None), _cb(lambda c: np.zeros(len(c))),
                     _cb(lambda c: np.ones(len(c) + 1)), _cb(lambda c: 1 / 0)],
}
# keyword -> the word the error message must contain (default: the keyword itself)
TOKEN = {"sample_weight": "sample_weight", "init_method": "init", "maxiter": "iter",
         "miniter": "iter", "background": "background", "frozen": "frozen",
         "split_n_merge": "split_n_merge", "covar": "covar", "R": "R", "data": "data",
         "w": "w"}
# hostile values that are in fact valid (they must then give a correct fit)
VALID = {("split_n_merge", 2), ("sample_weight", "1e308")}

CASES = [pytest.param(k, v, id=f"{k}-{i}") for k, vals in BAD_FIT.items()
         for i, v in enumerate(vals)]


@pytest.mark.parametrize("key, value", CASES)
def test_bad_fit_argument_gives_a_clean_error(key, value):
    kwargs = {key: value}
    if key in ("covar",) and isinstance(value, np.ndarray) and value.shape == (60, 2, 2):
        pass
    if key == "R" and isinstance(value, np.ndarray) and value.ndim == 3:
        kwargs["data"] = X0[:59].copy() if value.shape[0] == 59 else X0.copy()
        kwargs["data"] = X0.copy()
    if key == "split_n_merge" and value == 2:
        kwargs["data"] = X0.copy()
        g_expect = "either"
    else:
        g_expect = "error"
    if key == "sample_weight" and isinstance(value, np.ndarray) and value.dtype.kind == "f" \
            and np.isfinite(value).all() and (value > 0).all():
        g_expect = "either"                         # 1e308 each: equal weights, a valid fit
    fit_case(kwargs, TOKEN.get(key, key), g_expect)


def _sel_fit(cb_name: str, cb) -> None:
    kw = {"sel_callback": SEL, "covar": 0.1 * np.eye(2), cb_name: cb}
    if cb_name == "sel_callback":
        kw.pop("covar")
    fit_case(kw, cb_name, "error")


BAD_COVAR_CB = [lambda c: np.eye(3), lambda c: np.array([[1.0, 2.0], [2.0, 1.0]]),
                lambda c: np.full((2, 2), np.nan), lambda c: -np.eye(2), lambda c: "S",
                lambda c: np.ones((len(c) + 1, 2, 2)), lambda c: np.eye(2) + 1j,
                lambda c: 1 / 0, lambda c: None, lambda c: np.array([[1.0, 0.5], [0.4, 1.0]])]


@pytest.mark.parametrize("i", range(len(BAD_COVAR_CB)))
def test_bad_covar_callback_gives_a_clean_error(i):
    _sel_fit("covar_callback", BAD_COVAR_CB[i])


@pytest.mark.parametrize("i", range(len(BAD_FIT["sel_callback"][2:])))
def test_bad_sel_callback_under_noise_gives_a_clean_error(i):
    kw = {"sel_callback": BAD_FIT["sel_callback"][2 + i], "covar": 0.1 * np.eye(2),
          "covar_callback": lambda c: 0.1 * np.eye(2)}
    fit_case(kw, "sel_callback", "error")


# -- generated arrays ------------------------------------------------------------------------
DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.bool_,
                          np.complex128, np.str_, np.object_])
FLOATS = st.sampled_from([0.0, 1.0, -1.0, 0.5, np.nan, np.inf, -np.inf, 1e300, 1e-300, 1e155,
                          3.0, -7.5, 1e10])


@st.composite
def arrays(draw, shapes):
    shape = draw(st.sampled_from(shapes))
    dtype = draw(DTYPES)
    values = draw(st.lists(FLOATS, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    arr = np.array(values, dtype=np.float64).reshape(shape)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype is np.str_:
            return arr.astype(str)
        if dtype is np.object_:
            out = arr.astype(object)
            if out.size:
                out.reshape(-1)[0] = draw(st.sampled_from([None, "x", 1j, 2]))
            return out
        return arr.astype(dtype)


SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


@SETTINGS
@given(data=arrays([(8, 2), (8, 1), (0, 2), (8,), (2, 4, 2), (8, 3)]))
def test_generated_data(data):
    fit_case({"data": data, "maxiter": 5}, "data", "either")


@SETTINGS
@given(covar=arrays([(2, 2), (60, 2, 2), (59, 2, 2), (2,), (3, 3)]))
def test_generated_noise(covar):
    fit_case({"covar": covar, "maxiter": 5}, "covar", "either")


@SETTINGS
@given(weight=arrays([(60,), (59,), (60, 1)]))
def test_generated_weights(weight):
    fit_case({"sample_weight": weight, "maxiter": 5}, "sample_weight", "either")


@SETTINGS
@given(R=arrays([(2, 2), (1, 2), (60, 2, 2), (2, 3)]))
def test_generated_projections(R):
    fit_case({"R": R, "maxiter": 5}, "R", "either")


@SETTINGS
@given(omega=arrays([(0,), (1,), (2, 1)]), size_shift=st.sampled_from([0, 1, -1]))
def test_generated_selection_results(omega, size_shift):
    def sel(c):
        n = len(c) + size_shift
        flat = np.resize(omega.reshape(-1), max(n, 0)) if omega.size else np.ones(max(n, 0))
        return flat.astype(omega.dtype) if omega.dtype.kind != "O" else flat
    fit_case({"sel_callback": sel, "maxiter": 5}, "sel_callback", "either")


# -- estimators and tools ----------------------------------------------------------------------
y0 = np.repeat([0, 1], 30)
EST_CASES = {
    "est-strings": (lambda: IncompleteGaussianMixture(2).fit(X0.astype(str)), "X"),
    "est-complex": (lambda: IncompleteGaussianMixture(2).fit(X0 + 1j), "X"),
    "est-bic-omega-0": (lambda: IncompleteGaussianMixture(
        2, sel_callback=lambda c: (c[:, 0] < 5).astype(float), random_state=0)
                        .fit(X0[X0[:, 0] < 5]).bic(np.array([[9.0, 9.0]])), "Omega"),
    "est-sample-huge": (lambda: IncompleteGaussianMixture(2).fit(X0).sample(10**12), "memory"),
    "est-sample-float": (lambda: IncompleteGaussianMixture(2).fit(X0).sample(2.5), "n_samples"),
    "est-verbose_interval": (lambda: IncompleteGaussianMixture(2, verbose_interval=0).fit(X0),
                             "verbose_interval"),
    "est-warm_start": (lambda: IncompleteGaussianMixture(2, warm_start="y").fit(X0), "warm_start"),
    "est-weights_init": (lambda: IncompleteGaussianMixture(2, weights_init=[1, 1]).fit(X0),
                         "weights"),
    "est-precisions": (lambda: IncompleteGaussianMixture(2, precisions_init=np.ones(2),
                                                         covariance_type="diag").fit(X0),
                       "precision"),
    "est-n_components": (lambda: IncompleteGaussianMixture(0).fit(X0), "n_components"),
    "clf-covar-N": (lambda: GenerativeClassifier(1).fit(X0, y0, covar=S0[:10]), "covar"),
    "clf-priors": (lambda: GenerativeClassifier(1, priors=[2.0, -1.0]).fit(X0, y0), "priors"),
    "clf-strings": (lambda: GenerativeClassifier(1).fit(X0.astype(str), y0), "X"),
    # the estimators take ints for integer parameters, as scikit-learn's (fit takes 2.0 for 2)
    **{f"est-{name}-float": (lambda name=name: IncompleteGaussianMixture(
        **{"n_components": 2, name: 2.0}).fit(X0), name)
       for name in ("n_components", "max_iter", "n_init", "oversampling", "verbose_interval",
                    "batch_size", "n_passes")},
    "clf-max_iter-float": (lambda: GenerativeClassifier(1, max_iter=5.0).fit(X0, y0), "max_iter"),
    "cv_fit-L": (lambda: ng.cv_fit(start_gmm(), X0, L=0), "L"),
    "stack_fit-rng-in-kwargs": (lambda: ng.stack_fit([start_gmm()], X0, [{"rng": 1}], L=2),
                                "rng"),
    "cv_fit-gmm": (lambda: ng.cv_fit("gmm", X0), "gmm"),
    "scan_K-empty": (lambda: ng.scan_K(X0, []), "K"),
    "scan_K-zero": (lambda: ng.scan_K(X0, [0]), "K"),
    "stack-type": (lambda: ng.stack(["a"], [1.0]), "GMM"),
    "stack-weights": (lambda: ng.stack([start_gmm()], [np.nan]), "weights"),
    "background-footprint": (lambda: ng.Background([[0, 0], [-1, 1]]), "footprint"),
}


@pytest.mark.parametrize("name", sorted(EST_CASES))
def test_estimators_and_tools_give_clean_errors(name):
    call, token = EST_CASES[name]
    state, exc = outcome(call, [X0])
    assert state == "clean", f"{state}: {type(exc).__name__ if exc else ''}: {exc}"
    assert token.lower() in str(exc).lower(), str(exc)


def test_more_workers_than_cpus_are_capped_with_a_warning():
    g = start_gmm()
    with pytest.warns(UserWarning, match="exceeds the .* CPUs"):
        ng.fit(g, X0, n_jobs=10**6, maxiter=3, rng=0, tol=1e-2)
    assert np.isfinite(g.mean).all()


def test_accepted_hostile_but_valid_inputs_fit_correctly():
    import pandas as pd

    df = pd.DataFrame(X0, columns=["a", "b"]).astype("Float64")
    df.iloc[0, 0] = pd.NA                                   # a missing value, as NaN
    for data, kw in ((df, {}), (X0.astype(np.float32), {}), ((X0 * 10).astype(np.int16), {}),
                     (np.where(np.arange(120).reshape(60, 2) == 3, None, X0).astype(object), {}),
                     (X0, {"covar": S0.astype(np.float32)})):
        g = ng.GMM(2, 2)
        res = ng.fit(g, data, rng=0, maxiter=50, **kw)
        assert_valid_fit(g, res)
