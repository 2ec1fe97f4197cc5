"""Machine checks: what training an experiment needs of the machine it runs on, the last of the three
steps of loading, and the only one that asks what this machine has (CUDA, MPS, flash-attn, bf16).

``run`` refuses a config this machine cannot train as written (``check_machine``), rather than let
Lightning swap it for something else; ``show`` and ``data`` skip this step and state the needs instead
(``machine_needs``), so an experiment written for a GPU can be read on a laptop.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from components import registry
from components.attention import flash_unavailable_reason

from .blame import Blame
from .errors import ConfigError
from .experiment import Experiment, Variant
from .specs import ComponentSpec

CUDA_GPU = "a CUDA GPU"
FLASH_ATTN = "flash-attn"
MPS = "Apple's MPS backend"


@dataclass(frozen=True)
class Need:
    """Something training needs of the machine: ``what`` (``a CUDA GPU``), the setting that asks for it
    (``train.accelerator: cuda``), and whether this machine has it."""

    what: str
    why: str
    present: bool


def _uses_flash(variant: Variant) -> bool:
    return ComponentSpec.parse(variant.model["attention"]).name == "flash"


def _has(what: str) -> bool:
    if what == CUDA_GPU:
        return torch.cuda.is_available()
    if what == MPS:
        return torch.backends.mps.is_available()
    # flash-attn without CUDA cannot be imported to try it: being installed is as far as one can tell
    return importlib.util.find_spec("flash_attn") is not None and (not torch.cuda.is_available() or flash_unavailable_reason() is None)


def machine_needs(exp: Experiment) -> list[Need]:
    """What training ``exp`` needs beyond a CPU, each once (the first setting that asks for it)."""
    asked: dict[str, str] = {}
    for variant in exp.variants.values():
        train = variant.train
        if train.accelerator in ("gpu", "cuda"):
            asked.setdefault(CUDA_GPU, f"train.accelerator: {train.accelerator}")
        if train.accelerator == "mps":
            asked.setdefault(MPS, "train.accelerator: mps")
        for key, value, wants_gpu in (("train.strategy", train.strategy, "fsdp"), ("train.precision", train.precision, "16-mixed")):
            if value == wants_gpu and train.accelerator == "auto":
                asked.setdefault(CUDA_GPU, f"{key}: {value}")
        if _uses_flash(variant):
            asked.setdefault(CUDA_GPU, "model.attention: flash")
            asked.setdefault(FLASH_ATTN, "model.attention: flash")
    return [Need(what, why, _has(what)) for what, why in asked.items()]


def machine_problems(exp: Experiment) -> list[ConfigError]:
    """Why this machine cannot train each variant as written (the first reason per variant), as the
    one-line errors ``run`` stops with."""
    problems = [_problem(Blame(exp, variant)) for variant in exp.variants.values()]
    return [p for p in problems if p is not None]


def check_machine(exp: Experiment) -> None:
    """Raise the first of ``machine_problems``: what ``run`` stops with before anything is trained."""
    problems = machine_problems(exp)
    if problems:
        raise problems[0]


def _problem(blame: Blame) -> ConfigError | None:
    train = blame.train
    accelerator, precision = train.accelerator, train.precision
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if accelerator in ("gpu", "cuda") and not cuda:
        return blame.error("train.accelerator", f"'{accelerator}' but no CUDA GPU is visible on this machine", "auto, cpu")
    if accelerator == "mps" and not mps:
        return blame.error("train.accelerator", "'mps' but Apple's MPS backend is not available here", "auto, cpu")
    if precision == "16-mixed" and accelerator == "auto" and not cuda and not mps:
        return blame.error("train.precision", "'16-mixed' needs a GPU (on CPU Lightning would silently train in bf16-mixed "
                           "instead)", "auto, 32, bf16-mixed, bf16-true", ("train.accelerator",))
    if train.strategy == "fsdp" and accelerator == "auto" and not cuda:
        return blame.error("train.strategy", "'fsdp' needs CUDA GPUs (Lightning's FSDP does not run on CPU or MPS)",
                           "auto, ddp", ("train.accelerator",))
    if _uses_flash(blame.variant):
        return _flash_problem(blame)
    return None


def _flash_problem(blame: Blame) -> ConfigError | None:
    others = ", ".join(n for n in registry.available("attention") if n != "flash")
    reason = flash_unavailable_reason()
    if reason:
        return blame.error("model.attention", reason, others)
    if blame.train.precision == "auto" and not torch.cuda.is_bf16_supported():
        return blame.error("train.precision", "'auto' resolves to 32 on this GPU (no bf16), which flash attention cannot run",
                           "16-mixed")
    return None
