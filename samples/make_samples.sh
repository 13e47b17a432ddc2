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
