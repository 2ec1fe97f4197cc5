"""The presets shipped with the workbench (``configs/``), found by name from an experiment anywhere.

``defaults: [model/llama, size/tiny, data/stdlib, train/cpu]`` names presets: a name is
``KIND/NAME`` without ``.yaml``. A path (ending in ``.yaml``, or starting with ``./``, ``../``, ``/``
or ``~``) is a file relative to the file that lists it, as before.

Where the presets are: ``configs/`` beside the package in a source checkout or an editable install;
in an installed wheel, the copy pyproject.toml installs as data files (``share/workbench/configs``),
located through the distribution's file list, so a ``--user`` or virtualenv install finds it too.
"""

from __future__ import annotations

import functools
from importlib import metadata
from pathlib import Path

from .distribution import DISTRIBUTION

SUFFIX = ".yaml"
_INSTALLED = "share/workbench/configs"


@functools.lru_cache(maxsize=None)
def presets_dir() -> Path | None:
    """The folder holding ``model/``, ``size/``, ``data/`` and ``train/`` presets; None if absent."""
    checkout = Path(__file__).resolve().parent.parent / "configs"
    if (checkout / "model").is_dir():
        return checkout
    try:
        files = metadata.distribution(DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        posix = file.as_posix()
        if _INSTALLED in posix and posix.endswith(SUFFIX):
            path = Path(file.locate()).resolve()
            return path.parents[1]  # .../share/workbench/configs/<kind>/<name>.yaml
    return None


def is_name(item: str) -> bool:
    """Whether a ``defaults:`` entry names a preset (``model/llama``) rather than a file path."""
    return not item.endswith(SUFFIX) and not item.startswith(("/", "./", "../", "~")) and "\\" not in item


def preset_names() -> list[str]:
    """Every shipped preset as ``KIND/NAME``, sorted."""
    root = presets_dir()
    if root is None:
        return []
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.glob(f"*/*{SUFFIX}"))


def preset_path(name: str) -> Path | None:
    """The file of preset ``name`` (``model/llama``), or None when no such preset ships."""
    root = presets_dir()
    if root is None:
        return None
    path = root / f"{name}{SUFFIX}"
    return path if path.is_file() else None
