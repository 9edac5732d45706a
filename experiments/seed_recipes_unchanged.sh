#!/usr/bin/env bash
# Do the six-label seed recipes still train the same adapters, byte for byte, as at an earlier commit?
#   bash experiments/seed_recipes_unchanged.sh 58a5f16 [TINY_GPT2_DIR]
# Trains configs/minilm-labels.json (the bundled MiniLM, 8 steps on 256 rows) and
# configs/dialogrpt-updown.json (on a tiny GPT-2 of the same class: DialogRPT needs the Hub; build one
# with tests/support.build_tiny_gpt2) at both commits and compares adapter_model.safetensors.
set -euo pipefail
reference=${1:?usage: seed_recipes_unchanged.sh COMMIT [TINY_GPT2_DIR]}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
gpt2=${2:-$work/tiny-gpt2}
[ -d "$gpt2" ] || (cd "$repo" && python -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; \
from support import build_tiny_gpt2; build_tiny_gpt2(Path('$gpt2'))")
git -C "$repo" worktree add -q --detach "$work/reference" "$reference"
trap 'git -C "$repo" worktree remove --force "$work/reference"' EXIT
data=$(cd "$repo/.." && pwd)/shared/data/emotion
for tree in "$work/reference" "$repo"; do
  name=$([ "$tree" = "$repo" ] && echo now || echo then)
  (cd "$tree" && python train.py configs/minilm-labels.json --data_dir "$data" --max_train_samples 256 \
      --max_eval_samples 64 --max_steps 8 --output_dir "$work/$name-minilm" > "$work/$name-minilm.log" 2>&1)
  (cd "$tree" && python train.py configs/dialogrpt-updown.json --base_model "$gpt2" --max_length 64 \
      --data_dir "$data" --max_train_samples 64 --max_eval_samples 32 --max_steps 8 \
      --output_dir "$work/$name-gpt2" > "$work/$name-gpt2.log" 2>&1)
done
for recipe in minilm gpt2; do
  if cmp -s "$work/then-$recipe/adapter_model.safetensors" "$work/now-$recipe/adapter_model.safetensors"; then
    echo "$recipe: identical ($(sha256sum < "$work/now-$recipe/adapter_model.safetensors" | cut -c1-16))"
  else
    echo "$recipe: DIFFERENT (logs in $work)"; exit 1
  fi
done
