#!/usr/bin/env bash
# The lesson samples: `attnviz lesson --all` in tmux at 80 and 160 columns (captured with its
# colours, photographed by headless Chromium, as samples/make_terminal_samples.sh does), and
# the lesson page (-o) photographed by Chromium (needs the test extras).
#   bash samples/lesson_samples.sh [--page]   (from the repository root, venv active;
#   --page: only the page)
set -euo pipefail
cd "$(dirname "$0")"
. ./shoot.sh
if [ "${1:-}" != "--page" ]; then
shoot lesson_terminal 80 'attnviz lesson "AI changes everything" --all'
shoot lesson_terminal_160 160 'attnviz lesson "AI changes everything" --all'
fi
attnviz lesson "AI changes everything" -o /tmp/lesson_sample.html
python - <<'PY'
from playwright.sync_api import sync_playwright

with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
    tab = browser.new_page(viewport={"width": 1200, "height": 900})
    tab.goto("file:///tmp/lesson_sample.html")
    tab.wait_for_selector("body[data-ready='1']")
    for frame in tab.frames[1:]:
        frame.wait_for_selector("body[data-ready='1']")
    # Chromium does not paint frames outside the viewport: make the viewport the whole page
    height = tab.evaluate("document.documentElement.scrollHeight")
    tab.set_viewport_size({"width": 1200, "height": height})
    tab.wait_for_timeout(1500)
    tab.screenshot(path="lesson_page.png")
    browser.close()
print("lesson_page.png")
PY
