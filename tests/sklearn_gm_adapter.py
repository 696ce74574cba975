"""pytest plugin: scikit-learn's GaussianMixture test module run on IncompleteGaussianMixture.

Loaded by tests/test_sklearn_suite.py in a separate pytest process
(``-p sklearn_gm_adapter``). After collection, the name ``GaussianMixture`` in
every collected test module is bound to a subclass of IncompleteGaussianMixture
that changes nothing but the class name (scikit-learn's tests match messages
such as "This GaussianMixture instance is not fitted yet").
"""
from pygmmis_ng import IncompleteGaussianMixture


class GaussianMixture(IncompleteGaussianMixture):
    """IncompleteGaussianMixture under scikit-learn's class name."""


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "GaussianMixture"):
            module.GaussianMixture = GaussianMixture
