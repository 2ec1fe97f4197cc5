"""ActivationProbe: the mean |activation| of each module kind of a TransformerLM on one batch, by forward hooks.

The kinds (nanoGPT-mup's coordinate-check hooks, plus the residual stream):
    embedding  the input of the first block: token embedding (+ absolute positions)
    attention  each block's attention sublayer output (``block.attn``), before any branch multiplier
    ffn        each block's FFN output (``block.ffn``), before any branch multiplier
    block      the residual stream after the last block, what the final norm and LM head read
               (nanoGPT-mup's ``last_layer``)
    logits     the model's output logits (any output multiplier applied: what the loss sees)
attention and ffn, one value per layer, are averaged over the layers. The residual stream is not: its
layer l of L sits at relative depth l / L, so a layer average compares the first block of a 16-layer
model with the first of a 2-layer one and shrinks with depth even where the output stream does not
(measured: docs/coordcheck.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from components import TransformerLM

KINDS = ("embedding", "attention", "ffn", "block", "logits")


class ActivationProbe:
    """Hooks on ``model``; ``measure(tokens)`` runs one forward and returns {kind: mean |activation|}."""

    def __init__(self, model: TransformerLM):
        self.model = model
        self._seen: dict[str, list[float]] = {kind: [] for kind in KINDS}
        first = model.blocks[0]
        self._handles = [first.register_forward_pre_hook(lambda module, args: self._record("embedding", args[0]))]
        for block in model.blocks:
            self._handles += [block.attn.register_forward_hook(self._output_hook("attention")),
                              block.ffn.register_forward_hook(self._output_hook("ffn"))]
        self._handles.append(model.blocks[-1].register_forward_hook(self._output_hook("block")))

    def _output_hook(self, kind: str) -> Callable:
        return lambda module, args, output: self._record(kind, output)

    def _record(self, kind: str, tensor: torch.Tensor) -> None:
        self._seen[kind].append(tensor.detach().abs().mean(dtype=torch.float64).item())

    @torch.no_grad()
    def measure(self, tokens: torch.Tensor) -> dict[str, float]:
        """{kind: mean |activation|} on ``tokens`` (B, T), the model in eval mode, its mode restored after."""
        for values in self._seen.values():
            values.clear()
        was_training = self.model.training
        self.model.eval()
        try:
            logits = self.model(tokens)  # (B, T, vocab)
        finally:
            self.model.train(was_training)
        self._record("logits", logits)
        return {kind: sum(values) / len(values) for kind, values in self._seen.items()}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
