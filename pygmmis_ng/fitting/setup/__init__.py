"""From a fit's arguments to its problem: every check (:mod:`.checks`; dask-array input:
:mod:`.out_of_core`) and the fixed quantities laid out for the kernels (:mod:`.prepare`)."""
