"""The Gaussian mixture model: parameters, density, sampling, persistence."""
from __future__ import annotations

import copy as _copy
import os
from typing import Any

import numpy as np

from . import model_checks as mc
from . import model_files as mf
from .conditioning import condition_params, marginal_params
from .data.observed import log_joint
from .data.validation import check_covariances, check_rng
from .kernels.stats import log_normalize


class GMM:
    """Gaussian mixture model with K components in D dimensions.

    Parameters
    ----------
    K : int
        Number of components (>= 1).
    D : int
        Dimension of the feature space (>= 1).

    Attributes
    ----------
    amp : ndarray (K,)
        Component amplitudes (mixing weights), non-negative, summing to 1.
    mean : ndarray (K, D)
        Component means.
    covar : ndarray (K, D, D)
        Component covariances, symmetric positive definite.

    Raises
    ------
    ValueError
        If K or D is not a positive integer, or the parameters would not fit
        in a quarter of the physical memory.

    Notes
    -----
    A new GMM has ``amp = 0`` and zero means and covariances: it must be initialized (by
    :func:`pygmmis_ng.fit` with an ``init_method``, or by setting the attributes) before it
    can be evaluated or drawn from. The arrays can be modified in place (``gmm.mean[0] =
    ...``) or replaced. Replacing them with arrays of another number of components changes
    K, as in pyGMMis (``gmm.amp = gmm.amp[keep]``, then ``mean`` and ``covar``): until all
    three agree, using the GMM raises a ValueError that says so (and ``repr`` shows it).
    """

    def __init__(self, K: int = 1, D: int = 1) -> None:
        K = mc.check_integer(K, "K", minimum=1)
        D = mc.check_integer(D, "D", minimum=1)
        mc.check_memory(mc.param_bytes(K, D), f"GMM(K={K}, D={D})")
        self._amp = np.zeros(K)
        self._mean = np.zeros((K, D))
        self._covar = np.zeros((K, D, D))

    # -- parameters ---------------------------------------------------------
    @property
    def K(self) -> int:
        """Number of components."""
        return self._amp.size

    @property
    def D(self) -> int:
        """Dimension of the feature space."""
        return self._mean.shape[1]

    def _set(self, name: str, value: Any, tail: tuple[int, ...]) -> None:
        """Replace a parameter by an array of shape (K', *tail); K' may differ from K."""
        arr = mc.real_array(value, name)
        if arr.ndim != 1 + len(tail) or arr.shape[1:] != tail:
            want = ", ".join(["K"] + [str(t) for t in tail])
            raise ValueError(f"{name} must have shape ({want}{',' if not tail else ''}) for D={self.D}; "
                             f"got {arr.shape} (create a new GMM to change D)")
        if arr.shape[0] == 0:
            raise ValueError(f"{name} must have at least one component, got shape {arr.shape}")
        setattr(self, "_" + name, arr)  # a new array: real_array copies

    def check_shapes(self) -> None:
        """Raise a ValueError unless amp, mean and covar hold the same number of components."""
        Ks = (self._amp.size, self._mean.shape[0], self._covar.shape[0])
        if len(set(Ks)) > 1:
            raise ValueError(f"the GMM's parameters disagree on K: amp has {Ks[0]} components, "
                             f"mean {Ks[1]}, covar {Ks[2]}; when changing K, assign all three")

    @property
    def amp(self) -> np.ndarray:
        return self._amp

    @amp.setter
    def amp(self, value: Any) -> None:
        self._set("amp", value, ())

    @property
    def mean(self) -> np.ndarray:
        return self._mean

    @mean.setter
    def mean(self, value: Any) -> None:
        self._set("mean", value, (self.D,))

    @property
    def covar(self) -> np.ndarray:
        return self._covar

    @covar.setter
    def covar(self, value: Any) -> None:
        self._set("covar", value, (self.D, self.D))

    def validate(self) -> None:
        """Check that the parameters describe a proper mixture.

        Raises
        ------
        ValueError
            If amplitudes are negative, non-finite or do not sum to 1 (within
            1e-6), means are not finite, or a covariance is not symmetric
            positive definite, or the three disagree on K.
        """
        self.check_shapes()
        if not np.isfinite(self._amp).all() or (self._amp < 0).any():
            raise ValueError("GMM.amp must be finite and non-negative")
        total = self._amp.sum()
        if total <= 0:
            raise ValueError("GMM is not initialized: the amplitudes sum to 0 "
                             "(fit it with an init_method, or set amp, mean and covar)")
        if abs(total - 1) > 1e-6:
            raise ValueError(f"GMM.amp must sum to 1, sums to {total:.8g}")
        if not np.isfinite(self._mean).all():
            raise ValueError("GMM.mean must be finite")
        check_covariances(self._covar, self.D, "GMM.covar", positive_definite=True)

    def copy(self) -> GMM:
        """A deep copy."""
        return _copy.deepcopy(self)

    def __repr__(self) -> str:
        Ks = (self._amp.size, self._mean.shape[0], self._covar.shape[0])    # half-resized: say so
        return f"GMM(K={self.K}, D={self.D})" if len(set(Ks)) == 1 else \
            f"GMM(K=?, D={self.D}: amp {Ks[0]}, mean {Ks[1]}, covar {Ks[2]} components)"

    # -- density ------------------------------------------------------------
    def _eval_inputs(self, coords: Any, covar: Any, R: Any = None, censored: Any = None
                     ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, bool,
                                np.ndarray | None]:
        """Checked coords (N, D) or (N, dy), their noise and projections, whether single, and
        the censoring flags (None if no value is censored)."""
        X, S, R, single, C = mc.eval_inputs(coords, covar, R, self.D, censored)
        self.validate()
        mc.check_memory(24 * X.shape[0] * self.K, f"evaluating {X.shape[0]} coords, K={self.K}")
        return X, S, R, single, C

    def log_joint(self, coords: Any, covar: Any = None, R: Any = None, censored: Any = None
                  ) -> np.ndarray:
        """log(a_k) + log N(x_i | m_k, V_k + S_i) for every sample and component.

        Parameters
        ----------
        coords : array-like (N, D), or (N, dy) with ``R``; NaN marks a
            missing value: the marginal over the measured values is used
        covar : None, (D, D) or (N, D, D) noise covariance of the coords
        R : None, (dy, D) or (N, dy, D) projections: coords_i = R_i x_i + noise
        censored : None or array-like (N, D) of -1, 0, +1: limits (see :meth:`logL`)

        Returns
        -------
        ndarray (N, K)
        """
        X, S, R, _, C = self._eval_inputs(coords, covar, R, censored)
        return self._log_joint(X, S, R, C)

    def _log_joint(self, X: np.ndarray, S: np.ndarray | None, R: np.ndarray | None = None,
                   C: np.ndarray | None = None) -> np.ndarray:
        return log_joint(X, R, S, self._amp, self._mean, self._covar, C)

    def logL(self, coords: Any, covar: Any = None, R: Any = None, censored: Any = None
             ) -> np.ndarray:
        """Log-density of the (noise-convolved) mixture at each sample.

        With ``covar`` S_i given, this is log sum_k a_k N(x_i | m_k, V_k + S_i),
        the likelihood of a noisy observation x_i of the mixture. With
        projections R_i: log sum_k a_k N(y_i | R_i m_k, R_i V_k R_i^T + S_i).
        NaN in coords marks missing values: the density is the exact
        marginal over each sample's measured values.

        Parameters
        ----------
        coords : array-like (N, D) or (D,); (N, dy) or (dy,) with ``R``
        covar : None, (D, D) or (N, D, D) (dy instead of D with ``R``)
        R : None, (dy, D) or (N, dy, D)
        censored : None or array-like (N, D) (or (D,)) of -1, 0, +1
            -1: coords[i, d] is an upper limit of the noisy value, +1 a lower limit: the
            density of the measured values times the probability that the limited ones
            lie beyond (:mod:`pygmmis_ng.kernels.censored`). Not with ``R``.

        Returns
        -------
        ndarray (N,), or a float for a single point of shape (D,)
        """
        X, S, R, single, C = self._eval_inputs(coords, covar, R, censored)
        log_norm, _ = log_normalize(self._log_joint(X, S, R, C))
        return float(log_norm[0]) if single else log_norm

    def logL_k(self, k: int, coords: Any, covar: Any = None, chi2_only: bool = False  # noqa: N802
               ) -> np.ndarray:
        """pyGMMis's per-component term: log a_k + log N(x_i | m_k, V_k + S_i), or with
        ``chi2_only`` the Mahalanobis distance (x_i - m_k)^T (V_k + S_i)^-1 (x_i - m_k).

        Returns
        -------
        ndarray (N,), or a float for a single point of shape (D,)
        """
        chi2_only = mc.check_flag(chi2_only, "chi2_only")
        X, S, R, single, _ = self._eval_inputs(coords, covar)
        k = mc.check_integer(k, "k")
        if not -self.K <= k < self.K:
            raise ValueError(f"k must be a component index in [{-self.K}, {self.K}), got {k}")
        if not chi2_only:
            out = self._log_joint(X, S, R)[:, k]
        elif np.isnan(X).any():
            raise ValueError("logL_k(chi2_only=True) needs coords without missing values")
        else:
            T = self._covar[k] if S is None else self._covar[k] + S
            L = np.linalg.cholesky(np.broadcast_to(T, (X.shape[0],) + T.shape[-2:]))
            y = np.linalg.solve(L, (X - self._mean[k])[:, :, None])[:, :, 0]
            out = (y**2).sum(axis=1)
        return float(out[0]) if single else out

    def _mp_chunksize(self) -> tuple[int, int]:
        """pyGMMis's split of the components over CPUs (n_chunks, chunksize), for its callers."""
        n_cpu = os.cpu_count() or 1
        chunksize = max(1, self.K // n_cpu)
        return min(n_cpu, self.K // chunksize), chunksize

    def responsibilities(self, coords: Any, covar: Any = None, R: Any = None,
                         censored: Any = None) -> np.ndarray:
        """Posterior probability q_ik that sample i came from component k (``censored`` as
        in :meth:`logL`).

        Returns
        -------
        ndarray (N, K), rows sum to 1
        """
        X, S, R, _, C = self._eval_inputs(coords, covar, R, censored)
        return log_normalize(self._log_joint(X, S, R, C))[1]

    def __call__(self, coords: Any, covar: Any = None, as_log: bool = False, R: Any = None,
                 censored: Any = None) -> np.ndarray:
        """Density (or log-density) of the mixture, convolved with ``covar`` if given.

        Parameters
        ----------
        coords : array-like (N, D) or (D,)
        covar : None, (D, D) or (N, D, D) noise covariance of the coords
        as_log : bool
            Return the natural log of the density.
        R : None, (dy, D) or (N, dy, D)
            Projections (see :meth:`logL`); NaN in coords marks missing values.
        censored : None or array-like (N, D) of -1, 0, +1: limits (see :meth:`logL`)

        Returns
        -------
        ndarray (N,), or a float for a single point
        """
        as_log = mc.check_flag(as_log, "as_log")
        log_p = self.logL(coords, covar=covar, R=R, censored=censored)
        return log_p if as_log else np.exp(log_p)

    # -- marginals and conditionals -------------------------------------------
    def marginal(self, dims: Any) -> GMM:
        """The mixture of the dimensions ``dims`` (indices or a boolean mask), others integrated out."""
        self.validate()
        amp, mean, covar = marginal_params(self._amp, self._mean, self._covar, mc.flat_index(dims))
        return GMM._from_params(amp, mean, covar)

    def condition(self, values: Any, dims: Any, noise: Any = None) -> GMM:
        """The mixture of the other dimensions given x[dims] = values.

        Parameters
        ----------
        values : array-like (len(dims),)
        dims : indices (or a boolean mask) of the given dimensions
        noise : None or (len(dims), len(dims))
            Noise covariance of the values (they are then measurements of x[dims]).

        Returns
        -------
        GMM with D - len(dims) dimensions, in the order of the remaining ones;
        its amplitudes are the posterior weights of the components.
        """
        self.validate()
        values = mc.real_array(values, "values")
        noise = None if noise is None else mc.real_array(noise, "noise")
        try:
            amp, mean, covar = condition_params(self._amp, self._mean, self._covar, values,
                                                mc.flat_index(dims), noise)
        except np.linalg.LinAlgError:
            raise ValueError("the covariances of the given dimensions (plus noise) are "
                             "numerically singular") from None
        return GMM._from_params(amp, mean, covar)

    @staticmethod
    def _from_params(amp: np.ndarray, mean: np.ndarray, covar: np.ndarray) -> GMM:
        out = GMM(K=amp.size, D=mean.shape[1])
        out.amp, out.mean, out.covar = amp, mean, covar
        return out

    # -- sampling -----------------------------------------------------------
    def draw(self, size: int = 1, rng: Any = None, return_component: bool = False
             ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Draw samples from the mixture, in random order.

        Parameters
        ----------
        size : int, the number of samples
        rng : None, int, numpy.random.Generator or numpy.random.RandomState
        return_component : bool, also return each sample's component index

        Returns
        -------
        samples : ndarray (size, D)
        component : ndarray (size,) of int, only if ``return_component``
        """
        size = mc.check_integer(size, "size", minimum=0)
        return_component = mc.check_flag(return_component, "return_component")
        gen = check_rng(rng)
        self.validate()
        mc.check_memory(8 * size * (2 * self.D + 2), f"draw(size={size}) with D={self.D}")
        try:
            chol = np.linalg.cholesky(self._covar)
        except np.linalg.LinAlgError:
            raise ValueError("GMM.covar is numerically singular: cannot draw from it") from None
        comp = gen.choice(self.K, size=size, p=self._amp / self._amp.sum())
        z = gen.standard_normal((size, self.D))
        samples = np.empty((size, self.D))
        for k in range(self.K):
            sel = comp == k
            samples[sel] = self._mean[k] + z[sel] @ chol[k].T
        return (samples, comp) if return_component else samples

    # -- persistence --------------------------------------------------------
    def save(self, filename: str | os.PathLike, **kwargs: Any) -> None:
        """Save to a numpy ``.npz`` file (``.npz`` is appended if missing).

        Parameters
        ----------
        filename : str, os.PathLike or a binary file open for writing
        **kwargs : arrays stored in the file too (not pickled: no object arrays)

        Raises
        ------
        ValueError
            If this GMM is invalid (could not be loaded again), an extra array is
            named amp, mean or covar or holds objects, or filename is a directory.
        """
        reserved = {"amp", "mean", "covar"} & set(kwargs)
        if reserved:
            raise ValueError(f"cannot store extra arrays named {sorted(reserved)}")
        extras = {key: mc.extra_array(value, key) for key, value in kwargs.items()}
        try:
            self.validate()
        except ValueError as exc:
            raise ValueError(f"cannot save this GMM, it could not be loaded again: {exc}") from None
        mf.write_npz(filename, {"amp": self._amp, "mean": self._mean, "covar": self._covar, **extras})

    def load(self, filename: str | os.PathLike) -> None:
        """Replace the parameters (and K, D) by those saved in ``filename``.

        Parameters
        ----------
        filename : str, os.PathLike or a binary file open for reading
            If no file ``filename`` exists, ``filename + '.npz'`` is tried
            (as :meth:`save` writes it).

        Raises
        ------
        ValueError
            (leaving this GMM unchanged) if the file is no saved GMM or holds no
            valid mixture, naming the file and key (see :mod:`.model_files`).
        """
        label, params = mf.read_params(filename)
        amp, mean, covar = params["amp"], params["mean"], params["covar"]
        loaded = GMM(K=amp.size, D=mean.shape[1])
        loaded._amp, loaded._mean, loaded._covar = amp, mean, covar
        try:
            loaded.validate()
        except ValueError as exc:
            raise ValueError(f"{label} does not hold a valid mixture: {exc}") from None
        self._amp, self._mean, self._covar = amp, mean, covar

    @staticmethod
    def from_file(filename: str | os.PathLike) -> GMM:
        """A new GMM with the parameters saved in ``filename`` (see :meth:`load`)."""
        gmm = GMM()
        gmm.load(filename)
        return gmm
