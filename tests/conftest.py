"""Shared test configuration: the ``slow`` marker runs only with ``--runslow``; the test order (the smoke run first,
its users last); the ``interrupt_after`` fixture."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


#: the test that makes the session's smoke run (``tests/experiments/_smoke.py``), run first
SMOKE_FIRST = "tests/experiments/test_verdicts.py::test_smoke_verdicts_are_the_expected_ones"
#: the tests run last: the power tests (which take their run at the true theory from the smoke run once it has
#: finished), the smoke run's other users (which would wait for it), and the tests that run an experiment's smoke
#: preset at seed 0 (``_smoke.run_smoke``: they read the smoke run's simulations from the run cache)
LAST = ("tests/experiments/beyond/test_power", "tests/experiments/corlouer/test_power",
        "tests/experiments/jacot/test_power", "tests/experiments/ziyin/test_power", "tests/experiments/test_claims_table.py",
        "tests/experiments/jacot/test_phase_transition.py::test_smoke_rows_hold",
        "tests/experiments/jacot/test_staircase.py::test_smoke_rows_hold",
        "tests/experiments/jacot/test_sparsity.py::test_smoke_rows", "tests/experiments/corlouer/test_unaligned.py",
        "tests/experiments/beyond/test_lazy_rich.py::test_rows", "tests/experiments/beyond/test_edge_of_stability.py",
        "tests/experiments/beyond/test_diagonal_saddles.py")


def _order(item) -> int:
    if item.nodeid == SMOKE_FIRST:
        return 0
    return 2 if item.nodeid.startswith(LAST) else 1


def pytest_collection_modifyitems(config, items):
    items.sort(key=_order)  # stable: the collection order within each group
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
