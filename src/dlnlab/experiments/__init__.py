"""Registered experiments (``dlnlab list`` / ``dlnlab run NAME``)."""

from .base import PAPERS, REGISTRY, Claim, Experiment, ExperimentResult, Figure, get, register, verdict

__all__ = ["PAPERS", "REGISTRY", "Claim", "Experiment", "ExperimentResult", "Figure", "get", "register", "verdict"]
