"""Kernels: the math of one EM iteration on one chunk of samples.

Pure functions over arrays, no state and no knowledge of how a fit is run:
:mod:`.stats` (prepared components, sufficient statistics), :mod:`.dense`
(the E-step without projections), :mod:`.projected` (per-sample
projections), and their numba-compiled counterparts :mod:`.compiled`,
:mod:`.compiled_masked`, :mod:`.compiled_projected`,
:mod:`.compiled_transforms`. The lowest layer: it imports nothing else of
the package.
"""
