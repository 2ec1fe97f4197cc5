"""What the benchmark ran on: CPU model and features, threads, accelerator, library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import torch

from components.hardware import cpu_has_fast_bf16

_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _cpuinfo() -> tuple[str, list[str]]:
    """(model name, flags) from /proc/cpuinfo; empty where unavailable (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine(), []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return model, flags


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe(device: torch.device) -> dict:
    """A JSON-ready description of this machine, for the results and docs/performance.md."""
    model, flags = _cpuinfo()
    info = {
        "cpu": model,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_flags": [f for f in _FLAGS_OF_INTEREST if f in flags],
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "memory_gib": _memory_gib(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "lightning": _version("lightning"),
    }
    return info


def _memory_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1)


def kind(info: dict) -> str:
    """The kind of machine a target was met or missed on: 'AMD EPYC, AVX2, no native bf16', or the GPU."""
    if info["gpu"]:
        return info["gpu"]
    isa = "AVX-512" if "avx512f" in info["cpu_flags"] else ("AVX2" if "avx2" in info["cpu_flags"] else "")
    features = "native bf16" if info["cpu_fast_bf16"] else "no native bf16"
    return ", ".join(x for x in (info["cpu"], isa, features) if x)


def one_line(info: dict) -> str:
    """'Intel Xeon ..., 2 cores (2 torch threads), AVX-512 without native bf16, 24 GiB; torch 2.13.0'."""
    if info["gpu"]:
        where = f"{info['gpu']} (host: {info['cpu']}, {info['cpu_cores']} cores)"
    else:
        features = "native bf16" if info["cpu_fast_bf16"] else "no native bf16"
        isa = "AVX-512" if "avx512f" in info["cpu_flags"] else ("AVX2" if "avx2" in info["cpu_flags"] else "")
        where = f"{info['cpu']}, {info['cpu_cores']} cores ({info['torch_threads']} torch threads), {isa + ' ' if isa else ''}{features}"
    memory = f", {info['memory_gib']} GiB" if info["memory_gib"] else ""
    heap = {True: "; malloc keeps freed memory, as `workbench run` trains", False: "; malloc as the C library sets it"}
    return (f"{where}{memory}; torch {info['torch']}, transformers {info['transformers']}, lightning {info['lightning']}"
            f"{heap.get(info.get('freed_memory_kept'), '')}")
