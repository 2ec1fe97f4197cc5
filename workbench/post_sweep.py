"""What a sweep leaves once its runs are trained: comparisons and verdicts, paired speed, HPARAMS rows, and the
report's samples (each variant's greedy continuation of one prompt: the report renders them, loading no model).

The runner calls these after each round (comparisons decide which groups get another seed) and at the
end; each reads results.json and writes its part back under the store's lock.
"""

from __future__ import annotations

import logging

from .distributed import is_global_zero
from .results import ResultsStore
from .run_record import FINISHED, RunRecord

log = logging.getLogger("workbench")


def record_comparisons(store: ResultsStore) -> dict:
    """Compute every comparison from the runs so far; store each under its variant in results.json, and
    with several sizes the verdicts across scale (``scale``: ``by_arch``, each verdict per size and where its
    effect changes sign; ``agreement``, how often a smaller size orders the pairs of variants as the largest).
    A tuned variant's ``tuning`` is stored with its chosen run group, the one its comparison uses."""
    from .reports.analysis.comparisons import compare
    from .reports.analysis.scale_verdicts import scale_summary
    from .reports.load import load_results

    results = load_results(store.run_dir)
    comparisons = compare(results, store.run_dir)
    scale = scale_summary(results, comparisons)

    tuned = _tunings(results)

    def change(data: dict) -> None:
        for name, entry in data.get("variants", {}).items():
            entry.pop("comparison", None)
            entry.pop("tuning", None)
            if name in comparisons:
                entry["comparison"] = comparisons[name].as_json()
            if name in tuned:  # the variant's tuning sits with the run group its verdict uses
                entry["tuning"] = tuned[name]
        data["scale"] = scale or None

    store.update(change)
    return comparisons


def _tunings(results) -> dict[str, dict]:
    """results.json ``tuning`` per chosen run group: the variant's Tuning, and its sensitivity minus the
    baseline's (paired by tuning seed; None with one tuning seed: nothing bounds it)."""
    from .reports.analysis.tuning import sensitivity_difference
    from .run_groups import cell_name

    out = {}
    for t in results.tuning.values():
        if not (t.complete and t.best_group):
            continue
        group = results.variant(t.best_group)
        base = results.tuning.get(cell_name(results.baseline, group.size)) if results.baseline else None
        d = sensitivity_difference(t, base) if base is not None and base is not t else None
        out[t.best_group] = {**t.as_json(), "sensitivity_vs_baseline": d and {
            "n": d.n, "mean": d.mean, "low": d.low, "high": d.high, "values": d.values}}
    return out


def _comparisons(store: ResultsStore) -> dict:
    from .reports.analysis.comparisons import compare
    from .reports.load import load_results

    return compare(load_results(store.run_dir), store.run_dir)


def undecided(experiment, store: ResultsStore, names: list[str]) -> list[str]:
    """Run groups to give one more seed: the selected ones whose comparison is undecided, and their baselines.

    An A/A control (``controls: [aa]``) is one of them: it gets seeds while undecided, as a variant does, until
    it is equivalent (or the policy's max), so its verdict checks the procedure the variants went through,
    sequential looks included, not a shorter one."""
    from .reports.analysis.verdicts import UNDECIDED

    comparisons = record_comparisons(store) if is_global_zero() else _comparisons(store)
    wanted = [n for n in names if n in comparisons and comparisons[n].verdict == UNDECIDED]
    baselines = [comparisons[n].baseline for n in wanted]
    return [n for n in experiment.variants if n in wanted or n in baselines]


def record_speed(experiment, data: dict, store: ResultsStore) -> None:
    """Time the training step of every variant with a completed run in this one process, interleaved and
    paired with its baseline (``bench.variant_speed``), into results.json ``speed``: the report's speed
    figures, free of the machine noise that per-run wall-clock throughput carries. Kept while that set of
    variants is unchanged; a timing that fails is logged and left out, never costing the sweep."""
    from .bench.variant_speed import speed_lines, time_variants
    from .reports.load import COMPLETED, load_results

    results = load_results(store.run_dir)  # a tuned variant is timed at its optimum, the run group compared
    groups = [v for v in results.variants if v.name in experiment.variants and any(r.status == COMPLETED for r in v.runs)]
    names = [v.name for v in groups]
    if len(names) < 2 or sorted((results.speed or {}).get("variants", {})) == sorted(names):
        return
    variants = experiment.variants
    try:
        result = time_variants({n: variants[n].transformer_config(data[n].tokenizer.vocab_size) for n in names},
                               {n: variants[n].train for n in names},
                               {v.name: None if v.arch == experiment.baseline else getattr(results.baseline_for(v), "name", None)
                                for v in groups})
    except Exception as exc:  # a plugin that fails outside training, memory, ...: the results stand without it
        log.warning("speed not measured: %s: %s", type(exc).__name__, exc)
        return
    store.update(lambda results: results.update(speed=result))
    for line in speed_lines(result):
        log.info("speed: %s", line)


def record_samples(store: ResultsStore) -> None:
    """results.json ``samples`` (``report_samples``): each variant's first completed seed continues one fixed prompt
    greedily; a variant is sampled again only when its completed runs changed; a failure is logged, never raised."""
    from . import report_samples

    report_samples.record_samples(store)


def log_verdicts(experiment, store: ResultsStore, names: list[str], comparisons: dict) -> None:
    """Each finished run's TensorBoard HPARAMS row (``training.run.log_hparams``): its variant and its comparison's
    verdict first ('baseline' for a baseline, 'not learned yet' where either side has not learned), then seed and
    config, with the whole-split final val loss as the metric column; written once the sweep's comparisons are known."""
    from .training.run import log_hparams

    recorded = store.load().get("variants", {})
    for name in names:
        baseline = experiment.variants[name].arch == experiment.baseline
        chosen = experiment.variants[name].point is None or "tuning" in recorded.get(name, {})
        verdict = (comparisons[name].verdict if name in comparisons else "baseline" if baseline and chosen
                   else "n/a" if chosen else "tuning grid")
        for record in map(RunRecord.parse, recorded.get(name, {}).get("runs", [])):
            if record.status in FINISHED:
                log_hparams(store.run_dir, experiment.variants[name], record, verdict)
