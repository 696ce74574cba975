"""pygmmis_ng: Gaussian mixture models for noisy, incomplete data.

Quick use::

    import pygmmis_ng as ng
    gmm = ng.GMM(K=3, D=2)
    logL, U = ng.fit(gmm, data, covar=noise_covariances, init_method="kmeans", rng=0)
    density = gmm(coords)
    samples = gmm.draw(1000, rng=1)
"""
import logging

from sklearn.exceptions import ConvergenceWarning

from . import compare, datasets, init, latent
from .background import Background
from .classifier import GenerativeClassifier
from .compare import heldout_logL, match_components
from .em import fit
from .estimator import IncompleteGaussianMixture
from .forward import draw
from .imputation import CallbackError
from .init import INIT_METHODS
from .model import GMM
from .model_selection import KScan, scan_K
from .neighborhoods import chi2_cutoff
from .parallel import WorkerDied
from .result import FitResult
from .stacking import cv_fit, stack, stack_fit

__version__ = "0.1.0"

__all__ = ["GMM", "Background", "fit", "IncompleteGaussianMixture", "GenerativeClassifier",
           "draw", "FitResult", "CallbackError", "WorkerDied",
           "ConvergenceWarning", "INIT_METHODS", "chi2_cutoff", "match_components", "heldout_logL",
           "compare", "datasets", "init", "latent", "scan_K", "KScan", "cv_fit", "stack", "stack_fit",
           "__version__"]

logging.getLogger("pygmmis_ng").addHandler(logging.NullHandler())
