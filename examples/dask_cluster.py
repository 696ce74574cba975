"""Extreme deconvolution on a Dask cluster, from a zarr store on disk.
===================================================================

    python examples/dask_cluster.py            # pip install "pygmmis_ng[dask]" zarr

Writes N noisy samples of a 4-component 3D mixture, each with its own noise
covariance, to a zarr store block by block, opens them as dask arrays and fits
them on a LocalCluster: the samples are never loaded into this process (only a
sample of at most 2^18 rows for the initialization), and the fit equals the
single-process fit of the same numbers bit for bit.

On a SLURM cluster through dask-jobqueue (``pip install dask-jobqueue``) only
the cluster changes -- these two lines replace the LocalCluster::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=1, memory="4GB", walltime="01:00:00"); cluster.scale(jobs=32)
"""
import argparse
import logging
import tempfile

import numpy as np

import pygmmis_ng as ng


def write_store(path, truth, N, seed, block=100_000):
    """N draws of ``truth`` plus per-sample noise, written to ``path`` block by block."""
    import zarr

    rng = np.random.default_rng(seed)
    X = zarr.open_array(f"{path}/X", mode="w", shape=(N, 3), chunks=(block, 3), dtype="f8")
    S = zarr.open_array(f"{path}/S", mode="w", shape=(N, 3, 3), chunks=(block, 3, 3), dtype="f8")
    for lo in range(0, N, block):
        n = min(block, N - lo)
        sd = rng.uniform(0.2, 1.0, n)                       # heteroscedastic, isotropic noise
        X[lo:lo + n] = truth.draw(n, rng=rng) + sd[:, None] * rng.standard_normal((n, 3))
        S[lo:lo + n] = sd[:, None, None] ** 2 * np.eye(3)


def main(N=400_000, seed=1, smoke=False):
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    if smoke:
        N = 40_000
    truth = ng.GMM(K=4, D=3)
    truth.amp = [0.4, 0.3, 0.2, 0.1]
    truth.mean = [[0, 0, 0], [5, 1, 0], [1, 6, 2], [-4, 3, -3]]
    truth.covar = np.array([np.diag(v) for v in ([1.0, 0.5, 0.8], [0.3, 0.3, 0.6],
                                                 [0.5, 0.1, 0.4], [0.6, 0.9, 0.2])])
    with tempfile.TemporaryDirectory() as tmp:
        write_store(tmp, truth, N, seed)
        X, S = da.from_zarr(f"{tmp}/X"), da.from_zarr(f"{tmp}/S")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            gmm = ng.GMM(K=4, D=3)
            result = ng.fit(gmm, X, covar=S, rng=seed, tol=1e-5, client=client)
        # the same numbers in this process, for comparison (small N only)
        same = None
        if N <= 100_000:
            local = ng.GMM(K=4, D=3)
            ng.fit(local, np.asarray(X), covar=np.asarray(S), rng=seed, tol=1e-5)
            same = bool(np.array_equal(local.mean, gmm.mean))
    order = ng.match_components(gmm, truth)
    error = float(np.abs(gmm.mean[order] - truth.mean).max())
    print(f"{N} samples from zarr on 2 Dask workers: {result.n_iter} iterations, "
          f"mean logL {result.logL:.4f}, largest error of a mean {error:.3f}"
          + ("" if same is None else f", equal to the one-process fit: {same}"))
    return {"logL": result.logL, "largest_mean_error": error, "equal_to_local": same,
            "amp": gmm.amp[order]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--N", type=int, default=400_000, help="samples (default 400000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--smoke", action="store_true", help="a small, quick run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    main(N=args.N, seed=args.seed, smoke=args.smoke)
