"""controls: run groups that check the verdict procedure itself, trained and compared beside the variants.

    controls: [aa]

``aa`` (an A/A test): the baseline against itself. Its twin ``<baseline>~aa`` is the baseline's config with the
next seed stream (``train.seed_stream``: other initial weights, the same batches, since the data order depends
on the seed only), one per run group of the baseline: at every size of a sweep, and in a tuned experiment at
every point of the baseline's grid, so the twin is tuned like any variant (on the baseline's own grid) and
compared at its own optimum. An A/A is then judged as each variant is: tuning, sequential seeds and verdict;
a better or worse is a false positive of this experiment's procedure, measured rather than assumed.

The twins are added after the file's checks (``checks.py``): each copies a checked run group with one key
changed, and its name (``~``) is the workbench's, not the user's. experiment.yaml lists ``controls:``, not the
twins, so loading it adds them again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..run_groups import cell_name, control_arch
from .errors import ConfigError
from .experiment import Experiment, Variant

AA = "aa"
CONTROLS = (AA,)


def parse_controls(spec: Any, source: str) -> list[str]:
    """``controls:`` as a list of known controls; a one-line ConfigError naming ``controls`` otherwise."""
    allowed = f"a list of: {', '.join(CONTROLS)} (e.g. controls: [aa])"
    if spec is None:
        return []
    if not isinstance(spec, (list, tuple)):
        raise ConfigError(source, "controls", f"expected a list, got {spec!r}", allowed)
    for control in spec:
        if control not in CONTROLS:
            raise ConfigError(source, "controls", f"unknown control {control!r}", allowed)
    if len(set(spec)) != len(spec):
        raise ConfigError(source, "controls", f"repeated control in {list(spec)!r}", allowed)
    return list(spec)


def add_controls(exp: Experiment) -> Experiment:
    """``exp`` with its controls' run groups after the variants: for ``aa``, the twin of each baseline run group."""
    twins = {}
    for variant in exp.variants.values():
        if AA in exp.controls and variant.control is None and variant.arch == exp.baseline:
            twin = aa_twin(exp, variant)
            twins[twin.name] = twin
    return dataclasses.replace(exp, variants={**exp.variants, **twins}) if twins else exp


def aa_twin(exp: Experiment, variant: Variant) -> Variant:
    """The A/A twin of the baseline run group ``variant``: its config with the next seed stream."""
    arch = control_arch(variant.arch, AA)
    cell = cell_name(arch, variant.size)
    name = exp.tune.point_name(cell, variant.point.value) if variant.point is not None else cell
    train = dataclasses.replace(variant.train, seed_stream=variant.train.seed_stream + 1)
    source = [o[0] for k, o in exp.origins.items() if k == "controls" or k.startswith("controls.")]
    origins = {**variant.origins, "train.seed_stream": (source[-1] if source else str(exp.path), "controls (aa)")}
    return dataclasses.replace(variant, name=name, arch=arch, control=AA, train=train, origins=origins)
