"""Helpers for end-to-end tests: a tiny experiment (seconds per run) written to a temp folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"

# Tiny but real: the stdlib corpus capped at 300 kB, vocab 400, a 1-layer dim-32 model.
TINY = """
name: {name}
description: tiny end-to-end test experiment
defaults: [{configs}/model/llama.yaml, {configs}/data/stdlib.yaml, {configs}/train/cpu.yaml]
imports: {imports}
seeds: {seeds}
baseline: {baseline}
model: {{dim: 32, n_layers: 1, n_heads: 2}}
data: {{max_bytes: 300000, vocab_size: 400, cache_dir: {cache}}}
train: {{{steps}batch_size: 8, seq_len: 32, warmup_steps: 2, eval_every: {every}, checkpoint_every: {every},
        eval_batches: 2, log_every: 2}}
{extra}
variants:
{variants}
"""


def write_experiment(folder: Path, cache: Path, *, name="tiny", steps=12, every=4, seeds=(0, 1), imports=(),
                     variants="  rms: {}\n  ln: {model: {norm: layernorm}}", extra: str = "", baseline="rms") -> Path:
    """``steps=None`` leaves train.steps to a ``budget:``; ``extra`` is more top-level YAML (budget, sizes, eval);
    ``seeds`` is a list or a policy ``{"min": 2, "max": 4}``."""
    path = folder / f"{name}.yaml"
    path.write_text(TINY.format(name=name, configs=CONFIGS, imports=list(imports),
                                seeds=("{" + ", ".join(f"{k}: {v}" for k, v in seeds.items()) + "}") if isinstance(seeds, dict) else list(seeds), cache=cache,
                                steps="" if steps is None else f"steps: {steps}, ", every=every, variants=variants,
                                extra=extra, baseline=baseline))
    return path


def cli(*args: str, cwd: Path | None = None, **popen) -> subprocess.Popen:
    """Start ``python -m workbench ARGS`` in a subprocess (the real exit code, stderr and kill)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "workbench", *args], cwd=cwd or REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def results(out: Path) -> dict:
    """The run folder's results.json."""
    return json.loads((out / "results.json").read_text())


def runs(out: Path) -> dict[tuple[str, int], dict]:
    """Every recorded run, by (variant, seed)."""
    return {(v, r["seed"]): r for v, e in results(out)["variants"].items() for r in e["runs"]}


def wait_for(proc: subprocess.Popen, folder: Path, pattern: str, timeout: float = 120) -> None:
    """Until a file matching ``pattern`` appears under ``folder`` (or the process ends, or ``timeout``)."""
    deadline = time.time() + timeout
    while not list(folder.glob(pattern)) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
