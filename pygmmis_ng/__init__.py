"""pygmmis_ng: Gaussian mixture models for noisy, incomplete data.

Quick use::

    import pygmmis_ng as ng
    gmm = ng.GMM(K=3, D=2)
    logL, U = ng.fit(gmm, data, covar=noise_covariances, init_method="kmeans", rng=0)
    density = gmm(coords)
    samples = gmm.draw(1000, rng=1)

The package reads as the algorithm, one layer per subpackage, each importing
only from the layers before it:

``kernels`` (math on one chunk) -> ``data`` (what was observed) ->
``model``/``conditioning`` (the GMM) -> ``selection`` (imputation, forward
draw, background) -> ``execution`` (serial, process pool) -> ``fitting``
(``fit`` and the EM) -> ``estimators`` (sklearn) -> ``tools`` (datasets,
plots, demo).
"""

import logging
import sys

from sklearn.exceptions import ConvergenceWarning

from . import config
from .data import latent
from .estimators.classifier import GenerativeClassifier
from .estimators.mixture import IncompleteGaussianMixture
from .estimators.model_selection import KScan, scan_K
from .estimators.scoring import NoiseWarning
from .execution import ClusterLost, ClusterStalled, WorkerDied
from .fitting.em.diagnostics import CollapseError, FitWarning, ReseedWarning, RunawayError
from .fitting.em.neighborhoods import chi2_cutoff
from .fitting.fitter import fit
from .fitting.problem.result import FitResult
from .fitting.stacking import cv_fit, stack, stack_fit
from .fitting.starts import init
from .fitting.starts.init import INIT_METHODS
from .model import GMM
from .selection.background import Background
from .selection.forward import draw
from .selection.imputation import CallbackError
from .tools import compare, datasets, plots
from .tools.compare import heldout_logL, match_components
from .tools.pygmmis_compat import (
    covar_callback_default,
    createShared,
    initFromDataAtRandom,
    initFromDataMinMax,
    initFromKMeans,
)

__version__ = "0.1.0"

__all__ = ["GMM", "Background", "fit", "IncompleteGaussianMixture", "GenerativeClassifier",
           "draw", "FitResult", "CallbackError", "WorkerDied", "ClusterLost", "ClusterStalled",
           "FitWarning", "ReseedWarning",
           "NoiseWarning", "RunawayError", "CollapseError",
           "ConvergenceWarning", "INIT_METHODS", "chi2_cutoff", "match_components", "heldout_logL",
           "compare", "config", "datasets", "init", "latent", "plots", "scan_K", "KScan", "cv_fit", "stack",
           "stack_fit", "__version__", "initFromDataMinMax", "initFromDataAtRandom",
           "initFromKMeans", "covar_callback_default", "createShared"]

#: public modules that lived at the top of the package before the layers; their
#: old import paths (``from pygmmis_ng.plots import plot_ellipses``) keep working
PUBLIC_MODULES = {"compare": compare, "datasets": datasets, "init": init, "latent": latent,
                  "plots": plots}
for _name, _module in PUBLIC_MODULES.items():
    sys.modules.setdefault(f"{__name__}.{_name}", _module)
del _name, _module

logging.getLogger("pygmmis_ng").addHandler(logging.NullHandler())
