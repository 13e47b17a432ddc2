"""Renderers: images (matplotlib), the terminal (rich) and a self-contained HTML page."""

from __future__ import annotations

VIEWS = ("auto", "head", "layer", "grid", "mean", "rollout", "flow", "norm", "neuron")
IMAGE_SUFFIXES = (".png", ".svg", ".pdf")
DATA_SUFFIXES = (".npz", ".json")
PAGE_SUFFIXES = (".html",)
OUTPUT_SUFFIXES = IMAGE_SUFFIXES + DATA_SUFFIXES + PAGE_SUFFIXES
