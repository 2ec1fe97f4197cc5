"""Shared test helpers: skip markers for hardware-bound tests and a registry sandbox."""

from __future__ import annotations

import sys

import pytest
import torch

from components import registry
from components.attention import flash_unavailable_reason

# Use as `@requires_cuda` (with `@pytest.mark.gpu`) on tests that need a CUDA device.
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# None where the flash kernel can run; otherwise the reason (no CUDA, flash-attn missing or broken).
FLASH_UNAVAILABLE = flash_unavailable_reason()
requires_flash = pytest.mark.skipif(FLASH_UNAVAILABLE is not None, reason=FLASH_UNAVAILABLE or "")


def entry_params(kind: str) -> list:
    """registry.available(kind) as pytest params; entries that cannot run here are skipped with the reason."""
    marks = {("attention", "flash"): [requires_flash, pytest.mark.gpu]}
    return [pytest.param(name, marks=marks.get((kind, name), []), id=name) for name in registry.available(kind)]


@pytest.fixture
def sandbox_registry():
    """Let a test register components (and import plugin modules) without leaking them to other tests."""
    saved_entries = {kind: dict(table) for kind, table in registry._entries.items()}
    saved_modules = set(sys.modules)
    yield registry
    registry._entries.clear()
    registry._entries.update(saved_entries)
    for name in set(sys.modules) - saved_modules:
        if name.startswith("wbtest_"):
            del sys.modules[name]


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One data cache for the whole session: the tiny experiments' corpus is prepared once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _sweeps_are_marked(request, monkeypatch):
    """A test that trains a sweep in this process must say so (``@pytest.mark.e2e``): then ``-m 'not e2e'``
    is the fast suite, and the marker list tells what a test costs."""
    if request.node.get_closest_marker("e2e") is not None:
        return
    from workbench import experiment

    def refuse(*args, **kwargs):
        pytest.fail(f"{request.node.nodeid} trains a sweep: mark it @pytest.mark.e2e")

    monkeypatch.setattr(experiment._Sweep, "train_round", refuse)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, cache) -> dict:
    """A finished micro experiment, shared by the tests that read a run folder without changing it (copy it
    to change it): ``rms`` (exports to transformers) and ``ln`` (plain), seed 0, 6 steps."""
    from e2e import write_experiment
    from workbench.cli import main

    root = tmp_path_factory.mktemp("tiny_run")
    exp = write_experiment(root, cache, steps=6, every=3, seeds=(0,), variants="  rms: {}\n  ln: {model: {norm: layernorm}}")
    out = root / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    return {"out": out, "exp": exp}
