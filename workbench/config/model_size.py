"""The size bound: a model deeper than MAX_LAYERS or over MAX_PARAMS parameters is refused before
anything is allocated (docs/reliability.md), so a typo such as ``model.n_layers=100000`` is one line,
not minutes of building and gigabytes of memory.

The count is exact and cheap whatever the size: the blocks are identical, so it is a one-layer model
built on the meta device (shapes only, no memory) plus ``n_layers - 1`` times its block.
"""

from __future__ import annotations

import dataclasses
import inspect
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode

from components import TransformerConfig, TransformerLM, registry
from components.config import COMPONENT_FIELDS

from .schema import MODEL_FROM_ELSEWHERE

MAX_LAYERS = 1024  # the deepest transformers trained (DeepNet) have about 1000 layers
MAX_PARAMS = 20_000_000_000  # 20 billion: far beyond what the workbench trains, far below what stalls a check
BOUND_DOC = "docs/reliability.md"


# Kernels that only some machines can build (flash-attn refuses to construct without CUDA), and the one
# that stands in for them when a model is built to count it: a kernel holds no parameters and the
# FLOPs count does not depend on it, so the numbers are the same on any machine.
MACHINE_KERNELS = {"attention": ("flash",)}
STAND_IN = {"attention": "sdpa"}


class _NoNormalOnMeta(TorchFunctionMode):
    """``normal_`` on a meta tensor has nothing to fill: skipped, because its meta kernel is Python code
    whose first call imports torch._dynamo (1-2 s of every ``show``, ``data`` and ``run`` start-up)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.Tensor.normal_, torch.nn.init.normal_):
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


@contextmanager
def on_meta():
    """Build modules on the meta device (shapes only: no memory, no time), random init skipped."""
    with torch.device("meta"), _NoNormalOnMeta():
        yield


def counting_config(config: TransformerConfig) -> TransformerConfig:
    """``config`` to build on the meta device for counting and shape checks: a kernel this machine may
    lack replaced by its stand-in (whether it can run here is the machine check's question)."""
    swaps = {kind: STAND_IN[kind] for kind, names in MACHINE_KERNELS.items() if config.component(kind)[0] in names}
    return TransformerConfig.from_dict({**config.to_dict(), **swaps}) if swaps else config


def parameter_count(config: TransformerConfig) -> tuple[int, int]:
    """(parameters of the model, parameters of one layer), tied weights once."""
    with on_meta():
        one = TransformerLM(dataclasses.replace(counting_config(config), n_layers=1))
    per_layer = sum(p.numel() for p in one.blocks[0].parameters())
    return one.num_params() + (config.n_layers - 1) * per_layer, per_layer


def size_problem(config: TransformerConfig) -> tuple[str, str, str] | None:
    """(key, problem, allowed) where the model is over a bound; None where it is within them (or
    cannot be built at all, which the full build then reports)."""
    if config.n_layers > MAX_LAYERS:
        return ("model.n_layers", f"invalid value {config.n_layers}: deeper than the workbench's bound of {MAX_LAYERS} "
                f"layers ({BOUND_DOC})", f"an integer in [1, {MAX_LAYERS}]")
    try:
        total, per_layer = parameter_count(config)
    except Exception:  # a model that cannot be built: reported by the full build, with its cause
        return None
    if total <= MAX_PARAMS:
        return None
    rest = total - config.n_layers * per_layer
    return (_largest_setting(config), f"the model would hold {total:,} parameters ({config.n_layers} layers of "
            f"{per_layer:,}, plus {rest:,} in embeddings, positions and head), over the workbench's bound of "
            f"{MAX_PARAMS:,} ({BOUND_DOC})", f"a model of at most {MAX_PARAMS:,} parameters")


def _largest_setting(config: TransformerConfig) -> str:
    """The key most likely to blame: the size setting furthest above its default (``model.dim`` at
    100000 against 256), component options with an integer default included (``model.ffn.n_experts``)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TransformerConfig)}
    ratios = {name: getattr(config, name) / defaults[name] for name in ("n_layers", "dim", "vocab_size")}
    if "ffn_hidden_dim" not in config.derived:
        ratios["ffn_hidden_dim"] = config.ffn_hidden_dim / (4 * config.dim)
    if "head_dim" not in config.derived:
        ratios["head_dim"] = config.head_dim * config.n_heads / config.dim
    if registry.get("positions", config.component("positions")[0]).traits["max_len"] == "max_seq_len":
        ratios["max_seq_len"] = config.max_seq_len / defaults["max_seq_len"]  # a table of max_seq_len rows
    for field, kind in COMPONENT_FIELDS.items():
        name, options = config.component(field)
        signature = inspect.signature(registry.get(kind, name).factory).parameters
        for option, value in options.items():
            default = signature[option].default if option in signature else None
            if type(value) is int and type(default) is int and default > 0:
                ratios[f"{field}.{option}"] = value / default
    culprit = max(ratios, key=ratios.get)
    return MODEL_FROM_ELSEWHERE.get(culprit, f"model.{culprit}")
