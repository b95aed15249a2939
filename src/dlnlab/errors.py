"""The exceptions of dlnlab: one hierarchy under :class:`DlnlabError`.

* :class:`ConfigError` — bad input (a config value, an override, a keyword, a path, a public function's argument):
  names the field (a config key, or the argument's name), the value and what is allowed. Also a ``ValueError``, so
  ``except ValueError`` keeps working.
* :class:`CheckpointError` — a checkpoint that cannot be used (unreadable, or written by another run).
* :class:`CorruptDatasetError` — a stored result that is incomplete, truncated or altered.
* :class:`InsufficientMemoryError` — a run whose memory estimate exceeds the available memory (refused before
  allocating; :mod:`dlnlab.engines` sizes every run): names the config fields to lower and the size that fits.
* :class:`OutputError` — the output could not be written (no space left, permission denied, a read-only or
  vanished directory): what failed, the path, what to do, and where a finished result was kept instead.
* :class:`OutputLockedError` — another live process is writing the same output directory.
* :class:`Interrupted` — a run stopped by ``KeyboardInterrupt`` (not a ``DlnlabError``: it is a
  ``KeyboardInterrupt``); ``.partial`` holds the dataset of every completed record.

The command line turns every ``DlnlabError`` into one line on stderr and exit code 2 (no traceback); an
:class:`OutputError` or :class:`OutputLockedError` (the environment, not the input) exits with code 1.
"""

from __future__ import annotations

from typing import Any


class DlnlabError(Exception):
    """Base class of dlnlab's own errors."""


class ConfigError(DlnlabError, ValueError):
    """An invalid input value: names the field, the value and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"invalid {field} = {value!r}; allowed: {allowed}")


class CheckpointError(DlnlabError, ValueError):
    """A checkpoint that cannot be used: unreadable, or written by a different run (config)."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"checkpoint {self.path}: {reason}")


class CorruptDatasetError(DlnlabError, ValueError):
    """A result store that is incomplete, truncated or altered since :func:`dlnlab.save` wrote it."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"corrupt or incomplete dataset {self.path}: {reason}")


class InsufficientMemoryError(DlnlabError, MemoryError):
    """A run that would not fit in memory, refused before it allocates: the estimate, the memory available and
    the largest sizes that fit (``message`` is the whole line)."""

    def __init__(self, message: str, needed: int, available: int):
        self.needed, self.available = int(needed), int(available)
        super().__init__(message)


class OutputError(DlnlabError):
    """Writing an output failed: ``what`` failed at ``path`` (``reason``: the OS's words), ``advice`` says what
    to do; ``kept`` is where a finished result was saved instead (``None``: nothing was computed or kept)."""

    def __init__(self, what: str, path, reason: str, advice: str, kept=None):
        self.what, self.path, self.reason, self.advice = what, str(path), reason, advice
        self.kept = None if kept is None else str(kept)
        keep = f"; the result is kept in {self.kept}" if self.kept else ""
        super().__init__(f"{what} failed: {self.path}: {reason}{keep}; {advice}")


class OutputLockedError(DlnlabError):
    """Another live process holds the lock of an output directory (``owner``: its pid, host and command)."""

    def __init__(self, path, owner: dict):
        self.path, self.owner = str(path), owner
        super().__init__(f"output directory {self.path} is being written by another process (pid {owner.get('pid')} "
                         f"on {owner.get('host')}, started {owner.get('started')}: {owner.get('command')}); wait for "
                         "it to finish, or write elsewhere (--out)")


class Interrupted(KeyboardInterrupt):
    """Raised when a run is interrupted; ``.partial`` holds the dataset of every completed record."""

    def __init__(self, partial):
        super().__init__("interrupted")
        self.partial = partial
