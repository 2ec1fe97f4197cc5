"""What a run was trained with: interpreter, library versions, workbench commit, component plugins.

Recorded in results.json once per ``run`` invocation (``environment``: the latest; ``environments``: every
distinct one this folder has seen, with when it was first seen), so a run resumed under another torch, or
from another commit, is visible. Versions come from ``importlib.metadata``: nothing is imported to read one.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

from components.registry import ENTRY_POINT_GROUP

from .distribution import DISTRIBUTION
from .results import describe_changes

log = logging.getLogger("workbench")

LIBRARIES = ("torch", "lightning", "transformers", "sentencepiece", "numpy")
GIT_TIMEOUT_S = 5
ROOT = Path(__file__).resolve().parent.parent  # the checkout (or site-packages) holding the package


def current_environment(imports: list[str]) -> dict:
    """This process's environment; ``imports`` are the experiment's plugin modules (already imported)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        **{name: _version(name) for name in LIBRARIES},
        "cuda": torch.version.cuda,  # the CUDA torch was built with; None on a CPU build
        "workbench": {"version": _version(DISTRIBUTION), **git_state(ROOT)},
        "plugins": [_module_info(name) for name in imports] + _entry_points(),
    }


def remember_environment(results: dict, env: dict) -> None:
    """Set results.json's ``environment`` to ``env`` and add it to ``environments`` when it is new there;
    a change from the last recorded one is logged (what changed)."""
    seen = results.get("environments") or []
    previous = results.get("environment")
    if previous is not None and previous != env:
        log.warning("this run folder was last run under another environment: %s", describe_changes(previous, env))
    if all(_without_since(e) != env for e in seen):
        seen.append({**env, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    results["environment"] = env
    results["environments"] = seen


def git_state(root: Path) -> dict:
    """``{"commit": sha, "dirty": bool}`` when ``root`` is the top of a git checkout, else both None."""
    try:
        top, commit = _git(root, "rev-parse", "--show-toplevel", "HEAD").splitlines()
        if Path(top).resolve() != root.resolve():  # a package inside some other repository
            return {"commit": None, "dirty": None}
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError, ValueError):  # no git, not a checkout, too slow
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                          timeout=GIT_TIMEOUT_S).stdout


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _module_info(name: str) -> dict:
    """An ``imports:`` module: its distribution and version when installed, else its source file's sha256."""
    dists = metadata.packages_distributions().get(name.split(".")[0], [])
    info = {"module": name, "source": "imports", "distribution": dists[0] if dists else None,
            "version": _version(dists[0]) if dists else None}
    module_file = getattr(sys.modules.get(name), "__file__", None)  # a namespace package has none
    if not dists and module_file:
        info["sha256"] = hashlib.sha256(Path(module_file).read_bytes()).hexdigest()
    return info


def _entry_points() -> list[dict]:
    return [{"module": ep.value, "source": "entry point", "distribution": ep.dist.name if ep.dist else None,
             "version": ep.dist.version if ep.dist else None}
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]


def _without_since(env: dict) -> dict:
    return {k: v for k, v in env.items() if k != "since"}

