"""Split'n'merge (SMEM): escapes a constructed local optimum; candidates and moves against truth."""
import logging
import math
import re

import numpy as np
import pytest
from conftest import random_spd
from scipy.stats import multivariate_normal

import pygmmis_ng as ng
from pygmmis_ng.fitting.em import split_merge
from pygmmis_ng.fitting.em.split_merge import apply, candidates
from pygmmis_ng.fitting.problem.problem import State
from pygmmis_ng.fitting.starts import driver as restarts
from pygmmis_ng.fitting.starts.init import resolve_init

#: A far away; B and C 6 sigma apart
TRUE_MEANS = np.array([[-30.0, 0.0], [0.0, 0.0], [6.0, 0.0]])


def make_truth(extra=()):
    means = np.concatenate([TRUE_MEANS, np.reshape(extra, (-1, 2))])
    truth = ng.GMM(len(means), 2)
    truth.amp = np.full(len(means), 1.0 / len(means))
    truth.mean = means
    truth.covar = np.tile(np.eye(2), (len(means), 1, 1))
    return truth


def local_optimum_init(extra=()):
    """Two components inside A, one spanning B and C (plus ``extra`` ones at their truth)."""
    gmm = make_truth(extra)
    gmm.mean[:3] = [[-30.5, 0.0], [-29.5, 0.0], [3.0, 0.0]]
    gmm.covar[2] = np.diag([10.0, 1.0])
    return gmm


@pytest.fixture(scope="module")
def X():
    return make_truth().draw(3000, rng=np.random.default_rng(1))


def fit(gmm, X, **kwargs):
    kwargs = {"init_method": "none", "tol": 1e-6, "rng": 0, **kwargs}
    return ng.fit(gmm, X, **kwargs)


def assert_found_truth(gmm, truth, atol=0.15):
    d = np.linalg.norm(gmm.mean[:, None, :] - truth.mean[None, :, :], axis=2)
    assert d.min(axis=0).max() < atol, gmm.mean


def attempts_logged(caplog):
    pat = re.compile(r"split'n'merge attempt (\d+)/(\d+): merge (\d+)\+(\d+), split (\d+): "
                     r"logL (\S+) -> (\S+), (accepted|rejected)")
    return [pat.fullmatch(r.getMessage()).groups() for r in caplog.records
            if r.getMessage().startswith("split'n'merge attempt")]


# ---------------------------------------------------------------------------
# the constructed local optimum
# ---------------------------------------------------------------------------

def test_escapes_local_optimum_that_plain_em_keeps(X, caplog):
    truth = make_truth()
    plain = local_optimum_init()
    res_plain = fit(plain, X, split_n_merge=False)
    # plain EM stays put: one mean between B and C, far from both; two inside A
    between = np.abs(plain.mean[:, 0] - 3.0) < 1.0
    assert between.sum() == 1
    assert np.linalg.norm(plain.mean[between] - TRUE_MEANS[1:], axis=1).min() > 2.0
    assert (np.abs(plain.mean[:, 0] + 30) < 2).sum() == 2

    gmm = local_optimum_init()
    with caplog.at_level(logging.INFO, logger="pygmmis_ng"):
        res = fit(gmm, X, split_n_merge=3)
    assert_found_truth(gmm, truth)
    assert res.logL > res_plain.logL + 0.2
    ref = truth.copy()
    res_true = fit(ref, X)
    assert res.logL == pytest.approx(res_true.logL, abs=1e-3)
    log = attempts_logged(caplog)
    assert len(log) == 3 and [a[:2] for a in log] == [("1", "3"), ("2", "3"), ("3", "3")]
    # the first candidate is Ueda's: merge the two components inside A, split the spanning one
    assert log[0][2:5] == ("0", "1", "2") and log[0][-1] == "accepted"
    assert float(log[0][5]) == pytest.approx(res_plain.logL, abs=1e-6)
    assert float(log[0][6]) > float(log[0][5])
    assert res.n_eval > res_plain.n_eval          # the attempts' cost is counted
    # each attempt starts from the best so far and is accepted iff it gained more than tol
    best = res_plain.logL
    for *_, before, after, verdict in log:
        assert float(before) == pytest.approx(best, abs=1e-6)
        assert verdict == ("accepted" if float(after) > best + 1e-6 * abs(best) else "rejected")
        best = float(after) if verdict == "accepted" else best
    assert best == pytest.approx(res.logL, abs=1e-6)


def test_partial_em_frees_only_the_triple(X, monkeypatch):
    calls = []

    def spy(p, st, *args):
        run = real(p, st, *args)
        calls.append(({k: m.copy() for k, m in p.em.masks.items()}, st, run))
        return run

    real = split_merge.run_em
    monkeypatch.setattr(split_merge, "run_em", spy)
    extra = [[0.0, 30.0]]
    fit(local_optimum_init(extra), make_truth(extra).draw(1000, rng=np.random.default_rng(4)),
        frozen={"covar": [3]}, split_n_merge=2)
    assert len(calls) == 4
    for (m_part, st_part, run_part), (m_full, st_full, _) in zip(calls[::2], calls[1::2]):
        free = ~m_part["amp"]
        assert free.sum() == 3 and not free[3]
        for key in ("mean", "covar"):
            np.testing.assert_array_equal(m_part[key], ~free)
        np.testing.assert_array_equal(m_full["covar"], [False, False, False, True])
        assert not m_full["amp"].any() and not m_full["mean"].any()
        assert st_full is run_part.state          # the full EM continues from the partial one
        # the partial EM changed nothing outside the triple
        for key in ("amp", "mean", "covar"):
            np.testing.assert_array_equal(getattr(run_part.state, key)[~free],
                                          getattr(st_part, key)[~free])


def test_true_means_three_attempts(X, caplog):
    with caplog.at_level(logging.INFO, logger="pygmmis_ng"):
        fit(local_optimum_init(), X, split_n_merge=True, miniter=0, maxiter=0)
    assert [a[:2] for a in attempts_logged(caplog)] == [("1", "3"), ("2", "3"), ("3", "3")]


def test_with_cutoff(X):
    plain = local_optimum_init()
    res_plain = fit(plain, X, cutoff=3.0)
    gmm = local_optimum_init()
    res = fit(gmm, X, cutoff=3.0, split_n_merge=2)
    assert res.logL >= res_plain.logL + 0.2
    assert_found_truth(gmm, make_truth())
    assert all(u is not None for u in res.U)


def test_with_imputation(monkeypatch):
    # split'n'merge alone: without the k-means start a fit under a selection adds to any other
    monkeypatch.setattr(restarts, "start_inits",
                        lambda opts: [resolve_init(opts.start.init)] * opts.start.n_init)
    truth = make_truth()
    Y = truth.draw(2000, rng=np.random.default_rng(5))

    def sel(coords):                                       # a box: y < 1
        return (coords[:, 1] < 1.0).astype(float)

    Y = Y[sel(Y) > 0]
    kw = {"sel_callback": sel, "oversampling": 4, "tol": 1e-4, "rng": 7}
    res_plain = fit(local_optimum_init(), Y, **kw)
    gmm = local_optimum_init()
    res = fit(gmm, Y, split_n_merge=2, **kw)
    assert res.logL >= res_plain.logL + 0.2
    assert_found_truth(gmm, truth, atol=0.3)
    assert res.orig_size == pytest.approx(Y.shape[0] / 0.84, rel=0.1)


# ---------------------------------------------------------------------------
# frozen components and K < 3
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("frozen", [[3], {"covar": [3]}, {"mean": [3]}, {"amp": [3]}],
                         ids=["all", "covar", "mean", "amp"])
def test_frozen_component_takes_no_part(frozen, caplog):
    extra = [[0.0, 30.0]]
    truth = make_truth(extra)
    Y = truth.draw(2000, rng=np.random.default_rng(2))
    gmm = local_optimum_init(extra)
    gmm.covar[3] = [[1.2, 0.1], [0.1, 0.9]]                # frozen values off the truth
    gmm.mean[3] = [0.1, 30.1]
    before = gmm.copy()
    with caplog.at_level(logging.INFO, logger="pygmmis_ng"):
        fit(gmm, Y, frozen=frozen, split_n_merge=3)
    log = attempts_logged(caplog)
    assert log and all("3" not in a[2:5] for a in log)
    masks = frozen if isinstance(frozen, dict) else {"amp": [3], "mean": [3], "covar": [3]}
    for key in masks:      # the mean only up to the rounding of the fit's centring
        np.testing.assert_allclose(getattr(gmm, key)[3], getattr(before, key)[3], rtol=0, atol=1e-12)
    assert_found_truth(gmm, truth, atol=0.25)


def test_too_few_free_components_is_a_noop_with_warning(X, caplog):
    plain = local_optimum_init()
    fit(plain, X, frozen={"mean": [0]})
    gmm = local_optimum_init()
    with caplog.at_level(logging.WARNING, logger="pygmmis_ng"):
        fit(gmm, X, frozen={"mean": [0]}, split_n_merge=3)
    assert "split'n'merge skipped" in caplog.text
    for key in ("amp", "mean", "covar"):
        np.testing.assert_array_equal(getattr(gmm, key), getattr(plain, key))


@pytest.mark.parametrize("value", [1, True])
def test_K_below_3_is_an_error(X, value):
    gmm = ng.GMM(2, 2)
    ng.init.init_random(gmm, X, rng=0)
    before = gmm.copy()
    with pytest.raises(ValueError, match=r"split_n_merge needs K >= 3 components.*got K=2"):
        ng.fit(gmm, X, init_method="none", split_n_merge=value)
    np.testing.assert_array_equal(gmm.mean, before.mean)


# ---------------------------------------------------------------------------
# candidates against a brute-force ranking
# ---------------------------------------------------------------------------

def brute_force_ranking(log_joint, log_bg, weight, amp, bg_amp):
    N, K = log_joint.shape
    q = np.empty((N, K))
    for n in range(N):
        tot = sum(math.exp(v) for v in log_joint[n]) + (0 if log_bg is None else math.exp(log_bg[n]))
        q[n] = [math.exp(v) / tot for v in log_joint[n]]
    JM = {(i, j): sum(weight[n] * q[n, i] * q[n, j] for n in range(N))
          for i in range(K) for j in range(i + 1, K)}
    JS = {}
    for k in range(K):
        A = sum(weight[n] * q[n, k] for n in range(N))
        total = 0.0
        for n in range(N):
            f = weight[n] * q[n, k] / A
            p = math.exp(log_joint[n, k]) / (amp[k] * (1 - bg_amp))
            total += f * math.log(f / p) if f > 0 else 0.0
        JS[k] = total
    pairs = sorted(JM, key=lambda ij: -JM[ij])
    splits = sorted(JS, key=lambda k: -JS[k])
    return [(i, j, k) for i, j in pairs for k in splits if k not in (i, j)], pairs, splits


def toy(seed=0, N=12, K=5, overlap=(1, 3)):
    rng = np.random.default_rng(seed)
    amp = rng.dirichlet(np.full(K, 10.0))
    bg_amp = 0.1
    log_dens = rng.normal(-6, 1.5, (N, K))
    log_dens[:5, list(overlap)] = 0.0               # samples 0-4 belong to both components
    log_joint = np.log(amp * (1 - bg_amp)) + log_dens
    log_bg = np.log(bg_amp) + rng.normal(-6, 1, N)
    weight = rng.uniform(0.5, 2.0, N)
    return log_joint, log_bg, weight, amp, bg_amp


def test_candidates_match_brute_force():
    log_joint, log_bg, weight, amp, bg_amp = toy()
    got = candidates(log_joint, log_bg, weight, amp, bg_amp)
    want, pairs, splits = brute_force_ranking(log_joint, log_bg, weight, amp, bg_amp)
    assert pairs[0] == (1, 3)                       # the construction holds
    assert got == want
    assert got[:3] == [(1, 3, k) for k in splits if k not in (1, 3)]
    assert len(got) == 10 * 3
    assert candidates(log_joint, log_bg, weight, amp, bg_amp, limit=4) == want[:4]
    # unit weights and no background
    got = candidates(log_joint, None, None, amp, 0.0)
    assert got == brute_force_ranking(log_joint, None, np.ones(12), amp, 0.0)[0]


def test_candidates_weights_matter():
    log_joint, log_bg, weight, amp, bg_amp = toy()
    weight[:5] = 0.0                                # the overlapping samples count for nothing
    got = candidates(log_joint, log_bg, weight, amp, bg_amp)
    assert got[0][:2] != (1, 3)
    assert got == brute_force_ranking(log_joint, log_bg, weight, amp, bg_amp)[0]


def test_candidates_exclude_frozen_and_need_three():
    log_joint, log_bg, weight, amp, bg_amp = toy()
    frozen = np.array([False, True, False, False, False])
    got = candidates(log_joint, log_bg, weight, amp, bg_amp, frozen=frozen)
    assert len(got) == 6 * 2 and all(1 not in t for t in got)
    assert candidates(log_joint[:, :2], log_bg, weight, amp[:2], bg_amp) == []
    assert candidates(log_joint, log_bg, weight, amp, bg_amp,
                      frozen=np.array([True, True, False, True, False])) == []


# ---------------------------------------------------------------------------
# apply: the moves preserve moments
# ---------------------------------------------------------------------------

@pytest.fixture
def state():
    rng = np.random.default_rng(3)
    K, D = 5, 3
    return State(rng.dirichlet(np.ones(K)), rng.normal(0, 3, (K, D)), random_spd(rng, K, D, 0.2, 2.0),
                 0.05, 1234.0)


def test_apply_merge_matches_submixture_moments(state):
    i, j, k = 1, 3, 0
    new = apply(state, (i, j, k))
    a = state.amp[i] + state.amp[j]
    assert new.amp[i] == pytest.approx(a)
    # closed form from raw moments
    m = (state.amp[i] * state.mean[i] + state.amp[j] * state.mean[j]) / a
    second = sum(state.amp[c] * (state.covar[c] + np.outer(state.mean[c], state.mean[c]))
                 for c in (i, j)) / a
    np.testing.assert_allclose(new.mean[i], m, atol=1e-12)
    np.testing.assert_allclose(new.covar[i], second - np.outer(m, m), atol=1e-12)
    # and by brute force from samples of the sub-mixture
    rng = np.random.default_rng(0)
    n = rng.multinomial(400_000, state.amp[[i, j]] / a)
    x = np.concatenate([multivariate_normal(state.mean[c], state.covar[c]).rvs(nc, random_state=rng)
                        for c, nc in zip((i, j), n)])
    np.testing.assert_allclose(new.mean[i], x.mean(0), atol=0.02)
    np.testing.assert_allclose(new.covar[i], np.cov(x.T), rtol=0.01, atol=0.03)


def test_apply_split_preserves_moments_along_principal_axis(state):
    i, j, k = 1, 3, 0
    before = [s.copy() for s in state[:3]]
    new = apply(state, (i, j, k))
    assert new.amp[k] == new.amp[j] == pytest.approx(state.amp[k] / 2)
    mix_mean = 0.5 * (new.mean[k] + new.mean[j])
    d = new.mean[k] - mix_mean
    mix_cov = 0.5 * (new.covar[k] + new.covar[j]) + np.outer(d, d)   # both offsets are +-d
    np.testing.assert_allclose(mix_mean, state.mean[k], atol=1e-12)
    np.testing.assert_allclose(mix_cov, state.covar[k], atol=1e-12)
    lam, vec = np.linalg.eigh(state.covar[k])
    np.testing.assert_allclose(abs(d @ vec[:, -1]), math.sqrt(2 * lam[-1] / math.pi), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(d), math.sqrt(2 * lam[-1] / math.pi), rtol=1e-12)
    assert np.linalg.eigvalsh(new.covar[[j, k]]).min() > 0
    # the rest
    assert new.amp.sum() == pytest.approx(state.amp.sum(), abs=1e-15)
    for c in (2, 4):
        assert new.amp[c] == state.amp[c]
        np.testing.assert_array_equal(new.mean[c], state.mean[c])
        np.testing.assert_array_equal(new.covar[c], state.covar[c])
    assert (new.bg_amp, new.N0) == (state.bg_amp, state.N0)
    for a, b in zip(state[:3], before):
        np.testing.assert_array_equal(a, b)          # input untouched


def test_apply_needs_distinct_components(state):
    with pytest.raises(ValueError, match="three distinct"):
        apply(state, (1, 1, 0))
