"""``python -m workbench bench``: every section in one process, then the targets checked.

Sizes: the default run takes a few minutes on 2 CPU cores (most of it ``torch.compile``); ``quick``
shrinks every section to a smoke test of seconds (no compile) that exercises the same code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..training.allocator import keep_freed_memory
from . import attention, gemm, machine, overhead, profile, step
from .attention import AttentionShape
from .step import StepShape

log = logging.getLogger(__name__)

SECTIONS = ("gemm", "step", "attention", "overhead")
REPO = Path(__file__).resolve().parents[2]
DEFAULT_EXPERIMENT = REPO / "experiments" / "ablate_norm.yaml"  # the README's main job

MFU_TARGET_DIM = 256  # the issue sets its MFU target at this model width
# Targets of issue 6 (CPU), tightened by issue 17: on every CPU kind (native bf16 or not) and in every
# precision, compiled >= 1.10x transformers compiled, eager >= 1.05x transformers' faster eager path,
# and compiling takes no longer than transformers' compile.
TARGETS = {
    "eager_vs_transformers": 1.05,
    "compile_vs_transformers": 1.15,
    "compile_vs_transformers_compiled": 1.10,
    "compile_time_vs_transformers": 1.0,
    "mfu_fp32_dim256": 0.75,
    "lightning_overhead": 0.03,
}


@dataclass
class Settings:
    quick: bool = False
    compile: bool = True
    sections: tuple[str, ...] = SECTIONS
    device: str = "auto"
    precisions: tuple[str, ...] = ("fp32", "bf16")
    gemm_sizes: tuple[int, ...] = (2048,)
    gemm_reps: int = 5
    step: StepShape = field(default_factory=StepShape)
    step_reps: int = 9
    compile_reps: int = 11
    attention: AttentionShape = field(default_factory=AttentionShape)
    attention_reps: int = 3
    overhead_overrides: tuple[str, ...] = ()
    overhead_windows: int = 6

    @classmethod
    def make(cls, quick: bool = False, compile: bool | None = None, sections=None, device: str = "auto",
             precisions=None) -> "Settings":
        """Default or ``quick`` settings; ``compile`` None means on by default, off with quick;
        ``precisions`` None means the device's default ones."""
        if quick:
            s = cls(quick=True, compile=bool(compile), gemm_sizes=(512,), gemm_reps=3,
                    step=StepShape(dim=64, n_layers=2, n_heads=2, vocab_size=256, batch_size=4, seq_len=64),
                    step_reps=3, compile_reps=3,
                    attention=AttentionShape(batch_size=1, n_heads=2, head_dim=32, seq_lens=(64, 128, 256)),
                    attention_reps=2,
                    overhead_overrides=("model.dim=64", "model.n_layers=2", "model.n_heads=2",
                                        "train.batch_size=4", "train.seq_len=64"),
                    overhead_windows=2)
        elif resolve_device(device).type == "cuda":  # a ~125M LLaMA in bf16, long sequences
            s = cls(compile=True if compile is None else compile, precisions=("bf16",), gemm_sizes=(4096, 8192),
                    step=StepShape(dim=768, n_layers=12, n_heads=12, vocab_size=32000, batch_size=8, seq_len=1024),
                    attention=AttentionShape(batch_size=4, n_heads=12, head_dim=64, seq_lens=(512, 1024, 2048, 4096)),
                    step_reps=10, compile_reps=10, attention_reps=5)
        else:
            s = cls(compile=True if compile is None else compile)
        if sections:
            unknown = [x for x in sections if x not in SECTIONS]
            if unknown:
                raise ValueError(f"unknown bench section '{unknown[0]}' (sections: {', '.join(SECTIONS)})")
            s.sections = tuple(x for x in SECTIONS if x in sections)
        if precisions:
            s.precisions = tuple(dict.fromkeys(precisions))
        s.device = device
        return s


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is visible")
    return torch.device(name)


def _overhead_configs(overrides: tuple[str, ...]):
    from ..config import load_experiment

    experiment = load_experiment(DEFAULT_EXPERIMENT, list(overrides))
    variant = experiment.variants[experiment.baseline]
    return variant.train, variant.transformer_config(variant.data["vocab_size"]), str(DEFAULT_EXPERIMENT.relative_to(REPO))


def check_targets(results: dict) -> list[dict]:
    """The issue's targets against what was measured: [{name, value, target, met}] (absent sections
    skipped). The targets are set for the default sizes: a ``--quick`` run checks none."""
    checks = []
    if results.get("settings", {}).get("quick"):
        return checks
    rows = results.get("step", {}).get("rows", [])
    for row in rows:
        key = "eager_vs_transformers" if row["mode"] == "eager" else "compile_vs_transformers"
        checks.append(_with_reason(_speedup_check(f"{row['mode']} {row['precision']} speedup vs {row['reference']} (eager, as its users run it)",
                                                  row["speedup"], row.get("speedup_interval"), TARGETS[key]),
                                   row if row["mode"] == "eager" else None))
        compiled = step.compiled_reference(row)
        if row["mode"] == "compile" and compiled in row.get("speedup_vs", {}):
            interval = row.get("speedup_vs_interval", {}).get(compiled)
            checks.append(_with_reason(_speedup_check(f"compile {row['precision']} speedup vs {compiled}", row["speedup_vs"][compiled],
                                                      interval, TARGETS["compile_vs_transformers_compiled"]), row))
        seconds = row.get("compile_s", {})
        if row["mode"] == "compile" and "workbench" in seconds and compiled in seconds:
            checks += _compile_time_checks(row["precision"], seconds["workbench"], seconds[compiled], compiled)
    shape = results.get("step", {}).get("shape", {})
    for row in rows:
        if shape.get("dim") != MFU_TARGET_DIM or row["precision"] != "fp32":
            continue
        measures = [("the square GEMM of the same rounds", row.get("paired_mfu", {}).get("workbench", {}).get("vs_fp32_gemm")),
                    ("the best square-GEMM call of the run, strict", row.get("mfu", {}).get("vs_fp32_peak"))]
        for against, value in measures:
            if value is not None:
                checks.append({"name": f"MFU {row['mode']} fp32 at dim {shape['dim']} (vs {against})", "value": value,
                               "target": TARGETS["mfu_fp32_dim256"], "met": value >= TARGETS["mfu_fp32_dim256"]})
    if "overhead" in results:
        value = results["overhead"]["overhead"]
        checks.append({"name": "Lightning overhead per step", "value": value, "target": TARGETS["lightning_overhead"],
                       "met": value <= TARGETS["lightning_overhead"], "lower_is_better": True})
    if "attention" in results:
        for kernel, growth in results["attention"]["growth"].items():
            expected = 2.0 if kernel == "naive" else 1.0
            checks.append({"name": f"attention memory growth exponent, {kernel}", "value": growth["memory_exponent"],
                           "target": expected, "met": abs(growth["memory_exponent"] - expected) < 0.35})
    return checks


def _speedup_check(name: str, value: float, interval: list[float] | None, target: float) -> dict:
    """A speedup target: met when the median per-round ratio reaches it. With the ratio's 95% interval
    (``timing.paired_ratio_interval``), ``decided`` says whether the run settles it: the interval lies
    wholly on one side of the target. Where it straddles the target, or too few rounds give no
    interval (None), the rounds cannot tell."""
    decided = interval is not None and (interval[0] >= target or interval[1] < target)
    return {"name": name, "value": value, "target": target, "met": value >= target,
            "interval": None if interval is None else list(interval), "decided": decided}


def _compile_time_checks(precision: str, ours: dict, theirs: dict, name: str) -> list[dict]:
    """Cold and warm compile seconds against ``name``'s; a missed cold one names where the seconds went."""
    checks = []
    for when in ("cold", "warm"):
        value, target = ours[when] / theirs[when], TARGETS["compile_time_vs_transformers"]
        check = {"name": f"compile time {precision} ({when}), workbench / {name}", "value": value,
                 "target": target, "met": value <= target, "lower_is_better": True}
        if not check["met"] and when == "cold" and "cold_phases" in ours:
            check["why"] = "cold compile, workbench vs transformers: " + ", ".join(
                f"{phase} {s:.1f} vs {theirs['cold_phases'].get(phase, 0):.1f} s" for phase, s in ours["cold_phases"].items())
        checks.append(check)
    return checks


def _with_reason(check: dict, row: dict | None) -> dict:
    """A missed step target gets the profile of the two steps it compared as its reason."""
    if not check["met"] and row is not None and "profile" in row:
        check["why"] = profile.summary(row["profile"])
    return check


def run_bench(settings: Settings, command: str) -> dict:
    """Run the selected sections; return the JSON-ready results."""
    device = resolve_device(settings.device)
    started = time.perf_counter()
    results: dict = {"command": command, "date": time.strftime("%Y-%m-%d"), "machine": machine.describe(device),
                     "settings": _settings_dict(settings)}
    if device.type == "cpu":
        # Every case runs in the heap `workbench run` trains in (training.allocator). With glibc's
        # defaults a step's page faults depend on what the cases timed around it freed: the compiled
        # bf16 workbench step faulted 127 MiB a step alone and 11 MiB beside transformers (docs/performance.md).
        results["machine"]["freed_memory_kept"] = keep_freed_memory()
    peaks: dict[str, float] = {}
    dtypes = ["fp32", "bf16"] if device.type == "cpu" or torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    skipped = gemm.unusable_precisions(device, sorted(set(dtypes) | set(settings.precisions)))
    if skipped:
        results["skipped_precisions"] = skipped
        for precision, why in skipped.items():
            log.info("%s: not benchmarked: %s", precision, why)
    dtypes = [d for d in dtypes if d not in skipped]
    precisions = [p for p in settings.precisions if p not in skipped]

    def measure_peak() -> dict:
        log.info("gemm: peak of square matmuls %s", settings.gemm_sizes)
        return gemm.gemm_peak(device, dtypes, list(settings.gemm_sizes), settings.gemm_reps)

    if "gemm" in settings.sections:
        results["gemm"] = measure_peak()
    if "step" in settings.sections:
        results["step"] = step.run(settings.step, device, precisions, settings.compile,
                                   settings.step_reps, settings.compile_reps, max(settings.gemm_sizes))
    if "gemm" in settings.sections:
        if "step" in settings.sections:  # measured again after the steps; MFU uses the better one
            results["gemm"] = gemm.best_of(results["gemm"], measure_peak())
        peaks = {name: r["flops"] for name, r in results["gemm"].items()}
    if "step" in settings.sections:
        step.add_mfu(results["step"], peaks)
        if "fp32" in peaks:
            results["step"]["gemm_ceiling"] = _gemm_ceiling(settings, device, peaks["fp32"])
    if "attention" in settings.sections:
        results["attention"] = attention.run(settings.attention, device, settings.attention_reps)
    if "overhead" in settings.sections:
        if device.type != "cpu":
            results["overhead_note"] = "measured on CPU only"
        train, config, source = _overhead_configs(settings.overhead_overrides)
        results["overhead"] = overhead.run(train, config, settings.overhead_windows)
        results["overhead"]["experiment"] = source
        results["overhead"]["overrides"] = list(settings.overhead_overrides)
    results["targets"] = [{**t, "machine": machine.kind(results["machine"])} for t in check_targets(results)]
    results["wall_s"] = time.perf_counter() - started
    return results


def _gemm_ceiling(settings: Settings, device: torch.device, peak: float) -> dict:
    """The fp32 step's Linear GEMMs alone at their real shapes: how close to the square-GEMM peak the
    model's own matmul shapes can get, before anything else in the step costs time."""
    from components import TransformerLM
    from torch import nn

    with torch.device("meta"):
        model = TransformerLM(settings.step.config())
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    rows = settings.step.batch_size * settings.step.seq_len
    seconds = gemm.linear_gemm_seconds(shapes, rows, device, torch.float32, reps=settings.gemm_reps)
    linear_flops = sum(3 * 2 * rows * i * o for i, o in shapes)
    return {"linear_gemm_ms": 1000 * seconds, "linear_flops": linear_flops,
            "linear_gemm_efficiency": linear_flops / seconds / peak,
            "note": "Linear layers' forward + both backward GEMMs timed alone at the step's shapes, vs the square-GEMM peak"}


def _settings_dict(settings: Settings) -> dict:
    return asdict(settings)
