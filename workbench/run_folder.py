"""The run folder: its layout, its locks, and the identity every run in it is trained under.

    RUN_DIR/
      experiment.yaml            the resolved experiment (what exactly ran)
      results.json               the index of finished runs (results.ResultsStore); rebuildable
      tokenizer/<corpus>.model   the tokenizer each corpus was trained with
      <variant>/variant.json     the variant's config, sizes and identity (written at registration)
      <variant>/seed<k>/         TensorBoard events, hparams.yaml, checkpoints/, metrics.json, record.json

A run's **identity** is its variant's resolved config, the corpus fingerprint and the tokenizer's sha256;
the folder's **seed policy** (the seeds and the sequential rule) belongs to it too. Both are checked under
the folder lock when the folder is registered, when a run is claimed, when a finished run is kept and
when a record is written, so no interleaving of processes or machines records a run under another
identity than its variant states. Registration writes nothing until every check has passed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .fileio import locked, read_json, remove_stale_temps, write_json, write_text
from .folder_safety import LIMITS, RunFolderError, check_variant_name, read_regular
from .run_groups import cell_name, entry_cell
from .run_record import FINISHED, RunRecord
from .results import ResultsStore, changed_keys, comparable, describe_changes, with_defaults

log = logging.getLogger("workbench")

_SEED_DIR = re.compile(r"^seed(\d+)$")


def identity(config: dict, corpus: str, tokenizer: str | None, defaults: dict | None = None) -> dict:
    """A run's identity: ``fingerprint`` (sha256 of the comparable config with every key a later version
    added at its default, the corpus fingerprint and the tokenizer's sha256), and the parts it hashes."""
    view = {"config": comparable(with_defaults(config, defaults)), "corpus": corpus, "tokenizer": tokenizer}
    text = json.dumps(view, sort_keys=True, default=str)
    return {"fingerprint": hashlib.sha256(text.encode()).hexdigest(), "corpus": corpus, "tokenizer": tokenizer}


class RunFolder:
    """Every path of a run folder, and claim / register / discard / record under its locks."""

    def __init__(self, root: str | Path, defaults: dict | None = None):
        self.root = Path(root)
        self.store = ResultsStore(self.root)
        self.defaults = defaults  # variant_defaults(): what a key a stored config lacks counts as

    # -- layout ---------------------------------------------------------------------------------
    @property
    def experiment_file(self) -> Path:
        return self.root / "experiment.yaml"

    @property
    def results_file(self) -> Path:
        return self.store.path

    def variant_dir(self, variant: str) -> Path:
        return self.root / check_variant_name(variant, self.results_file)

    def variant_file(self, variant: str) -> Path:
        return self.variant_dir(variant) / "variant.json"

    def seed_dir(self, variant: str, seed: int) -> Path:
        return self.variant_dir(variant) / seed_folder(seed)

    def checkpoints(self, variant: str, seed: int) -> Path:
        return self.seed_dir(variant, seed) / "checkpoints"

    def record_file(self, variant: str, seed: int) -> Path:
        return self.seed_dir(variant, seed) / "record.json"

    def hparams_file(self, variant: str, seed: int) -> Path:
        return self.seed_dir(variant, seed) / "hparams.yaml"

    def run_lock(self, variant: str, seed: int) -> Path:
        return self.seed_dir(variant, seed) / ".lock"

    def owner_file(self, variant: str, seed: int) -> Path:
        """Host, pid and Slurm job of the process that last claimed the run (valid while its lock is held)."""
        return self.seed_dir(variant, seed) / ".owner.json"

    @property
    def folder_lock(self) -> Path:
        return self.root / ".folder.lock"

    def seeds_on_disk(self, variant: str) -> dict[int, Path]:
        """The seed folders of ``variant`` that exist, by seed (only real folders named ``seed<k>``)."""
        folder = self.variant_dir(variant)
        if not folder.is_dir():
            return {}
        found = {}
        for child in folder.iterdir():
            match = _SEED_DIR.match(child.name)
            if match and child.is_dir() and not child.is_symlink():
                found[int(match[1])] = child
        return dict(sorted(found.items()))

    # -- what the folder holds ------------------------------------------------------------------
    def registered(self, variant: str) -> dict | None:
        """``variant.json`` as registered (config, sizes, identity), or None when absent or unreadable."""
        try:
            data = json.loads(read_regular(self.variant_file(variant), LIMITS["json"], self.root))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def started(self, variant: str, recorded: dict) -> list[str]:
        """Why ``variant`` holds runs (a recorded run, a run record or checkpoint on disk, a run being
        trained): one short phrase per seed; [] when it holds none."""
        reasons = [f"seed {r.get('seed')} recorded" for r in recorded.get("variants", {}).get(variant, {}).get("runs", [])
                   if isinstance(r, dict) and r.get("status") in FINISHED]
        for seed, folder in self.seeds_on_disk(variant).items():
            if (folder / "record.json").exists() or any((folder / "checkpoints").glob("*.ckpt")):
                reasons.append(f"seed {seed} started")
            else:
                with locked(folder / ".lock", wait=False) as free:
                    if not free:
                        reasons.append(f"seed {seed} training now")
        return list(dict.fromkeys(reasons))

    def looks_taken(self, recorded: dict, variants) -> int:
        """How many finished runs the folder holds: each was looked at by a verdict when it was recorded."""
        runs = sum(1 for entry in recorded.get("variants", {}).values() if isinstance(entry, dict)
                   for r in entry.get("runs", []) if isinstance(r, dict) and r.get("status") in FINISHED)
        on_disk = sum(1 for v in variants for f in self.seeds_on_disk(v).values() if (f / "record.json").exists())
        return max(runs, on_disk)

    # -- registration ---------------------------------------------------------------------------
    def claim(self, experiment_name: str) -> None:
        """Refuse a folder that holds another experiment; delete temp files a killed process left."""
        stored_yaml = _read_yaml(self.experiment_file)
        for path, found in ((self.experiment_file, (stored_yaml or {}).get("name")),
                            (self.results_file, self.store.load().get("experiment"))):
            if found not in (None, experiment_name):
                raise RunFolderError(f"{path}: this folder holds experiment '{found}', not '{experiment_name}'; "
                                     f"use --out for a new run folder")
        removed = remove_stale_temps(self.root) if self.root.is_dir() else []
        if removed:
            log.info("removed %d temp file(s) left by a killed process, e.g. %s", len(removed), removed[0])

    def register(self, header: dict, spec: dict, variants: dict[str, dict], restart: list[str] = ()) -> None:
        """Check, then write: ``variants`` (name -> variant.json contents, ``identity`` included) against
        what the folder holds, the seed policy in ``header`` against the one its looks were taken under;
        then discard the ``restart`` variants' runs and write experiment.yaml, every variant.json and the
        results.json header. A refused process writes nothing (RunFolderError, one line)."""
        with locked(self.folder_lock):
            recorded = self.store.load()
            for name, info in variants.items():
                if name not in restart:
                    self._check_variant(name, info, recorded)
            self._check_seed_policy(header, spec, recorded, [n for n in variants if n not in restart], restart)
            self._check_tune(header, variants, recorded, restart)
            for name in restart:
                self.discard(name)
            write_text(self.experiment_file, _yaml(spec))
            for name, info in variants.items():
                write_json(self.variant_file(name), info)
            self.store.register_experiment(header, variants)

    def _check_variant(self, name: str, info: dict, recorded: dict) -> None:
        """RunFolderError if ``name`` holds runs under another identity than ``info`` states."""
        started = self.started(name, recorded)
        if not started:
            return
        index = recorded.get("variants", {}).get(name)
        for source, stored in ((self.variant_file(name), self.registered(name)), (self.results_file, index)):
            if stored is None and source == self.results_file:
                continue
            if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
                raise RunFolderError(f"{source}: variant '{name}' holds runs ({started[0]}) but its registration here "
                                     f"is missing or malformed; rebuild the index with: python -m workbench report "
                                     f"--rebuild {self.root}, or use --out for a new run folder")
            before, after = self._view(stored), self._view(info)
            if before["tokenizer"] is None:  # registered before tokenizers were part of the identity
                after = {**after, "tokenizer": None}
            if changed_keys(before, after):
                raise RunFolderError(
                    f"{source}: variant '{name}' holds runs ({', '.join(started[:2])}) trained under another identity "
                    f"({describe_changes(before, after)}); use --out for a new run folder, or --restart {name} to "
                    f"discard its runs")

    def _view(self, info: dict) -> dict:
        """What two registrations of a variant are compared on (config with later keys at their defaults)."""
        ident = info.get("identity") if isinstance(info.get("identity"), dict) else {}
        corpus = ident.get("corpus") or (info.get("data") or {}).get("fingerprint")
        return {"config": comparable(with_defaults(info.get("config"), self.defaults)), "corpus": corpus,
                "tokenizer": ident.get("tokenizer")}

    def _check_seed_policy(self, header: dict, spec: dict, recorded: dict, kept: list[str], restart) -> None:
        """RunFolderError when the seed policy changed after verdicts were looked at: the alpha those
        looks spent would be spent again. ``restart`` variants' runs do not count (they are discarded)."""
        stored = recorded.get("seed_policy") if recorded else None
        stored_seeds = recorded.get("seeds") if recorded else None
        if stored is None and stored_seeds is None:
            old_spec = _read_yaml(self.experiment_file) or {}
            stored_seeds = old_spec.get("seeds")
            if isinstance(stored_seeds, dict):
                stored, stored_seeds = stored_seeds, None
        old, new = _policy(stored, stored_seeds), _policy(header["seed_policy"], header["seeds"])
        if old is None or old == new:
            return
        others = {"variants": {n: e for n, e in recorded.get("variants", {}).items() if n not in restart}}
        looks = self.looks_taken(others, kept)
        if looks:
            raise RunFolderError(
                f"{self.experiment_file}: the seed policy changed from {_show(old)} to {_show(new)} after {looks} "
                f"finished run(s) were looked at by the verdicts: their alpha would be spent again; start a new "
                f"sequence in a new run folder (--out DIR, its own alpha), keep the policy, or --restart every variant")

    def _check_tune(self, header: dict, variants: dict[str, dict], recorded: dict, restart) -> None:
        """RunFolderError when the tuning grid changed (``tune:``, or the value its multipliers multiply) while
        the folder holds finished runs of the old one: one tuning would mix two grids."""
        held = [n for n, e in recorded.get("variants", {}).items() if n not in restart and isinstance(e, dict)
                and any(isinstance(r, dict) and r.get("status") in FINISHED for r in e.get("runs", []))]
        if not held:
            return
        old = recorded.get("tune") if "tune" in recorded else (_read_yaml(self.experiment_file) or {}).get("tune")
        new = header.get("tune")
        changed = _tune_change(old, new) or _grid_change(recorded.get("variants", {}), variants, held)
        if changed:
            key, before, after = changed
            raise RunFolderError(f"{self.experiment_file}: {key} changed from {before} to {after} while the folder "
                                 f"holds {len(held)} run group(s) with finished runs of the old grid: one tuning would "
                                 f"mix two grids; use --out DIR for a new run folder, or --restart every variant")

    # -- runs -----------------------------------------------------------------------------------
    @contextmanager
    def claim_run(self, variant: str, seed: int, ident: dict, wait: bool) -> Iterator[bool]:
        """Hold the run's lock (yields False at once if another process holds it and ``wait`` is False),
        after checking under the folder lock that the variant is registered under ``ident``."""
        with locked(self.run_lock(variant, seed), wait=wait) as mine:
            if mine:
                self.check_registered(variant, ident)
                write_json(self.owner_file(variant, seed), run_owner())  # who trains it: `status` shows it
            yield mine

    def _require_registered(self, variant: str, ident: dict, consequence: str) -> None:
        """RunFolderError when the folder now registers ``variant`` under another identity than ``ident``
        (another process registered a changed config since this one did). Call under the folder lock."""
        stored = (self.registered(variant) or {}).get("identity")
        if not isinstance(stored, dict) or stored.get("fingerprint") != ident["fingerprint"]:
            raise RunFolderError(f"{self.variant_file(variant)}: variant '{variant}' was registered by another process "
                                 f"under another config or corpus while this one ran: {consequence}; run one config "
                                 f"per run folder (--out)")

    def check_registered(self, variant: str, ident: dict) -> None:
        with locked(self.folder_lock):
            self._require_registered(variant, ident, "this process stops without training under it")

    def kept(self, variant: str, seed: int, ident: dict) -> dict | None:
        """The finished record of (variant, seed) if there is one, checked to be of ``ident``."""
        record = self.store.finished(variant, seed)
        if record is not None and record.get("identity") not in (None, ident["fingerprint"]):
            raise RunFolderError(f"{self.results_file}: variant '{variant}' seed {seed} was recorded under another "
                                 f"identity than the variant's; --restart {variant} to train it again")
        return record

    def record(self, variant: str, record: RunRecord, ident: dict) -> None:
        """Add ``record`` to results.json, after checking under the folder lock that the variant is still
        registered under the identity the run was trained under."""
        with locked(self.folder_lock):
            folder = self.seed_dir(variant, record.seed)
            self._require_registered(variant, ident, f"seed {record.seed} is not recorded (its folder {folder} stays)")
            self.store.record_run(variant, record.as_json())

    def discard(self, variant: str) -> None:
        """``--restart``: delete the variant's run folders' contents and its records."""
        for folder in self.seeds_on_disk(variant).values():
            with locked(folder / ".lock", wait=False) as mine:
                if not mine:
                    raise RunFolderError(f"{folder}: another process is training this run; stop it before "
                                         f"--restart {variant}")
                for child in folder.iterdir():
                    if child.name != ".lock":
                        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        self.store.forget(variant)
        log.info("--restart %s: its runs were discarded", variant)


def run_owner() -> dict:
    """This process as a run's owner: host, pid and, under Slurm, its job (``ARRAY_TASK``)."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": job}


def run_label(variant: str, seed: int) -> str:
    """How logs and messages name a run: ``<variant> seed<k>``, as its folder reads."""
    return f"{variant} {seed_folder(seed)}"


def seed_folder(seed: int) -> str:
    """The name of a seed's folder: ``seed<k>``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RunFolderError(f"seed {seed!r} is not a non-negative integer")
    return f"seed{seed}"


def _policy(policy, seeds) -> tuple | None:
    """(min, max, seeds) of a stored or new seed policy, comparable; None when nothing was stored."""
    if policy is None and seeds is None:
        return None
    if isinstance(policy, dict):
        low, high = policy.get("min"), policy.get("max")
    else:
        low = high = len(seeds) if isinstance(seeds, list) else None
    if not isinstance(seeds, list):  # a policy trains seeds 0, 1, ...: its first ``min`` always
        seeds = list(range(low)) if isinstance(low, int) else []
    return low, high, tuple(seeds[:low] if isinstance(low, int) else seeds)


def _tune_change(old, new) -> tuple[str, object, object] | None:
    """(tune.KEY, before, after) of the first difference between two ``tune`` headers; ``tune`` when one is None."""
    if (old is None) != (new is None):
        return "tune", old and {k: v for k, v in old.items() if k != "tuning_seeds"}, new and {
            k: v for k, v in new.items() if k != "tuning_seeds"}
    for key in ("key", "values", "multipliers", "seeds", "extend"):
        if old is not None and old.get(key) != new.get(key):
            return f"tune.{key}", old.get(key), new.get(key)
    return None


def _grids(entries: dict, names) -> dict[str, list]:
    """Each cell's grid values (``arch@size`` -> sorted values) among ``names``' registered entries."""
    out: dict[str, list] = {}
    for name in names:
        entry = entries.get(name) or {}
        tuned = entry.get("tuned") if isinstance(entry.get("tuned"), dict) else None
        if tuned is not None:
            out.setdefault(str(entry_cell(entry)), []).append(tuned.get("value"))
    return {cell: sorted(v for v in values if isinstance(v, (int, float))) for cell, values in out.items()}


def _tuned_key(variants: dict[str, dict]) -> str:
    return next((e["tuned"].get("key") for e in variants.values() if isinstance(e.get("tuned"), dict)), "tuned key")


def _grid_change(recorded: dict, variants: dict[str, dict], held: list[str]) -> tuple[str, object, object] | None:
    """(what changed, old values, new grid) when finished runs of a cell sit at values its new grid lacks
    (the value ``tune.multipliers`` multiply changed)."""
    old, new = _grids(recorded, held), _grids(variants, variants)
    for cell, values in old.items():
        if cell in new and not set(values) <= set(new[cell]):
            return f"the tuning grid of '{cell}' (tune.multipliers x its {_tuned_key(variants)})", values, new[cell]
    return None


def _show(policy: tuple) -> str:
    low, high, seeds = policy
    return f"seeds {list(seeds or ())}" if low == high else f"{{min: {low}, max: {high}}}"


def _yaml(spec: dict) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(spec)


def _load_yaml(path: Path):
    """The YAML document in ``path`` (a regular file, size-bounded); OSError, ValueError or YAMLError."""
    import yaml

    return yaml.safe_load(read_regular(path, LIMITS["yaml"]).decode("utf-8"))


def _read_yaml(path: Path) -> dict | None:
    """``_load_yaml``'s mapping, or None when the file is missing, unreadable or not a mapping."""
    import yaml

    try:
        spec = _load_yaml(path)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return spec if isinstance(spec, dict) else None


def rebuild_results(run_dir: str | Path, defaults: dict | None = None) -> dict:
    """Write results.json anew from the run folder: experiment.yaml, each ``variant.json`` and each
    run's ``record.json``. Runs without a readable record (interrupted, or damaged) and records of
    another identity than their variant's registration are left out, with a warning."""
    folder = RunFolder(run_dir, defaults)
    spec = _rebuild_spec(folder)
    variants, sizes = {}, []
    for name in _run_groups(folder, spec):
        info = folder.registered(name)
        if info is None:
            log.warning("%s: missing or unreadable, variant '%s' left out", folder.variant_file(name), name)
            continue
        stamp = (info.get("identity") or {}).get("fingerprint") if isinstance(info.get("identity"), dict) else None
        runs = []
        for seed, seed_dir in folder.seeds_on_disk(name).items():
            record = read_json(seed_dir / "record.json")
            if record is None or record.get("seed") != seed:
                log.warning("%s: no readable run record, left out (re-run the experiment to finish it)", seed_dir)
            elif stamp is not None and record.get("identity") not in (None, stamp):
                log.warning("%s: recorded under another identity than %s registers, left out", seed_dir,
                            folder.variant_file(name))
            else:
                runs.append(record)
        variants[name] = {**info, "runs": runs}
        if info.get("size") is not None and info["size"] not in sizes:
            sizes.append(info["size"])
    seeds, policy = _rebuild_seeds(folder, spec.get("seeds", []))
    tune = spec.get("tune") if isinstance(spec.get("tune"), dict) else None
    if tune is not None:
        every = seeds if policy["min"] == policy["max"] else list(range(policy["max"]))
        tune = {**tune, "tuning_seeds": every[:tune.get("seeds") if isinstance(tune.get("seeds"), int) else 1]}
    data = {"experiment": spec.get("name"), "description": spec.get("description", ""), "baseline": spec.get("baseline"),
            "seeds": seeds, "seed_policy": {"alpha": 0.05, **policy},
            "equivalence_margin": spec.get("equivalence_margin"), "reference": spec.get("reference"),
            "ladder": bool(spec.get("ladder")), "budget": spec.get("budget"), "eval": spec.get("eval", {}),
            "sizes": sizes, "tune": tune, "controls": spec.get("controls") or [], "variants": variants, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with locked(folder.root / ".results.lock"):  # the old file is read for what the runner made: it may be broken
        old = _old_results(folder)
        data["samples"] = _kept_samples(old.get("samples"), variants)
        data["speed"] = _kept_speed(old.get("speed"), variants)
        write_json(folder.results_file, data)
    return data


def _old_results(folder: RunFolder) -> dict:
    """The results.json a rebuild replaces, as far as it is readable; {} when it is not."""
    try:
        old = json.loads(read_regular(folder.results_file, LIMITS["json"], folder.root).decode("utf-8"))
        json.dumps(old, allow_nan=False)  # NaN would not be written back
    except (OSError, ValueError):  # missing, not a regular file, too large, outside the folder, not JSON
        return {}
    return old if isinstance(old, dict) else {}


def _completed_seeds(variants: dict) -> dict[str, set]:
    return {name: {r.get("seed") for r in entry["runs"] if r.get("status") == "completed"}
            for name, entry in variants.items()}


def _kept_speed(speed, variants: dict) -> dict | None:
    """The old results.json's paired timing (``post_sweep.record_speed``: made by the runner, not kept in the run
    folders), kept while every variant it timed is still a run group with a completed run; else, when two or more
    groups could be timed, a ``lost`` note the report prints (the next ``run`` of the experiment times them again)."""
    timed = speed.get("variants") if isinstance(speed, dict) else None
    done = [name for name, seeds in _completed_seeds(variants).items() if seeds]
    if isinstance(timed, dict) and timed and all(name in done for name in timed):
        return speed
    if len(done) < 2:
        return None
    why = ("it timed run groups this folder no longer has" if isinstance(timed, dict) and timed else
           "the results.json it replaced held none, or could not be read")
    return {"lost": f"report --rebuild could not keep the paired timing: {why}; the next run of the experiment "
                    "times the variants again"}


def _kept_samples(samples, variants: dict) -> dict | None:
    """The old results.json's report samples (``report_samples``: made by the runner, not kept in the run folders),
    each kept while the seed it was sampled from is a completed run of its variant; None when the old file is
    unreadable or keeps none (the next ``run`` of the experiment samples them again)."""
    if not isinstance(samples, dict) or not isinstance(samples.get("variants"), dict):
        return None
    completed = _completed_seeds(variants)
    kept = {name: entry for name, entry in samples["variants"].items() if isinstance(entry, dict)
            and isinstance(entry.get("seed"), int) and entry["seed"] in completed.get(name, ())}
    return {**samples, "variants": kept} if kept or isinstance(samples.get("skipped"), dict) else None


def _run_groups(folder: RunFolder, spec: dict) -> list[str]:
    """The run groups experiment.yaml registers, in the experiment's order: its variants (for a tuned experiment,
    which lists each variant once at its own value, the grid points registered in the folder, by variant then
    value), then the run groups of its ``controls`` registered in the folder (it lists the controls, not their
    run groups), by the baseline cell each copies. A control the file no longer lists is left out, as a variant is."""
    cells = list(spec["variants"])
    tuned = isinstance(spec.get("tune"), dict)
    controls = spec.get("controls") if isinstance(spec.get("controls"), list) else []
    if not (tuned or controls):
        return cells
    found = []
    for child in sorted(folder.root.iterdir()) if folder.root.is_dir() else []:
        info = folder.registered(child.name) if child.is_dir() and not child.name.startswith(".") else None
        point = (info or {}).get("tuned")
        value = point.get("value") if isinstance(point, dict) else None
        if not isinstance(info, dict) or tuned != isinstance(value, (int, float)):
            continue
        if info.get("control") is not None:
            copied = cell_name(str(spec.get("baseline")), None if info.get("size") is None else str(info["size"]))
            if info["control"] in controls and copied in cells:
                found.append((1, cells.index(copied), value or 0, child.name))
        elif tuned and entry_cell(info) in cells:
            found.append((0, cells.index(entry_cell(info)), value, child.name))
    return ([] if tuned else cells) + [name for *_, name in sorted(found)]


def _rebuild_spec(folder: RunFolder) -> dict:
    import yaml

    path = folder.experiment_file
    try:
        spec = _load_yaml(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RunFolderError(f"{path}: cannot read the experiment of this run folder ({' '.join(str(e).split())}); "
                             f"re-run the experiment with --out {folder.root} instead") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("variants"), dict):
        raise RunFolderError(f"{path}: malformed: expected an experiment with a 'variants' mapping")
    for name in spec["variants"]:
        check_variant_name(name, path)
    return spec


def _rebuild_seeds(folder: RunFolder, seeds) -> tuple[list[int], dict]:
    """experiment.yaml's ``seeds`` (a list, or {min, max}) as (the seeds every group trains, the policy)."""
    def ok(n):
        return isinstance(n, int) and not isinstance(n, bool) and n >= 0

    if isinstance(seeds, list) and seeds and all(map(ok, seeds)):
        return seeds, {"min": len(seeds), "max": len(seeds)}
    if isinstance(seeds, dict) and ok(seeds.get("min")) and ok(seeds.get("max")) and 1 <= seeds["min"] <= seeds["max"]:
        return list(range(seeds["min"])), {"min": seeds["min"], "max": seeds["max"]}
    raise RunFolderError(f"{folder.experiment_file}: seeds: {str(seeds)[:60]!r} is neither a list of non-negative "
                         f"integers nor {{min: n, max: m}} with 1 <= n <= m; correct it, then run report --rebuild again")
