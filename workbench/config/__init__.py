"""Experiment configs: YAML presets + variants + CLI overrides -> checked, fully resolved variants.

    from workbench.config import load_experiment, ConfigError
    exp = load_experiment("experiments/ablate_norm.yaml", ["train.steps=10"])
    for variant in exp.variants.values():
        model = TransformerLM(variant.transformer_config())

Loading is four steps (``load.py``): compose the layers; check every value, pure (``checks.py``);
resolve what depends on files (``resolve.py``: data paths, tokenizer vocabulary, budget, eval lengths);
then, for ``run`` only, check this machine can train it (``machine.py``: CUDA, flash-attn, precision).

The names below are imported on first use, so a module that needs only ``workbench.config.specs``
(the reports do) loads no torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "COMMAND_LINE": "errors", "ConfigError": "errors", "Experiment": "experiment", "Variant": "experiment",
    "DEFAULT_VARIANT": "load", "compose_experiment": "load", "load_experiment": "load",
    "ExperimentSchema": "schema", "ModelSchema": "schema", "TrainSchema": "schema", "TrainSettings": "schema",
    "VariantSchema": "schema", "ComponentSpec": "specs", "check_experiment": "checks",
    "resolve_experiment": "resolve", "check_machine": "machine", "machine_needs": "machine",
}
__all__ = [
    "COMMAND_LINE", "ComponentSpec", "ConfigError", "DEFAULT_VARIANT", "Experiment", "ExperimentSchema", "ModelSchema",
    "TrainSchema", "TrainSettings", "Variant", "VariantSchema", "check_experiment", "check_machine",
    "compose_experiment", "load_experiment", "machine_needs", "resolve_experiment",
]

if TYPE_CHECKING:
    from .checks import check_experiment
    from .errors import COMMAND_LINE, ConfigError
    from .experiment import Experiment, Variant
    from .load import DEFAULT_VARIANT, compose_experiment, load_experiment
    from .machine import check_machine, machine_needs
    from .resolve import resolve_experiment
    from .schema import ExperimentSchema, ModelSchema, TrainSchema, TrainSettings, VariantSchema
    from .specs import ComponentSpec


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
