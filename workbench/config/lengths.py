"""eval.lengths: the sequence lengths at which every run's val loss is measured after training.

One rule: a number up to ``MAX_MULTIPLE`` is a multiple of the variant's train.seq_len (``[1, 2, 4]``,
``0.5`` allowed), a larger one is a count of tokens (``[128, 256, 512]``). Each resolves to a whole
number of tokens >= 2, per variant (variants may train at different seq_len).
"""

from __future__ import annotations

import math

from .errors import ConfigError
from .experiment import Experiment

MAX_MULTIPLE = 16
RULE = f"numbers <= {MAX_MULTIPLE} (multiples of train.seq_len) or whole token counts > {MAX_MULTIPLE}"


def length_tokens(value: float, seq_len: int) -> float:
    """The evaluation length in tokens that ``value`` asks for (may be fractional: the caller checks)."""
    return value * seq_len if value <= MAX_MULTIPLE else value


def eval_lengths(exp: Experiment) -> dict[str, list[int]]:
    """Every variant's eval lengths in tokens (sorted, distinct); ConfigError on a bad value."""
    lengths = exp.eval.get("lengths") or []
    source, written = exp.origins.get("eval.lengths", (str(exp.path), "eval.lengths"))
    for value in lengths:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(source, written, f"invalid length {value!r}", RULE)
        if value > MAX_MULTIPLE and value != int(value):
            raise ConfigError(source, written, f"invalid length {value!r}: above {MAX_MULTIPLE} a length is a token count", RULE)
    out = {}
    for variant in exp.variants.values():
        seq_len = variant.train.seq_len
        tokens = []
        for value in lengths:
            exact = length_tokens(value, seq_len)
            if exact != int(exact) or exact < 2:
                raise ConfigError(source, written, f"length {value:g} x train.seq_len={seq_len} is {exact:g} tokens, "
                                  f"not a whole number >= 2 [variant '{variant.name}']", RULE)
            tokens.append(int(exact))
        out[variant.name] = sorted(set(tokens))
    return out
