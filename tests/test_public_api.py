"""The public surface survives the package's layout: names, old import paths, fit's signature."""
from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

import pygmmis_ng as ng
from pygmmis_ng.estimators.mixture import IncompleteGaussianMixture
from pygmmis_ng.fitting.fitter import fit
from pygmmis_ng.fitting.problem.options import FitOptions
from pygmmis_ng.fitting.setup.checks import check_fit
from pygmmis_ng.model import GMM
from pygmmis_ng.selection.background import Background
from pygmmis_ng.tools import datasets, plots


def test_every_exported_name_resolves():
    missing = [name for name in ng.__all__ if not hasattr(ng, name)]
    assert not missing


def test_public_names_are_the_layer_objects():
    assert ng.fit is fit
    assert ng.GMM is GMM
    assert ng.Background is Background
    assert ng.IncompleteGaussianMixture is IncompleteGaussianMixture
    assert ng.datasets is datasets and ng.plots is plots


#: run in a fresh interpreter, the first before anything imported the package
FORMER_PATHS = [
    "import pygmmis_ng.plots as m; m.plot_ellipses",
    "from pygmmis_ng.plots import plot_ellipses, plot_density",
    "from pygmmis_ng.datasets import paper_2d, paper_3d, gmm_pair",
    "import pygmmis_ng.datasets; pygmmis_ng.datasets.paper_2d",
    "from pygmmis_ng.init import init_kmeans, init_random, INIT_METHODS",
    "from pygmmis_ng.latent import fill_latent",
    "from pygmmis_ng.compare import match_components, heldout_logL",
    "import pygmmis_ng as ng; ng.init.init_minmax; ng.latent.fill_latent; ng.compare.heldout_logL",
    # the flat fitting modules the API reference named before fitting/ had sub-layers
    "from pygmmis_ng.fitting.online_fit import OnlineReport",
    "from pygmmis_ng.fitting.online import OnlineState",
    "from pygmmis_ng.fitting.result import FitResult; assert FitResult is ng.FitResult",
    "from pygmmis_ng.fitting.init import init_kmeans, INIT_METHODS",
    "from pygmmis_ng.fitting.partial import partial_fit, PieceResult",
]


def test_former_import_paths_work_in_a_fresh_interpreter():
    r = subprocess.run([sys.executable, "-c", "\n".join(FORMER_PATHS)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_fit_keeps_its_keywords_and_defaults():
    params = inspect.signature(ng.fit).parameters
    expected = {"gmm": inspect.Parameter.empty, "data": inspect.Parameter.empty, "covar": None,
                "R": None, "init_method": "auto", "w": 0.0, "cutoff": None,
                "sel_callback": None, "oversampling": 10, "covar_callback": None,
                "background": None, "tol": 1e-4, "miniter": None, "maxiter": 1000, "frozen": None,
                "split_n_merge": False, "rng": None, "n_jobs": 1, "sample_weight": None,
                "n_init": 1, "accelerate": True, "covariance_type": "full", "reg_covar": 0.0,
                "client": None, "dtype": np.float64, "progress": None, "batch_size": None,
                "n_passes": None, "finish": 0, "shuffle": True, "learning_decay": 0.55,
                "learning_offset": 2.0, "censored": None}
    assert list(params) == list(expected)
    assert {k: p.default for k, p in params.items()} == expected


def test_fit_passes_its_arguments_as_one_checked_options_object():
    X = np.random.default_rng(0).normal(size=(50, 2))
    kwargs = {k: p.default for k, p in inspect.signature(ng.fit).parameters.items()
              if p.default is not inspect.Parameter.empty}
    kwargs.update(w=0.5, tol=1e-5, n_init=2, split_n_merge=None)
    covar, R, weight, rng = (kwargs.pop(k) for k in ("covar", "R", "sample_weight", "rng"))
    obs, opts, gen = check_fit(ng.GMM(2, 2), X, covar, R, weight, rng, **kwargs)
    assert isinstance(opts, FitOptions)
    assert (opts.em.w, opts.em.tol, opts.start.n_init, opts.em.split_n_merge) == (0.5, 1e-5, 2, 0)
    assert obs.X.shape == (50, 2) and obs.Z is obs.X and obs.log_omega_mean == 0.0
    assert isinstance(gen, np.random.Generator)
    with pytest.raises(AttributeError):
        opts.em.w = 1.0                               # frozen: it travels, nothing rewrites it


def test_fit_result_still_unpacks_as_logL_U():
    X = np.random.default_rng(1).normal(size=(200, 2))
    gmm = ng.GMM(2, 2)
    logL, U = ng.fit(gmm, X, init_method="kmeans", rng=0)
    assert np.isfinite(logL) and len(U) == 2
    assert logL == pytest.approx(float(np.mean(gmm.logL(X))), rel=1e-9)
