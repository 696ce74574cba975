"""Tools: test problems, comparisons, plots and the demo, on top of everything else.

:mod:`.datasets` and :mod:`.pairs` (the pyGMMis paper's problems, GMM pairs
with a target AUC), :mod:`.compare` (matching components, held-out
likelihoods), :mod:`.plots` (matplotlib, optional), :mod:`.demo`.
"""
