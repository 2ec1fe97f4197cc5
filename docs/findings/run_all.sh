#!/usr/bin/env bash
# Re-runs the sweeps behind docs/findings.md one after another (2 CPU cores: never in parallel) into
# runs/findings/<name>/ (report.md, report.html, plots/), then copies each sweep's figures into
# docs/findings/<name>/. Usage: bash docs/findings/run_all.sh [name ...]  (default: all of them)
set -euo pipefail
cd "$(dirname "$0")/../.."
# Widths around the tiny preset (dim 128, 4 layers, 4 heads), small enough for a sweep in ~10 minutes.
WIDTHS='sizes=[{name: d64, dim: 64}, {name: d96, dim: 96}, {name: d128, dim: 128}]'

sweep() {  # sweep NAME ARGS... : one experiment, timed, its FIGURES (plots/ names) copied
  local name=$1; shift
  echo "== $name: python -m workbench run $* --out runs/findings/$name"
  local start=$SECONDS
  python -m workbench run "$@" --out "runs/findings/$name"
  echo "== $name took $((SECONDS - start)) s"
  mkdir -p "docs/findings/$name"
  for figure in ${FIGURES:-multiplier_vs_compute delta_vs_compute}; do
    cp "runs/findings/$name/plots/$figure.png" "docs/findings/$name/"
  done
}

tuned() {  # tuned NAME ARGS... : one tuned experiment (each variant at its own lr), its tuning figure copied
  FIGURES=tuning sweep "$@"
}
GRID3='tune={multipliers: [0.333333, 1, 3], extend: 1}'  # 1e-3, 3e-3, 9e-3 around the preset's 3e-3
PLACEMENT_GRID='tune={values: [1.0e-3, 3.0e-3, 1.0e-2], extend: 1}'
AT_SMALLEST='tune={multipliers: [0.25, 0.5, 1, 2, 4], at: smallest}'  # the x2 grid at the smallest size only
# Under mup: the block matrices at a quarter of train.lr (the ratio tuned at d64, docs/findings.md), so the grid
# sits four times higher, around that split's optimum (3e-3 .. 4.8e-2).
MUP_SPLIT=(model.parametrization=mup train.hidden_lr_ratio=0.25 'tune={multipliers: [1, 2, 4, 8, 16], at: smallest}')
QK_GRID='tune={values: [3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2, 1.0e-1], extend: 1}'  # Wortsman et al.'s half-decades

run_one() {
  case $1 in
    tuned_qk_norm) tuned tuned_qk_norm experiments/ablate_qk_norm.yaml --variant none --variant head 'seeds=[0,1]' "$QK_GRID" ;;
    tuned_placement) for layers in 2 4 8; do
                       tuned tuned_placement_l$layers experiments/ablate_norm_placement.yaml 'seeds=[0,1]' \
                         train.warmup_steps=0 model.n_layers=$layers "$PLACEMENT_GRID"
                     done ;;
    tuned_norm) tuned tuned_norm experiments/ablate_norm.yaml 'seeds=[0,1]' "$GRID3" ;;
    tuned_ffn) tuned tuned_ffn experiments/ablate_ffn.yaml --variant swiglu --variant relu 'seeds=[0,1]' "$GRID3" ;;
    tuned_ffn_fan_in) tuned tuned_ffn_fan_in experiments/ablate_ffn.yaml --variant swiglu --variant relu 'seeds=[0,1]' \
                        model.init=fan_in "$GRID3" ;;
    ladder) sweep ladder experiments/llama_ladder_scale.yaml ;;
    ffn_horizon) sweep ffn_horizon experiments/ablate_ffn.yaml --variant swiglu --variant relu 'seeds=[0,1]' \
                   'sweep={train.steps: [100, 200, 400]}' ;;
    placement_depth) sweep placement_depth experiments/ablate_norm_placement.yaml 'seeds=[0,1]' train.warmup_steps=0 \
                       'sweep={model.n_layers: [2, 4, 8]}' ;;
    norm_width) sweep norm_width experiments/ablate_norm.yaml 'seeds=[0,1]' "$WIDTHS" ;;
    positions_width) sweep positions_width experiments/ablate_positions.yaml --variant rope --variant learned \
                       'seeds=[0,1]' "$WIDTHS" ;;
    transfer_width) tuned transfer_width experiments/transfer_width.yaml ;;
    transfer_depth) tuned transfer_depth experiments/transfer_depth.yaml ;;
    # The scale sweeps again, each variant tuned once at the smallest size and carried up by the parametrization.
    mup_norm_width) sweep mup_norm_width experiments/ablate_norm.yaml 'seeds=[0,1]' "$WIDTHS" "${MUP_SPLIT[@]}" ;;
    mup_positions_width) sweep mup_positions_width experiments/ablate_positions.yaml --variant rope --variant learned \
                           'seeds=[0,1]' "$WIDTHS" "${MUP_SPLIT[@]}" ;;
    completep_placement_depth) sweep completep_placement_depth experiments/ablate_norm_placement.yaml 'seeds=[0,1]' \
                                 train.warmup_steps=0 'sweep={model.n_layers: [2, 4, 8]}' model.parametrization=completep \
                                 "$AT_SMALLEST" ;;
    mup_ladder) sweep mup_ladder experiments/llama_ladder_scale.yaml "${MUP_SPLIT[@]}" ;;
    *) echo "unknown sweep '$1' (ladder, ffn_horizon, placement_depth, norm_width, positions_width, tuned_qk_norm," \
            "tuned_placement, tuned_norm, tuned_ffn, tuned_ffn_fan_in, transfer_width, transfer_depth, mup_norm_width," \
            "mup_positions_width, completep_placement_depth, mup_ladder)" >&2; exit 2 ;;
  esac
}

for name in "${@:-ladder ffn_horizon placement_depth norm_width positions_width tuned_qk_norm tuned_placement tuned_norm tuned_ffn tuned_ffn_fan_in}"; do
  for n in $name; do run_one "$n"; done
done
