"""Bad callbacks and backgrounds: fit() and draw() fail with the right exception and a clear
message, and a failing fit leaves the GMM (and the Background's amp) passed in untouched --
also when the failure only surfaces during the EM iterations."""
from __future__ import annotations

import numpy as np
import pytest

import pygmmis_ng as ng

K, D, N = 2, 2, 200
BG_AMP = 0.15


def make_gmm() -> ng.GMM:
    gmm = ng.GMM(K, D)
    gmm.amp = [0.3, 0.7]
    gmm.mean = [[-1.0, 0.5], [1.5, -0.5]]
    gmm.covar = [[[1.0, 0.2], [0.2, 0.8]], [[0.6, -0.1], [-0.1, 0.9]]]
    return gmm


def snapshot(gmm):
    return gmm.amp.copy(), gmm.mean.copy(), gmm.covar.copy()


def assert_unchanged(gmm, before):
    for now, then in zip(snapshot(gmm), before):
        assert np.array_equal(now, then)
        assert now.tobytes() == then.tobytes()        # bitwise, including -0.0 / NaN payloads


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(N, D))


def ones(c):
    return np.ones(len(c))


def half_plane(c):
    """A valid deterministic selection: keeps x_0 < 1.0 (the data are cut accordingly)."""
    return (c[:, 0] < 1.0).astype(float)


def _raise_zero_division(c):
    return 1 / 0


def _fails_off_data(c):
    """Fine on the observed samples (all within |x| < 2.5), raises on imputation draws
    that fall outside."""
    if (np.abs(c) > 2.5).any():
        raise ZeroDivisionError("draw outside the data")
    return half_plane(c)


def _nan_off_data(c):
    out = half_plane(c)
    out[(np.abs(c) > 2.5).any(axis=1)] = np.nan
    return out


def _data(X):
    """Observed sample consistent with half_plane, clipped to |x| < 2.5."""
    return np.clip(X[half_plane(X) > 0], -2.4, 2.4)


def _covar_cb_wrong_shape(c):
    return np.tile(0.1 * np.eye(D + 1), (len(c), 1, 1))


def _covar_cb_raising(c):
    raise KeyError("no noise model here")


def _covar_cb_non_symmetric(c):
    return np.array([[0.1, 0.05], [0.0, 0.1]])


def _covar_cb_negative(c):
    return np.diag([0.1, -0.1])


def _covar_cb_per_sample_wrong_n(c):
    return np.tile(0.1 * np.eye(D), (len(c) + 1, 1, 1))


SHARED_NOISE = 0.1 * np.eye(D)


# (id, kwargs builder X -> (data, kwargs), exception, message regex)
CASES = [
    # ---- sel_callback returns garbage ---------------------------------------
    ("sel-wrong-shape", lambda X: (X, {"sel_callback": lambda c: np.ones((len(c), 1))}), ValueError,
     r"sel_callback must return the selection probability of each sample, shape \(200,\); "
     r"got shape \(200, 1\) for the observed samples"),
    ("sel-wrong-length", lambda X: (X, {"sel_callback": lambda c: np.ones(len(c) - 1)}), ValueError,
     r"shape \(200,\); got shape \(199,\)"),
    ("sel-scalar", lambda X: (X, {"sel_callback": lambda c: 0.5}), ValueError, r"got shape \(\)"),
    ("sel-above-one", lambda X: (X, {"sel_callback": lambda c: np.full(len(c), 1.5)}), ValueError,
     r"sel_callback must return probabilities in \[0, 1\]; got values in \[1\.5, 1\.5\]"),
    ("sel-negative", lambda X: (X, {"sel_callback": lambda c: np.r_[-0.1, np.ones(len(c) - 1)]}),
     ValueError, r"probabilities in \[0, 1\]; got values in \[-0\.1, 1\]"),
    ("sel-nan", lambda X: (X, {"sel_callback": lambda c: np.r_[np.nan, np.ones(len(c) - 1)]}), ValueError,
     r"sel_callback returned NaN or inf for the observed samples"),
    ("sel-inf", lambda X: (X, {"sel_callback": lambda c: np.full(len(c), np.inf)}), ValueError,
     r"sel_callback returned NaN or inf"),
    ("sel-strings", lambda X: (X, {"sel_callback": lambda c: np.array(["yes"] * len(c))}), ValueError,
     r"sel_callback\(coords\)"),
    ("sel-zero-at-observed", lambda X: (X, {"sel_callback": lambda c: 1.0 * (np.arange(len(c)) != 3)}),
     ValueError, r"sel_callback gives Omega = 0 for 1 observed sample\(s\) \(first: row 3\)"),
    ("sel-zero-everywhere", lambda X: (X, {"sel_callback": lambda c: np.zeros(len(c))}),
     ValueError, r"Omega = 0 for 200 observed sample\(s\)"),
    ("sel-not-callable", lambda X: (X, {"sel_callback": np.ones(N)}), ValueError,
     r"sel_callback must be callable \(coords -> array\) or None, got ndarray"),
    # ---- failures that only surface on the imputation draws, mid-fit -----------
    ("sel-raises-on-draws", lambda X: (_data(X), {"sel_callback": _fails_off_data}), ng.CallbackError,
     r"sel_callback raised ZeroDivisionError: draw outside the data \(called on imputation draws"),
    ("sel-nan-on-draws", lambda X: (_data(X), {"sel_callback": _nan_off_data}), ValueError,
     r"sel_callback returned NaN or inf for imputation draws \(block 0\)"),
    # ---- covar_callback -------------------------------------------------------
    ("covar_cb-wrong-shape", lambda X: (_data(X), {"sel_callback": half_plane, "covar": SHARED_NOISE,
                                                   "covar_callback": _covar_cb_wrong_shape}), ValueError,
     r"covar_callback must return a \(2, 2\) covariance for all samples or one per sample, "
     r"\(\d+, 2, 2\); got shape \(\d+, 3, 3\) for imputation draws"),
    ("covar_cb-wrong-n", lambda X: (_data(X), {"sel_callback": half_plane, "covar": SHARED_NOISE,
                                               "covar_callback": _covar_cb_per_sample_wrong_n}), ValueError,
     r"covar_callback must return .*got shape \(\d+, 2, 2\) for imputation draws"),
    ("covar_cb-raises", lambda X: (_data(X), {"sel_callback": half_plane, "covar": SHARED_NOISE,
                                              "covar_callback": _covar_cb_raising}), ng.CallbackError,
     r"covar_callback raised KeyError: 'no noise model here' \(called on imputation draws"),
    ("covar_cb-non-symmetric", lambda X: (_data(X), {"sel_callback": half_plane, "covar": SHARED_NOISE,
                                                     "covar_callback": _covar_cb_non_symmetric}), ValueError,
     r"covar_callback returned non-symmetric covariances"),
    ("covar_cb-negative", lambda X: (_data(X), {"sel_callback": half_plane, "covar": SHARED_NOISE,
                                                "covar_callback": _covar_cb_negative}), ValueError,
     r"covar_callback returned negative variances"),
    ("covar_cb-nan", lambda X: (_data(X), {"sel_callback": half_plane, "covar": SHARED_NOISE,
                                           "covar_callback": lambda c: np.full((D, D), np.nan)}), ValueError,
     r"covar_callback returned NaN or inf"),
    ("covar-without-covar_cb", lambda X: (_data(X), {"sel_callback": half_plane, "covar": SHARED_NOISE}),
     ValueError, r"covar is set but covar_callback is None"),
    ("covar_cb-without-sel", lambda X: (X, {"covar": SHARED_NOISE, "covar_callback": lambda c: SHARED_NOISE}),
     ValueError, r"covar_callback is only used for imputation samples: it needs a sel_callback"),
    ("covar_cb-not-callable", lambda X: (_data(X), {"sel_callback": half_plane, "covar": SHARED_NOISE,
                                                    "covar_callback": SHARED_NOISE}), ValueError,
     r"covar_callback must be callable"),
    # ---- background ----------------------------------------------------------------
    ("bg-float", lambda X: (X, {"background": 0.1}), TypeError,
     r"background must be a pygmmis_ng\.Background, got float"),
    ("bg-footprint-array", lambda X: (X, {"background": np.array([[-5.0, -5.0], [5.0, 5.0]])}), TypeError,
     r"background must be a pygmmis_ng\.Background, got ndarray"),
    ("bg-misses-data", lambda X: (X, {"background": ng.Background([[10.0, 10.0], [20.0, 20.0]], BG_AMP)}),
     ValueError, r"the background footprint contains none of the data"),
    ("bg-wrong-D", lambda X: (X, {"background": ng.Background([[-5.0] * 3, [5.0] * 3], BG_AMP)}), ValueError,
     r"background footprint has D=3 dimensions, the model D=2"),
]


@pytest.mark.parametrize("case, exc, match", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_fit_bad_callback(X, case, exc, match):
    data, kwargs = case(X)
    gmm = make_gmm()
    before = snapshot(gmm)
    bg = kwargs.get("background")
    if bg is None and "sel_callback" in kwargs:
        # a valid background rides along so that its amp can be checked too
        bg = kwargs["background"] = ng.Background([[-6.0, -6.0], [6.0, 6.0]], BG_AMP)
    with pytest.raises(exc, match=match):
        ng.fit(gmm, data, init_method="kmeans", maxiter=20, rng=0, **kwargs)
    assert_unchanged(gmm, before)
    if isinstance(bg, ng.Background):
        assert bg.amp == BG_AMP


def test_sel_callback_exception_is_chained(X):
    gmm = make_gmm()
    before = snapshot(gmm)
    bg = ng.Background([[-6.0, -6.0], [6.0, 6.0]], BG_AMP)
    with pytest.raises(ng.CallbackError, match=r"sel_callback raised ZeroDivisionError") as info:
        ng.fit(gmm, X, sel_callback=_raise_zero_division, background=bg, rng=0)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert isinstance(info.value, RuntimeError)
    assert "200" in str(info.value) and "observed samples" in str(info.value)
    assert_unchanged(gmm, before)
    assert bg.amp == BG_AMP


def test_callback_exception_mid_fit_is_chained(X):
    """The callback works on the data and fails on the first imputation draws outside |x| < 2.5."""
    gmm = make_gmm()
    before = snapshot(gmm)
    with pytest.raises(ng.CallbackError, match=r"sel_callback raised ZeroDivisionError") as info:
        ng.fit(gmm, _data(X), sel_callback=_fails_off_data, init_method="kmeans", rng=0)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert str(info.value.__cause__) == "draw outside the data"
    assert_unchanged(gmm, before)


def test_failure_after_several_em_iterations_leaves_model_untouched(X):
    """A callback that breaks on its 8th call, after several EM updates have run: the GMM and
    the Background passed in still hold their values from before the fit."""
    calls = []

    def flaky(c):
        calls.append(len(c))
        if len(calls) == 8:
            raise ZeroDivisionError("flaky")
        return half_plane(c)

    gmm = make_gmm()
    before = snapshot(gmm)
    bg = ng.Background([[-6.0, -6.0], [6.0, 6.0]], BG_AMP)
    with pytest.raises(ng.CallbackError, match=r"sel_callback raised ZeroDivisionError: flaky"):
        ng.fit(gmm, _data(X), sel_callback=flaky, background=bg, init_method="kmeans", tol=0, rng=0)
    assert len(calls) == 8                      # the observed samples, then one block per iteration
    assert_unchanged(gmm, before)
    assert bg.amp == BG_AMP


def test_covar_callback_exception_is_chained(X):
    gmm = make_gmm()
    before = snapshot(gmm)
    with pytest.raises(ng.CallbackError, match=r"covar_callback raised KeyError") as info:
        ng.fit(gmm, _data(X), covar=SHARED_NOISE, sel_callback=half_plane, covar_callback=_covar_cb_raising,
               rng=0)
    assert isinstance(info.value.__cause__, KeyError)
    assert_unchanged(gmm, before)


def test_keyboard_interrupt_in_callback_is_not_wrapped(X):
    def interrupted(c):
        raise KeyboardInterrupt

    gmm = make_gmm()
    before = snapshot(gmm)
    with pytest.raises(KeyboardInterrupt):
        ng.fit(gmm, X, sel_callback=interrupted, rng=0)
    assert_unchanged(gmm, before)


def test_keyboard_interrupt_of_a_callback_in_a_thread_is_its_error(X):
    """Ctrl-C arrives in the main thread only: in a fit on another thread a KeyboardInterrupt
    is the callback's own, and says so (in a pool worker too: test_interrupts)."""
    import threading

    def interrupted(c):
        raise KeyboardInterrupt

    gmm = make_gmm()
    before = snapshot(gmm)
    caught = []

    def run():
        try:
            ng.fit(gmm, X, sel_callback=interrupted, rng=0)
        except BaseException as exc:          # noqa: BLE001 - inspected below
            caught.append(exc)
    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert len(caught) == 1 and isinstance(caught[0], ng.CallbackError), caught
    assert "raised KeyboardInterrupt" in str(caught[0]) and "Ctrl-C does not arrive" in str(caught[0])
    assert_unchanged(gmm, before)


def test_background_bad_amp_bounds(X):
    gmm = make_gmm()
    before = snapshot(gmm)
    bg = ng.Background([[-6.0, -6.0], [6.0, 6.0]], BG_AMP)
    bg.amp_min, bg.amp_max = 0.5, 0.2
    with pytest.raises(ValueError, match=r"0 <= amp_min <= amp_max <= 1, got amp_min=0\.5, amp_max=0\.2"):
        ng.fit(gmm, X, background=bg, rng=0)
    assert_unchanged(gmm, before)
    assert bg.amp == BG_AMP


# ---------------------------------------------------------------------------
# constructing a Background
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("footprint, match", [
    ([[0.0, 0.0], [1.0, 0.0]], r"footprint\[1\] \(upper corner\) must exceed footprint\[0\]"),
    ([[0.0, 1.0], [1.0, 0.5]], r"footprint\[1\] \(upper corner\) must exceed footprint\[0\]"),
    ([[0.0, 0.0], [np.inf, 1.0]], r"footprint must be finite"),
    ([0.0, 1.0], r"footprint must have shape \(2, D\).*got shape \(2,\)"),
    ([[0.0], [1.0], [2.0]], r"footprint must have shape \(2, D\).*got shape \(3, 1\)"),
], ids=["upper-equals-lower", "upper-below-lower", "inf", "1d", "three-rows"])
def test_background_bad_footprint(footprint, match):
    with pytest.raises(ValueError, match=match):
        ng.Background(footprint, 0.1)


@pytest.mark.parametrize("amp, match", [
    (1.0, r"Background\.amp must be < 1"),
    (1.5, r"Background\.amp must be < 1"),
    (-0.1, r"Background\.amp must be >= 0"),
    (np.nan, r"Background\.amp must be finite"),
], ids=["one", "above-one", "negative", "nan"])
def test_background_bad_amp(amp, match):
    with pytest.raises(ValueError, match=match):
        ng.Background([[0.0, 0.0], [1.0, 1.0]], amp)
    bg = ng.Background([[0.0, 0.0], [1.0, 1.0]], 0.2)
    with pytest.raises(ValueError, match=match):
        bg.amp = amp
    assert bg.amp == 0.2


# ---------------------------------------------------------------------------
# draw()
# ---------------------------------------------------------------------------

def test_draw_selection_rejecting_everything():
    gmm = make_gmm()
    before = snapshot(gmm)
    with pytest.raises(ValueError, match=r"sel_callback gives Omega = 0 for all \d+ draws"):
        ng.draw(gmm, 100, sel_callback=lambda c: np.zeros(len(c)), rng=0)
    assert_unchanged(gmm, before)


def test_draw_tiny_selected_fraction_errors_instead_of_exhausting_memory():
    gmm = make_gmm()
    with pytest.raises(ValueError, match=r"selected fraction of the model is too small"):
        ng.draw(gmm, 100, sel_callback=lambda c: np.full(len(c), 1e-12), rng=0)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"sel_callback": lambda c: np.full(len(c), 2.0)}, ValueError, r"probabilities in \[0, 1\]"),
    ({"sel_callback": lambda c: np.ones((len(c), 2))}, ValueError, r"got shape \(\d+, 2\) for draws"),
    ({"sel_callback": _raise_zero_division}, ng.CallbackError, r"sel_callback raised ZeroDivisionError"),
    ({"covar_callback": _covar_cb_wrong_shape}, ValueError, r"covar_callback must return a \(2, 2\)"),
    ({"covar_callback": _covar_cb_raising}, ng.CallbackError, r"covar_callback raised KeyError"),
    ({"sel_callback": "box"}, ValueError, r"sel_callback must be callable"),
    ({"background": 0.2}, ValueError, r"background must be a pygmmis_ng\.Background with D=2"),
    ({"background": ng.Background([[0.0], [1.0]], 0.2)}, ValueError, r"Background with D=2"),
], ids=["sel-above-one", "sel-wrong-shape", "sel-raises", "covar_cb-wrong-shape", "covar_cb-raises",
        "sel-not-callable", "bg-float", "bg-wrong-D"])
def test_draw_bad_callbacks(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ng.draw(make_gmm(), 50, rng=0, **kwargs)
