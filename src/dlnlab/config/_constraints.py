"""Declarative constraints on config values (scikit-learn style): each checks and normalises one value, and says
in words what it allows (the text of the :class:`~dlnlab.errors.ConfigError` and of the config reference).

``Interval(Integral, 1, None, closed="left")`` (an integer ≥ 1), ``Interval(Real, 0, None, closed="neither")`` (a
finite number > 0), ``Options("log", "linear")``, ``Boolean()``, ``Text()``, ``ListOf(c)`` (a list of values each
satisfying ``c``), ``OrList(c)`` (one value, or a list of them), ``AnyOf(a, b)`` (a value satisfying ``a`` or ``b``).
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

from ..errors import ConfigError


def is_number(v) -> bool:
    """A real number (``bool`` excluded) that is finite (an ``int`` beyond the float range is not)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


class Constraint:
    """Checks one value: :meth:`check` returns it normalised or raises :class:`ConfigError`; ``text`` says what
    is allowed."""

    text: str = ""

    def accepts(self, value) -> bool:
        raise NotImplementedError

    def normalise(self, value):
        return value

    def check(self, name: str, value):
        if not self.accepts(value):
            raise ConfigError(name, value, self.text)
        return self.normalise(value)


class Interval(Constraint):
    """A number of ``kind`` (``Integral`` or ``Real``; reals are finite) between ``left`` and ``right`` (``None``:
    unbounded); ``closed`` is ``"left"``, ``"right"``, ``"both"`` or ``"neither"``."""

    def __init__(self, kind: type, left=None, right=None, closed: str = "both"):
        self.kind, self.left, self.right, self.closed = kind, left, right, closed
        lo_in, hi_in = closed in ("left", "both"), closed in ("right", "both")
        noun = "an integer" if kind is Integral else "a finite number"
        if left is not None and right is not None:
            self.text = f"{noun} in {'[' if lo_in else '('}{left}, {right}{']' if hi_in else ')'}"
        elif left is not None:
            self.text = f"{noun} {'>=' if lo_in else '>'} {left}"
        elif right is not None:
            self.text = f"{noun} {'<=' if hi_in else '<'} {right}"
        else:
            self.text = noun

    def accepts(self, v) -> bool:
        if self.kind is Integral:
            if not isinstance(v, int) or isinstance(v, bool):
                return False
        elif not is_number(v):
            return False
        lo_in, hi_in = self.closed in ("left", "both"), self.closed in ("right", "both")
        if self.left is not None and not (v >= self.left if lo_in else v > self.left):
            return False
        return self.right is None or (v <= self.right if hi_in else v < self.right)

    def normalise(self, v):
        return v if self.kind is Integral else float(v)


class Options(Constraint):
    """One of the given values."""

    def __init__(self, *values):
        self.values = values
        self.text = "one of " + ", ".join(repr(x) for x in values)

    def accepts(self, v) -> bool:
        return isinstance(v, (str, int, float)) and v in self.values


class Boolean(Constraint):
    text = "true or false"

    def accepts(self, v) -> bool:
        return isinstance(v, bool)


class Text(Constraint):
    text = "a non-empty string"

    def accepts(self, v) -> bool:
        return isinstance(v, str) and bool(v)


class ListOf(Constraint):
    """A list of at least ``min_len`` values, each satisfying ``item`` (checked as ``name[i]``); a tuple."""

    def __init__(self, item: Constraint, min_len: int = 1):
        self.item, self.min_len = item, min_len
        self.text = f"a list of at least {min_len} values, each {item.text}"

    def accepts(self, v) -> bool:
        return isinstance(v, (list, tuple)) and len(v) >= self.min_len

    def check(self, name: str, value):
        if not self.accepts(value):
            raise ConfigError(name, value, self.text)
        return tuple(self.item.check(f"{name}[{i}]", x) for i, x in enumerate(value))


class OrList(Constraint):
    """One value satisfying ``item``, or a non-empty list of them (a tuple)."""

    def __init__(self, item: Constraint):
        self.item, self.list = item, ListOf(item)
        self.text = f"{item.text}, or a non-empty list of these"

    def check(self, name: str, value):
        if isinstance(value, (list, tuple)):
            return self.list.check(name, value)
        if not self.item.accepts(value):
            raise ConfigError(name, value, self.text)
        return self.item.normalise(value)


class AnyOf(Constraint):
    """A value satisfying one of the ``choices`` (the first that accepts it normalises it)."""

    def __init__(self, *choices: Constraint):
        self.choices = choices
        self.text = " or ".join(c.text for c in choices)

    def accepts(self, v) -> bool:
        return any(c.accepts(v) for c in self.choices)

    def normalise(self, v):
        return next(c for c in self.choices if c.accepts(v)).normalise(v)


def as_list(v) -> list[Any]:
    """``v`` as a list: itself if a list or tuple, else ``[v]``."""
    return list(v) if isinstance(v, (list, tuple)) else [v]
