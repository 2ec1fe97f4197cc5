"""``workbench init NAME``: a starter experiment in the current folder, naming the shipped presets.

The file runs as written (RMSNorm vs LayerNorm inside LLaMA, a few minutes on a laptop CPU) and says
in comments where to change what; it never overwrites a file.
"""

from __future__ import annotations

import re
from pathlib import Path

from .presets import preset_names

TEMPLATE = """\
# {name}: a starter experiment. Try it:  python -m workbench show {file}   then   python -m workbench run {file}
name: {name}
description: RMSNorm vs LayerNorm inside LLaMA (replace with your question).
# Presets shipped with the workbench, by name ({presets});
# a path (./my_model.yaml, relative to this file) works too. Later entries override earlier ones.
defaults: [model/llama, size/tiny, data/stdlib, train/cpu]
seeds: [0, 1]            # or {{min: 2, max: 6}}: more seeds only where the verdict is still undecided
baseline: rmsnorm
# Anything below overrides the presets for every variant, e.g. a shorter run:
train: {{steps: 200}}
# Each variant lists only what differs from the presets (python -m workbench components lists every name).
variants:
  rmsnorm: {{}}
  layernorm: {{model: {{norm: layernorm}}}}   # one change: the norm (its eps stays the preset's norm_eps)
# Your own component: list its module here (imports run that code; only list modules you trust).
# imports: [my_components]
"""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # the run folder's rule (workbench.config.sizes.SAFE_NAME)


class InitError(ValueError):
    """A name ``init`` cannot use, or a file it would overwrite; one line."""


def write_starter(name: str, folder: Path) -> Path:
    """Write ``folder/NAME.yaml`` (NAME may be given with .yaml); refuse an existing file or an odd name."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if not _NAME.match(stem):
        raise InitError(f"'{name[:120]}{'...' if len(name) > 120 else ''}' is not a usable experiment name: letters, "
                        f"digits, '_', '-' and '.' only, at most 100 characters (it names the file and the run "
                        f"folder runs/<name>/)")
    path = folder / f"{stem}.yaml"
    presets = ", ".join(preset_names()) or "model/llama, size/tiny, data/stdlib, train/cpu"
    try:
        with open(path, "x", encoding="utf-8") as f:  # "x": fails rather than overwrite, even in a race
            f.write(TEMPLATE.format(name=stem, file=path.name, presets=presets))
    except FileExistsError:
        raise InitError(f"{path} already exists: not overwritten (choose another name or delete it)") from None
    except OSError as exc:  # a read-only folder, a name the file system refuses
        raise InitError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
