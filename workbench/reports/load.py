"""Read a run folder (results.json + per-run metrics.json) into plain records for the report.

results.json is the only required input: it must exist and have the documented shape, and every
variant name in it must be a plain name (used as a folder and file name), else ReportError. Everything
inside a run (numbers, metrics files) is optional: a missing value is None, a missing or unreadable
metrics file is no curve (logged), never a crash; so is a metrics path leading outside the run folder,
or to anything but a regular file of bounded size (a FIFO, /dev/zero), which is never opened.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..folder_safety import LIMITS, check_variant_name, inside, read_regular
from ..results import RunFolderError, read_results
from ..run_folder import RunFolder
from ..run_groups import cell_name
from ..run_record import COMPLETED, DIVERGED, FAILED, MISSING, RunRecord, as_number  # noqa: F401 (report modules import them here)
from .analysis.tuning import Point, Tuning, init_loss, transferred, tune
from .analysis.verdicts import DEFAULT_MARGIN, SeedPolicy

logger = logging.getLogger(__name__)



class ReportError(ValueError):
    """results.json is missing or malformed; the message is one line naming the file."""


@dataclass
class Run(RunRecord):
    """A run record as the report reads it, with its variant (``run_record.RunRecord.parse``); status MISSING
    when results.json lists the seed but has no entry for it."""

    variant: str = ""


@dataclass
class Variant:
    name: str
    index: int  # position in results.json: picks the colour, stable across plots
    config: dict
    params: float | None
    non_embedding_params: float | None
    flops_per_token: float | None
    runs: list[Run] = field(default_factory=list)  # one per seed, in seed order
    data: dict = field(default_factory=dict)  # the corpus summary: tokens, unigram baseline loss, ...
    arch: str = ""  # the experiment's variant this run group trains ('' -> name)
    size: str | None = None  # its size in a scaling sweep
    tuned: dict | None = None  # a tuning grid point: {"key", "value", "step"} (0: the configured grid, -k/+k: extensions)
    control: str | None = None  # "aa": the baseline's A/A twin (controls: [aa]), a control, not a variant of the design

    def __post_init__(self):
        self.arch = self.arch or self.name

    @property
    def cell(self) -> str:
        """The variant at its size (``arch`` or ``arch@size``): what a verdict compares, at one tuned value."""
        return cell_name(self.arch, self.size)

    def run(self, seed: int) -> Run | None:
        return next((r for r in self.runs if r.seed == seed), None)


@dataclass
class Results:
    path: Path
    experiment: str
    description: str
    baseline: str | None  # None when results.json names none, or names a variant it lacks
    baseline_named: str | None  # what results.json says, for the report to explain a mismatch
    seeds: list[int]
    variants: list[Variant]
    updated: str | None

    budget: dict | None = None  # the experiment's budget spec, e.g. {"flops": 1e13}
    sizes: list[str] = field(default_factory=list)  # size names in sweep order; [] without sizes
    seed_policy: SeedPolicy = field(default_factory=SeedPolicy)  # how seeds were added (verdicts.py)
    margin: float = DEFAULT_MARGIN  # equivalence margin in nats
    reference: dict | None = None  # published numbers to check the verdicts against (literature.py)
    speed: dict | None = None  # the paired timing of every variant's training step (speed.py)
    ladder: bool = False  # the archs, in order, form a ladder: each adds one change to the one before
    samples: dict | None = None  # each variant's greedy continuation of one prompt, made by the runner (samples.py)
    tune: dict | None = None  # the experiment's tune: spec ({"key", ..., "tuning_seeds"}); None: not tuned
    tuning: dict[str, Tuning] = field(default_factory=dict)  # per cell (arch or arch@size), in results order
    grid: list[Variant] = field(default_factory=list)  # every tuning grid point's run group (variants: the chosen ones)

    def variant(self, name: str | None) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def baseline_for(self, variant: Variant) -> Variant | None:
        """The run group ``variant`` is compared with: the baseline at the same size (for an A/A control, the
        run group it copies)."""
        if self.baseline is None:
            return None
        return next((v for v in self.variants if (v.arch == self.baseline or v.name == self.baseline)
                     and v.size == variant.size), None)

    def group(self, arch: str, size: str | None) -> Variant | None:
        """The run group of ``arch`` at ``size``."""
        return next((v for v in self.variants if v.arch == arch and v.size == size), None)

    def previous_rung(self, variant: Variant) -> Variant | None:
        """The run group of the arch before ``variant``'s (in results order) at the same size; None for the first.
        A control is no rung: it is compared with the run group it copies (``baseline_for``)."""
        if variant.control is not None:
            return self.baseline_for(variant)
        i = self.archs.index(variant.arch)
        return self.group(self.archs[i - 1], variant.size) if i else None

    def first_rung(self, variant: Variant) -> Variant | None:
        """The run group of the first arch at ``variant``'s size (``variant`` itself for the first rung; for a
        control, the run group it copies)."""
        return self.baseline_for(variant) if variant.control is not None else self.group(self.archs[0], variant.size)

    @property
    def archs(self) -> list[str]:
        """The variants of the design, in results order: every run group's arch but the controls'."""
        return list(dict.fromkeys(v.arch for v in self.variants if v.control is None))

    @property
    def controls(self) -> list[Variant]:
        """The control run groups (``controls: [aa]``), in results order."""
        return [v for v in self.variants if v.control is not None]

    def design(self) -> Results:
        """These results without the controls' run groups and tunings: what a section about the design's
        variants reads (the tuning section)."""
        controls = {v.cell for v in self.grid + self.variants if v.control is not None}
        return replace(self, variants=[v for v in self.variants if v.control is None],
                       grid=[v for v in self.grid if v.control is None],
                       tuning={cell: t for cell, t in self.tuning.items() if cell not in controls})


def _seed(value: Any, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ReportError(f"{path}: malformed seed {value!r} (expected an integer)")
    try:
        seed = int(value)
    except (ValueError, OverflowError):
        raise ReportError(f"{path}: malformed seed {value!r} (expected an integer)") from None
    if seed != float(value):
        raise ReportError(f"{path}: malformed seed {value!r} (expected an integer)")
    return seed


def _seed_policy(raw: Any, seeds: list[int], path: Path) -> SeedPolicy:
    """results.json's seed_policy; absent: the seed list was fixed, one look at all of its seeds. No seeds at all
    (min = max = 0: nothing to compare) reads as one."""
    if raw is None:
        raw = {"min": len(seeds), "max": len(seeds)}
    if not isinstance(raw, dict):
        raise ReportError(f"{path}: malformed: seed_policy must be an object with min, max and alpha")
    low, high, alpha = raw.get("min"), raw.get("max"), raw.get("alpha")
    if low == high == 0:
        low = high = 1
    try:
        return SeedPolicy(low, high, 0.05 if alpha is None else alpha)
    except (TypeError, ValueError) as e:
        raise ReportError(f"{path}: malformed: seed_policy: {e}") from None


def _margin(raw: Any, path: Path) -> float:
    if raw is None:
        return DEFAULT_MARGIN
    if as_number(raw) is None or raw < 0:
        raise ReportError(f"{path}: malformed: equivalence_margin must be a number >= 0, got {raw!r}")
    return float(raw)


def _optional_object(data: dict, key: str, path: Path) -> dict | None:
    """An optional section (reference, speed, samples): an object, else None (a malformed one logged, not fatal)."""
    raw = data.get(key)
    if raw is not None and not isinstance(raw, dict):
        logger.warning("%s: ignoring malformed %s (expected an object)", path, key)
    return raw if isinstance(raw, dict) else None


def _run(variant: str, entry: Any, path: Path) -> Run:
    try:
        record = RunRecord.parse(entry, f"{path}: variants.{variant}.runs")
    except ValueError as e:
        raise ReportError(str(e)) from None
    return Run(**{f.name: getattr(record, f.name) for f in fields(RunRecord)}, variant=variant)


def load_results(run_dir: str | Path) -> Results:
    """Parse RUN_DIR/results.json; raise ReportError (one line, naming the file) if absent or malformed."""
    path = Path(run_dir) / "results.json"
    if not path.exists():
        raise ReportError(f"{path}: not found (has any run finished in this folder?)")
    try:
        data = read_results(path)
    except RunFolderError as e:
        raise ReportError(str(e)) from None
    seeds_raw = data.get("seeds") or []
    seeds = list(dict.fromkeys(_seed(s, path) for s in seeds_raw))
    variants = []
    for index, (name, entry) in enumerate(data["variants"].items()):
        try:
            check_variant_name(name, path)
        except RunFolderError as e:
            raise ReportError(str(e)) from None
        if not isinstance(entry, dict):
            raise ReportError(f"{path}: malformed: variants.{name} must be an object")
        runs_raw = entry.get("runs") or []
        if not isinstance(runs_raw, list):
            raise ReportError(f"{path}: malformed: variants.{name}.runs must be a list")
        by_seed = {}
        for raw in runs_raw:  # a seed listed twice (a re-run): the later entry wins
            run = _run(name, raw, path)
            by_seed[run.seed] = run
        extra = sorted(s for s in by_seed if s not in seeds)
        runs = [by_seed.get(s) or Run(s, MISSING, variant=name) for s in seeds + extra]
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        size = entry.get("size")
        variants.append(Variant(name, index, config, as_number(entry.get("params")),
                                as_number(entry.get("non_embedding_params")), as_number(entry.get("flops_per_token")), runs,
                                entry.get("data") if isinstance(entry.get("data"), dict) else {},
                                str(entry.get("arch") or name), str(size) if size is not None else None,
                                _tuned(entry.get("tuned")), _control(entry.get("control"), name, path)))
    all_seeds = list(dict.fromkeys(seeds + [r.seed for v in variants for r in v.runs]))
    named = data.get("baseline")
    named = str(named) if named is not None else None
    baseline = named if any(named in (v.name, v.arch) for v in variants) else None
    updated = data.get("updated")
    budget = data.get("budget")
    sizes = [str(s) for s in data["sizes"]] if isinstance(data.get("sizes"), list) else []
    sizes = sizes or list(dict.fromkeys(v.size for v in variants if v.size is not None))
    spec = data.get("tune") if isinstance(data.get("tune"), dict) else None
    tuning = _tunings(spec, variants) if spec else {}
    grid = [v for v in variants if v.tuned is not None and "from" not in v.tuned]  # not a transfer point
    chosen = {t.best_group for t in tuning.values() if t.complete and t.best_group}
    variants = [v for v in variants if v.tuned is None or v.name in chosen]
    for index, v in enumerate(variants):  # colours follow the variants compared
        v.index = index
    return Results(path, str(data.get("experiment") or Path(run_dir).resolve().name),
                   str(data.get("description") or ""), baseline, named, all_seeds, variants,
                   str(updated) if updated else None,
                   budget if isinstance(budget, dict) and len(budget) == 1 else None, sizes,
                   _seed_policy(data.get("seed_policy"), all_seeds, path),
                   _margin(data.get("equivalence_margin"), path),
                   _optional_object(data, "reference", path), _optional_object(data, "speed", path),
                   data.get("ladder") is True, _optional_object(data, "samples", path), spec, tuning, grid)


def _control(raw: Any, name: str, path: Path) -> str | None:
    """A run group's ``control`` (``aa``: the baseline's A/A twin); None for a variant of the design."""
    if raw is not None and not isinstance(raw, str):
        raise ReportError(f"{path}: malformed: variants.{name}.control must be a string such as \"aa\", got {raw!r}")
    return raw or None


def _tuned(raw: Any) -> dict | None:
    """A grid point's ``tuned`` entry, or None when absent or malformed."""
    if not isinstance(raw, dict) or as_number(raw.get("value")) is None or not isinstance(raw.get("step"), int):
        return None
    source = {"from": raw["from"]} if isinstance(raw.get("from"), str) else {}  # a transfer point (tune.at: smallest)
    return {"key": str(raw.get("key") or ""), "value": as_number(raw["value"]), "step": raw["step"], **source}


def _tunings(spec: dict, variants: list[Variant]) -> dict[str, Tuning]:
    """Each cell's tuning (``analysis.tuning``) from its grid points' runs at the tuning seeds; a cell of transfer
    points (``tune.at: smallest``) takes the tuning of the cell they name."""
    seeds = [s for s in spec.get("tuning_seeds") or [] if isinstance(s, int)] or [0]
    cells: dict[str, list[Variant]] = {}
    for v in variants:
        if v.tuned is not None:
            cells.setdefault(v.cell, []).append(v)
    out = {}
    for cell, groups in cells.items():
        if "from" in groups[0].tuned:  # a transfer cell: after its source, below
            continue
        points = []
        for v in groups:
            runs = [v.run(s) for s in seeds]
            points.append(Point(v.tuned["value"], v.name, v.tuned["step"],
                                tuple(r.final_val_loss if r is not None and r.status == COMPLETED else None for r in runs),
                                tuple(r is not None and r.status == DIVERGED for r in runs),
                                any(r is not None and r.status == FAILED for r in runs)))
        vocab = as_number(groups[0].data.get("vocab_size")) or as_number((groups[0].config.get("data") or {}).get("vocab_size"))
        out[cell] = tune(cell, str(spec.get("key") or groups[0].tuned["key"]), points, init_loss(int(vocab or 2)))
    for cell, groups in cells.items():
        source = out.get(groups[0].tuned.get("from"))
        if source is not None:
            out[cell] = transferred(source, cell, {v.tuned["value"]: v.name for v in groups})
    return {cell: out[cell] for cell in cells if cell in out}  # in results order


@dataclass
class Curve:
    """One logged series, sorted by step, one point per step; tokens None when not derivable."""

    steps: np.ndarray
    loss: np.ndarray
    tokens: np.ndarray | None


def _tokens_per_step(config: dict) -> float | None:
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    batch, seq = as_number(train.get("batch_size")), as_number(train.get("seq_len"))
    return batch * seq if batch and seq else None


def _curve(points: Any, tokens_per_step: float | None) -> Curve | None:
    if not isinstance(points, list):
        return None
    by_step: dict[float, tuple[float, float | None]] = {}
    for p in points:  # a resumed run may log a step twice: the later point wins
        if isinstance(p, dict) and as_number(p.get("step")) is not None and as_number(p.get("loss")) is not None:
            by_step[as_number(p["step"])] = (as_number(p["loss"]), as_number(p.get("tokens")))
    if not by_step:
        return None
    steps = np.array(sorted(by_step), dtype=np.float64)
    loss = np.array([by_step[s][0] for s in steps], dtype=np.float64)
    tokens = [by_step[s][1] for s in steps]
    if all(t is not None for t in tokens):
        tok = np.array(tokens, dtype=np.float64)
    else:  # older metrics without a token count: the budget's fixed tokens per step
        tok = steps * tokens_per_step if tokens_per_step else None
    return Curve(steps, loss, tok)


@dataclass
class RunCurves:
    train: Curve | None
    val: Curve | None


def load_curves(run_dir: str | Path, variant: Variant, run: Run) -> RunCurves | None:
    """The run's metrics.json as curves, or None (logged) when the file is absent or unreadable."""
    if run.status == MISSING:
        return None
    run_dir = Path(run_dir)
    path = run_dir / (run.metrics or "metrics.json")  # named in messages until resolved
    try:  # a recorded path must lead inside the folder, to a regular file; the default is the run's own
        what = f"metrics path of {variant.name} seed {run.seed}"
        path = (inside(run_dir, run.metrics, run_dir / "results.json", what) if run.metrics
                else RunFolder(run_dir).seed_dir(variant.name, run.seed) / "metrics.json")
        data = json.loads(read_regular(path, LIMITS["json"], run_dir).decode("utf-8"))
    except FileNotFoundError:
        logger.info("no metrics file for %s seed %s at %s", variant.name, run.seed, path)
        return None
    except RunFolderError as e:  # leads outside the folder, or not a regular file: never opened
        logger.warning("skipping metrics file: %s", e)
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        logger.warning("skipping unreadable metrics file %s: %s", path, e)
        return None
    if not isinstance(data, dict):
        logger.warning("skipping malformed metrics file %s: expected an object", path)
        return None
    per_step = _tokens_per_step(variant.config)
    curves = RunCurves(_curve(data.get("train"), per_step), _curve(data.get("val"), per_step))
    return curves if curves.train or curves.val else None
