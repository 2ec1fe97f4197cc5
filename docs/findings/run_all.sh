#!/usr/bin/env bash
# Re-runs the sweeps behind docs/findings.md one after another (2 CPU cores: never in parallel) into
# runs/findings/<name>/ (report.md, report.html, plots/), then copies each sweep's figures into
# docs/findings/<name>/. Usage: bash docs/findings/run_all.sh [name ...]  (default: all five)
set -euo pipefail
cd "$(dirname "$0")/../.."
# Widths around the tiny preset (dim 128, 4 layers, 4 heads), small enough for a sweep in ~10 minutes.
WIDTHS='sizes=[{name: d64, dim: 64}, {name: d96, dim: 96}, {name: d128, dim: 128}]'

sweep() {  # sweep NAME ARGS... : one experiment, timed, figures copied
  local name=$1; shift
  echo "== $name: python -m workbench run $* --out runs/findings/$name"
  local start=$SECONDS
  python -m workbench run "$@" --out "runs/findings/$name"
  echo "== $name took $((SECONDS - start)) s"
  mkdir -p "docs/findings/$name"
  cp runs/findings/"$name"/plots/{multiplier,delta}_vs_compute.png "docs/findings/$name/"
}

run_one() {
  case $1 in
    ladder) sweep ladder experiments/llama_ladder_scale.yaml ;;
    ffn_horizon) sweep ffn_horizon experiments/ablate_ffn.yaml --variant swiglu --variant relu 'seeds=[0,1]' \
                   'sweep={train.steps: [100, 200, 400]}' ;;
    placement_depth) sweep placement_depth experiments/ablate_norm_placement.yaml 'seeds=[0,1]' train.warmup_steps=0 \
                       'sweep={model.n_layers: [2, 4, 8]}' ;;
    norm_width) sweep norm_width experiments/ablate_norm.yaml 'seeds=[0,1]' "$WIDTHS" ;;
    positions_width) sweep positions_width experiments/ablate_positions.yaml --variant rope --variant learned \
                       'seeds=[0,1]' "$WIDTHS" ;;
    *) echo "unknown sweep '$1' (ladder, ffn_horizon, placement_depth, norm_width, positions_width)" >&2; exit 2 ;;
  esac
}

for name in "${@:-ladder ffn_horizon placement_depth norm_width positions_width}"; do
  for n in $name; do run_one "$n"; done
done
