"""Estimators: scikit-learn shells over :func:`pygmmis_ng.fit`.

:mod:`.mixture` (``IncompleteGaussianMixture``), :mod:`.classifier`
(``GenerativeClassifier``), :mod:`.model_selection` (``scan_K``).
"""
