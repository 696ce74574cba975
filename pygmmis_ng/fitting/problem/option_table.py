"""The declarative option table: every option of a fit once, with its rule, default and doc.

Like scikit-learn's ``_parameter_constraints``, one :class:`Option` per option
says what it accepts (its ``check``), its default, the entry points it
applies to (``paths``: ``fit``, ``estimator`` (:class:`IncompleteGaussianMixture`),
``partial_fit``, ``classifier`` (:class:`GenerativeClassifier`)), the name and
default it has there where they differ (scikit-learn's ``max_iter`` for
``maxiter``), the group of option objects it belongs to (:mod:`.options`),
and its documentation. The table drives

* validation: :func:`check_option` (one option) and :func:`check_options`
  (all options of an entry point, in table order);
* the numpydoc ``Parameters`` of every entry point: :func:`documented`
  writes them into the docstrings from :func:`render`, and a test compares
  the signatures with the table;
* the grouped, frozen option objects (:mod:`.options`).

The entries themselves are in :mod:`.option_entries`.
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...data.validation import ParameterError, check_flag, check_float, check_int

#: the entry points the table serves
PATHS = ("fit", "estimator", "partial_fit", "classifier")
#: paths whose integer options take ints only (scikit-learn's rule); ``fit`` also takes an
#: integral float (``maxiter=K / 3``), as pyGMMis did under Python 2
STRICT_INT_PATHS = ("estimator", "classifier")
#: the groups of option objects (:mod:`.options`); 'data' and 'entry' are not grouped
GROUPS = ("data", "em", "start", "imputation", "online", "execution", "entry")


@dataclass(frozen=True)
class Option:
    """One option: what it accepts, its default, where it applies, what it means.

    Attributes
    ----------
    name : str
        Its name in :func:`pygmmis_ng.fit` (the table's key).
    type_doc : str
        The numpydoc type line.
    doc : str
        What it does (the first line is the summary; more lines give details).
    default : Any
        The default of ``fit`` (and of every path without an override).
    group : str
        The option object it belongs to (one of :data:`GROUPS`).
    paths : tuple of str
        The entry points that take it.
    check : callable or None
        ``check(value, name, path) -> value``: the validated value, or a clear error;
        None: checked elsewhere (the data arrays, by :mod:`pygmmis_ng.data.validation`).
    names, defaults, docs : dict path -> value
        Another name, default or doc on some path.
    """

    name: str
    type_doc: str
    doc: str
    default: Any
    group: str
    paths: tuple[str, ...]
    check: Callable[[Any, str, str], Any] | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    docs: Mapping[str, str] = field(default_factory=dict)
    type_docs: Mapping[str, str] = field(default_factory=dict)

    def name_on(self, path: str) -> str:
        return self.names.get(path, self.name)

    def default_on(self, path: str) -> Any:
        return self.defaults.get(path, self.default)

    def doc_on(self, path: str) -> str:
        return self.docs.get(path, self.doc)


# -- rules (each returns ``check(value, name, path)``) ------------------------
def integer(minimum: int | None = None, allow_none: bool = False, maximum: int | None = None,
            why: str = "") -> Callable[[Any, str, str], Any]:
    """An int >= ``minimum`` (<= ``maximum``: ``why`` says why); ints only on
    :data:`STRICT_INT_PATHS`."""
    def check(value: Any, name: str, path: str) -> Any:
        if value is None and allow_none:
            return None
        value = check_int(value, name, minimum=minimum, strict=path in STRICT_INT_PATHS)
        if maximum is not None and value > maximum:
            raise ValueError(f"{name}={value} exceeds {maximum}{why}")
        return value
    return check


def real(minimum: float | None = None, strict: bool = False, allow_none: bool = False,
         interval: tuple[float, float] | None = None, why: str = ""
         ) -> Callable[[Any, str, str], Any]:
    """A finite real >= (or > with ``strict``) ``minimum``; within the half-open
    ``interval`` (lo, hi] if given (``why`` says why)."""
    def check(value: Any, name: str, path: str) -> Any:
        value = check_float(value, name, minimum=minimum, strict=strict, allow_none=allow_none)
        if interval is not None and value is not None and not interval[0] < value <= interval[1]:
            raise ValueError(f"{name} must be in ({interval[0]:g}, {interval[1]:g}]{why}, "
                             f"got {value}")
        return value
    return check


def flag(value: Any, name: str, path: str) -> bool:
    """A boolean (the one rule: :func:`pygmmis_ng.data.validation.check_flag`)."""
    return check_flag(value, name)


def optional_flag(value: Any, name: str, path: str) -> bool | None:
    """None (automatic) or a boolean."""
    if value is None:
        return None
    try:
        return check_flag(value, name)
    except ParameterError:
        raise ParameterError(f"{name} must be None (automatic), True or False, got "
                             f"{value!r:.60}") from None


def one_of(*choices: Any, also: Callable[[Any], bool] | None = None, what: str = ""
           ) -> Callable[[Any, str, str], Any]:
    """One of ``choices`` (compared by equality, strings only to strings), or a value
    ``also`` accepts (``what`` names those in the error)."""
    def check(value: Any, name: str, path: str) -> Any:
        if also is not None and also(value):
            return value
        same_kind = [c for c in choices if c is not None and (
            isinstance(value, str) if isinstance(c, str) else type(value) is type(c))]
        if any(value == c for c in same_kind) or (value is None and None in choices):
            return value
        listed = ", ".join(repr(c) for c in choices) + (f" or {what}" if what else "")
        raise ValueError(f"{name} must be one of {listed}; got {value!r:.80}")
    return check


def callable_or_none(value: Any, name: str, path: str) -> Any:
    """None or a callable."""
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be callable (coords -> array) or None, got "
                         f"{type(value).__name__}")
    return value


def attempts(value: Any, name: str, path: str) -> int:
    """Split'n'merge attempts: 0 for None/False, 3 for True, else an int >= 0; a fractional
    count (pyGMMis's tests write ``K/3``, meant for Python 2) is rounded up."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return 3 if value else 0
    if path == "fit" and isinstance(value, (float, np.floating)) and np.isfinite(value) \
            and value > 0:
        return math.ceil(value)
    return check_int(value, name, minimum=0, strict=path in STRICT_INT_PATHS)


def finish_rule(value: Any, name: str, path: str) -> int | None:
    """``finish``: True -> None (full-batch EM to tol), False -> 0, else an int >= 0."""
    if value is True or value is np.True_:
        return None
    if value is False or value is np.False_:
        return 0
    return check_int(value, name, minimum=0, strict=path in STRICT_INT_PATHS)


def passthrough(value: Any, name: str, path: str) -> Any:
    """Checked by the entry point itself (it needs the data or the model)."""
    return value


# -- the table ------------------------------------------------------------------
def options_on(table: Mapping[str, Option], path: str) -> list[Option]:
    """The options of ``path``, in table order."""
    return [opt for opt in table.values() if path in opt.paths]


def check_option(table: Mapping[str, Option], name: str, value: Any, path: str = "fit") -> Any:
    """``value`` of option ``name`` checked by its rule (the error names the option)."""
    opt = table[name]
    return value if opt.check is None else opt.check(value, opt.name_on(path), path)


def check_options(table: Mapping[str, Option], values: Mapping[str, Any], path: str = "fit"
                  ) -> dict[str, Any]:
    """Every option of ``values`` (keyed by table name) checked, in table order."""
    unknown = set(values) - set(table)
    if unknown:
        raise TypeError(f"unknown option(s): {sorted(unknown)}")
    return {name: check_option(table, name, values[name], path)
            for name in table if name in values}


def render(table: Mapping[str, Option], path: str, names: list[str] | None = None,
           indent: int = 4) -> str:
    """The numpydoc ``Parameters`` entries of ``path`` (in ``names`` order if given)."""
    opts = {opt.name_on(path): opt for opt in options_on(table, path)}
    order = list(opts) if names is None else [n for n in names if n in opts]
    pad = " " * indent
    out = []
    for n in order:
        opt = opts[n]
        out.append(f"{pad}{n} : {opt.type_docs.get(path, opt.type_doc)}")
        body = textwrap.dedent(opt.doc_on(path)).strip()
        out.extend(f"{pad}    {line}" if line else "" for line in body.splitlines())
    return "\n".join(out)


def documented(table: Mapping[str, Option], path: str, names: list[str] | None = None
               ) -> Callable[[Any], Any]:
    """A decorator: the ``{parameters}`` mark of the docstring becomes :func:`render`'s
    entries for ``path`` (in ``names`` order: the signature's)."""
    def apply(obj: Any) -> Any:
        doc = obj.__doc__ or ""
        mark = "{parameters}"
        if mark not in doc:
            raise ValueError(f"{obj.__qualname__}'s docstring has no {mark} mark")
        line = next(ln for ln in doc.splitlines() if mark in ln)
        indent = len(line) - len(line.lstrip())
        obj.__doc__ = doc.replace(line, render(table, path, names, indent))
        return obj
    return apply
