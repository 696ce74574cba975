"""The forward model: draw what a survey with noise and a selection function observes.

:func:`draw` has pyGMMis's signature and its Poisson-consistency loop, with
a cap on how far the sample may grow.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats

from ..data.validation import check_int, check_rng
from ..model import GMM
from .background import Background
from .imputation import evaluate_selection, noisy

#: largest sample :func:`draw` generates at once
MAX_DRAW = 1 << 25

def _draw_model(gmm: GMM, size: int, covar_callback: Callable | None, background: Background | None,
                gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    bg_size = 0 if background is None else int(gen.binomial(size, background.amp))
    parts = [gmm.draw(size - bg_size, rng=gen)]
    if bg_size:
        parts.append(background.draw(bg_size, rng=gen))
    x = np.concatenate(parts)
    x = x[gen.permutation(len(x))]
    S = None
    if covar_callback is not None:
        x, S = noisy(covar_callback, x, gen.standard_normal(x.shape), "draws")
    return x, S


def poisson_interval(n: int, alpha: float = 0.32) -> tuple[float, float]:
    """Central (1 - alpha) confidence interval of a Poisson mean given n counts (default 68%)."""
    lower = 0.5 * scipy.stats.chi2.ppf(alpha / 2, 2 * n) if n > 0 else 0.0
    upper = 0.5 * scipy.stats.chi2.ppf(1 - alpha / 2, 2 * n + 2)
    return lower, upper


def draw(gmm: GMM, obs_size: int, sel_callback: Callable | None = None, invert_sel: bool = False,
         orig_size: int | None = None, covar_callback: Callable | None = None,
         background: Background | None = None, rng: Any = None, max_tries: int = 100
         ) -> tuple[np.ndarray, np.ndarray | None, int, np.ndarray | None]:
    """Draw from the GMM (and background) with noise and selection, like pyGMMis's ``draw``.

    Draws ``orig_size`` samples from the model, adds noise from
    ``covar_callback``, and keeps each with probability Omega
    (``sel_callback``) -- or 1 - Omega with ``invert_sel``. If the number of
    selected samples is outside the 68% Poisson interval of ``obs_size``, the
    original size is re-estimated as orig_size * obs_size / selected and the
    draw repeated, so the returned sample is consistent with ``obs_size``
    observed samples.

    Parameters
    ----------
    gmm : GMM
    obs_size : int
        Number of samples the selection is meant to keep.
    sel_callback : callable or None
        coords (n, D) -> selection probability (n,) in [0, 1].
    invert_sel : bool
        Return the samples the selection rejects instead.
    orig_size : int or None
        First guess of the size before selection (default ``obs_size``).
    covar_callback : callable or None
        coords (n, D) -> noise covariance (D, D) or (n, D, D) of each draw.
    background : Background or None
        Draw a fraction ``background.amp`` from it.
    rng : None, int, Generator or RandomState
    max_tries : int
        Give up (ValueError) after this many re-draws.

    Returns
    -------
    data : ndarray (n, D)
    covar : None, ndarray (D, D) or (n, D, D)
        Noise covariance of the returned samples.
    orig_size : int
        The (re-estimated) size before selection.
    omega : ndarray (n,) or None
        Selection probability of the returned samples.
    """
    if not isinstance(gmm, GMM):
        raise TypeError(f"gmm must be a pygmmis_ng.GMM, got {type(gmm).__name__}")
    gmm.validate()
    obs_size = check_int(obs_size, "obs_size", minimum=0)
    orig_size = obs_size if orig_size is None else check_int(orig_size, "orig_size", minimum=0)
    if background is not None:
        if not isinstance(background, Background) or background.D != gmm.D:
            raise ValueError(f"background must be a pygmmis_ng.Background with D={gmm.D}")
    for name, cb in (("sel_callback", sel_callback), ("covar_callback", covar_callback)):
        if cb is not None and not callable(cb):
            raise ValueError(f"{name} must be callable or None")
    gen = check_rng(rng)
    data, S = _draw_model(gmm, orig_size, covar_callback, background, gen)
    if sel_callback is None:
        return data, S, orig_size, None
    lower, upper = poisson_interval(obs_size)
    for _ in range(max_tries):
        omega = evaluate_selection(sel_callback, data, "draws")
        sel = gen.random(len(data)) < omega
        n_sel = int(sel.sum())
        if lower <= n_sel <= upper:
            break
        if n_sel == 0 and orig_size > 0 and omega.max() == 0:
            raise ValueError(f"sel_callback gives Omega = 0 for all {orig_size} draws from the model: "
                             "the model puts (almost) no mass where samples can be selected")
        # grow at most 10x per try, and never beyond MAX_DRAW samples
        orig_size = max(1, int(round(orig_size * min(obs_size / max(n_sel, 0.5), 10.0))))
        if orig_size > MAX_DRAW:
            raise ValueError(f"obs_size={obs_size} selected samples would need more than {MAX_DRAW} "
                             "draws: the selected fraction of the model is too small")
        data, S = _draw_model(gmm, orig_size, covar_callback, background, gen)
    else:
        raise ValueError(f"could not draw a sample consistent with obs_size={obs_size} in "
                         f"{max_tries} tries")
    if invert_sel:
        sel = ~sel
    if S is not None and S.ndim == 3:
        S = S[sel]
    return data[sel], S, orig_size, omega[sel]
