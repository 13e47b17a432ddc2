"""Export: every text of a file to heatmaps and data, fast and resumable.

* :mod:`~attnviz.export.pipeline`: the run (batched forward passes here, rendering in
  worker processes, one manifest record per finished input);
* :mod:`~attnviz.export.render`: one text's views and formats (the worker's job);
* :mod:`~attnviz.export.manifest`: ``manifest.jsonl`` and ``export.json``, resume;
* :mod:`~attnviz.export.naming`: file names;
* :mod:`~attnviz.export.options`: what to write, and the summary.

Every file is written to a temporary name and renamed, so a killed run can be resumed
without redoing finished texts.
"""

from __future__ import annotations

from attnviz.export.manifest import MANIFEST, SETTINGS, read_manifest
from attnviz.export.naming import base_name, slugify
from attnviz.export.options import EXPORT_FORMATS, EXPORT_VIEWS, ExportOptions, ExportSummary
from attnviz.export.pipeline import count_inputs, export
from attnviz.export.render import Terminated, render_text

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_VIEWS",
    "MANIFEST",
    "SETTINGS",
    "ExportOptions",
    "ExportSummary",
    "Terminated",
    "base_name",
    "count_inputs",
    "export",
    "read_manifest",
    "render_text",
    "slugify",
]
