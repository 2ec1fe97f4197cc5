"""One training step (forward, loss, backward, grad clipping, fused AdamW) of the workbench LLaMA
against transformers' ``LlamaForCausalLM`` holding the identical weights (``workbench.interop``).

Both sides run the same optimiser code on the same batch in the same process, interleaved; only
the model (and its loss) differs. transformers computes its loss the way its users train:
``model(input_ids, labels=..., shift_labels=...)``, which upcasts the full logits to fp32.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from components import TransformerConfig, TransformerLM
from components.parametrization import param_groups

from . import profile
from .compile_cost import compile_costs
from .flops import achieved_flops, matmul_flops, mfu, paired_mfu
from .gemm import square_gemm, sync
from .timing import interleaved, median, paired_ratio, paired_ratio_interval, spread

log = logging.getLogger(__name__)

HF_ATTENTION = ("eager", "sdpa")  # transformers' attention implementations that run anywhere


@dataclass
class StepShape:
    """Model and batch of the step benchmark (the LLaMA recipe at a small size)."""

    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    vocab_size: int = 2048
    batch_size: int = 16
    seq_len: int = 256

    def config(self) -> TransformerConfig:
        return TransformerConfig(vocab_size=self.vocab_size, max_seq_len=self.seq_len, dim=self.dim,
                                 n_layers=self.n_layers, n_heads=self.n_heads)


def autocast_context(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """'fp32' -> no autocast; 'bf16' / 'fp16' -> autocast to that dtype (Lightning's *-mixed)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return lambda: torch.autocast(device.type, dtype=dtype)


def training_step(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor], precision: str,
                  device: torch.device, grad_clip: float = 1.0) -> Callable[[], None]:
    """A closure running one optimiser step of ``model``: what LMModule does per step, minus Lightning."""
    context = autocast_context(precision, device)
    optimizer = torch.optim.AdamW(param_groups(model, 1e-4, 0.1), lr=1e-4, fused=device.type in ("cpu", "cuda"))

    def step() -> None:
        with context():
            loss = loss_fn(model)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)

    return step


def build_pair(shape: StepShape, device: torch.device) -> tuple[TransformerLM, dict[str, nn.Module]]:
    """The workbench model and one transformers model per attention implementation, identical weights."""
    from workbench.interop import from_hf, to_hf

    base = TransformerLM(shape.config(), init_seed=0)
    hf = {impl: to_hf(base, attn_implementation=impl).to(device).train() for impl in HF_ATTENTION}
    ours = from_hf(hf["sdpa"]).train()  # the direction the issue asks for: transformers -> workbench
    return ours, hf


def _batch(shape: StepShape, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, shape.vocab_size, (shape.batch_size, shape.seq_len), generator=g)
    y = torch.randint(0, shape.vocab_size, (shape.batch_size, shape.seq_len), generator=g)
    return x.to(device), y.to(device)


def _losses(x: torch.Tensor, y: torch.Tensor) -> tuple[Callable, Callable]:
    return (lambda m: m(x, targets=y)), (lambda m: m(input_ids=x, labels=y, shift_labels=y).loss)


def initial_losses(ours: TransformerLM, hf: dict[str, nn.Module], shape: StepShape, device: torch.device) -> dict:
    """Both models' loss on the benchmark batch before any step: equal weights give equal losses."""
    x, y = _batch(shape, device)
    ours_loss, hf_loss = _losses(x, y)
    with torch.no_grad():
        values = {"workbench": float(ours_loss(ours))}
        values.update({f"transformers_{impl}": float(hf_loss(m)) for impl, m in hf.items()})
    return values


GEMM = "gemm_"  # name prefix of the square-GEMM cases timed in the same rounds as the steps


def add_gemm_cases(cases: dict, precision: str, device: torch.device, gemm_n: int) -> dict:
    """The square GEMM in fp32 (and in ``precision``'s dtype) as extra cases of the step's rounds:
    each round then carries its own MFU denominator (``flops.paired_mfu``)."""
    for dtype in dict.fromkeys(("fp32", precision)):
        cases[GEMM + dtype] = square_gemm(device, dtype, gemm_n)
    return cases


def bench_eager(ours, hf, shape: StepShape, device: torch.device, precision: str, reps: int,
                gemm_n: int) -> tuple[dict[str, list[float]], dict]:
    """Interleaved eager steps: {"workbench": [s...], "transformers_eager": [...], "transformers_sdpa": [...],
    "gemm_fp32": [...], ...}, and where the workbench and the faster transformers step spend their
    time (``profile.compare``)."""
    x, y = _batch(shape, device)
    ours_loss, hf_loss = _losses(x, y)
    cases = {"workbench": training_step(copy.deepcopy(ours), ours_loss, precision, device)}
    for impl, model in hf.items():
        cases[f"transformers_{impl}"] = training_step(copy.deepcopy(model), hf_loss, precision, device)
    times = interleaved(add_gemm_cases(cases, precision, device, gemm_n), reps=reps, warmup=1)
    fastest = min((n for n in times if n.startswith("transformers_")), key=lambda n: median(times[n]))
    return times, profile.compare(cases["workbench"], cases[fastest])


def compiled_step(shape: StepShape, device: torch.device, precision: str, side: str) -> Callable[[], None]:
    """A freshly built and compiled model's training step (``side``: "workbench" or
    "transformers_<impl>"), built from the seed like ``build_pair``'s: a module-level function, so a
    ``functools.partial`` of it can be sent to the fresh process that measures a cold compile."""
    ours, hf = build_pair(shape, device)
    x, y = _batch(shape, device)
    ours_loss, hf_loss = _losses(x, y)
    model, loss = (ours.to(device), ours_loss) if side == "workbench" else (hf[side.removeprefix("transformers_")], hf_loss)
    model.compile()
    return training_step(model, loss, precision, device)


def bench_compiled(hf_model, hf_name: str, shape: StepShape, device: torch.device, precision: str,
                   reps: int, gemm_n: int) -> tuple[dict[str, list[float]], dict[str, dict[str, float]], dict, str]:
    """The workbench through ``nn.Module.compile()`` (as ``train.compile`` does) against transformers
    as its users run it (``hf_name``, its faster eager path) and against every transformers attention
    implementation compiled the same way (``transformers_<impl>_compiled``), in the same rounds: step
    times, each compiled model's cold and warm compile seconds (``compile_cost.compile_costs``:
    {name: {"cold": s, "warm": s}}), where the workbench and the faster compiled transformers spend
    their time (``profile.compare``), and that transformers' name. Every implementation is compiled
    because the faster eager one need not be the faster compiled (bf16: eager attention compiles to
    fused kernels, sdpa keeps its kernel)."""
    x, y = _batch(shape, device)
    _, hf_loss = _losses(x, y)
    makers = {"workbench": functools.partial(compiled_step, shape, device, precision, "workbench")}
    for impl in HF_ATTENTION:
        makers[f"transformers_{impl}_compiled"] = functools.partial(compiled_step, shape, device, precision, f"transformers_{impl}")
    steps, compile_s = compile_costs(makers, device)
    cases = {hf_name: training_step(copy.deepcopy(hf_model), hf_loss, precision, device), **steps}
    times = interleaved(add_gemm_cases(cases, precision, device, gemm_n), reps=reps, warmup=1)
    fastest = min((n for n in steps if n != "workbench"), key=lambda n: median(times[n]))
    return times, compile_s, profile.compare(steps["workbench"], steps[fastest]), fastest


def compiled_reference(row: dict) -> str:
    """The compiled transformers a compile row is held against: the faster of those it timed (older
    results compiled only the faster eager one)."""
    return row.get("compiled_reference", f"{row['reference']}_compiled")


def summarise(times: dict[str, list[float]], reference: str, flops_per_step: int, gemm_n: int) -> dict:
    """Median ms per step case; the workbench's speedup over ``reference`` (median of paired per-round
    ratios) and over every other case, each with its 95% interval (``paired_ratio_interval``, None
    where the rounds are too few to bound it); each case's MFU against the GEMM of its own rounds."""
    steps = {n: t for n, t in times.items() if not n.startswith(GEMM)}
    gemms = {n.removeprefix(GEMM): t for n, t in times.items() if n.startswith(GEMM)}
    gemm_flops = matmul_flops(gemm_n, gemm_n, gemm_n)
    return {
        "ms": {name: 1000 * median(t) for name, t in steps.items()},
        "spread": {name: spread(t) for name, t in steps.items()},
        "reference": reference,
        "speedup": paired_ratio(steps[reference], steps["workbench"]),
        "speedup_vs": {n: paired_ratio(steps[n], steps["workbench"]) for n in steps if n != "workbench"},
        "speedup_interval": paired_ratio_interval(steps[reference], steps["workbench"]),
        "speedup_vs_interval": {n: paired_ratio_interval(steps[n], steps["workbench"]) for n in steps if n != "workbench"},
        "flops_per_step": flops_per_step,
        "round_gemm": {dtype: {"n": gemm_n, "median_flops": gemm_flops / median(t)} for dtype, t in gemms.items()},
        "paired_mfu": {name: {f"vs_{dtype}_gemm": paired_mfu(flops_per_step, t, gemm_flops, gemms[dtype])
                              for dtype in gemms} for name, t in steps.items()},
    }


def add_mfu(result: dict, peaks: dict[str, float]) -> None:
    """Achieved FLOP/s of the workbench and its reference in every row, and their MFU against each
    best-call GEMM peak of the gemm section ({"fp32": FLOP/s, "bf16": ...}): the strict figure,
    beside the paired one ``summarise`` already gives."""
    for row in result["rows"]:
        for who, key in (("workbench", "workbench"), ("reference", row["reference"])):
            seconds = row["ms"][key] / 1000
            row[f"{who}_tflops"] = achieved_flops(row["flops_per_step"], seconds) / 1e12
            row["mfu" if who == "workbench" else "reference_mfu"] = {
                f"vs_{name}_peak": mfu(row["flops_per_step"], seconds, peak) for name, peak in peaks.items()}


def run(shape: StepShape, device: torch.device, precisions: list[str], compile_too: bool, reps: int,
        compile_reps: int, gemm_n: int) -> dict:
    """The whole step section: eager in every precision, then compiled against the fastest
    transformers implementation (eager and compiled). Every round also times an (n, n) GEMM with
    n = ``gemm_n``; the strict MFU is added by ``add_mfu`` once the section's peak is known."""
    ours, hf = build_pair(shape, device)
    ours.to(device)
    flops_per_token = ours.flops_per_token(shape.seq_len)
    flops_per_step = flops_per_token * shape.batch_size * shape.seq_len
    result = {
        "shape": asdict(shape),
        "params": ours.num_params(),
        "flops_per_token": flops_per_token,
        "tokens_per_step": shape.batch_size * shape.seq_len,
        "initial_loss": initial_losses(ours, hf, shape, device),
        "rows": [],
    }
    for precision in precisions:
        log.info("step: eager %s", precision)
        times, where = bench_eager(ours, hf, shape, device, precision, reps, gemm_n)
        fastest = min((n for n in times if n.startswith("transformers_")), key=lambda n: median(times[n]))
        result["rows"].append({"precision": precision, "mode": "eager", **summarise(times, fastest, flops_per_step, gemm_n),
                               "profile": where})
        if compile_too:
            log.info("step: compiled %s (workbench vs %s eager, and every transformers implementation compiled)",
                     precision, fastest)
            ctimes, compile_s, where, compiled = bench_compiled(hf[fastest.removeprefix("transformers_")], fastest, shape,
                                                                device, precision, compile_reps, gemm_n)
            row = {"precision": precision, "mode": "compile", **summarise(ctimes, fastest, flops_per_step, gemm_n),
                   "compiled_reference": compiled, "compile_s": compile_s, "profile": where,
                   "speedup_vs_own_eager": {"workbench": median(times["workbench"]) / median(ctimes["workbench"]),
                                            compiled: median(times[compiled.removesuffix("_compiled")]) / median(ctimes[compiled])}}
            result["rows"].append(row)
    return result
