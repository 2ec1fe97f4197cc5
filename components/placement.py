"""Where a block puts its norms: a strategy function, not branches inside the block.

``place(x, sublayer, norm)`` returns the residual stream after one sublayer (attention or FFN).
"""

from __future__ import annotations

from .registry import registry


@registry.register("norm_placement", "pre")
def pre(x, sublayer, norm):
    """Pre-norm x + f(norm(x)): the residual stream is never normalised (GPT-2, LLaMA)."""
    return x + sublayer(norm(x))


@registry.register("norm_placement", "post")
def post(x, sublayer, norm):
    """Post-norm norm(x + f(x)): the original Transformer's wiring (Vaswani et al., 2017)."""
    return norm(x + sublayer(x))


# Whether the model needs a norm before the LM head: pre-norm leaves the residual stream
# un-normalised, post-norm has already normalised it. Third-party placements default to True.
pre.final_norm = True
post.final_norm = False
