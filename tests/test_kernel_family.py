"""The generated kernel family (issue 33): every registry entry equals the numpy reference,
neighborhood flags, errors and fallbacks, the on-disk kernel cache, SIMD code."""
from __future__ import annotations

import platform
import re

import numpy as np
import pytest
from conftest import random_spd

from pygmmis_ng import config
from pygmmis_ng.kernels import algebra, dense, fused, lanes, skeletons
from pygmmis_ng.kernels.compiled_transforms import deconvolve
from pygmmis_ng.kernels.skeletons import Spec
from pygmmis_ng.kernels.stats import Components, prepare_components

pytestmark = pytest.mark.skipif(not fused.enabled(), reason="the kernel family is compiled")


def _dim(spec: Spec) -> int:
    """A dimension the spec serves: its own, or (any D) one above those written out."""
    if spec.dim:
        return spec.dim
    return fused.LANES_MAX_D[spec.noise] + 2 if spec.skeleton == "lanes" else 6


def _problem(spec: Spec, seed: int, n: int = 700, K: int = 5, D: int | None = None):
    D = D or _dim(spec)
    rng = np.random.default_rng(seed)
    S = random_spd(rng, n, D, 0.05, 1.0)
    covar = random_spd(rng, K, D, 0.2, 3.0)
    if spec.family != "full":
        S = S * np.eye(D)
        var = rng.uniform(0.3, 2.0, (K, D if spec.family == "diag" else 1)) * np.ones((K, D))
        covar = np.einsum("ka,ab->kab", var, np.eye(D))
    mean = rng.normal(size=(K, D)) * 2
    x = mean[rng.integers(0, K, n)] + rng.normal(size=(n, D)) * 1.3   # near the members
    weight = rng.uniform(0, 2, n)
    weight[::9] = 0.0
    amp = rng.dirichlet(np.ones(K)) * 0.9
    amp[2] = 0.0                                    # a member that is never used
    log_bg = np.log(0.05) - 0.5 * D * np.log(2 * np.pi * 9.0) + rng.normal(size=n)  # sigma 3
    return x, (S if spec.noise == "per_sample" else None), weight, log_bg, amp, mean, covar


def _reference(x, S, weight, log_bg, amp, mean, covar):
    with config.settings(compiled_kernels=False):
        comps = prepare_components(amp, mean, covar, S)
        return dense.chunk_stats(x, comps, S, weight, log_bg)


def _via_spec(spec, x, S, weight, log_bg, amp, mean, covar, nbr=None, redo=None, c2=0.0):
    """Call the kernel of ``spec`` directly and lift its sums as the wrappers do."""
    D = x.shape[1]
    with np.errstate(divide="ignore"):
        log_amp = np.log(amp)
    if spec.noise == "per_sample":
        C = covar if spec.family == "full" else np.einsum("kaa->ka", covar)
        sums, logL, B, status = fused.run(spec, x, S, weight, log_bg, mean, C,
                                          log_amp - 0.5 * D * np.log(2 * np.pi),
                                          fused.Q_NEGLIGIBLE, nbr, redo, c2)
        A, SU, G = fused.unpack(sums, D, spec.family)
        return (A,) + deconvolve(covar, covar, A, SU, G) + (logL, B, status)
    comps = prepare_components(amp, mean, covar)
    C = comps.prec_chol if spec.family == "full" else np.einsum("kaa->ka", comps.prec_chol) ** 2
    log_c = comps.log_amp - 0.5 * (D * np.log(2 * np.pi) + comps.log_det)
    sums, logL, B, status = fused.run(spec, x, None, weight, log_bg, mean, C, log_c, 0.0,
                                      nbr, redo, c2)
    return fused.unpack(sums, D, spec.family) + (logL, B, status)


def _close(got, ref, family):
    Cg, Cr = got[2], ref.Cc
    if family != "full":                            # the diagonal (its mean): what the M-step reads
        Cg, Cr = np.einsum("kaa->ka", Cg), np.einsum("kaa->ka", Cr)
        if family == "spherical":
            Cg, Cr = Cg.mean(1), Cr.mean(1)
    np.testing.assert_allclose(got[0], ref.A, rtol=1e-11, atol=1e-12 * ref.A.max())
    # (pairs with q < 1e-13 of a sample's total are dropped by the per-sample-noise kernels:
    # up to n 1e-13 of the largest sum, 7e-11 here)
    np.testing.assert_allclose(got[1], ref.Mc, rtol=1e-10, atol=1e-10 * np.abs(ref.Mc).max())
    np.testing.assert_allclose(Cg, Cr, rtol=1e-10, atol=1e-10 * np.abs(Cr).max())
    assert got[3] == pytest.approx(ref.logL, rel=1e-12)
    assert got[4] == pytest.approx(ref.B, rel=1e-11)


PROJECTED = Spec("sample", "projected", "full", 0)
#: the kernels on complete samples without projections; the projected one has its own test
#: below, the two for missing values (noise 'masked', 'masked_shared') are tested against
#: brute force in tests/test_kernels_masked.py
DENSE = [s for s in fused.registry() if s.noise in ("shared", "per_sample")]


@pytest.mark.parametrize("spec", DENSE, ids=lambda s: "-".join(map(str, s)))
def test_every_registry_kernel_equals_the_numpy_reference(spec, monkeypatch):
    args = _problem(spec, seed=sum(map(ord, "".join(map(str, spec)))))
    got = _via_spec(spec, *args)
    assert got[5] == 0
    assert got[0][2] == 0.0                         # the empty member gets nothing
    _close(got, _reference(*args), spec.family)


def test_the_projected_kernel_equals_the_numpy_reference(settings, monkeypatch):
    from pygmmis_ng.kernels import projected

    assert PROJECTED in fused.registry()
    rng = np.random.default_rng(11)
    n, D, dy, K = 600, 4, 2, 4
    R = rng.normal(size=(n, dy, D))
    S = random_spd(rng, n, dy, 0.05, 0.5)
    mean, covar = rng.normal(size=(K, D)), random_spd(rng, K, D, 0.3, 2.0)
    y = np.einsum("nab,nb->na", R, mean[rng.integers(0, K, n)] + rng.normal(size=(n, D)))
    amp = np.array([0.4, 0.3, 0.0, 0.2])
    weight = rng.uniform(0, 2, n)
    weight[::7] = 0.0
    log_bg = np.log(0.1) - 0.5 * dy * np.log(2 * np.pi * 9.0) + rng.normal(size=n)
    with np.errstate(divide="ignore"):
        comps = Components(np.log(amp), mean, covar, None, None, None, None)
    out = {}
    for on in (False, True):
        settings(compiled_kernels=on)
        out[on] = projected.chunk_stats(y, R, S, comps, weight, log_bg)
    got = out[True]
    _close((got.A, got.Mc, got.Cc, got.logL, got.B), out[False], "full")
    assert got.A[2] == 0.0
    S[9] = -1e3 * np.eye(dy)
    with pytest.raises(np.linalg.LinAlgError, match="sample 9 "):
        fused.stats_projected(y, R, S, weight + 1, None, mean, covar, np.log(amp + 1e-300))


@pytest.mark.parametrize("noise", ["shared", "per_sample"])
@pytest.mark.parametrize("D", [2, 3, 6])
def test_neighborhood_flags_are_the_chi2_cut_and_skipped_pairs_do_not_count(noise, D):
    spec = fused.spec_for(noise, "full", D, True)
    assert spec.skeleton == "sample"
    x, S, weight, log_bg, amp, mean, covar = _problem(Spec("sample", noise, "full", D), seed=D)
    K = len(amp)
    comps = prepare_components(amp, mean, covar)
    _, chi2 = dense.log_joint_chi2(x, comps, S)
    c2 = float(np.quantile(chi2, 0.3))
    nbr = np.zeros((len(x), K), np.uint8)
    full = _via_spec(spec, x, S, weight, log_bg, amp, mean, covar)
    cut = _via_spec(spec, x, S, weight, log_bg, amp, mean, covar, nbr, np.ones(K, np.uint8), c2)
    live = weight > 0
    np.testing.assert_array_equal(nbr[live], (chi2 < c2)[live])
    # flags kept (redo = 0) give the same sums again; all flags set equals no neighborhoods
    again = _via_spec(spec, x, S, weight, log_bg, amp, mean, covar, nbr.copy(),
                      np.zeros(K, np.uint8), c2)
    np.testing.assert_allclose(again[0], cut[0], rtol=1e-15)
    every = _via_spec(spec, x, S, weight, log_bg, amp, mean, covar,
                      np.ones((len(x), K), np.uint8), np.zeros(K, np.uint8), c2)
    np.testing.assert_allclose(every[0], full[0], rtol=1e-14)
    assert cut[3] < full[3]                         # pairs outside add no likelihood


@pytest.mark.parametrize("spec", [s for s in DENSE if s.noise == "per_sample"],
                         ids=lambda s: "-".join(map(str, s)))
def test_a_noise_that_is_not_positive_definite_names_its_sample(spec):
    x, S, weight, log_bg, amp, mean, covar = _problem(spec, seed=4)
    D = x.shape[1]
    S[40] = -50.0 * np.eye(D)
    weight[40] = 1.0
    assert _via_spec(spec, x, S, weight, log_bg, amp, mean, covar)[5] == 41
    weight[40] = 0.0                                # a sample of weight 0 is not evaluated
    assert _via_spec(spec, x, S, weight, log_bg, amp, mean, covar)[5] == 0
    with pytest.raises(np.linalg.LinAlgError, match="sample 40 "):
        weight[40] = 1.0
        fused.stats_per_sample(x, S, weight, log_bg, mean, covar, np.log(amp + 1e-300),
                               family=spec.family)


def test_an_extreme_determinant_falls_back_to_the_folding_kernel(monkeypatch):
    # variances of 1e-160 at D = 4: the product of the Cholesky diagonals underflows the
    # lane kernel's range; the per-sample skeleton folds it into logarithms instead
    spec = Spec("lanes", "per_sample", "full", 4)
    x, S, weight, log_bg, amp, mean, covar = _problem(spec, seed=5)
    scale = 1e-80
    x, mean, S, covar = x * scale, mean * scale, S * scale**2, covar * scale**2
    log_bg = log_bg - 4 * np.log(scale)
    assert _via_spec(spec, x, S, weight, log_bg, amp, mean, covar)[5] == -1
    with np.errstate(divide="ignore"):
        log_amp = np.log(amp)
    got = fused.stats_per_sample(x, S, weight, log_bg, mean, covar, log_amp)
    ref = _reference(x, S, weight, log_bg, amp, mean, covar)
    assert got[3] == pytest.approx(ref.logL, rel=1e-12)
    np.testing.assert_allclose(got[0], ref.A, rtol=1e-10, atol=1e-12 * ref.A.max())


@pytest.mark.parametrize("family", ["diag", "spherical"])
@pytest.mark.parametrize("D", [3, 12])
def test_diagonal_per_sample_noise_through_the_chunk_kernel(family, D, monkeypatch):
    """dense.chunk_stats with diagonal components and noise: the family's kernel (lanes of
    O(D) per pair above D = 4, the full lanes below) against numpy."""
    spec = Spec("lanes", "per_sample", family, 0)
    x, S, weight, log_bg, amp, mean, covar = _problem(spec, seed=D, D=D)
    with np.errstate(divide="ignore"):
        comps = Components(np.log(amp), mean, covar, None, None, None, None, family=family)
    got = dense.chunk_stats(x, comps, S, weight, log_bg)
    _close((got.A, got.Mc, got.Cc, got.logL, got.B),
           _reference(x, S, weight, log_bg, amp, mean, covar), family)


def test_kernel_family_follows_the_components():
    rng = np.random.default_rng(0)
    K, D = 3, 4
    diag = np.einsum("ka,ab->kab", rng.uniform(1, 2, (K, D)), np.eye(D))
    iso = np.einsum("k,ab->kab", rng.uniform(1, 2, K), np.eye(D))
    full = random_spd(rng, K, D, 0.5, 2.0)
    amp, mean = np.ones(K) / K, rng.normal(size=(K, D))
    assert prepare_components(amp, mean, diag, family="diag").family == "diag"
    assert prepare_components(amp, mean, diag, family="spherical").family == "diag"
    assert prepare_components(amp, mean, iso, family="spherical").family == "spherical"
    assert prepare_components(amp, mean, iso, 0.1 * np.eye(D), family="spherical").family == "diag"
    assert prepare_components(amp, mean, full, family="diag").family == "full"
    assert prepare_components(amp, mean, diag, family="full").family == "full"


def test_generated_sources_are_cached_on_disk_and_loaded_by_name(tmp_path, monkeypatch):
    spec = Spec("lanes", "shared", "full", 2)
    src = skeletons.source(spec)
    assert "def kernel(" in src and "do not edit" in src
    monkeypatch.setenv("PYGMMIS_NG_KERNEL_DIR", str(tmp_path))
    kernel = fused._load(spec)         # render, import, compile and cache
    files = sorted(p.name for p in tmp_path.glob("*.py"))
    assert len(files) == 1 and files[0].startswith("pygmmis_ng_kernel_lanes_shared_full_2_")
    assert (tmp_path / files[0]).read_text() == src
    x = np.random.default_rng(1).normal(size=(40, 2))
    comps = prepare_components(np.array([0.5, 0.5]), np.zeros((2, 2)), np.stack([np.eye(2)] * 2))
    sums = np.zeros((2, algebra.moments(2, "full")))
    args = (x, np.zeros((0, 0, 0)), np.ones(40), np.zeros(0), 0, comps.mean, comps.prec_chol,
            comps.log_amp - 0.5 * (2 * np.log(2 * np.pi) + comps.log_det), 0.0)
    logL, _, _ = kernel(*args, sums)
    assert logL == pytest.approx(dense.chunk_stats(x, comps).logL, rel=1e-13)
    assert sums[:, 0].sum() == pytest.approx(40.0)
    assert list((tmp_path / "__pycache__").glob("*.nbi")), "numba cached the kernel next to it"


def test_unwritable_cache_directories_compile_in_memory(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PYGMMIS_NG_KERNEL_DIR", str(blocker / "sub"))   # under a file: fails
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fused._cache_dir() == tmp_path / "xdg" / "pygmmis_ng"
    monkeypatch.setattr(fused, "_cache_dir", lambda: None)
    kernel = fused._load(Spec("lanes", "shared", "full", 1))
    sums = np.zeros((1, 3))
    kernel(np.zeros((5, 1)), np.zeros((0, 0, 0)), np.ones(5), np.zeros(0), 0, np.zeros((1, 1)),
           np.ones((1, 1, 1)), np.zeros(1), 0.0, sums)
    assert sums[0, 0] == pytest.approx(5.0)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="reads x86 assembly")
def test_the_lane_kernels_compile_to_packed_simd_instructions(monkeypatch):
    """The pair loops run in SIMD lanes: packed square roots and divisions (XD) and packed
    multiplies (plain EM) in the compiled code, not one value at a time. (Compiled afresh in
    memory: a kernel loaded from numba's disk cache has no assembly to show.)"""
    monkeypatch.setattr(fused, "_cache_dir", lambda: None)
    render = fused._load
    for spec, packed in ((Spec("lanes", "per_sample", "full", 3), r"v?(sqrt|div)pd"),
                         (Spec("lanes", "shared", "full", 5), r"v?(mul|fmadd\w*)pd")):
        kernel = render(spec)
        monkeypatch.setattr(fused, "kernel", lambda s, k=kernel: k)
        _via_spec(spec, *_problem(spec, seed=0, n=50)[:7])     # compile it
        asm = "\n".join(kernel.inspect_asm().values())
        assert re.search(packed + r"\s+%[xyz]mm", asm), spec
    assert lanes.BL % 8 == 0


@pytest.mark.filterwarnings("ignore::pygmmis_ng.ConvergenceWarning")
@pytest.mark.parametrize("ct", ["diag", "spherical"])
@pytest.mark.parametrize("noise", [None, "diagonal", "correlated"])
def test_constrained_fits_with_the_o_d_kernels_equal_those_with_full_kernels(ct, noise,
                                                                              monkeypatch):
    import pygmmis_ng as ng
    from pygmmis_ng.fitting.setup.prepare import noise_is_diagonal
    from pygmmis_ng.kernels import stats

    rng = np.random.default_rng(7)
    N, D = 3000, 10
    X = rng.normal(size=(N, D)) + 3.0 * rng.integers(0, 3, (N, 1))
    S = None
    if noise is not None:
        S = np.einsum("na,ab->nab", rng.uniform(0.05, 0.3, (N, D)), np.eye(D))
        if noise == "correlated":
            S[:, 0, 1] = S[:, 1, 0] = 0.01
    assert noise_is_diagonal(S) == (noise != "correlated")
    families = []
    real_path = dense.kernel_path
    monkeypatch.setattr(dense, "kernel_path", lambda *a: families.append(a[4]) or real_path(*a))
    kw = dict(covar=S, covariance_type=ct, rng=3, tol=1e-9, init_method="kmeans")
    g1 = ng.GMM(3, D)
    r1 = ng.fit(g1, X, **kw)
    used = set(families)
    assert used == ({"full"} if noise == "correlated" else {ct})
    monkeypatch.setattr(stats, "kernel_family", lambda c, n, f: "full")
    g2 = ng.GMM(3, D)
    r2 = ng.fit(g2, X, **kw)
    assert r1.logL == pytest.approx(r2.logL, rel=1e-11)
    np.testing.assert_allclose(g1.covar, g2.covar, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(g1.mean, g2.mean, rtol=1e-7, atol=1e-9)
