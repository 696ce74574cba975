"""Selection: what the observation process removed or added.

:mod:`.imputation` (draws from the current model that the selection
rejected), :mod:`.forward` (the forward model ``draw``), :mod:`.background`
(a uniform background). Imports kernels, data and the model.
"""
