#!/usr/bin/env bash
# The short sweeps behind docs/cifar10_norms.md's discussion of learning-rate sensitivity and of
# the group count: cifar10_norms with the tuned recipe (warm-up + cosine) on the first 10,000
# training images for 5 epochs, tested on the full test set, one single-threaded process per
# configuration, two at a time. Writes each run to runs/sweeps/<sweep>/<name>/ and the tables,
# with each run's CSV, to docs/results/sweeps/.
# Usage: scripts/sweep.sh [cifar10_norms binary] (default build/examples/cifar10_norms)
set -euo pipefail
cd "$(dirname "$0")/.."
exe=$(realpath "${1:-build/examples/cifar10_norms}")
runs=runs/sweeps
results=docs/results/sweeps
common=(--recipe tuned --epochs 5 --limit-train 10000 --threads 1)
lrs=(0.01 0.03 0.1 0.3)
groups=(1 2 4 8 16)

configs=()
for norm in bn gn ln; do
  for lr in "${lrs[@]}"; do configs+=("lr $norm-$lr --norms $norm --lr $lr"); done
done
for g in "${groups[@]}"; do configs+=("groups gn$g --norms gn --groups $g --lr 0.05"); done

run_one() {  # sweep name options...
  local sweep=$1 name=$2; shift 2
  local out="$runs/$sweep/$name"
  if [ -f "$out/results.md" ]; then return 0; fi
  mkdir -p "$out"
  "$exe" "${common[@]}" "$@" --out "$out" > "$out/log.txt" 2>&1
}
export -f run_one
export exe runs
export common_str="${common[*]}"
printf '%s\n' "${configs[@]}" | xargs -P 2 -I{} bash -c 'common=($common_str); run_one {}'

# The tables: final and best test accuracy of each run, from its CSV.
accuracy() {  # csv -> "final best"
  awk -F, 'NR > 1 { final = $6; if ($6 > best) best = $6 } END { printf "%.2f%% (best %.2f%%)", final, best }' "$1"
}
mkdir -p "$results"
{
  echo "# Learning-rate sensitivity: test accuracy after 5 epochs on 10,000 training images"
  echo
  echo "Tuned recipe (1-epoch warm-up, cosine decay, Nesterov, weight decay 5e-4), peak learning"
  echo "rate per column; final-epoch test accuracy on the full test set (best epoch in brackets)."
  echo "Made by \`scripts/sweep.sh\`."
  echo
  printf '| Norm |'; for lr in "${lrs[@]}"; do printf ' lr %s |' "$lr"; done; echo
  printf '|---|'; for _ in "${lrs[@]}"; do printf -- '---|'; done; echo
  for norm in bn gn ln; do
    printf '| %s |' "${norm^^}"
    for lr in "${lrs[@]}"; do
      cp "$runs/lr/$norm-$lr/$norm.csv" "$results/lr-$norm-$lr.csv"
      printf ' %s |' "$(accuracy "$runs/lr/$norm-$lr/$norm.csv")"
    done
    echo
  done
} > "$results/learning_rate.md"
{
  echo "# GroupNorm group count: test accuracy after 5 epochs on 10,000 training images"
  echo
  echo "Tuned recipe at the GroupNorm peak learning rate 0.05; G = 1 is the comparison's LayerNorm,"
  echo "G = 16 (= C of the first layers) InstanceNorm there. Made by \`scripts/sweep.sh\`."
  echo
  printf '| Groups |'; for g in "${groups[@]}"; do printf ' %s |' "$g"; done; echo
  printf '|---|'; for _ in "${groups[@]}"; do printf -- '---|'; done; echo
  printf '| Test accuracy |'
  for g in "${groups[@]}"; do
    cp "$runs/groups/gn$g/gn.csv" "$results/groups-$g.csv"
    printf ' %s |' "$(accuracy "$runs/groups/gn$g/gn.csv")"
  done
  echo
} > "$results/group_count.md"
cat "$results/learning_rate.md" "$results/group_count.md"
