"""The two distributions of this repository and every install hint that names them.

``lm-ablation-components`` (components/pyproject.toml) ships ``components`` with torch as its only dependency;
``lm-ablation-workbench`` (pyproject.toml) ships ``workbench``, the presets, and depends on the first at the
same version. ("workbench" on the package index is an unrelated project.) The slow tests build the wheels
the way pip would and check what is inside them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from components.attention import FLASH_INSTALL
from workbench.data.formats import EXTRAS
from workbench.distribution import COMPONENTS_DISTRIBUTION, DISTRIBUTION, install_hint

ROOT = Path(__file__).resolve().parent.parent
# Where an install hint may appear; every `pip install ... NAME[extra]` in them must name one of ours.
HINT_FILES = ["README.md", "docs/*.md", "workbench/**/*.py", "components/*.py", "tests/*.py", "examples/**/*"]
LOCAL = {".": DISTRIBUTION, "./components": COMPONENTS_DISTRIBUTION}  # from a clone
# What `import components` must work without (the training stack and the application).
BLOCKED = ["lightning", "pytorch_lightning", "omegaconf", "tensorboard", "matplotlib", "scipy", "workbench",
           "transformers", "numpy"]


def project(path: str) -> dict:
    return tomllib.loads((ROOT / path).read_text(encoding="utf-8"))["project"]


def names(requirements: list[str]) -> list[str]:
    return [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in requirements]


def test_the_distribution_names_are_the_ones_the_hints_use():
    assert project("pyproject.toml")["name"] == DISTRIBUTION != "workbench"
    assert project("components/pyproject.toml")["name"] == COMPONENTS_DISTRIBUTION
    assert install_hint("parquet") == "pip install 'lm-ablation-workbench[parquet]'"


def test_components_depends_on_torch_only_and_the_workbench_on_this_version_of_it():
    components, workbench = project("components/pyproject.toml"), project("pyproject.toml")
    assert names(components["dependencies"]) == ["torch"]
    torch_range = next(r for r in workbench["dependencies"] if names([r]) == ["torch"])
    assert components["dependencies"] == [torch_range]  # the same torch range in both
    assert f"{COMPONENTS_DISTRIBUTION}=={components['version']}" in workbench["dependencies"]
    assert workbench["version"] == components["version"]  # released together


def test_each_import_package_is_shipped_by_one_distribution():
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert root["packages"]["find"]["include"] == ["workbench*"]
    own = tomllib.loads((ROOT / "components/pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert own["packages"] == ["components"] and own["package-dir"] == {"components": "."}


def test_every_extra_a_hint_names_exists_on_that_distribution():
    extras = {DISTRIBUTION: project("pyproject.toml")["optional-dependencies"],
              COMPONENTS_DISTRIBUTION: project("components/pyproject.toml")["optional-dependencies"]}
    assert {extra for _, extra in EXTRAS.values()} <= set(extras[DISTRIBUTION])
    assert f"pip install '{COMPONENTS_DISTRIBUTION}[flash]'" in FLASH_INSTALL and "flash" in extras[COMPONENTS_DISTRIBUTION]
    found = []
    paths = {p for pattern in HINT_FILES for p in ROOT.glob(pattern) if p.suffix in (".md", ".py", ".toml")}
    for path in paths - {Path(__file__).resolve()}:  # this file spells the pattern, not a hint
        for command in re.findall(r"pip install [^\n`]*", path.read_text(encoding="utf-8")):
            found += [(path.relative_to(ROOT).as_posix(), LOCAL.get(name, name), extra)
                      for name, extra in re.findall(r"([\w./-]+)\[(\w+)\]", command)]
    assert {name for _, name, _ in found} >= {DISTRIBUTION, COMPONENTS_DISTRIBUTION}  # the scan sees real hints
    wrong = [hint for hint in found if hint[2] not in extras.get(hint[1], {})]
    assert not wrong, f"install hints naming another distribution or a missing extra: {sorted(wrong)}"


def test_the_example_plugin_depends_on_components_alone():
    assert project("examples/plugin/pyproject.toml")["dependencies"] == [COMPONENTS_DISTRIBUTION]


def build_wheel(source: Path, out: Path) -> zipfile.ZipFile:
    """``pip wheel --no-deps`` of ``source``, built as pip builds it (isolated, with the build-system's setuptools);
    ``source`` is a copy, so the build's egg-info and build/ stay out of the checkout."""
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                             "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return zipfile.ZipFile(next(out.glob("*.whl")))


def requires(wheel: zipfile.ZipFile) -> list[str]:
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    lines = wheel.read(metadata).decode().splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]


@pytest.mark.slow
def test_the_components_wheel_needs_torch_only_and_imports_without_the_workbench_stack(tmp_path):
    source = shutil.copytree(ROOT / "components", tmp_path / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "build", "*.egg-info"))
    wheel = build_wheel(source, tmp_path / "dist")
    assert [r for r in requires(wheel) if "extra ==" not in r] == ["torch<2.15,>=2.5"]
    packages = {n.split("/")[0] for n in wheel.namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"components"} and "components/pyproject.toml" not in wheel.namelist()
    wheel.extractall(tmp_path / "site")
    code = (  # refuse every blocked package, then use components from the wheel's files only
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {BLOCKED!r}: raise ModuleNotFoundError('blocked: ' + name, name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import warnings; warnings.simplefilter('ignore')\n"
        "import torch, components\n"
        "from components import TransformerConfig, TransformerLM\n"
        "model = TransformerLM(TransformerConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2))\n"
        "print(components.__file__, tuple(model(torch.zeros(1, 5, dtype=torch.long)).shape))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    where, shape = result.stdout.split(" ", 1)
    assert Path(where).is_relative_to(tmp_path / "site") and shape.strip() == "(1, 5, 32)"


@pytest.mark.slow
def test_the_workbench_wheel_leaves_components_to_its_own_distribution_and_carries_the_presets(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("workbench", "configs"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheel = build_wheel(source, tmp_path / "dist")
    files = wheel.namelist()
    assert not [n for n in files if n.startswith("components/")] and "workbench/cli.py" in files
    assert any(n.endswith("/data/share/workbench/configs/model/llama.yaml") for n in files)
    components = project("components/pyproject.toml")
    assert f"{COMPONENTS_DISTRIBUTION}=={components['version']}" in requires(wheel)
