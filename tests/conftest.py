"""Shared test configuration: the ``slow`` marker runs only with ``--runslow``; the ``interrupt_after`` fixture."""

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


class InterruptingProgress:
    """A progress meter (:class:`dlnlab.engines.ProgressMeter`) raising KeyboardInterrupt, as Ctrl-C would, once
    ``after`` chunks are done."""

    def __init__(self, after):
        self.after, self.n = after, 0

    def start(self, total, description):
        pass

    def update(self, k):
        self.n += k
        if self.n == self.after:
            raise KeyboardInterrupt

    def close(self):
        pass


@pytest.fixture
def interrupt_after():
    """``interrupt_after(k)``: a progress meter to pass as ``simulate(..., progress=...)`` that interrupts the run,
    as Ctrl-C would, once ``k`` chunks are done."""
    return InterruptingProgress
