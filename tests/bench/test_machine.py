"""dlnlab.bench._machine: the timers."""

from dlnlab.bench._machine import timed, timed_together


def test_timed_together_runs_its_functions_in_rounds():
    calls = []

    def make(name):
        return lambda: calls.append(name) or name

    out = timed_together({"a": make("a"), "b": make("b"), "c": make("c")}, repeats=3, warmup=1)
    # warm-ups first (one each), then three rounds, each running every function once in turn
    assert calls == ["a", "b", "c"] + ["a", "b", "c"] * 3
    for name, (timing, value) in out.items():
        assert value == name
        assert len(timing["times_s"]) == 3 and timing["best_s"] == min(timing["times_s"])
        assert timing["warmup_s"] >= 0 and timing["cpu_s"] >= 0


def test_timed_is_timed_together_of_one():
    calls = []
    timing, value = timed(lambda: calls.append(1) or 7, repeats=2, warmup=2)
    assert value == 7 and len(calls) == 4 and len(timing["times_s"]) == 2
