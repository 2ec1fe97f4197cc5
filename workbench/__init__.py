"""The workbench application: CLI, config, data, Lightning training, experiments, reports.

``workbench.load_run(run_dir, variant, seed=None)`` -> (TransformerLM, tokenizer) is imported on first use,
so ``import workbench`` stays light.
"""

__all__ = ["LoadError", "load_run"]


def __getattr__(name: str):
    if name in __all__:
        from . import load

        return getattr(load, name)
    raise AttributeError(f"module 'workbench' has no attribute '{name}'")
