"""`components` stands alone: plain PyTorch, usable by someone who never heard of the workbench."""

from __future__ import annotations

import json
import subprocess
import sys

# Heavy or application-level packages that `import components` must not pull in (flash_attn: lazily only).
FORBIDDEN = ["lightning", "pytorch_lightning", "omegaconf", "tensorboard", "workbench", "transformers", "flash_attn"]


def run_fresh(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_pulls_in_no_application_packages():
    code = (
        "import json, sys; import components; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(json.loads(run_fresh(code)))
    assert "torch" in loaded  # the check sees real imports
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))


def test_public_names_import_and_work():
    code = (
        "import torch\n"
        "from components import RMSNorm, LayerNorm, SwiGLU, RotaryEmbedding, TransformerLM, TransformerConfig, registry\n"
        "import components\n"
        "assert all(hasattr(components, name) for name in components.__all__)\n"
        "model = TransformerLM(TransformerConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2))\n"
        "print(tuple(model(torch.zeros(1, 5, dtype=torch.long)).shape), type(registry.build('norm', 'rmsnorm', dim=4)) is RMSNorm)\n"
    )
    assert run_fresh(code).split("\n")[0] == "(1, 5, 32) True"
