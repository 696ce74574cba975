import dataclasses
import runpy
import warnings
from pathlib import Path

import numpy as np
import pytest

import pygmmis_ng as ng


def make_truth() -> ng.GMM:
    """A well-separated 3-component model in 2D."""
    truth = ng.GMM(K=3, D=2)
    truth.amp = [0.5, 0.3, 0.2]
    truth.mean = [[0.0, 0.0], [6.0, 1.0], [2.0, 7.0]]
    truth.covar = [[[1.5, 0.6], [0.6, 1.0]], [[0.5, -0.2], [-0.2, 0.8]], [[0.7, 0.0], [0.0, 0.3]]]
    return truth


def make_3d_pair(seed: int, spread: float) -> ng.GMM:
    """Two components in 3D (amplitudes 0.4, 0.6), covariances A A^T + 0.5 I with A ~ spread * N(0, 1)."""
    rng = np.random.default_rng(seed)
    g = ng.GMM(2, 3)
    g.amp = [0.4, 0.6]
    g.mean = [[0.0, 0.0, 0.0], [4.0, 3.0, -2.0]]
    A = spread * rng.normal(size=(2, 3, 3))
    g.covar = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(3)
    return g


def random_spd(rng, n, D, lo=0.1, hi=1.0):
    """n random SPD matrices with eigenvalues in [lo, hi]."""
    Q, _ = np.linalg.qr(rng.standard_normal((n, D, D)))
    ev = rng.uniform(lo, hi, size=(n, D))
    return Q @ (ev[:, :, None] * np.eye(D)) @ Q.transpose(0, 2, 1)


def add_noise(rng, x, S):
    """x plus Gaussian noise with covariance S ((D,D) or (N,D,D))."""
    N, D = x.shape
    S = np.broadcast_to(S, (N, D, D))
    return x + np.einsum("nij,nj->ni", np.linalg.cholesky(S), rng.standard_normal((N, D)))


@pytest.fixture
def truth():
    return make_truth()


@pytest.fixture
def noisy_data():
    """2000 draws of the truth with per-sample noise; returns (truth, y, S, x)."""
    rng = np.random.default_rng(42)
    truth = make_truth()
    x = truth.draw(2000, rng=rng)
    S = random_spd(rng, 2000, 2, 0.1, 0.8)
    return truth, add_noise(rng, x, S), S, x


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, **kwargs):
    """Run ``examples/<name>.py``'s ``main(smoke=True, **kwargs)`` (figures off-screen)."""
    import matplotlib
    matplotlib.use("Agg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runpy.run_path(str(EXAMPLES / f"{name}.py"))["main"](smoke=True, **kwargs)


@pytest.fixture
def settings():
    """``settings(name=value, ...)`` changes the runtime settings (:mod:`pygmmis_ng.config`)
    for the rest of one test; they are restored after it."""
    saved = ng.config.get_settings()
    yield ng.config.set_settings
    ng.config.set_settings(**dataclasses.asdict(saved))
