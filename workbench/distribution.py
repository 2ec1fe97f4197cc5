"""The names this project installs under: "workbench" on the package index is an unrelated project.

Two distributions from one repository, each owning one import package: ``lm-ablation-components``
(``import components``, torch only; components/pyproject.toml) and ``lm-ablation-workbench``
(``import workbench``, the application; pyproject.toml), which depends on the first at the same version.
"""

DISTRIBUTION = "lm-ablation-workbench"
COMPONENTS_DISTRIBUTION = "lm-ablation-components"


def install_hint(extra: str) -> str:
    """The command that installs the workbench's optional dependencies ``extra`` (parquet, zstd, flash)."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"
