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


def test_run_callbacks_leave_out_lightnings_monitors():
    # LearningRateMonitor names curves lr-AdamW/pg1, ThroughputMonitor waits 100 steps: the recorder logs both.
    from pathlib import Path

    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ThroughputMonitor

    from workbench.training.trainer import run_callbacks

    recorder = object()
    callbacks = run_callbacks(recorder, Path("ckpt"), 5)
    assert callbacks[0] is recorder and any(isinstance(c, ModelCheckpoint) for c in callbacks)
    assert not any(isinstance(c, (LearningRateMonitor, ThroughputMonitor)) for c in callbacks)


def test_learning_rate_tags_are_one_curve_or_named_by_weight_decay():
    import torch

    from components.parametrization import param_groups
    from workbench.training.tensorboard import lr_scalars

    model = TransformerLM(TransformerConfig(vocab_size=64, max_seq_len=16, dim=32, n_layers=1, n_heads=2))
    optimizer = torch.optim.AdamW(param_groups(model, 3e-3, 0.1), lr=3e-3)
    assert lr_scalars(optimizer) == {"lr": 3e-3}  # both groups follow the one schedule: one curve
    optimizer.param_groups[1]["lr"] = 1e-3
    assert lr_scalars(optimizer) == {"lr/decay": 3e-3, "lr/no_decay": 1e-3}


def test_learning_rate_tags_under_mup_are_named_by_role():
    import torch

    from components.parametrization import param_groups
    from workbench.training.tensorboard import lr_scalars

    config = TransformerConfig(vocab_size=64, max_seq_len=16, dim=64, n_layers=1, n_heads=2, parametrization="mup", base_dim=16)
    optimizer = torch.optim.AdamW(param_groups(TransformerLM(config), 4e-3, 0.1))
    # Hidden weights at lr / m_d (m_d = 4); input weights (embedding, norms) and the readout at lr.
    assert lr_scalars(optimizer) == {"lr/hidden": 1e-3, "lr/input": 4e-3, "lr/readout": 4e-3}


def test_window_throughput_counts_the_steps_since_the_last_logging_step(tmp_path):
    from types import SimpleNamespace

    import torch

    from workbench.training.callbacks import RunRecorder

    class Logger:
        def __init__(self):
            self.logged = []

        def log_metrics(self, metrics, step):
            self.logged.append((step, metrics))

    train = {"steps": 100, "eval_every": 50, "log_every": 4, "checkpoint_every": 50}
    now = [0.0]
    recorder = RunRecorder(tmp_path / "metrics.json", [], train, "test", tokens_per_step=1000, clock=lambda: now[0])
    model = TransformerLM(TransformerConfig(vocab_size=64, max_seq_len=16, dim=32, n_layers=1, n_heads=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    trainer = SimpleNamespace(global_step=0, world_size=2, optimizers=[optimizer], logger=Logger(), is_global_zero=True)
    module = SimpleNamespace(grad_norm=torch.tensor(0.5))
    for step in range(1, 5):  # step k runs from second 2(k-1) to 2k-1, then one second of data loading
        now[0] = 2.0 * (step - 1)
        recorder.on_train_batch_start(trainer, module, None, step)
        trainer.global_step, now[0] = step, 2.0 * step - 1
        recorder.on_train_batch_end(trainer, module, {"loss": torch.tensor(2.0)}, None, step)
    (step, metrics), = trainer.logger.logged
    assert step == 4 and metrics["loss/train"] == 2.0 and metrics["optim/grad_norm"] == 0.5
    # first window: from the first step's start (tick 0) to the sync at step 4's end (tick 7), both processes
    assert metrics["speed/tokens_per_sec"] == 4 * 1000 * 2 / 7


def test_no_mfu_without_a_known_peak():
    import torch

    from workbench.training.tensorboard import peak_flops

    assert peak_flops(torch.device("cpu"), "32-true") is None and peak_flops(torch.device("cpu"), "bf16-mixed") is None


def test_plain_log_lines_carry_the_sweeps_progress_and_the_bar_shows_it(tmp_path, caplog):
    import logging
    from types import SimpleNamespace

    import torch

    from workbench.sweep_eta import SweepEta
    from workbench.training.callbacks import RunRecorder
    from workbench.training.progress import RunProgressBar

    now = [0.0]
    eta = SweepEta(clock=lambda: now[0])
    eta.plan([("rms", 0, 16, 100), ("ln", 0, 16, 100)])
    eta.start("rms", 0)
    train = {"steps": 16, "eval_every": 16, "log_every": 2, "checkpoint_every": 16}  # no evaluation before step 8
    recorder = RunRecorder(tmp_path / "metrics.json", [], train, "run 1/2 rms seed0", 100, plain_lines=True,
                           clock=lambda: now[0], eta=eta)
    model = torch.nn.Linear(2, 2)
    trainer = SimpleNamespace(global_step=0, world_size=1, optimizers=[torch.optim.SGD(model.parameters(), lr=0.1)],
                              logger=None, is_global_zero=True)
    module = SimpleNamespace(grad_norm=None)
    with caplog.at_level(logging.INFO, logger="workbench"):
        for step in (1, 2, 3, 4):  # one second per step
            recorder.on_train_batch_start(trainer, module, None, step)
            trainer.global_step, now[0] = step, float(step)
            recorder.on_train_batch_end(trainer, module, {"loss": torch.tensor(3.0)}, None, step)
    lines = [r.getMessage() for r in caplog.records]
    # step 2: the first reported step (no rate yet); step 4: 2 steps x 100 tokens in 2 s, 12 + 16 steps left
    assert lines[0].endswith("sweep 0/2 runs done, 2s elapsed, time left unknown yet")
    assert lines[1].startswith("[run 1/2 rms seed0] step 4/16  loss 3.0000") and lines[1].endswith(
        "sweep 0/2 runs done, 4s elapsed, ~28s left")
    bar = RunProgressBar("run 1/2 rms seed0", recorder, eta)
    assert bar.get_metrics(None, None)["sweep"] == "0/2 runs done, 4s elapsed, ~28s left"
