# The samples' camera, sourced by make_terminal_samples.sh and lesson_samples.sh:
# `shoot NAME WIDTH COMMAND` runs COMMAND in tmux at WIDTH columns (a 60-line screen,
# truecolor), captures the pane with its colours, turns it into HTML with rich and
# photographs it with headless Chromium as NAME.png (needs the test extras).
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
