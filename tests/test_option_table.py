"""The option table drives the signatures' docs, the validation of every entry point, the
boolean rule, and the runtime settings (issue 34)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import pygmmis_ng as ng
from pygmmis_ng import config
from pygmmis_ng.data.validation import ParameterError, check_flag
from pygmmis_ng.fitting.partial import partial_fit
from pygmmis_ng.fitting.problem.option_entries import COVARIANCE_TYPES, INIT_NAMES, TABLE
from pygmmis_ng.fitting.problem.option_table import check_option, options_on, render
from pygmmis_ng.fitting.setup.checks import check_fit
from pygmmis_ng.fitting.starts.init import INIT_METHODS

#: entry point -> (the callable whose signature it has, its leading arguments outside the table)
ENTRY = {"fit": (ng.fit, ("gmm", "data")), "partial_fit": (partial_fit, ("gmm", "data")),
         "estimator": (ng.IncompleteGaussianMixture, ()),
         "classifier": (ng.GenerativeClassifier, ())}


def _signature(path):
    fn, lead = ENTRY[path]
    return {k: p for k, p in inspect.signature(fn).parameters.items() if k not in lead}


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("path", list(ENTRY))
def test_signatures_and_the_table_agree(path):
    sig = _signature(path)
    table = {opt.name_on(path): opt for opt in options_on(TABLE, path)}
    assert list(sig) == [n for n in sig if n in table], f"not in the table: {set(sig) - set(table)}"
    assert set(table) == set(sig), f"in the table but not taken: {set(table) - set(sig)}"
    for name, param in sig.items():
        assert _same(param.default, table[name].default_on(path)), (path, name)


@pytest.mark.parametrize("path", list(ENTRY))
def test_the_parameter_docs_are_the_tables(path):
    fn, _ = ENTRY[path]
    doc = inspect.cleandoc(fn.__doc__)
    rendered = inspect.cleandoc(render(TABLE, path, list(_signature(path)), indent=0))
    assert rendered in doc
    section = doc.split("Parameters\n----------\n", 1)[1]
    listed = [line.split(" : ")[0] for line in section.splitlines()
              if " : " in line and not line.startswith(" ")]
    assert [n for n in listed if n in _signature(path)] == list(_signature(path))


def test_the_table_lists_every_name_and_family_the_code_knows():
    assert set(INIT_NAMES) == set(INIT_METHODS)
    assert set(COVARIANCE_TYPES) == {"full", "diag", "tied", "spherical"}
    assert all(opt.group in ("data", "em", "start", "imputation", "online", "execution", "entry")
               for opt in TABLE.values())


CHECKED = [name for name, opt in TABLE.items() if "fit" in opt.paths and opt.check is not None
           and opt.check.__name__ != "passthrough"]


@pytest.mark.parametrize("name", CHECKED)
def test_fit_refuses_a_bad_value_of_every_checked_option_by_name(name):
    X = np.random.default_rng(0).normal(size=(60, 2))
    gmm = ng.GMM(2, 2)
    before = gmm.copy()
    with pytest.raises((ValueError, TypeError), match=name):
        ng.fit(gmm, X, rng=0, **{name: object()})
    assert np.array_equal(gmm.mean, before.mean, equal_nan=True)


EST = [opt.name_on("estimator") for opt in options_on(TABLE, "estimator")
       if opt.check is not None and opt.check.__name__ != "passthrough"]


@pytest.mark.parametrize("name", EST)
def test_the_estimator_refuses_a_bad_value_of_every_checked_parameter_by_name(name):
    X = np.random.default_rng(0).normal(size=(60, 2))
    est = ng.IncompleteGaussianMixture(**{"n_components": 2, name: object()})
    with pytest.raises((ValueError, TypeError), match=name):
        est.fit(X)
    assert not hasattr(est, "gmm_")


def test_ints_are_strict_on_the_estimators_and_integral_floats_pass_on_fit():
    assert check_option(TABLE, "maxiter", 3.0, "fit") == 3
    with pytest.raises(ValueError, match="max_iter must be an int"):
        check_option(TABLE, "maxiter", 3.0, "estimator")
    with pytest.raises(ValueError, match="max_iter"):
        ng.IncompleteGaussianMixture(2, max_iter=3.0).fit(np.zeros((5, 1)) + np.arange(5)[:, None])


def test_an_option_a_path_does_not_take_is_refused():
    X = np.random.default_rng(0).normal(size=(60, 2))
    with pytest.raises(TypeError, match="n_init"):
        check_fit(ng.GMM(2, 2), X, path="partial_fit", n_init=2)
    with pytest.raises(TypeError, match="bogus"):
        check_fit(ng.GMM(2, 2), X, bogus=1)


@pytest.mark.parametrize("value, ok", [(True, True), (False, True), (np.True_, True), (0, False),
                                       (1, False), (2, False), ("yes", False), (None, False),
                                       (1.0, False)])
def test_one_boolean_rule(value, ok):
    if ok:
        assert check_flag(value, "x") is bool(value)
        return
    with pytest.raises(ParameterError, match="x must be True or False"):
        check_flag(value, "x")
    X = np.random.default_rng(0).normal(size=(60, 2))
    # the same rule, and the same error class (a ValueError and a TypeError), everywhere
    for call in (lambda: ng.fit(ng.GMM(2, 2), X, batch_size=30, shuffle=value, rng=0),
                 lambda: ng.IncompleteGaussianMixture(2, warm_start=value).fit(X),
                 lambda: ng.GMM(2, 2)(X, as_log=value)):
        with pytest.raises(ParameterError):
            call()
    assert issubclass(ParameterError, ValueError) and issubclass(ParameterError, TypeError)


def test_settings_scope_validation_and_default(settings):
    default = config.get_settings()
    with config.settings(imputation_block=4096) as inner:
        assert config.get_settings() is inner and inner.imputation_block == 4096
        assert inner.max_hessian == default.max_hessian
    assert config.get_settings() is default
    settings(max_hessian=3)
    assert config.get_settings().max_hessian == 3
    for bad in (dict(imputation_block=0), dict(compiled_kernels=1), dict(persist_share=2.0),
                dict(imputation_variates="halton"), dict(memory_limit=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            config.Settings(**bad)
    with pytest.raises(TypeError):
        config.Settings(no_such_setting=1)


def test_one_memory_policy(settings):
    settings(memory_limit=1 << 20)
    assert config.memory_limit() == 1 << 20
    with pytest.raises(ValueError, match="memory limit"):
        ng.GMM(1, 300)                  # 0.7 MB of parameters and room for their temporaries
    with pytest.raises(ValueError, match=r"this fit \(N=20000"):
        ng.fit(ng.GMM(3, 2), np.random.default_rng(0).normal(size=(20000, 2)), rng=0)
    settings(memory_limit=None)
    assert config.memory_limit() == config.physical_memory() > 0


def test_a_fit_keeps_the_settings_it_started_with():
    """The problem carries the settings in force when the fit started (what workers use)."""
    from pygmmis_ng.fitting.setup.prepare import prepare_problem

    X = np.random.default_rng(0).normal(size=(60, 2))
    with config.settings(imputation_block=1024):
        obs, opts, gen = check_fit(ng.GMM(2, 2), X, rng=0)
        problem = prepare_problem(obs, opts, 2, 2, gen)
    assert problem.settings.imputation_block == 1024
    assert config.get_settings().imputation_block != 1024


def test_a_numpy_string_is_a_string():
    """A grid of GridSearchCV given as a numpy array yields np.str_ values."""
    X = np.random.default_rng(0).normal(size=(60, 2))
    assert check_option(TABLE, "covariance_type", np.str_("diag")) == "diag"
    ng.IncompleteGaussianMixture(2, covariance_type=np.str_("diag"), random_state=0).fit(X)
    with pytest.raises(ValueError, match="covariance_type"):
        check_option(TABLE, "covariance_type", np.array(["diag"]))


def test_a_fit_reads_the_process_default_once(settings):
    """Changing the process default while a fit runs (here from its selection callback)
    does not change that fit: it runs under the settings it started with."""
    ds = ng.datasets.paper_2d(N=400, rng=1)
    calls = []

    def sel(coords):
        calls.append(1)
        if len(calls) == 3:
            config.set_settings(imputation_block=256)
        return ds.sel_callback(coords)

    kw = dict(covar=ds.covar, covar_callback=lambda c: ds.covar, maxiter=6, tol=0,
              oversampling=4, rng=2)
    ref = ng.fit(ng.GMM(2, 2), ds.data, sel_callback=ds.sel_callback, **kw)
    got = ng.fit(ng.GMM(2, 2), ds.data, sel_callback=sel, **kw)
    assert len(calls) > 3 and config.get_settings().imputation_block == 256
    assert got.logL == ref.logL
