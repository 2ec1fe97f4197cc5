"""Weight interop with Hugging Face ``transformers``: LLaMA, Mistral, Qwen3, OLMo 2, Mixtral and GPT-2
<-> ``TransformerLM``.

    model = from_hf(Qwen3ForCausalLM.from_pretrained(...))   # any supported family
    hf = to_hf(model)                                          # back, for generate() or the Hub

Both directions map the config field by field and refuse what the other side cannot express (rope
scaling, per-layer sliding windows, post-norm, ALiBi, ...) instead of converting it into a model that
silently computes something else. ``transformers`` is a dev extra: imported lazily.

One module per lineage: ``llama`` (LLaMA, Mistral, Qwen3, OLMo 2), ``mixtral``, ``gpt2``;
``family`` says what a family declares, ``convert`` moves the weights, ``fold`` turns a μP / CompleteP
model into the standard one with the same logits (transformers has no multipliers).
"""

from .convert import FAMILIES, config_from_hf, family_of, from_hf, to_hf
from .fold import fold_multipliers

__all__ = ["FAMILIES", "config_from_hf", "family_of", "fold_multipliers", "from_hf", "to_hf"]
