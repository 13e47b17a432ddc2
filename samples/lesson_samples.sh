#!/usr/bin/env bash
# The lesson samples: `attnviz lesson --all` in tmux at 80 and 160 columns (captured with its
# colours, photographed by headless Chromium, as samples/make_terminal_samples.sh does), and
# the lesson page (-o) photographed by Chromium (needs the test extras).
#   bash samples/lesson_samples.sh [--page]   (from the repository root, venv active;
#   --page: only the page)
set -euo pipefail
cd "$(dirname "$0")"
venv=$(cd .. && pwd)/.venv
shoot() {  # name width command...
  local name=$1 width=$2; shift 2
  local session="attnviz-sample-$$"
  tmux kill-session -t "$session" 2>/dev/null || true
  tmux new-session -d -s "$session" -x "$width" -y 60 -e COLORTERM=truecolor -e TERM=xterm-256color
  tmux set-option -t "$session" history-limit 5000 >/dev/null
  tmux send-keys -t "$session" "PS1='> '; . $venv/bin/activate; clear; $*; tmux wait-for -S done-$$" Enter
  tmux wait-for "done-$$"
  tmux capture-pane -t "$session" -e -p -S - -E - > "/tmp/$name.ansi"
  tmux kill-session -t "$session"
  python - "$name" "$width" "$*" <<'PY'
import os, sys, tempfile
from playwright.sync_api import sync_playwright
from rich.console import Console
from rich.text import Text

name, width, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(f"/tmp/{name}.ansi", encoding="utf-8").read().rstrip("\n").split("\n")
while lines and not lines[-1].strip():
    lines.pop()
if lines and lines[-1].startswith("> "):  # the prompt after the command
    lines.pop()
with open(os.devnull, "w") as sink:
    console = Console(record=True, width=width, color_system="truecolor", force_terminal=True, file=sink)
    console.print(f"$ {command}", style="bold")
    # one text: tmux writes a colour once and lets it run on across lines
    console.print(Text.from_ansi("\n".join(lines)), no_wrap=True, overflow="crop")
    from rich.terminal_theme import DEFAULT_TERMINAL_THEME, TerminalTheme

    # the terminal's own default background and text (tmux writes them as "default")
    dark = TerminalTheme((30, 30, 30), (221, 221, 221), [tuple(c) for c in DEFAULT_TERMINAL_THEME.ansi_colors._colors])
    page = console.export_html(inline_styles=True, theme=dark)
page = page.replace("<body>", '<body style="background:#1e1e1e;color:#ddd;margin:0;padding:12px">')
page = page.replace("<pre ", '<pre style="font-family:DejaVu Sans Mono,monospace;font-size:14px;line-height:1.15;margin:0" ')
with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False) as handle:
    handle.write(page)
with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
    tab = browser.new_page(viewport={"width": int(width * 8.5) + 24, "height": 400}, device_scale_factor=1)
    tab.goto("file://" + handle.name)
    tab.screenshot(path=f"{name}.png", full_page=True)
    browser.close()
os.unlink(handle.name)
print(f"{name}.png: {len(lines)} lines at {width} columns")
PY
}
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
