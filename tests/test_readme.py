"""The README and docs/ stay true: every relative link resolves, and every ``attnviz ...``
command shown in a code block runs (in-process, on the bundled model, in a scratch
directory), as llm checks its docs with cog. Commands that need what a test machine lacks
(a GPU, the network, a model directory of the reader's, a server) are skipped with the
reason."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from helpers import invoke

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```")
#: What the commands may read, as the README describes it (one text per line).
TEXTS = "The cat sat on the mat.\nAttention is all you need.\n"


def _links() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if not re.match(r"^[a-z]+:|^#", target):
                found.append((page.relative_to(ROOT).as_posix(), target))
    return found


def _commands() -> list[tuple[str, list[str]]]:
    """(page:line, argv) of each ``attnviz`` line inside a fenced code block."""
    found = []
    for page in PAGES:
        inside = False
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if FENCE.match(line.strip()):
                inside = not inside
                continue
            text = line.strip().removeprefix("$ ")
            if inside and text.startswith("attnviz "):
                found.append((f"{page.relative_to(ROOT).as_posix()}:{number}", shlex.split(text, comments=True)[1:]))
    return found


def test_the_pages_hold_links_and_commands() -> None:
    assert len(_links()) >= 10 and len(_commands()) >= 9  # the parsers see what is there


@pytest.mark.parametrize(("page", "target"), _links(), ids=lambda value: str(value))
def test_every_relative_link_resolves(page: str, target: str) -> None:
    path = (ROOT / page).parent / target.split("#")[0]
    assert path.exists(), f"{page} links to {target}, which does not exist"


def _reason_to_skip(argv: list[str], workdir: Path) -> str | None:
    if argv[0] == "serve":
        return "starts a server that runs until stopped (tests/test_serve.py drives it)"
    for flag, value in zip(argv, argv[1:]):
        if flag in ("-m", "--model") and value != "minilm" and not (workdir / value).exists():
            return f"needs the model '{value}' (a directory of the reader's, or the network)"
        if flag in ("--device", "--device-map") and value not in ("cpu", "auto"):
            return f"needs a GPU ({flag} {value})"
    if "--ray" in argv:
        return "starts a Ray cluster"
    return None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("readme")
    (directory / "texts.txt").write_text(TEXTS, encoding="utf-8")
    return directory


@pytest.mark.slow
@pytest.mark.parametrize(("where", "argv"), _commands(), ids=lambda value: str(value))
def test_every_command_shown_runs(where: str, argv: list[str], workdir: Path, monkeypatch) -> None:
    reason = _reason_to_skip(argv, workdir)
    if reason:
        pytest.skip(f"{where}: {reason}")
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("COLUMNS", "100")
    result = invoke(*argv)
    assert result.exit_code == 0, f"{where}: attnviz {shlex.join(argv)}\n{result.output}"
