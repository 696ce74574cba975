"""Bitwise regression snapshot: one fingerprint per fit path, to compare across re-layouts.

Runs 18 fit paths (every data kind, selection, background, constrained
covariances, starts, split'n'merge, online EM, ``partial_fit``, the estimator,
float32), the imputation and pool paths also with ``n_jobs=2``, and prints for
each the repr of logL and a SHA-256 of the fitted parameters::

    python benchmarks/regression_snapshot.py > before.json
    ... change the code ...
    python benchmarks/regression_snapshot.py > after.json
    python benchmarks/regression_snapshot.py --compare before.json after.json

A refactoring that claims "results unchanged" must give identical files.
"""
from __future__ import annotations

import hashlib
import json
import sys
import warnings

import numpy as np

import pygmmis_ng as ng


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    return h.hexdigest()[:16]


def _fingerprint(gmm, res) -> dict:
    return {"logL": repr(float(res.logL)), "n_iter": int(res.n_iter),
            "params": _digest(gmm.amp, gmm.mean, gmm.covar)}


def _data(seed: int = 0, N: int = 1500, D: int = 3):
    gen = np.random.default_rng(seed)
    truth = ng.GMM(3, D)
    truth.amp[:] = [0.5, 0.3, 0.2]
    truth.mean[:] = gen.normal(0, 4, (3, D))
    truth.covar[:] = np.eye(D) * gen.uniform(0.5, 2.0, (3, 1, 1))
    return truth.draw(N, rng=gen), gen


def _paths():
    X, gen = _data()
    N, D = X.shape
    S = np.eye(D) * 0.3
    Si = np.einsum("n,ij->nij", gen.uniform(0.1, 0.6, N), np.eye(D))
    Xn = X + gen.normal(0, np.sqrt(0.3), X.shape)
    Xnan = X.copy()
    Xnan[gen.random(X.shape) < 0.15] = np.nan
    Xnan[np.isnan(Xnan).all(axis=1), 0] = 0.0
    Rs = gen.normal(size=(D, D))
    Rn = gen.normal(size=(N, 2, D))
    Y = np.einsum("nij,nj->ni", Rn, X)
    weight = gen.uniform(0.2, 2.0, N)
    paper = ng.datasets.paper_2d(N=2000, rng=1)
    paper_bg = ng.datasets.paper_2d(N=2000, bg_amp=0.2, rng=2)

    def cov_cb(coords):
        return paper.covar

    K = 3
    yield "plain", dict(K=K, data=X)
    yield "shared_noise", dict(K=K, data=Xn, covar=S)
    yield "per_sample_noise", dict(K=K, data=Xn, covar=Si)
    yield "missing", dict(K=K, data=Xnan)
    yield "R_shared", dict(K=K, D=D, data=X @ Rs.T, R=Rs, covar=np.eye(D) * 0.1)
    yield "R_per_sample", dict(K=K, D=D, data=Y, R=Rn)
    yield "weights", dict(K=K, data=X, sample_weight=weight)
    yield "cutoff", dict(K=K, data=Xn, covar=S, cutoff=3.0)
    yield "frozen", dict(K=K, data=X, frozen={"amp": [0], "mean": [1]}, init_method="none",
                         gmm_from="kmeans")
    for ct in ("diag", "tied", "spherical"):
        yield f"covariance_{ct}", dict(K=K, data=Xn, covar=S, covariance_type=ct)
    yield "starts_random_minmax_n_init", dict(K=K, data=X, init_method="minmax", n_init=3)
    yield "split_n_merge_plain_em", dict(K=4, data=X, split_n_merge=2, accelerate=False)
    yield "selection", dict(K=3, D=2, data=paper.data, covar=paper.covar,
                            sel_callback=paper.sel_callback, covar_callback=cov_cb,
                            oversampling=4, init_method="random", jobs=(1, 2))
    yield "selection_background", dict(K=3, D=2, data=paper_bg.data, covar=paper_bg.covar,
                                       sel_callback=paper_bg.sel_callback, covar_callback=cov_cb,
                                       background=paper_bg.background, oversampling=4,
                                       jobs=(1, 2))
    yield "online", dict(K=K, data=Xn, covar=S, batch_size=300, n_passes=3, finish=2)
    yield "float32_squarem", dict(K=K, data=Xnan, dtype=np.float32, accelerate="squarem")


def _run(name: str, spec: dict, n_jobs: int) -> dict:
    spec = dict(spec)
    K, D = spec.pop("K"), spec.pop("D", None)
    spec.pop("jobs", None)
    data = spec.pop("data")
    gmm = ng.GMM(K, D if D is not None else data.shape[1])
    if spec.pop("gmm_from", None):
        ng.fit(gmm, np.nan_to_num(data), init_method="kmeans", maxiter=0, rng=3)
    bg = spec.pop("background", None)
    if bg is not None:
        bg = ng.Background(bg.footprint)
    res = ng.fit(gmm, data, rng=7, n_jobs=n_jobs, background=bg, **spec)
    return _fingerprint(gmm, res)


def _partial_and_estimator() -> dict:
    X, _ = _data(seed=5)
    out = {}
    gmm = ng.GMM(3, X.shape[1])
    state = None
    for piece in np.array_split(X, 3):
        piece_res = ng.fitting.partial.partial_fit(gmm, piece, state=state, batch_size=250, rng=4)
        state = piece_res.state
    out["partial_fit"] = {"logL": repr(float(piece_res.logL)),
                          "params": _digest(gmm.amp, gmm.mean, gmm.covar)}
    est = ng.IncompleteGaussianMixture(3, random_state=0).fit(X)
    out["estimator"] = {"logL": repr(float(est.lower_bound_)),
                        "params": _digest(est.weights_, est.means_, est.covariances_)}
    return out


def snapshot() -> dict:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, spec in _paths():
            for n_jobs in spec.get("jobs", (1,)):
                out[f"{name}/n_jobs={n_jobs}"] = _run(name, spec, n_jobs)
        out.update(_partial_and_estimator())
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["--compare"]:
        a, b = (json.load(open(p)) for p in argv[1:3])
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        print(f"{len(a)} paths, {len(diff)} differ" + "".join(f"\n  {k}" for k in diff))
        return 1 if diff else 0
    json.dump(snapshot(), sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
