"""Kernels: the math of one EM iteration on one chunk of samples.

Pure functions over arrays, no state and no knowledge of how a fit is run:
:mod:`.stats` (prepared components, sufficient statistics), :mod:`.dense`
(the E-step without projections) and :mod:`.projected` (per-sample
projections) in numpy -- the references -- and their compiled counterparts:
the generated family of :mod:`.fused` (per-pair math of :mod:`.algebra` in the
loop skeletons of :mod:`.skeletons`, helpers in :mod:`.lanes`), the GEMMs of
:mod:`.quadratic`, :mod:`.patterns` (many missingness patterns),
:mod:`.hessian` (the Newton polish) and :mod:`.compiled_transforms`. The lowest
layer: it imports nothing else of the package.
"""
