"""``train.strategy`` reaches the Trainer as Lightning's own strategy; FSDP shards block by block."""

from __future__ import annotations

from lightning.pytorch.strategies import FSDPStrategy

from components import Block, TransformerConfig, TransformerLM
from workbench.training.trainer import build_strategy


def test_fsdp_wraps_each_block_and_nothing_else():
    strategy = build_strategy("fsdp")
    assert isinstance(strategy, FSDPStrategy)
    policy = strategy.kwargs["auto_wrap_policy"]
    model = TransformerLM(TransformerConfig(vocab_size=64, max_seq_len=16, dim=32, n_layers=3, n_heads=2))
    wrapped = [m for m in model.modules() if policy(module=m, recurse=False, nonwrapped_numel=0)]
    assert len(wrapped) == 3 and all(isinstance(m, Block) for m in wrapped)


def test_other_strategies_go_to_lightning_by_name():
    for name in ("auto", "ddp"):
        assert build_strategy(name) == name


def test_evaluation_calls_the_bare_model_off_fsdp():
    from types import SimpleNamespace

    import torch

    from workbench.training.module import LMModule, eval_forward

    model = TransformerLM(TransformerConfig(vocab_size=64, max_seq_len=16, dim=32, n_layers=1, n_heads=2), init_seed=0)
    module = LMModule(model, {"compile": False})
    assert eval_forward(SimpleNamespace(model=module), module) is model
    x = torch.randint(0, 64, (2, 16))
    assert torch.equal(module(x, targets=x), model(x, targets=x))  # what an FSDP root's forward computes
