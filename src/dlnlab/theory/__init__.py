"""Closed-form theory (NumPy/SciPy), as functions and ``predict_fn(t)`` factories to hold against simulation."""

from .gradient_flow import mode_flow_fn, mode_time, mode_trajectory
from .noise import total_noise_trace, wick_covariance_matrix

__all__ = ["mode_flow_fn", "mode_time", "mode_trajectory", "total_noise_trace", "wick_covariance_matrix"]
