#!/usr/bin/env bash
# The terminal samples: each command run in tmux at 80 and 160 columns (a 60-line
# screen, truecolor), the pane captured with its colours (capture-pane -e), turned into
# HTML by rich and photographed by headless Chromium (needs the test extras).
#   bash samples/make_terminal_samples.sh        (from the repository root, venv active)
set -euo pipefail
cd "$(dirname "$0")"
venv=$(cd .. && pwd)/.venv
shoot() {  # name width command...
  local name=$1 width=$2; shift 2
  local session="attnviz-sample-$$"
  tmux kill-session -t "$session" 2>/dev/null || true
  tmux new-session -d -s "$session" -x "$width" -y 60 -e COLORTERM=truecolor -e TERM=xterm-256color
  tmux set-option -t "$session" history-limit 5000 >/dev/null
  tmux send-keys -t "$session" ". $venv/bin/activate; PS1='> '; clear; $*; tmux wait-for -S done-$$" Enter
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
if lines and lines[-1].strip() == ">":  # the prompt after the command
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
for width in 80 160; do
  shoot "terminal_grid_$width" "$width" 'attnviz show "AI changes everything"'
  shoot "terminal_mean_$width" "$width" 'attnviz show "AI changes everything" --view mean'
  shoot "terminal_rollout_$width" "$width" 'attnviz show "AI changes everything" --view rollout'
done
cp terminal_grid_80.png terminal_grid.png
