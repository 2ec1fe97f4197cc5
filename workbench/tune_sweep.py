"""The tuning stage of a tuned experiment (``tune:``), before its verdict seeds.

Every grid point of every selected variant trains at the tuning seeds; while a variant's optimum sits on
an edge of the grid run so far, the next declared extension point on that side trains too
(``reports.analysis.tuning``). The stage returns each variant's chosen run group (its optimum), where the
runner then trains the verdict seeds, the tuning run there counting as one of them. A re-run keeps every
finished run, retries failed ones and resumes an interrupted one, as for every other run.

With ``tune: {at: smallest}`` a larger size's run groups are transfer points (``config/transfer.py``): none trains
here; its chosen run group is the one at its smallest size's optimum (a selected larger size tunes that size too).
"""

from __future__ import annotations

import logging

from .results import ResultsStore

log = logging.getLogger("workbench")


def tunings(store: ResultsStore) -> dict:
    """Each cell's ``Tuning`` from the runs recorded so far (the reading the report makes too)."""
    from .reports.load import load_results

    return load_results(store.run_dir).tuning if store.path.exists() else {}


def tune_grids(experiment, sweep, store: ResultsStore, names: list[str]) -> list[str]:
    """Train the grids of ``names``' variants; their chosen run groups, in experiment order."""
    seeds = experiment.tuning_seeds()
    variants = experiment.variants
    cells = dict.fromkeys(variants[n].cell for n in names)
    sources = {variants[n].point.source for n in names} - {None}
    grid = [n for n, v in variants.items() if v.point.tuning and (n in names or v.cell in sources)]
    recorded = store.load().get("variants", {})
    first = [n for n in grid if variants[n].point.step == 0 or recorded.get(n, {}).get("runs")]
    sweep.train_round([(n, s) for n in first for s in seeds])
    done = set(first)
    while True:
        todo = [g for t in tunings(store).values() for g in t.pending if g in grid and g not in done]
        if not todo:
            break
        log.info("tuning: an optimum on the grid's edge: extending to %s", ", ".join(todo))
        sweep.train_round([(n, s) for n in todo for s in seeds])
        done.update(todo)
    found = tunings(store)
    chosen = []
    for cell in cells:
        t = found.get(cell)
        if t is None or not t.complete or t.best_group is None:
            why = "its tuning runs did not finish" if t is None or not t.complete else t.note
            log.warning("tuning %s: no optimum (%s): it gets no verdict", cell, why)
            continue
        chosen.append(t.best_group)
        if t.transferred_from:
            log.info("tuning %s: none here (tune.at: smallest): verdict seeds at %s's optimum, %s %.4g",
                     cell, t.transferred_from, t.key, t.best)
            continue
        edge = f", on the {t.edge} edge of the grid (the optimum may lie beyond it)" if t.edge else ""
        log.info("tuning %s: %s optimum %.4g (fitted), verdict seeds at %.4g, sensitivity %.3f nats%s",
                 cell, t.key, t.fitted, t.best, t.sensitivity, edge)
    return [n for n in variants if n in chosen]
