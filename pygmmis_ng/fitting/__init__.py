"""Fitting: :func:`pygmmis_ng.fit` and the EM behind it.

:mod:`.fitter` (``fit`` as named steps), :mod:`.options` (the checked
arguments), :mod:`.prepare` and :mod:`.problem` (the fixed quantities),
:mod:`.init`, :mod:`.em_loop`, :mod:`.estep`, :mod:`.mstep`,
:mod:`.acceleration`, :mod:`.neighborhoods`, :mod:`.split_merge`,
:mod:`.stacking`, :mod:`.result`, :mod:`.progress`. Runs its tasks on an
executor of :mod:`pygmmis_ng.execution`.
"""
