"""Fitting: :func:`pygmmis_ng.fit` and the EM behind it, in sub-layers.

Each sub-layer imports only from itself and the ones before it
(``tests/test_architecture.py``):

``problem`` (what a fit holds: the option table and option groups, the
problem, state and run, the result, the reporting, the data's scales) ->
``em`` (one full-batch EM run: E-step, M-step, acceleration, convergence,
Newton polish, split'n'merge) -> ``online`` (stepwise EM's passes) ->
``starts`` (initializations, the one driver of the starts, the end of a fit)
-> ``setup`` (from arguments to a problem: checks, preparation) -> the
entry points :mod:`.fitter` (``fit``), :mod:`.partial` (``partial_fit``) and
:mod:`.stacking` (``cv_fit``, ``stack``, ``stack_fit``). Tasks run on an
executor of :mod:`pygmmis_ng.execution`.
"""
import sys

from .online import runner as _online_runner
from .problem import result as _result
from .starts import init as _init

#: flat module paths of ``fitting`` before its sub-layers that the docs named; kept as
#: aliases (deprecated: import from the sub-layers, or use the top-level names)
FORMER_PATHS = {"online_fit": _online_runner, "result": _result, "init": _init}
for _name, _module in FORMER_PATHS.items():
    sys.modules.setdefault(f"{__name__}.{_name}", _module)
del _name, _module
