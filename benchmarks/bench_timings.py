"""The timings the tests used to assert (they assert behaviour now): how fast an
unreachable hub is refused, and how fast a 500-token page opens and answers.

    python benchmarks/bench_timings.py

Goals (a fresh, idle machine): the hub probe answers in under 10 s (no 50 s of retries),
for a closed port and for a port that accepts and never answers; the page of a 500-token
text opens in under 5 s and switches layer and view in under 5 s. Printed as seconds and
as a ratio to the goal, measured in this one run.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time


def _hub_probe(endpoint: str) -> float:
    from typer.testing import CliRunner

    from attnviz.cli import app

    env = {"HF_ENDPOINT": endpoint, "HF_HOME": tempfile.mkdtemp(), "HF_HUB_OFFLINE": ""}
    os.environ.pop("HF_HUB_OFFLINE", None)
    start = time.monotonic()
    result = CliRunner().invoke(app, ["show", "the cat", "-m", "someone/not-a-real-model-xyz"], env=env)
    elapsed = time.monotonic() - start
    assert result.exit_code == 1, result.output
    return elapsed


def _page() -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    import attnviz
    from attnviz.render.html import render_html

    text = " ".join(["The quick brown fox jumps over the lazy dog near the riverbank."] * 40)
    result = attnviz.extract(text, model="minilm")
    path = os.path.join(tempfile.mkdtemp(), "page.html")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_html(result))
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        start = time.monotonic()
        page.goto("file://" + path)
        page.wait_for_selector("body[data-ready='1']", timeout=60000)
        opened = time.monotonic() - start
        start = time.monotonic()
        page.select_option("#layer", "3")
        page.select_option("#view", "matrix")
        page.select_option("#view", "grid")
        page.locator("#grid button").nth(71).wait_for()
        answered = time.monotonic() - start
        browser.close()
    return opened, answered


def main() -> None:
    rows = [("hub probe, closed port", _hub_probe("http://127.0.0.1:9"), 10.0)]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        rows.append(("hub probe, silent port", _hub_probe(f"http://127.0.0.1:{listener.getsockname()[1]}"), 10.0))
    finally:
        listener.close()
    opened, answered = _page()
    rows += [("500-token page opens", opened, 5.0), ("page switches layer and view", answered, 5.0)]
    for name, seconds, goal in rows:
        print(f"{name:<32} {seconds:7.2f} s   {seconds / goal:5.2f} x the goal of {goal:.0f} s")


if __name__ == "__main__":
    main()
