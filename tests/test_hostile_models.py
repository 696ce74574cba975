"""Hostile inputs to the GMM class: saved files, constructor, parameters and call arguments.

Every case must end in a clean error (ValueError, TypeError or FileNotFoundError
whose message names the argument, file or key; never BadZipFile, EOFError,
MemoryError, LinAlgError, IndexError, AttributeError, nor only a ComplexWarning)
that leaves an existing GMM untouched, or be accepted with the right result.
An independent oracle says which; the outcomes are counted in ``OUTCOMES``
(set HOSTILE_COUNTS_FILE to a path to get them as JSON).
"""
from __future__ import annotations

import decimal
import fractions
import io
import json
import numbers
import os
import pathlib
import time
import warnings
import zipfile
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import pygmmis_ng as ng
from pygmmis_ng import model_checks, model_files

CLEAN = (ValueError, TypeError, FileNotFoundError)
RAW = (zipfile.BadZipFile, EOFError, MemoryError, np.linalg.LinAlgError, IndexError, KeyError,
       AttributeError, OverflowError, ZeroDivisionError, RecursionError, UnicodeError,
       RuntimeError, NotImplementedError)
OUTCOMES: Counter = Counter()
FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def many(n: int) -> settings:
    return settings(FAST, max_examples=n)


@pytest.fixture(scope="module", autouse=True)
def _counts():
    yield
    assert OUTCOMES["raw error"] == 0 and OUTCOMES["silent wrong result"] == 0, OUTCOMES
    target = os.environ.get("HOSTILE_COUNTS_FILE")
    if target:
        pathlib.Path(target).write_text(json.dumps(dict(OUTCOMES), indent=1))


def run(fn, names, expect_ok=None, check=None, gmm=None):
    """Run one case, classify (and count) it; fail on a raw error or a silent wrong result.

    names : substrings of which the error message must contain one (the argument, file or key)
    expect_ok : the oracle: True (must be accepted), False (must be refused) or None (either)
    check : for an accepted case, result -> bool, whether the result is right
    gmm : a GMM that must be left untouched by an error
    """
    before = None if gmm is None else [a.copy() for a in (gmm.amp, gmm.mean, gmm.covar)]
    error = result = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn()
        except Exception as exc:  # classified below
            error = exc
    noisy = [w for w in caught if issubclass(w.category, (np.exceptions.ComplexWarning, RuntimeWarning))]
    if error is not None:
        if isinstance(error, RAW) or not isinstance(error, CLEAN) or \
                not any(str(n) in str(error) for n in names):
            OUTCOMES["raw error"] += 1
            raise AssertionError(f"raw or unclear error (expected one of {names} named): "
                                 f"{type(error).__name__}: {error}") from error
        if expect_ok:
            OUTCOMES["wrong refusal"] += 1
            raise AssertionError(f"refused a valid case: {error}") from error
        if before is not None:
            for now, then in zip((gmm.amp, gmm.mean, gmm.covar), before):
                assert now.tobytes() == then.tobytes() and now.shape == then.shape
        OUTCOMES["clean error"] += 1
        return error
    if noisy:
        OUTCOMES["raw error"] += 1
        raise AssertionError(f"accepted with only a warning: {noisy[0].message}")
    if expect_ok is False or (check is not None and not check(result)):
        OUTCOMES["silent wrong result"] += 1
        raise AssertionError(f"silently accepted a bad case or gave a wrong result: {result!r:.200}")
    OUTCOMES["correct acceptance"] += 1
    return result


def make_model(K: int = 2, D: int = 2, seed: int = 0) -> ng.GMM:
    rng = np.random.default_rng(seed)
    g = ng.GMM(K, D)
    g.amp = rng.dirichlet(np.ones(K))
    g.mean = rng.normal(size=(K, D)) * 3
    A = rng.normal(size=(K, D, D))
    g.covar = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(D)
    return g


def same_params(g: ng.GMM, amp, mean, covar) -> bool:
    return all(np.array_equal(a, np.asarray(b, dtype=float)) and a.dtype == np.float64
               for a, b in ((g.amp, amp), (g.mean, mean), (g.covar, covar)))


def valid_mixture(amp, mean, covar) -> bool:
    """Independent statement of what a valid GMM is (cases stay away from the borders)."""
    if amp.ndim != 1 or mean.ndim != 2 or covar.ndim != 3:
        return False
    K, D = amp.size, mean.shape[1]
    if K < 1 or D < 1 or mean.shape != (K, D) or covar.shape != (K, D, D):
        return False
    if not all(np.isfinite(a).all() for a in (amp, mean, covar)):
        return False
    if (amp < 0).any() or abs(amp.sum() - 1) > 1e-6:
        return False
    if not np.allclose(covar, covar.transpose(0, 2, 1), rtol=0, atol=1e-12 * np.abs(covar).max()):
        return False
    return bool((np.linalg.eigvalsh(covar)[:, 0] > 1e-9 * np.abs(covar).max()).all())


# ---------------------------------------------------------------------------
# hostile arrays: kinds, whether a strict conversion to real numbers accepts them
# ---------------------------------------------------------------------------

ARRAY_KINDS = {  # kind: (make(values) -> object, accepted: True, False or None = policy of as_float_array)
    "float64": (lambda v: v, True),
    "float32": (lambda v: v.astype(np.float32), True),
    "int64": (lambda v: np.round(v).astype(np.int64), True),
    "uint8": (lambda v: np.abs(np.round(v)).astype(np.uint8), True),
    "list": (lambda v: v.tolist(), True),
    "fractions": (lambda v: np.array([fractions.Fraction(x).limit_denominator(1000) for x in v.flat],
                                     dtype=object).reshape(v.shape), True),
    "decimal": (lambda v: np.array([decimal.Decimal(float(x)) for x in v.flat],
                                   dtype=object).reshape(v.shape), None),
    "masked-nothing": (lambda v: np.ma.masked_array(v, mask=np.zeros(v.shape, bool)), True),
    "complex": (lambda v: v + 1j, False),
    "complex-zero-imag": (lambda v: v.astype(complex), False),
    "complex-list": (lambda v: (v.astype(complex) + 2j).tolist(), False),
    "object-complex": (lambda v: np.where(np.ones(v.shape, bool), v.astype(object), 0) + 1j, False),
    "strings": (lambda v: v.astype(str), False),
    "bytes": (lambda v: v.astype("S8"), False),
    "bool": (lambda v: v > 0, None),
    "object-none": (lambda v: np.array([None] * v.size, dtype=object).reshape(v.shape), None),
    "object-str": (lambda v: np.array([str(x) for x in v.flat], dtype=object).reshape(v.shape),
                   False),
    "datetime": (lambda v: np.zeros(v.shape, dtype="datetime64[s]"), False),
    "timedelta": (lambda v: np.ones(v.shape, dtype="timedelta64[s]"), False),
    "structured": (lambda v: np.zeros(v.shape, dtype=[("a", float), ("b", float)]), False),
    "masked": (lambda v: np.ma.masked_array(v, mask=np.ones(v.shape, bool)), False),
    "longdouble-huge": (lambda v: np.full(v.shape, np.longdouble(10) ** 400), None),
    "huge-int": (lambda v: np.array([10**400] * v.size, dtype=object).reshape(v.shape), False),
    "string-scalar": (lambda v: "1.0", False),
    "none": (lambda v: None, False),
    "dict": (lambda v: {"a": 1.0}, False),
    "set": (lambda v: {1.0, 2.0}, False),
    "ragged": (lambda v: [[1.0, 2.0], [3.0]], False),
}


def as_floats(value) -> np.ndarray:
    """The float64 values a conversion must give (None -> NaN, masked arrays -> their data)."""
    obj = np.asarray(np.ma.getdata(value), dtype=object)
    with np.errstate(over="ignore"):
        return np.array([np.nan if x is None else float(x) for x in obj.flat]).reshape(obj.shape)


def hostile_value(data, shape, kinds=tuple(ARRAY_KINDS)):
    """(kind, value, accepted, float64 values) for a hostile array of ``shape``."""
    kind = data.draw(st.sampled_from(kinds), label="kind")
    values = np.asarray(data.draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=int(np.prod(shape)),
                                           max_size=int(np.prod(shape))), label="values")).reshape(shape)
    make, ok = ARRAY_KINDS[kind]
    value = make(values)
    return kind, value, ok, (as_floats(value) if ok is not False else None)


# ---------------------------------------------------------------------------
# the constructor
# ---------------------------------------------------------------------------

def not_midsize(x: float) -> bool:
    """Leave out integral floats big enough to allocate for a while, small enough to fit."""
    return not (np.isfinite(x) and float(x).is_integer() and 1e3 < abs(x) < 1e15)


SIZE_ARGS = st.one_of(
    st.integers(-5, 12), st.integers(10**15, 10**40), st.integers(-(10**30), -1),
    st.floats(allow_nan=True, allow_infinity=True).filter(not_midsize),
    st.sampled_from([2.0, 3.0, 1e30, 0.5, -1.0]),
    st.booleans(), st.text(max_size=3), st.none(), st.complex_numbers(max_magnitude=10),
    st.sampled_from([np.int64(3), np.int8(2), np.uint64(4), np.float32(2.0), np.float64(2.5),
                     np.bool_(True), decimal.Decimal(3), fractions.Fraction(3, 1),
                     fractions.Fraction(1, 2), [2], (2,), np.array(2), np.array([2]), object()]))


def expected_int(v) -> int | None:
    """What check_int accepts: an integer, or an integral finite real, not a bool."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        return None
    if isinstance(v, numbers.Integral):
        return int(v)
    return int(v) if np.isfinite(float(v)) and float(v).is_integer() else None


@many(400)
@given(K=SIZE_ARGS, D=SIZE_ARGS)
def test_constructor_hostile_sizes(K, D):
    k, d = expected_int(K), expected_int(D)
    ok = k is not None and d is not None and k >= 1 and d >= 1 \
        and model_checks.ARRAY_SHARE * model_checks.param_bytes(k, d) <= ng.config.memory_limit()
    run(lambda: ng.GMM(K, D), ["K", "D"], expect_ok=ok,
        check=lambda g: (g.K, g.D) == (k, d) and not g.amp[:10].any())


@pytest.mark.parametrize("K, D, fits", [(1, 300, True), (1, 400, False), (1000, 10, True),
                                        (10**4, 10, False)])
def test_constructor_memory_bound(settings, K, D, fits):
    settings(memory_limit=model_checks.ARRAY_SHARE << 20)
    err = run(lambda: ng.GMM(K, D), ["memory"], expect_ok=fits)
    assert fits or f"K={K}, D={D}" in str(err)


# ---------------------------------------------------------------------------
# the parameters, assigned
# ---------------------------------------------------------------------------

@many(400)
@given(data=st.data(), name=st.sampled_from(["amp", "mean", "covar"]),
       K=st.integers(0, 3), shape_error=st.booleans())
def test_setters_hostile_arrays(data, name, K, shape_error):
    gmm = make_model(2, 2)
    tail = {"amp": (), "mean": (2,), "covar": (2, 2)}[name]
    shape = (K,) + (tuple(t + 1 for t in tail) if shape_error and tail else tail)
    if shape_error and not tail:
        shape = (K, 1)
    kind, value, real, as_float = hostile_value(data, shape)
    ok = False if real is False or K < 1 or shape_error else real
    run(lambda: setattr(gmm, name, value), [name], expect_ok=ok, gmm=gmm,
        check=lambda _: np.array_equal(getattr(gmm, name), as_float, equal_nan=True)
        and getattr(gmm, name).dtype == np.float64)


# ---------------------------------------------------------------------------
# density: gmm(coords), logL, log_joint, responsibilities, logL_k
# ---------------------------------------------------------------------------

def reference_logL(g: ng.GMM, X: np.ndarray, S: np.ndarray | None = None) -> np.ndarray:
    """log sum_k a_k N(x_o | m_o, V_oo + S_oo) over the measured values o of each row."""
    out = []
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        Si = 0 if S is None else (S if S.ndim == 2 else S[i])[np.ix_(o, o)]
        terms = [np.log(a) + multivariate_normal(m[o], V[np.ix_(o, o)] + Si).logpdf(x[o])
                 for a, m, V in zip(g.amp, g.mean, g.covar)]
        out.append(logsumexp(terms))
    return np.array(out)


COORD_SHAPES = [(4, 3), (1, 3), (3,), (4, 2), (4, 4), (0, 3), (2, 3, 1), ()]


@many(400)
@given(data=st.data(), shape=st.sampled_from(COORD_SHAPES),
       holes=st.sampled_from(["none", "nan", "nan-row", "inf"]),
       method=st.sampled_from(["call", "logL", "log_joint", "responsibilities", "call-log"]))
def test_density_hostile_coords(data, shape, holes, method):
    gmm = make_model(3, 3, seed=1)
    kind, value, real, X = hostile_value(data, shape)
    if real and X.size and isinstance(value, np.ndarray) and value.dtype.kind == "f" \
            and holes != "none" and len(shape) >= 1:
        value = value.copy()
        value.flat[0] = np.inf if holes == "inf" else np.nan
        if holes == "nan-row":
            value.reshape(-1, shape[-1])[0] = np.nan
        X = value.astype(float)
    ok = real is not False and (len(shape) == 2 and shape[0] >= 1 or len(shape) == 1) \
        and shape[-1] == 3 and not np.isinf(X).any() and not np.isnan(X.reshape(-1, 3)).all(axis=1).any()
    ok = None if ok and real is None else ok
    call = {"call": lambda: gmm(value), "call-log": lambda: gmm(value, as_log=True),
            "logL": lambda: gmm.logL(value), "log_joint": lambda: gmm.log_joint(value),
            "responsibilities": lambda: gmm.responsibilities(value)}[method]

    def right(result):
        ref = reference_logL(gmm, X.reshape(-1, 3))
        if method == "log_joint":
            return np.shape(result) == (ref.size, 3) and np.allclose(logsumexp(result, axis=1), ref)
        if method == "responsibilities":
            return np.shape(result) == (ref.size, 3) and np.allclose(result.sum(axis=1), 1) \
                and (result >= 0).all()
        ref = np.exp(ref) if method == "call" else ref
        return np.shape(result) == (() if len(shape) == 1 else ref.shape) \
            and np.allclose(result, ref if len(shape) == 2 else ref[0], rtol=1e-7, atol=1e-300)

    run(call, ["coords"], expect_ok=ok, check=right, gmm=gmm)


NOISE_KINDS = ["shared", "per-sample", "negative", "nan", "wrong-shape", "complex", "strings", "bool",
               "object", "asymmetric", "masked", "ragged"]


@many(200)
@given(kind=st.sampled_from(NOISE_KINDS), scale=st.floats(0.01, 5))
def test_density_hostile_noise(kind, scale):
    gmm = make_model(2, 2, seed=2)
    X = np.array([[0.5, -1.0], [2.0, 1.0], [0.0, 0.0]])
    eye = np.eye(2) * scale
    S = {"shared": eye, "per-sample": np.stack([eye * (i + 1) for i in range(3)]),
         "negative": -eye, "nan": eye * np.nan, "wrong-shape": np.eye(3), "complex": eye + 1j,
         "strings": eye.astype(str), "bool": eye > 0, "object": np.array([[None, 1], [1, None]]),
         "asymmetric": eye + np.array([[0, 1.0], [0, 0]]), "masked": np.ma.masked_array(eye, eye > 0),
         "ragged": [[1.0], [0.0, 1.0]]}[kind]
    ok = True if kind in ("shared", "per-sample") else None if kind == "bool" else False
    run(lambda: gmm.logL(X, covar=S), ["covar"], expect_ok=ok, gmm=gmm,
        check=lambda r: np.allclose(r, reference_logL(gmm, X, np.asarray(S, dtype=float)), rtol=1e-7))


@many(150)
@given(kind=st.sampled_from(["valid", "complex", "strings", "bool", "wrong-D", "nan", "3d-wrong-N",
                             "none-rows", "object"]))
def test_density_hostile_projection(kind):
    gmm = make_model(2, 3, seed=3)
    R = np.eye(3)[:2]
    Y = np.array([[0.5, -1.0], [2.0, 1.0]])
    Rv = {"valid": R, "complex": R + 1j, "strings": R.astype(str), "bool": R > 0,
          "wrong-D": np.eye(2), "nan": R * np.nan, "3d-wrong-N": np.stack([R] * 5),
          "none-rows": np.zeros((0, 3)), "object": np.array([[None, 1, 0], [0, 1, 0]], dtype=object)}[kind]
    marg = gmm.marginal([0, 1])
    ok = True if kind == "valid" else None if kind == "bool" else False   # booleans: as_float_array's call
    run(lambda: gmm.logL(Y, R=Rv), ["R (projection)", "R:"], expect_ok=ok, gmm=gmm,
        check=lambda r: np.allclose(r, reference_logL(marg, Y), rtol=1e-7))


FLAGS = st.one_of(st.booleans(), st.sampled_from([0, 1, 2, -1, np.bool_(True), np.int64(1), "yes",
                                                  "", None, 0.0, 1.0, [True], np.array([True, False])]))


def expected_flag(v) -> bool:
    return isinstance(v, (bool, np.bool_))          # the one boolean rule (no 0 / 1)


@many(150)
@given(as_log=FLAGS)
def test_call_hostile_as_log(as_log):
    gmm = make_model(2, 2)
    X = np.zeros((3, 2))
    run(lambda: gmm(X, as_log=as_log), ["as_log"], expect_ok=expected_flag(as_log), gmm=gmm,
        check=lambda r: np.allclose(r, gmm.logL(X) if as_log else np.exp(gmm.logL(X))))


@many(200)
@given(k=st.one_of(st.integers(-6, 6), SIZE_ARGS), chi2_only=FLAGS)
def test_logL_k_hostile_index(k, chi2_only):  # noqa: N802
    gmm = make_model(3, 2)
    X = np.array([[0.0, 1.0], [2.0, -1.0]])
    kk = expected_int(k)
    ok = kk is not None and -3 <= kk < 3 and expected_flag(chi2_only)

    def right(r):
        m, V = gmm.mean[kk], gmm.covar[kk]
        d = X - m
        chi2 = np.einsum("ni,ij,nj->n", d, np.linalg.inv(V), d)
        ref = chi2 if chi2_only else np.log(gmm.amp[kk]) + multivariate_normal(m, V).logpdf(X)
        return np.allclose(r, ref, rtol=1e-7)

    run(lambda: gmm.logL_k(k, X, chi2_only=chi2_only), ["k ", "chi2_only"], expect_ok=ok,
        check=right, gmm=gmm)


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------

RNGS = st.one_of(st.none(), st.integers(0, 2**70), st.integers(-(2**40), -1),
                 st.sampled_from([np.random, "seed", 1.5, True, [1, 2], np.random.default_rng,
                                  object()]),
                 st.builds(np.random.default_rng, st.integers(0, 100)),
                 st.builds(np.random.RandomState, st.integers(0, 100)),
                 st.builds(np.random.SeedSequence, st.integers(0, 100)))


def expected_rng(r) -> bool:
    if r is None or r is np.random or isinstance(r, (np.random.Generator, np.random.RandomState,
                                                     np.random.SeedSequence)):
        return True
    return type(r) is int and r >= 0


@many(300)
@given(size=st.one_of(st.integers(-3, 40), SIZE_ARGS), rng=RNGS, rc=FLAGS)
def test_draw_hostile_arguments(size, rng, rc):
    gmm = make_model(3, 2)
    n = expected_int(size)
    ok = n is not None and 0 <= n <= 10**3 and expected_rng(rng) and expected_flag(rc)

    def right(r):
        samples, comp = r if rc else (r, None)
        return samples.shape == (n, 2) and np.isfinite(samples).all() and \
            (comp is None or (comp.shape == (n,) and ((comp >= 0) & (comp < 3)).all()))

    run(lambda: gmm.draw(size, rng=rng, return_component=rc), ["size", "rng", "return_component"],
        expect_ok=ok, check=right, gmm=gmm)


def test_draw_refuses_sizes_beyond_memory(settings):
    gmm = make_model(2, 2)
    run(lambda: gmm.draw(10**15, rng=0), ["draw(size=1000000000000000)"], expect_ok=False)
    settings(memory_limit=model_checks.ARRAY_SHARE << 20)
    run(lambda: gmm.draw(10**5, rng=0), ["memory"], expect_ok=False)
    run(lambda: gmm.draw(10**4, rng=0), [], expect_ok=True, check=lambda r: r.shape == (10**4, 2))


def test_marginal_and_condition_hostile():
    gmm = make_model(2, 3)
    for dims in ([[0]], [[0, 1]], "0", None, [0.5], [True, False], 7, [0, 0], []):
        run(lambda d=dims: gmm.marginal(d), ["dims"], expect_ok=False, gmm=gmm)
    for values in (["1.0"], [1j], [np.nan], [[1.0, 2.0]], None, np.ma.masked_array([1.0], [True])):
        run(lambda v=values: gmm.condition(v, [0]), ["values"], expect_ok=False, gmm=gmm)
    for noise in (np.eye(1) * 1j, -np.eye(1), np.eye(2), "1", [[np.nan]]):
        run(lambda s=noise: gmm.condition([1.0], [0], noise=s), ["noise"], expect_ok=False, gmm=gmm)
    run(lambda: gmm.condition([1.0], [0], noise=[[0.5]]), [], expect_ok=True,
        check=lambda c: (c.K, c.D) == (2, 2))


# ---------------------------------------------------------------------------
# files: saved models, truncated, corrupted, crafted
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    counter = iter(range(10**9))
    return lambda suffix=".npz": base / f"case{next(counter)}{suffix}"


def load_case(path, expect_ok=None, check=None, names=None):
    """Load ``path`` into an existing GMM (left untouched on error) and with from_file."""
    existing = make_model(4, 1, seed=9)
    if names is None:
        named = isinstance(path, (str, bytes, os.PathLike))
        names = [pathlib.Path(os.fsdecode(path)).name if named else type(path).__name__]
    def rewind(_):
        if not getattr(path, "closed", True) and getattr(path, "seekable", lambda: False)():
            path.seek(0)

    rewind(0)
    run(lambda: existing.load(path) or existing, names, expect_ok=expect_ok, check=check, gmm=existing)
    rewind(0)
    return run(lambda: ng.GMM.from_file(path), names, expect_ok=expect_ok, check=check)


def model_bytes(K=2, D=2, seed=0, compressed=False) -> tuple[bytes, ng.GMM]:
    g = make_model(K, D, seed)
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, amp=g.amp, mean=g.mean, covar=g.covar)
    return buf.getvalue(), g


@many(250)
@given(data=st.data(), K=st.integers(1, 3), D=st.integers(1, 3), compressed=st.booleans())
def test_truncated_files(files, data, K, D, compressed):
    raw, _ = model_bytes(K, D, compressed=compressed)
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    path = files()
    path.write_bytes(raw[:cut])
    load_case(path, expect_ok=False)


@many(350)
@given(data=st.data(), K=st.integers(1, 3), D=st.integers(1, 3), compressed=st.booleans())
def test_corrupted_files(files, data, K, D, compressed):
    """Changed bytes: a clean error, or (the change hit nothing that matters) the same model."""
    raw, g = model_bytes(K, D, compressed=compressed)
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4), label="n_changes")):
        pos = data.draw(st.integers(0, len(buf) - 1), label="pos")
        buf[pos] = data.draw(st.integers(0, 255).filter(lambda b, p=pos: b != buf[p]), label="byte")
    path = files()
    path.write_bytes(bytes(buf))
    load_case(path, check=lambda r: same_params(r, g.amp, g.mean, g.covar))


@many(200)
@given(blob=st.binary(max_size=300),
       prefix=st.sampled_from([b"", b"PK", b"PK\x03\x04", b"\x93NUMPY", b"\x93NUMPY\x01\x00",
                               b"PK\x05\x06", b"PK\x05\x06" + bytes(18)]))
def test_garbage_files(files, blob, prefix):
    path = files()
    path.write_bytes(prefix + blob)
    load_case(path, expect_ok=False)


DTYPES = ["float64", "float32", "float16", "int64", "uint16", ">f8", "longdouble", "complex128",
          "bool", "U8", "object", "datetime64[s]", "structured", "fortran"]
VALUES = ["valid", "nan", "inf", "neg-amp", "amp-sum", "zero-covar", "neg-covar", "asym-covar",
          "huge"]


def crafted_arrays(data, K, D):
    """Arrays amp, mean, covar (one of them hostile) and whether a GMM should accept them."""
    g = make_model(max(K, 1), max(D, 1), seed=data.draw(st.integers(0, 5), label="seed"))
    arrays = {"amp": g.amp, "mean": g.mean, "covar": g.covar}
    key = data.draw(st.sampled_from(list(arrays)), label="key")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    value = data.draw(st.sampled_from(VALUES), label="value")
    a = {k: v.copy() for k, v in arrays.items()}
    if value == "nan":
        a[key].flat[-1] = np.nan
    elif value == "inf":
        a[key].flat[0] = -np.inf
    elif value == "neg-amp" and K >= 2:
        a["amp"][0], a["amp"][1] = -0.5, a["amp"][1] + a["amp"][0] + 0.5
    elif value == "amp-sum":
        a["amp"] = a["amp"] * 1.01
    elif value == "zero-covar":
        a["covar"][-1] = 0.0
    elif value == "neg-covar":
        a["covar"][0] = -np.eye(a["covar"].shape[1])
    elif value == "asym-covar" and a["covar"].shape[1] >= 2:
        a["covar"][0, 0, 1] += 0.25
    elif value == "huge":
        a["mean"][0, 0] = 1e308 * 10 if dtype == "longdouble" else 1e300
    x = a[key]
    if dtype == "structured":
        x = np.zeros(x.shape, dtype=[("a", float)])
    elif dtype == "fortran":
        x = np.asfortranarray(x)
    elif dtype == "longdouble":
        x = x.astype(np.longdouble)
        if value == "huge":
            x.flat[0] = np.longdouble(10) ** 400
    elif dtype == "datetime64[s]":
        x = np.zeros(x.shape, dtype=dtype)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = x.astype(dtype)
    a[key] = x
    numeric = all(v.dtype.kind in "fiu" and v.dtype.fields is None for v in a.values())
    with np.errstate(all="ignore"):
        as_float = {k: np.asarray(v, dtype=float) for k, v in a.items()} if numeric else None
        ok = numeric and valid_mixture(as_float["amp"], as_float["mean"], as_float["covar"])
    return a, ok, as_float, key


@many(400)
@given(data=st.data(), K=st.integers(0, 3), D=st.integers(0, 3),
       shape_fault=st.sampled_from(["none", "none", "none", "amp-2d", "mean-K", "covar-D", "mean-1d",
                                    "covar-2d", "scalar"]),
       writer=st.sampled_from(["savez", "savez_compressed"]))
def test_crafted_files(files, data, K, D, shape_fault, writer):
    a, ok, as_float, _ = crafted_arrays(data, K, D)
    if K == 0:
        a = {k: v[:0] for k, v in a.items()}
    if D == 0:
        a["mean"], a["covar"] = a["mean"][:, :0], a["covar"][:, :0, :0]
    fault = {"amp-2d": ("amp", lambda v: v[:, None]), "mean-K": ("mean", lambda v: np.vstack([v, v])),
             "covar-D": ("covar", lambda v: np.zeros(v.shape[:1] + (v.shape[1] + 1,) * 2)),
             "mean-1d": ("mean", lambda v: v.ravel()),
             "covar-2d": ("covar", lambda v: v[0] if len(v) else np.zeros(v.shape[1:], v.dtype)),
             "scalar": ("amp", lambda v: v.reshape(-1)[0] if v.size else np.zeros((), v.dtype)),
             }.get(shape_fault)
    if fault:
        a[fault[0]] = np.asarray(fault[1](a[fault[0]]))
    ok = ok and not fault and K >= 1 and D >= 1
    path = files()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(np, writer)(path, **a)
    names = [path.name]
    load_case(path, expect_ok=ok, names=names,
              check=lambda r: same_params(r, as_float["amp"], as_float["mean"], as_float["covar"]))


def write_member(zf, name, array=None, header=None, payload=b"", compress=zipfile.ZIP_STORED):
    """A zip member written by hand: an array, or a .npy header (dict literal) and data, or bytes."""
    if array is not None:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asarray(array), allow_pickle=True)
        raw = buf.getvalue()
    elif header is not None:
        text = repr(header).encode("latin1")
        text += b" " * (-(len(text) + 11) % 64) + b"\n"
        raw = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + payload
    else:
        raw = payload
    zf.writestr(zipfile.ZipInfo(name), raw, compress_type=compress)


def handmade(path, members, compress=zipfile.ZIP_STORED):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # duplicate names
        with zipfile.ZipFile(path, "w") as zf:
            for name, spec in members:
                write_member(zf, name, compress=compress, **spec)


GOOD = {"amp": np.array([0.25, 0.75]), "mean": np.zeros((2, 2)), "covar": np.stack([np.eye(2)] * 2)}


def header(shape, descr="<f8"):
    return {"header": {"descr": descr, "fortran_order": False, "shape": shape}}


def members(**replace):
    """The members of a good archive, some replaced by (name, spec) lists."""
    out = [(k + ".npy", {"array": v}) for k, v in GOOD.items() if k not in replace]
    return out + [m for v in replace.values() for m in v]


HANDMADE = {  # case: (members, accepted, the key the error must name)
    "header-huge-shape": (members(covar=[("covar.npy", header((10**6,) * 3))]), False, "covar"),
    "header-huge-consistent": ([("amp.npy", header((10**6,))), ("mean.npy", header((10**6, 10**4))),
                                ("covar.npy", header((10**6, 10**4, 10**4)))], False, "amp"),
    "header-shape-lies": (members(amp=[("amp.npy", dict(header((3,)), payload=GOOD["amp"].tobytes()))]),
                          False, "amp"),
    "header-object": (members(amp=[("amp.npy", dict(header((2,), "|O"), payload=bytes(16)))]),
                      False, "amp"),
    "header-not-a-dict": (members(mean=[("mean.npy", {"header": "__import__('os')"})]), False, "mean"),
    "header-negative-shape": (members(mean=[("mean.npy", header((-2, 2)))]), False, "mean"),
    "header-bad-descr": (members(amp=[("amp.npy", header((2,), "<q99"))]), False, "amp"),
    "header-complex": (members(amp=[("amp.npy", dict(header((2,), "<c16"), payload=bytes(32)))]),
                       False, "amp"),
    "header-subarray": (members(amp=[("amp.npy", dict(header((2,), [("", "<f8", (1,))]),
                                                      payload=bytes(16)))]), False, "amp"),
    "pickled-object": (members(amp=[("amp.npy", {"array": np.array([0.25, 0.75], dtype=object)})]),
                       False, "amp"),
    "duplicate-amp": (members() + [("amp.npy", {"array": np.array([1.0, 0.0])})], False, "amp"),
    "amp-and-amp.npy": (members() + [("amp", {"array": GOOD["amp"]})], False, "amp"),
    "no-npy-suffix": (members(amp=[("amp", {"array": GOOD["amp"]})]), True, None),
    "extra-members": (members() + [("note.npy", {"array": np.array(["x"])}),
                                   ("readme.txt", {"payload": b"hi"})], True, None),
    "missing-covar": ([m for m in members() if not m[0].startswith("covar")], False, "covar"),
    "only-extras": ([("x.npy", {"array": np.zeros(2)})], False, None),
    "empty-zip": ([], False, None),
    "not-npy-data": (members(covar=[("covar.npy", {"payload": b"not numpy"})]), False, "covar"),
    "empty-member": (members(covar=[("covar.npy", {"payload": b""})]), False, "covar"),
    "header-len-huge": (members(covar=[("covar.npy", {"payload": b"\x93NUMPY\x02\x00" + bytes([255] * 4)
                                                     + b"{'descr': '<f8'"})]), False, "covar"),
    "directory-entry": (members(covar=[("covar.npy/", {"payload": b""})]), False, None),
}


@pytest.mark.parametrize("case", sorted(HANDMADE))
@pytest.mark.parametrize("compress", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                      zipfile.ZIP_LZMA], ids=["stored", "deflated", "bzip2", "lzma"])
def test_handmade_archives(files, case, compress):
    spec, ok, key = HANDMADE[case]
    path = files()
    handmade(path, spec, compress)
    usual = compress in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
    names = [f"'{key}'"] if key and usual else [path.name]
    start = time.perf_counter()
    err = load_case(path, expect_ok=ok and usual, names=names,
                    check=lambda r: same_params(r, GOOD["amp"], GOOD["mean"], GOOD["covar"]))
    assert time.perf_counter() - start < 2.0
    assert ok and usual or path.name in str(err)


def npy_bytes(array, version):
    """A .npy file of format version 2.0 or 3.0, written by hand."""
    d = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False,
         "shape": array.shape}
    text = repr(d).encode("utf8")
    text += b" " * (-(len(text) + 13) % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + len(text).to_bytes(4, "little") + text + array.tobytes()


def test_npy_version_3_and_2(files):
    for version, ok in (((2, 0), True), ((3, 0), False)):
        path = files()
        with zipfile.ZipFile(path, "w") as zf:
            for k, v in GOOD.items():
                zf.writestr(k + ".npy", npy_bytes(v, version))
        with np.load(path) as F:          # numpy reads both
            assert np.array_equal(F["covar"], GOOD["covar"])
        load_case(path, expect_ok=ok, names=["version (3, 0)"],
                  check=lambda r: same_params(r, GOOD["amp"], GOOD["mean"], GOOD["covar"]))


def test_deflate_bomb_is_refused_before_loading(files):
    bomb = files()
    np.savez_compressed(bomb, amp=np.ones(1), mean=np.zeros((1, 2)), covar=np.zeros((1, 3000, 3000)))
    assert bomb.stat().st_size < 100_000
    start = time.perf_counter()
    err = load_case(bomb, expect_ok=False, names=["inconsistent shapes"])
    assert bomb.name in str(err) and time.perf_counter() - start < 0.5
    zeros = files()
    np.savez_compressed(zeros, amp=np.ones(1), mean=np.zeros((1, 3000)), covar=np.zeros((1, 3000, 3000)))
    start = time.perf_counter()
    err = load_case(zeros, expect_ok=False, names=["'covar'"])
    assert zeros.name in str(err) and time.perf_counter() - start < 3.0


def test_declared_size_beyond_memory_is_refused_before_reading(files, settings):
    path = files()
    np.savez(path, **GOOD)
    settings(memory_limit=model_checks.ARRAY_SHARE * 100)
    load_case(path, expect_ok=False, names=["memory"])


def test_lying_zip_sizes(files):
    """A central directory that claims far more bytes than are stored."""
    for writer in (np.savez, np.savez_compressed):
        path = files()
        with zipfile.ZipFile(path, "w") as zf:     # without zip64 extras: the sizes are in place
            for k, v in GOOD.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, v)
                zf.writestr(k + ".npy", buf.getvalue(),
                            compress_type=zipfile.ZIP_DEFLATED if writer is np.savez_compressed
                            else zipfile.ZIP_STORED)
        raw = bytearray(path.read_bytes())
        cd = raw.rfind(b"PK\x01\x02")               # the central record of covar.npy
        raw[cd + 24:cd + 28] = (2**31).to_bytes(4, "little")   # its uncompressed size
        path.write_bytes(bytes(raw))
        load_case(path, expect_ok=False, names=["'covar'"])


# ---------------------------------------------------------------------------
# paths: types, missing files, directories, special files, the .npz suffix
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad, exc", [
    (None, TypeError), (3, TypeError), (3.5, TypeError), ([1], TypeError), ({"a": 1}, TypeError),
    (object(), TypeError), ("", ValueError), ("a\x00b", ValueError), (b"", ValueError),
    (io.StringIO("text"), TypeError), (io.BytesIO(b""), ValueError),
    (io.BytesIO(b"PK\x03\x04junk"), ValueError), ("closed", ValueError), ("write-only", ValueError),
], ids=["None", "int", "float", "list", "dict", "object", "empty", "nul", "empty-bytes", "StringIO",
        "BytesIO-empty", "BytesIO-junk", "closed-file", "write-only-file"])
def test_load_hostile_path_types(tmp_path, bad, exc):
    if bad == "closed":
        bad = io.BytesIO(b"PK")
        bad.close()
    elif bad == "write-only":
        bad = open(tmp_path / "w.npz", "wb")
    err = load_case(bad, expect_ok=False, names=["filename", "<BytesIO>", "w.npz"])
    if not isinstance(bad, (str, bytes)) and hasattr(bad, "close"):
        bad.close()
    assert isinstance(err, exc)


def test_load_missing_directory_and_special_files(files, tmp_path):
    err = load_case(tmp_path / "nothing", expect_ok=False, names=["nothing.npz"])
    assert isinstance(err, FileNotFoundError) and "'" + str(tmp_path / "nothing") + "'" in str(err)
    load_case(tmp_path / "nothing.npz", expect_ok=False, names=["nothing.npz"])
    load_case(tmp_path / "missing_dir" / "m.npz", expect_ok=False, names=["m.npz"])
    load_case(tmp_path, expect_ok=False, names=["directory"])
    (tmp_path / "dir.npz").mkdir()
    load_case(tmp_path / "dir.npz", expect_ok=False, names=["directory"])
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.npz")
        load_case(tmp_path / "fifo.npz", expect_ok=False, names=["regular file"])
    if os.path.exists("/dev/zero"):
        load_case("/dev/zero", expect_ok=False, names=["regular file"])
    os.symlink(tmp_path / "loop_b.npz", tmp_path / "loop_a.npz")
    os.symlink(tmp_path / "loop_a.npz", tmp_path / "loop_b.npz")
    load_case(tmp_path / "loop_a.npz", expect_ok=False, names=["loop_a.npz"])
    load_case(tmp_path / ("x" * 300), expect_ok=False, names=["x" * 300])
    np.save(tmp_path / "single.npy", np.zeros(3))
    load_case(tmp_path / "single.npy", expect_ok=False, names=[".npy file"])
    (tmp_path / "empty.npz").write_bytes(b"")
    load_case(tmp_path / "empty.npz", expect_ok=False, names=["empty.npz' is empty"])
    (tmp_path / "text.npz").write_text("amp = [1]\n")
    load_case(tmp_path / "text.npz", expect_ok=False, names=["not a .npz"])


@many(60)
@given(K=st.integers(1, 4), D=st.integers(1, 4), seed=st.integers(0, 1000),
       form=st.sampled_from(["str", "str.npz", "path", "path.npz", "bytes", "fileobj", "dir-named-model"]))
def test_round_trips(files, K, D, seed, form):
    g = make_model(K, D, seed)
    target = files("")
    given_path = {"str": str(target), "str.npz": str(target) + ".npz", "path": target,
                  "path.npz": target.with_suffix(".npz"), "bytes": os.fsencode(target),
                  "dir-named-model": target}.get(form)
    if form == "fileobj":
        buf = io.BytesIO()
        run(lambda: g.save(buf, note=np.arange(3)), [], expect_ok=True)
        buf.seek(0)
        load = buf
    else:
        if form == "dir-named-model":
            target.mkdir()               # 'model' is a directory, 'model.npz' the saved file
        run(lambda: g.save(given_path, note=np.arange(3)), [], expect_ok=True)
        assert os.path.exists(str(target) + ".npz")
        load = given_path
    check = lambda r: same_params(r, g.amp, g.mean, g.covar)  # noqa: E731
    load_case(load, expect_ok=True, check=check)
    if form == "fileobj":
        return
    with np.load(str(target) + ".npz") as F:       # still an ordinary numpy archive
        assert sorted(F.files) == ["amp", "covar", "mean", "note"] and F["note"].tolist() == [0, 1, 2]


def test_save_hostile_arguments(files, tmp_path):
    g = make_model(2, 2)
    for bad, name in ((None, "filename"), (3, "filename"), ([str(tmp_path / "x")], "filename"),
                      ("", "filename"), ("a\x00b", "NUL"), (str(tmp_path) + os.sep, "directory"),
                      (str(tmp_path) + "/.", "directory"), (tmp_path / "nodir" / "m.npz", "nodir"),
                      (io.StringIO(), "binary mode"), (tmp_path / ("x" * 300), "x" * 300)):
        run(lambda b=bad: g.save(b), [name], expect_ok=False, gmm=g)
    (tmp_path / "isdir.npz").mkdir()
    run(lambda: g.save(tmp_path / "isdir.npz"), ["directory"], expect_ok=False, gmm=g)
    for extras, name in (({"amp": 1}, "amp"), ({"note": {"a": 1}}, "note"), ({"x": [None]}, "'x'"),
                         ({"r": [[1], [1, 2]]}, "'r'")):
        run(lambda e=extras: g.save(files(), **e), [name], expect_ok=False, gmm=g)
    half = make_model(2, 2)
    half.amp = [0.2, 0.3, 0.5]                   # K disagrees until mean and covar follow
    for bad_gmm, name in ((ng.GMM(2, 2), "not initialized"), (half, "disagree on K")):
        path = files()
        run(lambda b=bad_gmm, p=path: b.save(p), [name], expect_ok=False)
        assert not path.exists()
    weird = {"file": np.ones(1), "allow_pickle": np.zeros(2), "amp.npy": np.ones(3)}
    path = files()
    run(lambda: g.save(path, **weird), [], expect_ok=True)
    with np.load(path) as F:
        assert sorted(F.files) == ["allow_pickle", "amp", "amp.npy", "covar", "file", "mean"]
    load_case(path, expect_ok=True, check=lambda r: same_params(r, g.amp, g.mean, g.covar))


def test_failed_save_keeps_the_old_file(files, monkeypatch):
    g = make_model(2, 2)
    path = files()
    g.save(path)
    before = path.read_bytes()
    err = run(lambda: g.save(path, bad=np.array([{1: 2}], dtype=object)), ["'bad'"], expect_ok=False)
    assert err is not None and path.read_bytes() == before

    def disk_full(f, arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_files, "_write_zip", disk_full)
    with pytest.raises(OSError, match="No space left"):
        make_model(3, 3).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
