"""Experiment configs: YAML presets + variants + CLI overrides -> validated, fully resolved variants.

    from workbench.config import load_experiment, ConfigError
    exp = load_experiment("experiments/ablate_norm.yaml", ["train.steps=10"])
    for variant in exp.variants.values():
        model = TransformerLM(variant.transformer_config())
"""

from .errors import COMMAND_LINE, ConfigError
from .experiment import Experiment, Variant
from .load import DEFAULT_VARIANT, compose_experiment, load_experiment
from .schema import ExperimentSchema, ModelSchema, TrainSchema, VariantSchema
from .validate import validate_experiment

__all__ = [
    "COMMAND_LINE", "ConfigError", "DEFAULT_VARIANT", "Experiment", "ExperimentSchema", "ModelSchema",
    "TrainSchema", "Variant", "VariantSchema", "compose_experiment", "load_experiment", "validate_experiment",
]
