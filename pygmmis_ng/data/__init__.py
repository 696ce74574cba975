"""Data: what was observed, checked and laid out for the kernels.

:mod:`.validation` (every input check), :mod:`.layout` (fixed chunks, groups
by missingness pattern), :mod:`.observed` (a group's E-step and densities),
:mod:`.latent` (latent points for initialization with NaN or projections).
Imports only :mod:`pygmmis_ng.kernels`.
"""
