"""The end of a fit: the convergence report, the GMM written, the :class:`FitResult`."""
from __future__ import annotations

import logging
import warnings

from sklearn.exceptions import ConvergenceWarning

from ...model import GMM
from ...selection.background import Background
from ..em.diagnostics import warn_reseeded
from ..em.neighborhoods import neighborhoods
from ..problem.options import FitOptions
from ..problem.problem import Problem
from ..problem.result import FitResult, count_params
from .driver import Outcome

logger = logging.getLogger("pygmmis_ng")


def finish(gmm: GMM, background: Background | None, opts: FitOptions, problem: Problem,
           outcome: Outcome, elapsed: float) -> FitResult:
    """Warn if the best run did not converge, write it into the GMM (and background), the result.

    An online fit's report (``outcome.report``: its passes make the run's first iterations)
    makes the warning speak of them."""
    K, D = gmm.K, gmm.D
    best, online = outcome.best, outcome.report
    em = opts.em
    if online is not None and not best.converged and online.converged:
        warnings.warn("Best performing initialization did not converge. Try different init "
                      "parameters, or increase max_iter, tol, or check for degenerate data. "
                      "(online EM under a selection: the passes settled -- the evaluation "
                      "slice's mean logL changes by less than tol -- but EM crawls under a "
                      "selection, as the imputation follows the model, and stepwise EM more "
                      "so: the fit can lie well below the maximum. finish=True runs "
                      "full-batch EM to tol)", ConvergenceWarning, stacklevel=3)
    elif online is not None and not best.converged:
        h = online.pass_logL
        warnings.warn("Best performing initialization did not converge. Try different init "
                      "parameters, or increase max_iter, tol, or check for degenerate data. "
                      f"(online EM did not converge within n_passes={online.n_passes} passes; "
                      f"last change of the evaluation slice's mean logL: {h[-1] - h[-2]:.3g}; "
                      "more passes, or finish=True for full-batch EM to tol)",
                      ConvergenceWarning, stacklevel=3)
    elif not best.converged and best.on_ridge:
        warnings.warn("EM's test passed where the log-likelihood is not concave: the Newton "
                      "polish found directions along which it still rises, so the fit may be "
                      f"far below a maximum (mean logL {best.logL:.6g}). Typically a component "
                      "is collapsing onto a narrow group of samples, where the maximum lies on "
                      "the edge of the parameter space; a covariance floor (w) or fewer "
                      "components give a maximum that can be reached", ConvergenceWarning,
                      stacklevel=3)
    elif not best.converged and em.maxiter > 0:
        h = best.history
        last = f"{h[-1] - h[-2]:.3g}" if len(h) > 1 else "n/a"
        # the first sentence is scikit-learn's, which code written for GaussianMixture matches
        warnings.warn("Best performing initialization did not converge. Try different init "
                      "parameters, or increase max_iter, tol, or check for degenerate data. "
                      f"(EM did not converge within maxiter={em.maxiter} iterations; last "
                      f"change of mean logL: {last})", ConvergenceWarning, stacklevel=3)
    elif best.converged:
        logger.info("converged after %d iterations: mean logL %.6f", best.n_iter, best.logL)
    warn_reseeded(best.n_reseeded, best.n_ghosts, best.ghosts_left)
    U: list = [None] * K
    if em.cutoff is not None:
        U = neighborhoods(problem, best.comps, em.cutoff)
    st = best.state
    gmm.amp, gmm.mean, gmm.covar = st.amp, st.mean + problem.center, st.covar
    if background is not None:
        background.amp = st.bg_amp
    fit_bg_amp = opts.imputation.background is not None and opts.imputation.background.adjust_amp
    return FitResult(best.logL, U, n_iter=best.n_iter, n_eval=best.n_eval,
                     converged=best.converged, history=best.history,
                     n_samples=problem.Xc.shape[0], orig_size=st.N0,
                     n_imputed=st.N0 - problem.N_w,
                     bg_amp=None if opts.imputation.background is None else st.bg_amp,
                     n_reseeded=outcome.n_reseeded, n_ghosts=outcome.n_ghosts,
                     restarts_logL=outcome.restarts_logL, chosen=outcome.chosen,
                     n_params=count_params(K, D, em.masks, fit_bg_amp, em.covariance_type),
                     weight_sum=problem.N_w, elapsed=elapsed, online=online,
                     logL_se=best.logL_se, gap=best.gap, n_hessian=best.n_hessian)
