"""Speed of an experiment's variants, measured in one process: paired, interleaved training steps.

Wall-clock tokens/s of separate runs compare machines, not architectures: a run that shared its cores
with another process measured 5.78K tok/s against a quiet run's 13.6K, and read as a 2.4x faster
variant. Here every variant's training step (forward with the fused loss, backward, grad clipping,
the training's AdamW and LR schedule, under the precision training resolves on this machine) is timed
in the same process on identical random token batches of its run's shape. Each round times a few
steps of every variant, one step at a time, alternating between the variants in an order shuffled
anew each pass (by a local, seeded generator), so a neighbour's burst of load or a thermal drift hits
a round's variants alike; a variant's round time is the median of its steps there (a step that a
burst hit alone does not count), the per-round time ratio variant / baseline is the paired
observation, and the ratio reported is their geometric mean with a 95% t-interval on the log ratios.
Each step is timed to its end (``torch.cuda.synchronize``), so on a GPU a launch-bound small model's
absolute ms/step is somewhat pessimistic against training, where launches overlap the GPU's work.

What is not timed: Lightning's own per-step work (the bench's ``overhead`` section measures it),
data loading, and ``torch.compile`` (a config with ``compile: true`` is timed eager and says so:
compiling every variant would cost 16-34 s each on CPU). Multi-device runs are timed on one device.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import torch

from components import TransformerConfig, TransformerLM

from ..config.schema import TrainSettings
from ..training.optim import build_optimizer
from ..training.precision import resolve_precision
from .gemm import sync
from .step import autocast_context
from .timing import median, round_robin_order, spread

log = logging.getLogger(__name__)

MIN_ROUNDS = 3  # the budget never stops before this many rounds: fewer give no interval (2 df at least, estimable.py)
CPU_MAX_PARAMS = 20_000_000  # default cap on parameters held at once on CPU (a 125M model is not timed there)
CUDA_BYTES_PER_PARAM = 64  # default CUDA cap: free memory / this (16 B of weights, grads, AdamW + activations)
CONFIDENCE = 0.95  # of the interval on the ratio
NOISY_SPREAD = 0.2  # speed_lines flags a variant whose relative IQR over rounds is above this
RATIO_MEANS = "variant time / baseline time: > 1 is slower than the baseline, < 1 faster"


@dataclass
class _Variant:
    """One run group to time: its model, batch shape, device and precision, as training would run it."""

    name: str
    config: TransformerConfig
    train: TrainSettings
    device: torch.device
    precision: str  # Lightning's string, resolved ('32', 'bf16-mixed', ...)
    params: int
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_per_step(self) -> int:
        return self.train.tokens_per_step


def run_device(train: TrainSettings) -> torch.device:
    """The device ``train.accelerator`` trains on here (Lightning's 'auto': CUDA, else MPS, else CPU)."""
    accelerator = train.accelerator
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if accelerator in ("auto", "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "mps":
        torch.mps.synchronize()
    else:
        sync(device)


def _batch(vocab_size: int, batch_size: int, seq_len: int, seed: int,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (x, y) tokens from a local generator: the same for every variant of the same shape."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, (batch_size, seq_len), generator=g)
    y = torch.randint(0, vocab_size, (batch_size, seq_len), generator=g)
    return x.to(device), y.to(device)


def _count_params(config: TransformerConfig) -> int:
    with torch.device("meta"):
        return TransformerLM(config).num_params()


def _training_step(variant: _Variant, seed: int) -> Callable[[], None]:
    """A fresh model of ``variant`` and a closure running one training step of it, as ``LMModule``
    with its Trainer does: ``model(x, targets=y)`` under the run's autocast (or true half precision),
    backward (through a GradScaler for '16-mixed'), ``clip_grad_norm_`` (always called, as training
    does; grad_clip 0 = no limit), ``build_optimizer``'s AdamW (fused where training fuses it) and
    its LR schedule, then zero_grad."""
    device, precision, train = variant.device, variant.precision, variant.train
    model = TransformerLM(variant.config, init_seed=seed).to(device).train()
    true_dtype = {"bf16-true": torch.bfloat16, "16-true": torch.float16}.get(precision)
    if true_dtype is not None:
        model.to(true_dtype)
    mixed = {"bf16-mixed": "bf16", "16-mixed": "fp16"}.get(precision, "fp32")
    context = autocast_context(mixed, device)
    fused = device.type in ("cpu", "cuda") and precision != "16-mixed"
    optimizer, schedule = build_optimizer(model, train, fused)
    scaler = torch.amp.GradScaler(device.type) if precision == "16-mixed" and device.type == "cuda" else None
    max_norm = train.grad_clip or float("inf")
    x, y = _batch(variant.config.vocab_size, train.batch_size, train.seq_len, seed, device)
    parameters = list(model.parameters())

    def step() -> None:
        with context():
            loss = model(x, targets=y)
        if scaler is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True)
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True)
            scaler.step(optimizer)
            scaler.update()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _step_seconds(step: Callable[[], None], device: torch.device, clock: Callable[[], float]) -> float:
    _sync(device)
    start = clock()
    step()
    _sync(device)
    return clock() - start


@contextlib.contextmanager
def _gc_paused():
    """The garbage collector off while timing (as ``timeit`` does): a collection would land on
    whichever variant happened to be running."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _plan(configs: dict[str, TransformerConfig], train: dict[str, TrainSettings | Mapping]) -> dict[str, _Variant]:
    missing = [name for name in configs if name not in train]
    if missing:
        raise ValueError(f"time_variants: no train section for {', '.join(missing)}")
    plans = {}
    for name, config in configs.items():
        t = TrainSettings.of(train[name])
        device = run_device(t)
        if config.max_seq_len < t.seq_len:
            raise ValueError(f"time_variants: {name}: seq_len {t.seq_len} > model max_seq_len {config.max_seq_len}")
        v = _Variant(name, config, t, device, resolve_precision(t.precision, t.accelerator), _count_params(config))
        if t.compile:
            v.notes.append("train.compile is true: timed eager (compiling every variant would cost 16-34 s each)")
        if t.devices not in ("auto", 1, "1") or t.num_nodes != 1:
            v.notes.append(f"trains on devices={t.devices!r}, num_nodes={t.num_nodes}: timed on one device")
        plans[name] = v
    return plans


def _default_max_params(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free // CUDA_BYTES_PER_PARAM)
    return CPU_MAX_PARAMS


def log_ratio_ci(ratios: list[float], confidence: float = CONFIDENCE) -> tuple[float, float | None, float | None]:
    """Geometric mean of positive ``ratios`` and its t-interval on the logs (None, None where the data cannot bound it:
    fewer than 3 ratios, or an interval spanning over 100x; ``reports.analysis.estimable``):
    the arithmetic of the verdicts' compute multipliers (``reports.analysis.multipliers.combine_multipliers``,
    imported on use: it loads scipy, and importing the bench stays cheap)."""
    if not ratios or not 0 < confidence < 1 or min(ratios) <= 0:
        raise ValueError("log_ratio_ci needs at least one positive ratio and 0 < confidence < 1")
    from ..reports.analysis.multipliers import combine_multipliers

    combined = combine_multipliers(ratios, [False] * len(ratios), confidence)
    return combined.mean, combined.low, combined.high


def time_variants(configs: dict[str, TransformerConfig], train: dict[str, TrainSettings | Mapping], baseline_of: dict[str, str | None],
                  rounds: int = 7, warmup: int = 2, steps_per_round: int = 3, seed: int = 0,
                  budget_s: float | None = 60.0, max_params: int | None = None, confidence: float = CONFIDENCE,
                  clock: Callable[[], float] = time.perf_counter) -> dict:
    """Paired, interleaved timing of one training step of every variant, in this process.

    ``configs``: run group -> model config (vocab_size set); ``train``: run group -> its train settings
    (or a mapping of train keys, the others at their defaults); ``baseline_of``: run group -> the run group it is compared with (None, or absent, for a
    baseline). Each variant takes ``warmup`` untimed steps, then each of up to ``rounds`` rounds
    times ``steps_per_round`` steps of every variant, one step at a time alternating between the
    variants in a shuffled order; a variant's round time is its median step there. ``budget_s``
    (None: no limit) stops the rounds once the next one would end past it, counted from the call
    (building and warm-up included), never before ``MIN_ROUNDS``.

    Memory: all models stay built if their parameters sum to at most ``max_params`` (default: 20M
    on CPU, free memory / 64 B on CUDA); else each is built, warmed up and freed within every round
    (slower; each variant's steps then run in one block per round). A single model above
    ``max_params`` is not timed (``skipped`` says why).

    Deterministic but for the timings: weights from ``init_seed=seed``, batches from a local
    generator seeded with ``seed``, step order from a local ``random.Random(seed)``; the global
    torch RNG state is restored on return. The torch thread count is left as it is.

    Returns (JSON-able) {"method", "ratio_means", "confidence", "device", "rounds",
    "rounds_requested", "steps_per_round", "warmup_steps", "stopped_by_budget", "budget_s",
    "wall_s", "models_resident", "torch_threads", "variants": {name: {"ms_per_step",
    "steps_per_sec", "tokens_per_sec", "tokens_per_step", "params", "spread", "round_ms",
    "precision", "compiled", "baseline", "ratio", "low", "high", "notes", "skipped"}}}.
    ``ratio`` is the geometric mean of the per-round variant / baseline step-time ratios (> 1:
    slower), ``low``/``high`` its t-interval at ``confidence`` (None with one round); a baseline
    gets ratio 1 (low = high = 1), a variant whose baseline was not timed None (and a note).
    ``skipped``: None, or why the variant was not timed (its timings are then None).
    """
    if rounds < 1 or steps_per_round < 1 or warmup < 0:
        raise ValueError("time_variants needs rounds >= 1, steps_per_round >= 1, warmup >= 0")
    started = clock()
    plans = _plan(configs, train)
    devices = sorted({str(v.device) for v in plans.values()})
    cuda_devices = sorted({v.device.index for v in plans.values() if v.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda_devices):
        times, resident, stopped, skipped = _measure(plans, rounds, warmup, steps_per_round, seed, budget_s,
                                                     max_params, clock, started)
    variants = {name: _summary(v, times, skipped.get(name), baseline_of.get(name), confidence)
                for name, v in plans.items()}
    n = len(next(iter(times.values()))) if times else 0
    return {"method": _method(n, steps_per_round, warmup, confidence), "ratio_means": RATIO_MEANS,
            "confidence": confidence, "device": devices[0] if len(devices) == 1 else devices, "rounds": n,
            "rounds_requested": rounds, "steps_per_round": steps_per_round, "warmup_steps": warmup,
            "stopped_by_budget": stopped, "budget_s": budget_s, "wall_s": clock() - started,
            "models_resident": resident, "torch_threads": torch.get_num_threads(), "variants": variants}


def _method(rounds: int, steps_per_round: int, warmup: int, confidence: float) -> str:
    return (f"paired, interleaved timing of one training step per variant in one process ({rounds} rounds, each "
            f"the median of {steps_per_round} steps per variant taken alternately in shuffled order, after "
            f"{warmup} warm-up steps; identical random batches); ratio = geometric mean of the per-round "
            f"variant/baseline step-time ratios with a {100 * confidence:g}% t-interval on their logs")


def _measure(plans: dict[str, _Variant], rounds: int, warmup: int, steps_per_round: int, seed: int,
             budget_s: float | None, max_params: int | None, clock, started: float):
    """{name: [seconds per step, round by round]}, whether all models stayed built, whether the
    budget stopped the rounds, {name: why it was not timed}.

    With all models built, a round takes ``steps_per_round`` passes over the variants, one step
    each, in a fresh random order per pass: a fixed cyclic order made every variant follow the same
    neighbour, whose footprint in the caches it then paid for (two identical 1-layer models, one
    always after a 4-layer model, differed by 3-5%, outside their 95% interval); shuffled, the
    neighbour varies and identical models time alike, with intervals of +-2-5% on a busy 2-core
    machine against +-10-25% for each variant's steps in one block. With one model at a time, each
    is built in turn (``round_robin_order``), and its steps run in one block."""
    skipped, resident = _fit_in_memory(plans, max_params)
    names = [name for name in plans if name not in skipped]
    if not names:
        return {}, True, False, skipped

    def fresh(name: str) -> Callable[[], None]:
        step = _training_step(plans[name], seed)
        for _ in range(warmup):
            step()
        return step

    order_rng = random.Random(seed)  # local: the global ``random`` state is left alone

    def shuffled(names_: list[str]) -> list[str]:
        order_ = list(names_)
        order_rng.shuffle(order_)
        return order_

    steps = {name: fresh(name) for name in names} if resident else {}
    gc.collect()  # once, before the rounds (one collection costs ~0.1 s in a process that imported torch)
    times: dict[str, list[float]] = {name: [] for name in names}
    stopped = False
    last_round = 0.0
    for r in range(rounds):
        if budget_s is not None and r >= MIN_ROUNDS and clock() - started + last_round > budget_s:
            stopped = True
            break
        round_start = clock()
        order = round_robin_order(names, r)
        with _gc_paused():
            if resident:  # one step at a time, alternating in a fresh random order each pass (see _measure)
                samples: dict[str, list[float]] = {name: [] for name in order}
                for _ in range(steps_per_round):
                    for name in shuffled(order):
                        samples[name].append(_step_seconds(steps[name], plans[name].device, clock))
            else:  # one model built at a time: its steps in a block
                samples = {name: _block(fresh(name), plans[name].device, clock, steps_per_round) for name in order}
        for name in order:
            times[name].append(median(samples[name]))
        last_round = clock() - round_start
        log.debug("variant speed: round %d: %s", r, {n: f"{1000 * t[-1]:.1f} ms" for n, t in times.items()})
    return times, resident, stopped, skipped


def _fit_in_memory(plans: dict[str, _Variant], max_params: int | None) -> tuple[dict[str, str], bool]:
    """{name: why it is not timed} for a model above ``max_params`` (default per device), and whether all
    the others fit in memory at once (their parameters sum to at most the cap of their device)."""
    caps = {v.device.type: (_default_max_params(v.device) if max_params is None else max_params)
            for v in plans.values()}
    skipped = {v.name: f"{v.params / 1e6:.1f}M parameters > max_params {caps[v.device.type] / 1e6:.1f}M on {v.device.type}"
               for v in plans.values() if v.params > caps[v.device.type]}
    names = [name for name in plans if name not in skipped]
    resident = all(sum(plans[n].params for n in names if plans[n].device.type == kind) <= cap
                   for kind, cap in caps.items())
    return skipped, resident


def _block(step: Callable[[], None], device, clock, steps: int) -> list[float]:
    """``steps`` timed steps of one model in a row (the model is freed with ``step`` afterwards)."""
    return [_step_seconds(step, device, clock) for _ in range(steps)]


def _summary(v: _Variant, times: dict[str, list[float]], skipped: str | None, baseline: str | None,
             confidence: float) -> dict:
    row: dict = {"ms_per_step": None, "steps_per_sec": None, "tokens_per_sec": None,
                 "tokens_per_step": v.tokens_per_step, "params": v.params, "spread": None, "round_ms": [],
                 "precision": v.precision, "compiled": False, "baseline": baseline,
                 "ratio": None, "low": None, "high": None, "notes": list(v.notes), "skipped": None}
    if skipped is not None:
        row["skipped"] = skipped
        return row
    t = times[v.name]
    seconds = median(t)
    row.update(ms_per_step=1000 * seconds, steps_per_sec=1 / seconds, tokens_per_sec=v.tokens_per_step / seconds,
               spread=spread(t), round_ms=[1000 * s for s in t])
    if baseline is None or baseline == v.name:
        row.update(ratio=1.0, low=1.0, high=1.0)
    elif baseline not in times:
        row["notes"].append(f"baseline '{baseline}' was not timed")
    else:
        ratios = [a / b for a, b in zip(t, times[baseline])]
        row["ratio"], row["low"], row["high"] = log_ratio_ci(ratios, confidence)
    return row


def _count(value: float) -> str:
    """3 significant digits with K/M/B: 13612.4 -> '13.6K' (as ``reports.fmt.human``)."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if float(f"{value:.3g}") >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def speed_lines(result: dict) -> list[str]:
    """One log line per variant: ms/step, tokens/s, and the time ratio to its baseline with its interval."""
    width = max((len(name) for name in result["variants"]), default=0)
    lines = []
    for name, r in result["variants"].items():
        head = f"{name:<{width}}  "
        if r.get("skipped"):
            lines.append(head + f"not timed: {r['skipped']}")
            continue
        text = head + f"{r['ms_per_step']:8.2f} ms/step  {_count(r['tokens_per_sec']):>6} tok/s  "
        if r["baseline"] is None or r["baseline"] == name:
            text += "baseline"
        elif r["ratio"] is None:
            text += f"vs {r['baseline']}: no ratio"
        else:
            ci = "" if r["low"] is None else f" ({100 * result['confidence']:g}% CI {r['low']:.2f}-{r['high']:.2f})"
            text += f"step time x{r['ratio']:.2f}{ci} vs {r['baseline']} (>1: slower)"
        if r["spread"] > NOISY_SPREAD:
            text += f"  [noisy: spread {r['spread']:.0%}]"
        if r["notes"]:
            text += "  [" + "; ".join(r["notes"]) + "]"
        lines.append(text)
    return lines
