"""The exceptions of dlnlab: one hierarchy under :class:`DlnlabError`.

* :class:`ConfigError` — bad input (a config value, an override, a keyword, a path): names the field, the value
  and what is allowed. Also a ``ValueError``, so ``except ValueError`` keeps working.
* :class:`CheckpointError` — a checkpoint that cannot be used (unreadable, or written by another run).
* :class:`CorruptDatasetError` — a stored result that is incomplete, truncated or altered.
* :class:`Interrupted` — a run stopped by ``KeyboardInterrupt`` (not a ``DlnlabError``: it is a
  ``KeyboardInterrupt``); ``.partial`` holds the dataset of every completed record.

The command line turns every ``DlnlabError`` into one line on stderr and exit code 2 (no traceback).
"""

from __future__ import annotations

from typing import Any


class DlnlabError(Exception):
    """Base class of dlnlab's own errors."""


class ConfigError(DlnlabError, ValueError):
    """An invalid input value: names the field, the value and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"invalid config: {field} = {value!r}; allowed: {allowed}")


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


class Interrupted(KeyboardInterrupt):
    """Raised when a run is interrupted; ``.partial`` holds the dataset of every completed record."""

    def __init__(self, partial):
        super().__init__("interrupted")
        self.partial = partial
