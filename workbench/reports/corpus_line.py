"""The report's one line on the corpus a run folder trained on (results.json `data`)."""

from __future__ import annotations

from . import fmt


def corpus_text(data: dict) -> str | None:
    """The corpus in one line, with the unigram loss every model must beat to have learned anything."""
    tokens, unigram = data.get("train_tokens"), data.get("unigram_val_loss")
    if not isinstance(tokens, (int, float)) or not isinstance(unigram, (int, float)):
        return None
    return (f"{fmt.human(tokens)} training / {fmt.human(data.get('val_tokens') or 0)} validation tokens, "
            f"vocabulary {data.get('vocab_size')}; unigram baseline val loss {unigram:.4f} nats/token "
            "(a model below it has learned more than token frequencies)")
