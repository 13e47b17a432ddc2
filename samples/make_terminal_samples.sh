#!/usr/bin/env bash
# The terminal samples: each command run in tmux at 80 and 160 columns (a 60-line
# screen, truecolor), the pane captured with its colours (capture-pane -e), turned into
# HTML by rich and photographed by headless Chromium (needs the test extras).
#   bash samples/make_terminal_samples.sh        (from the repository root, venv active)
set -euo pipefail
cd "$(dirname "$0")"
. ./shoot.sh
for width in 80 160; do
  shoot "terminal_grid_$width" "$width" 'attnviz show "AI changes everything"'
  shoot "terminal_mean_$width" "$width" 'attnviz show "AI changes everything" --view mean'
  shoot "terminal_rollout_$width" "$width" 'attnviz show "AI changes everything" --view rollout'
done
cp terminal_grid_80.png terminal_grid.png
