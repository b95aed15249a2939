"""Shared test configuration: the ``slow`` marker runs only with ``--runslow``; the ``interrupt_after`` fixture."""

import contextlib

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow statistical test: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


class _InterruptingBar:
    """Progress-bar stand-in raising KeyboardInterrupt (as Ctrl-C would) when ``after`` chunks are done."""

    def __init__(self, after):
        self.after, self.n = after, 0

    def update(self, k):
        self.n += k
        if self.n == self.after:
            raise KeyboardInterrupt


@pytest.fixture
def interrupt_after(monkeypatch):
    """``interrupt_after(k)``: from now on (for this test), a simulation is interrupted, as by Ctrl-C, once ``k``
    chunks are done; ``interrupt_after(None)`` restores the progress bar."""
    from dlnlab import dynamics

    original = dynamics._progress

    def patch(after):
        if after is None:
            monkeypatch.setattr(dynamics, "_progress", original)
        else:
            monkeypatch.setattr(dynamics, "_progress",
                                lambda *a, **k: contextlib.nullcontext(_InterruptingBar(after)))
    return patch
