"""``fold_multipliers``: a μP / CompleteP model as the ``standard`` model computing the same logits, its
forward multipliers (components.parametrization.Multipliers) folded into its weights, so a format with
no multipliers (transformers) holds it exactly.

Each multiplier scales a linear function of some weights, so it folds into them:

    output  (logits = lm_head(h * output))   lm_head.weight; tied embeddings: the final norm's affine
                                             weight and bias instead (the shared table is also the
                                             unscaled input embedding)
    q_scale (q * q_scale before the kernel)  the q rows of attn.qkv (weight and bias); with QK-norm,
                                             q_norm's affine weight and bias (the norm would undo it)
    branch  (CompleteP, x + branch * f)      where the placement's branch ends in the residual linear
                                             layers (attn.out, the FFN's declared ``residual``): their
                                             weights and biases; where it ends in a norm: its affine
                                             parameters (``BRANCH_NORMS``)

Anything else (a norm without an affine output, a placement not listed) raises ValueError naming it:
an inexact fold would export a model that computes something else.
"""

from __future__ import annotations

import torch

from components import TransformerConfig, TransformerLM

# Norms whose output is weight * n(x) (+ bias), so scaling both scales the output exactly.
AFFINE_NORMS = ("rmsnorm", "layernorm", "dyt")
# Placements whose branches end in the residual linear layers: x + b * f(norm(x)) (pre), norm(x + b * f(x))
# (post), x + b * (attn(norm(x)) + ffn(norm(x))) (parallel).
BRANCH_LINEAR = ("pre", "post", "parallel")
# Placements whose branches end in a norm of their own: x + b * norm(f(x)); its affine parameters take b.
BRANCH_NORMS = {"reordered": ("attn_norm", "ffn_norm"), "sandwich": ("attn_post_norm", "ffn_post_norm")}


def fold_multipliers(model: TransformerLM) -> TransformerLM:
    """The ``standard`` TransformerLM (base_dim and base_layers cleared) whose weights carry ``model``'s
    multipliers, on the same device and dtype and in the same mode; ``model`` itself if it is standard.
    ``model`` is not changed. ValueError naming what keeps a multiplier from folding exactly."""
    cfg, m = model.config, model.multipliers
    if cfg.parametrization == "standard":
        return model
    state = {name: t.detach().clone() for name, t in model.state_dict().items()}
    why = f"the {cfg.parametrization} multipliers do not fold into the weights exactly"

    def scale(names, factor: float) -> None:
        for name in names:
            if name in state:  # a bias or LayerNorm bias may be absent
                state[name] = state[name] * factor

    def affine(prefix: str) -> list[str]:
        return [f"{prefix}.weight", f"{prefix}.bias"]

    norm = cfg.component("norm")[0]
    if m.output != 1.0:
        if not cfg.tie_embeddings:
            scale(["lm_head.weight"], m.output)
        elif isinstance(model.norm, torch.nn.Identity) or norm not in AFFINE_NORMS:
            final = "none" if isinstance(model.norm, torch.nn.Identity) else repr(norm)
            raise ValueError(f"{why}: the logits multiplier {m.output:g} has no weight to go into with tie_embeddings=True "
                             f"(the shared table is also the unscaled input embedding) and a final norm {final} "
                             f"(one with an affine output folds it: {', '.join(AFFINE_NORMS)})")
        else:
            scale(affine("norm"), m.output)
    if m.q_scale != 1.0:
        if cfg.qk_norm == "none":
            rows = cfg.n_heads * cfg.head_dim  # the fused qkv's first rows are q's
            for name in [p for i in range(cfg.n_layers) for p in affine(f"blocks.{i}.attn.qkv")]:
                if name in state:
                    state[name][:rows] *= m.q_scale
        elif norm in AFFINE_NORMS:
            scale([p for i in range(cfg.n_layers) for p in affine(f"blocks.{i}.attn.q_norm")], m.q_scale)
        else:
            raise ValueError(f"{why}: the attention's q multiplier {m.q_scale:g} comes after qk_norm={cfg.qk_norm!r} "
                             f"with norm {norm!r}, which has no affine output to take it "
                             f"(norms that do: {', '.join(AFFINE_NORMS)})")
    if m.branch != 1.0:
        placement = cfg.component("norm_placement")[0]
        if placement in BRANCH_LINEAR:
            scale([f"{layer}.{p}" for layer in model.residual_projections() for p in ("weight", "bias")], m.branch)
        elif placement in BRANCH_NORMS and norm in AFFINE_NORMS:
            scale([p for i in range(cfg.n_layers) for n in BRANCH_NORMS[placement] for p in affine(f"blocks.{i}.{n}")],
                  m.branch)
        else:
            known = ", ".join([*BRANCH_LINEAR, *(f"{p} (with an affine norm)" for p in BRANCH_NORMS)])
            raise ValueError(f"{why}: the residual-branch multiplier {m.branch:g} of norm_placement={placement!r} "
                             f"with norm {norm!r} has no known weights to go into (placements that fold it: {known})")
    return _standard_model(model, state)


def _standard_model(model: TransformerLM, state: dict[str, torch.Tensor]) -> TransformerLM:
    """A ``standard`` TransformerLM of ``model``'s architecture holding ``state``. Built for real, not on the
    meta device: a component may keep plain tensors of its own (ALiBi's slopes) that to_empty would not fill."""
    fields = dict(model.config.to_dict(), parametrization="standard", base_dim=None, base_layers=None)
    folded = TransformerLM(TransformerConfig.from_dict(fields))
    reference = model.embed.weight
    folded.to(device=reference.device, dtype=reference.dtype).load_state_dict(state, strict=True)
    return folded.train(model.training)
