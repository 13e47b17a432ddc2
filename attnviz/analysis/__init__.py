"""Analyses on attention arrays: rollout, flow, head statistics, comparison. Pure NumPy/SciPy."""
