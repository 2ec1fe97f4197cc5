"""``train.strategy`` to what the Trainer gets: Lightning's own strategies, FSDP sharded per block."""

from __future__ import annotations


def build_strategy(name: str):
    """'fsdp' -> FSDPStrategy wrapping each transformer Block as its own FSDP unit, so a rank
    gathers one layer's weights at a time (a bare 'fsdp' string makes the whole model one unit,
    gathered whole: no memory saved). Every other name ('auto', 'ddp', ...) goes to Lightning as is."""
    if name != "fsdp":
        return name
    from lightning.pytorch.strategies import FSDPStrategy

    from components import Block

    return FSDPStrategy(auto_wrap_policy={Block})
