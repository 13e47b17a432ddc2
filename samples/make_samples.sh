#!/usr/bin/env bash
# Regenerate the sample images (and one interactive page) from samples/sentences.txt with the bundled model:
#   bash samples/make_samples.sh
set -euo pipefail
cd "$(dirname "$0")"
n=0
while IFS= read -r line; do
  [ -z "$line" ] && continue
  n=$((n + 1))
  attnviz show "$line" -o "sentence${n}_grid.png"                     # every layer x head
  attnviz show "$line" --layer 2 -o "sentence${n}_layer2.png"          # one layer's heads
  attnviz show "$line" --layer 2 --head 7 -o "sentence${n}_L2H7.png"   # one head
  attnviz show "$line" --view mean --words --no-special -o "sentence${n}_mean_words.png"
done < sentences.txt
attnviz show "The animal didn't cross the street because it was too tired." --pair "It was raining." -o sentence3_pair.html

# the terminal view of `attnviz show "AI changes everything"` at 80 columns, as a PNG: rich
# records it as HTML with inline colours, headless Chromium photographs it (needs the test extras)
python - <<'PY'
import os
import tempfile

from playwright.sync_api import sync_playwright
from rich.console import Console

import attnviz
from attnviz.render.terminal import print_view

with open(os.devnull, "w") as sink:
    console = Console(record=True, width=80, color_system="truecolor", force_terminal=True, file=sink)
    console.print('$ attnviz show "AI changes everything"', style="bold")
    print_view(attnviz.extract("AI changes everything"), "encoder", "grid", console)
    page = console.export_html(inline_styles=True)
page = page.replace("<body>", '<body style="background:#1e1e1e;color:#ddd;margin:0;padding:12px">')
page = page.replace("<pre ", '<pre style="font-family:DejaVu Sans Mono,monospace;font-size:14px;line-height:1.15;margin:0" ')
with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False) as handle:
    handle.write(page)
with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
    tab = browser.new_page(viewport={"width": 760, "height": 400}, device_scale_factor=1)
    tab.goto("file://" + handle.name)
    tab.screenshot(path="terminal_grid.png", full_page=True)
    browser.close()
os.unlink(handle.name)
PY

# a long text through export (the Pillow renderer): one head, and each layer's mean
long="The quick brown fox jumps over the lazy dog while the company reported strong earnings in the third quarter of the year, and analysts expected the stock price to climb further next week."
rm -rf long_export && echo "$long" | attnviz export - -o long_export --view mean --view head --layer 2 --head 3 --quiet
mv long_export/000001-*.mean.png long_mean_export.png
mv long_export/000001-*.L02H03.png long_L2H3_export.png
rm -rf long_export

# how attention is computed: the neuron view of one head, norm-based weights, head clusters
attnviz show "The animal didn't cross the street because it was too tired." --view neuron --layer 2 --head 7 --query 8 -o neuron_L2H7.png
attnviz show "The animal didn't cross the street because it was too tired." --view norm -o norm_grid.png
attnviz stats -f sentences.txt --cluster -o heads_clustermap.png
