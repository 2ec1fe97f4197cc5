"""Every shipped experiment changes what it says it changes, and nothing else.

Each variant's resolved config (as ``show --full`` prints it, derived sizes included) is compared with
its reference: the baseline at the same size, or for a ladder the previous rung at the same size. The
keys that differ must be exactly the ones declared below: the one intended change plus its documented
consequences (an FFN's width rule, a budget's steps). A hidden second change, such as the norm eps
ablate_norm once carried, fails here; so does a shipped experiment missing from the table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import load_experiment
from workbench.init_template import write_starter
from workbench.show import flat_config

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
EXPERIMENTS = sorted(EXPERIMENTS_DIR.glob("*.yaml"))

GLU_WIDTH = "model.ffn_hidden_dim"  # an FFN change moves between 4 x dim and the GLU rule (2/3 x 4 x dim)
LADDER_RUNGS = {"rmsnorm": {"model.norm", "model.norm_eps"},  # GPT-2's LayerNorm (1e-5) -> LLaMA's RMSNorm (1e-6)
                "swiglu": {"model.ffn", GLU_WIDTH}, "rope": {"model.positions"}, "no_bias": {"model.bias"},
                "llama": {"model.tie_embeddings"}}

# experiment -> {variant (the arch, at every size) -> the keys it changes against its reference}
CHANGES: dict[str, dict[str, set[str]]] = {
    "ablate_attention": {"naive": {"model.attention"}},
    "ablate_block": {p: {"model.norm_placement"} for p in ("parallel", "sandwich", "reordered")},
    "ablate_ffn": {f: {"model.ffn", GLU_WIDTH} for f in ("gelu", "relu")},
    "ablate_kv_heads": {v: {"model.n_kv_heads"} for v in ("gqa", "mqa")},
    "ablate_moe": {"moe": {"model.ffn"}},  # experts sized hidden_dim // top_k: ffn_hidden_dim stays
    "ablate_norm": {"layernorm": {"model.norm"}},  # norm_eps equal (1e-6): issue 26
    "ablate_norm_placement": {"post": {"model.norm_placement"}},
    "ablate_positions": {p: {"model.positions"} for p in ("learned", "sinusoidal", "none")},
    "ablate_qk_norm": {q: {"model.qk_norm"} for q in ("head", "proj")},  # lr 1e-2 for every variant, the baseline too
    "extrapolate_positions": {p: {"model.positions"} for p in ("sinusoidal", "alibi", "none", "learned")},
    "horizons_wsd": {"relu": {"model.ffn", GLU_WIDTH}},
    "llama_ladder": LADDER_RUNGS,
    "llama_ladder_scale": LADDER_RUNGS,
    # an architecture comparison, not a one-change ablation (its yaml says so); the token budget sets steps
    # the parametrization, with the base it resolves to (the smallest size's dim / n_layers)
    "transfer_depth": {"completep": {"model.parametrization", "model.base_dim", "model.base_layers", "model.base_head_dim"}},
    "transfer_width": {"mup": {"model.parametrization", "model.base_dim", "model.base_head_dim"},
                       "mup_split": {"model.parametrization", "model.base_dim", "model.base_head_dim", "train.hidden_lr_ratio",
                                     "train.lr"}},
    "scaling_llama_vs_gpt": {"gpt2": {"model.norm", "model.norm_eps", "model.ffn", GLU_WIDTH, "model.positions",
                                      "model.bias", "model.tie_embeddings", "train.steps"}},
}


def comparisons(experiment):
    """(variant, reference) for every variant compared: with its baseline, or a ladder's previous rung, at the
    same size and (in a tuned experiment) the same grid multiplier (a variant may centre its grid elsewhere:
    its train.lr is then a declared change)."""
    variants = list(experiment.variants.values())

    def cell(v):
        return v.size, None if v.point is None else round(v.point.value / v.point.base, 9)

    for variant in variants:
        same = [v for v in variants if cell(v) == cell(variant)]
        if experiment.ladder:
            if same.index(variant):
                yield variant, same[same.index(variant) - 1]
        elif variant.arch != experiment.baseline:
            yield variant, next(v for v in same if v.arch == experiment.baseline)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_each_variant_changes_only_its_declared_keys(path):
    experiment = load_experiment(path, machine=False)
    declared = CHANGES.get(experiment.name)
    assert declared is not None, f"{path.name}: declare what each variant changes in CHANGES ({__file__})"
    compared = set()
    for variant, reference in comparisons(experiment):
        mine, theirs = flat_config(variant), flat_config(reference)
        changed = {k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k)}
        assert changed == declared[variant.arch], (
            f"{path.name}: {variant.name} vs {reference.name} changes "
            + ", ".join(f"{k}: {mine.get(k)} vs {theirs.get(k)}" for k in sorted(changed)))
        compared.add(variant.arch)
    assert compared == set(declared), f"{path.name}: CHANGES declares variants it does not have"


def test_ablate_norm_builds_both_norms_with_the_same_eps():
    """What the model is built with, not only what the config says: both norms' eps are 1e-6."""
    experiment = load_experiment(EXPERIMENTS_DIR / "ablate_norm.yaml", machine=False)
    eps = {name: {m.eps for m in v.meta_model().modules() if hasattr(m, "eps")} for name, v in experiment.variants.items()}
    assert eps == {"rmsnorm": {1e-6}, "layernorm": {1e-6}}


def test_the_init_starter_changes_only_the_norm(tmp_path):
    """``workbench init``'s starter is an ablation too: its layernorm keeps the preset's norm_eps."""
    experiment = load_experiment(write_starter("starter", tmp_path), machine=False)
    (variant, reference), = comparisons(experiment)
    mine, theirs = flat_config(variant), flat_config(reference)
    assert {k for k in mine if mine[k] != theirs[k]} == {"model.norm"}
