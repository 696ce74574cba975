"""Online EM on a memory-mapped file: a few passes instead of tens.
=================================================================

    python examples/online_memmap.py [--N 1000000]

Writes N noisy samples of a 5-component 3D mixture, each with its own noise
covariance, to ``.npy`` files block by block, opens them memory-mapped (the fit
reads them chunk by chunk and never copies them whole) and fits them twice:
by full-batch EM to a tight tolerance (the reference optimum), and by online
(stepwise) EM with minibatches of 10 000 rows for one, two and three passes
(the same seed: the same first passes), each scored exactly by one more pass.
The figure shows the distance of both to the optimum.
"""
import argparse
import logging
import os
import tempfile
import time

import numpy as np

import pygmmis_ng as ng


def make_truth():
    truth = ng.GMM(K=5, D=3)
    truth.amp = [0.3, 0.25, 0.2, 0.15, 0.1]
    truth.mean = [[0, 0, 0], [3, 1, 0], [1, 4, 1], [-3, 2, -2], [2, -3, 2]]
    truth.covar = np.array([np.diag(v) for v in ([1.0, 0.6, 0.8], [0.4, 0.5, 0.6],
                                                 [0.6, 0.3, 0.5], [0.7, 0.9, 0.4],
                                                 [0.5, 0.5, 0.9])])
    return truth


def write_files(folder, truth, N, seed, block=100_000):
    """N draws of ``truth`` plus per-sample noise in X.npy and S.npy, written block by block;
    returned memory-mapped (read-only)."""
    rng = np.random.default_rng(seed)
    X = np.lib.format.open_memmap(os.path.join(folder, "X.npy"), mode="w+", dtype=np.float64,
                                  shape=(N, 3))
    S = np.lib.format.open_memmap(os.path.join(folder, "S.npy"), mode="w+", dtype=np.float64,
                                  shape=(N, 3, 3))
    for lo in range(0, N, block):
        n = min(block, N - lo)
        sd = rng.uniform(0.3, 1.0, n)
        X[lo:lo + n] = truth.draw(n, rng=rng) + sd[:, None] * rng.standard_normal((n, 3))
        S[lo:lo + n] = sd[:, None, None] ** 2 * np.eye(3)
    X.flush()
    S.flush()
    del X, S
    return (np.load(os.path.join(folder, "X.npy"), mmap_mode="r"),
            np.load(os.path.join(folder, "S.npy"), mmap_mode="r"))


def main(N=1_000_000, seed=2, smoke=False, show=True):
    if smoke:
        N = 60_000
    truth = make_truth()
    batch = max(N // 100, 500)                       # ~100 minibatches per pass
    with tempfile.TemporaryDirectory() as tmp:
        X, S = write_files(tmp, truth, N, seed)
        t = time.perf_counter()
        full_gmm = ng.GMM(K=5, D=3)
        full = ng.fit(full_gmm, X, covar=S, rng=seed, tol=1e-7)
        full_s = time.perf_counter() - t
        # the same seed gives the same first passes: stop after 1, 2, 3 and score each exactly
        exact, seconds = [], []
        for passes in (1, 2, 3):
            t = time.perf_counter()
            gmm = ng.GMM(K=5, D=3)
            online = ng.fit(gmm, X, covar=S, rng=seed, batch_size=batch, n_passes=passes,
                            tol=0)
            seconds.append(time.perf_counter() - t)
            exact.append(ng.fit(gmm.copy(), X, covar=S, init_method="none", maxiter=0).logL)
        del X, S                                      # close the files before they go
    order = ng.match_components(gmm, truth)
    error = float(np.abs(gmm.mean[order] - truth.mean).max())
    on = online.online
    print(f"{N} memory-mapped samples, D=3, K=5, per-sample noise")
    print(f"full-batch EM: {full.n_eval} passes, {full_s:.1f} s, mean logL {full.logL:.5f}")
    for passes, (logL, secs) in enumerate(zip(exact, seconds), start=1):
        print(f"online EM, {passes} pass(es) ({passes * on.n_batches // on.n_passes} minibatches "
              f"of {batch} rows): {secs:.1f} s, mean logL {logL:.5f} ({logL - full.logL:+.1e})")
    print(f"largest error of a mean after 3 passes: {error:.3f}")
    if show:
        figure(full, exact)
    return {"full_logL": full.logL, "online_logL": exact[-1], "online_each_pass": exact,
            "passes": on.n_passes, "full_passes": full.n_eval, "largest_mean_error": error,
            "slice_logL": on.pass_logL, "full_seconds": full_s, "online_seconds": seconds[-1]}


def figure(full, exact):
    import matplotlib.pyplot as plt

    best = max(full.logL, *exact)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(np.arange(1, len(full.history)), np.maximum(best - full.history[1:], 1e-8),
                "o-", ms=3, label="full-batch EM, after each iteration (>= 1 pass each)")
    ax.semilogy(np.arange(1, len(exact) + 1), np.maximum(best - np.array(exact), 1e-8),
                "s-", label="online EM, after each pass")
    ax.axhline(1e-3, color="grey", ls=":")
    ax.set_xlabel("iterations (full batch) / passes (online)")
    ax.set_ylabel("optimum - mean logL per sample")
    ax.set_title("Online EM on a memory-mapped file")
    ax.legend()
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--N", type=int, default=1_000_000, help="samples (default 10^6)")
    parser.add_argument("--seed", type=int, default=2, help="random seed (default 2)")
    parser.add_argument("--smoke", action="store_true", help="a small, quick run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    main(N=args.N, seed=args.seed, smoke=args.smoke)
    import matplotlib.pyplot as plt
    plt.show()
