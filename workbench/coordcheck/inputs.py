"""From a loaded experiment to what a coordinate check trains: the baseline's model at each size, its data
and the fixed probe batch. A size the model cannot take is a ConfigError naming the flag (exit 2)."""

from __future__ import annotations

import torch

from components import InvalidConfig, TransformerConfig

from ..config import COMMAND_LINE, ConfigError
from ..data import DataError, DataSettings, TokenData, check_sizes, prepare, val_batches
from .measure import Sweep, sweep_models


def baseline_variant(experiment):
    """The baseline variant (at the experiment's first size, at its own value of a tuned key)."""
    return next(v for v in experiment.variants.values() if v.arch == experiment.baseline and v.control is None).untuned()


def sweep_data(experiment, variant) -> tuple[TokenData, torch.Tensor]:
    """The variant's prepared data (cached on disk) and the probe batch: the first validation batch of
    train.batch_size x train.seq_len tokens, the same for every size, seed and step."""
    train = variant.train
    try:
        data = prepare(DataSettings(**variant.data), base_dir=experiment.path.parent)
        check_sizes(data, train.batch_size, train.seq_len)
    except DataError as exc:
        source = variant.origins.get(exc.key, (experiment.origins.get(exc.key, (experiment.path,))[0],))[0]
        raise ConfigError(source, exc.key, exc.message) from None
    probe, _ = val_batches(data.val, train.batch_size, train.seq_len, 1)[0]
    return data, probe


def sweep_configs(variant, vocab_size: int, axis: str, sizes: tuple[int, ...]) -> tuple[list[TransformerConfig], Sweep, str | None]:
    """The model config at each size (``model.dim`` with ``n_heads`` kept, or ``model.n_layers``), the sweep,
    and how its base shape was chosen (``measure.sweep_models``)."""
    sweep = Sweep(axis, sizes)
    models, base = sweep_models(variant.model, sweep)
    if axis == "width":
        uneven = [w for w in sizes if w % variant.model["n_heads"]]
        if uneven:
            raise ConfigError(COMMAND_LINE, sweep.flag, f"{uneven[0]} is not divisible by model.n_heads "
                              f"{variant.model['n_heads']} (n_heads is kept, the head size grows)",
                              f"multiples of {variant.model['n_heads']}")
    configs = []
    for size, model in zip(sizes, models):
        try:
            configs.append(TransformerConfig(vocab_size=vocab_size, max_seq_len=variant.train.seq_len, **model))
        except InvalidConfig as exc:
            raise ConfigError(COMMAND_LINE, sweep.flag, f"{size}: model.{exc.field}={exc.value!r}: {exc.reason}") from None
    return configs, sweep, base
