"""`import attnviz` and `attnviz --help` must not import torch, transformers or matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "matplotlib", "seaborn", "scipy")

PROBE = """
import json, sys
{body}
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def _loaded_after(body: str) -> list[str]:
    code = PROBE.format(body=body, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_attnviz_is_light():
    assert _loaded_after("import attnviz") == []


def test_help_is_light():
    body = (
        "from attnviz.cli import app\n"
        "import io, contextlib\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        app(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    for command in ('show', 'info', 'export', 'stats', 'compare', 'render'):\n"
        "        try:\n"
        "            app([command, '--help'])\n"
        "        except SystemExit:\n"
        "            pass\n"
    )
    assert _loaded_after(body) == []


def test_the_public_extract_is_the_function_even_after_the_module_is_imported():
    """The module is attnviz.extraction, so importing it can never shadow attnviz.extract."""
    body = "import attnviz.extraction\nimport attnviz\nassert callable(attnviz.extract) and attnviz.extract.__module__ == 'attnviz.extraction'"
    _loaded_after(body)  # the subprocess exits non-zero (and this fails) when the assert in it does
