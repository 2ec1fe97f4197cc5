"""Report sections on what each variant spent: the budget and the steps, tokens and FLOPs each got,
and, when variants differ in key/value heads, the K/V memory of their attention."""

from __future__ import annotations

from . import fmt
from .attention import BF16_BYTES, attention_memory
from .doc import Block, Heading, Para, Table, text
from .load import COMPLETED, Results, Variant
from .analysis.stats import summarize

BUDGET_KINDS = {
    "steps": "optimizer steps",
    "tokens": "training tokens",
    "flops": "training FLOPs",
    "tokens_per_param": "training tokens per parameter",
}


def budget_text(budget: dict | None) -> str | None:
    """'equal training FLOPs: 1e+13 per run' for the header; None without a budget."""
    if not budget:
        return None
    (kind, value), = budget.items()
    what = BUDGET_KINDS.get(kind, kind)
    shown = fmt.human_flops(value) if kind == "flops" else fmt.human(value) if kind == "tokens" else f"{value:g}"
    rule = {"steps": "", "tokens": "; steps = tokens / (batch × seq_len)",
            "flops": "; steps = FLOPs / (FLOPs/token × batch × seq_len), rounded, so each run is within half a step",
            "tokens_per_param": " (total parameters, as in Chinchilla); steps = ratio × params / (batch × seq_len)"}.get(kind, "")
    return f"equal {what}: {shown} per run{rule}. The steps each variant got are under Compute."


def _planned(v: Variant) -> tuple[float | None, float | None, float | None]:
    """Steps, tokens and FLOPs of the config (for variants without a completed run)."""
    train = v.config.get("train") if isinstance(v.config.get("train"), dict) else {}
    steps, batch, seq = (train.get(k) for k in ("steps", "batch_size", "seq_len"))
    if not all(isinstance(x, int) for x in (steps, batch, seq)):
        return None, None, None
    tokens = steps * batch * seq
    return steps, tokens, tokens * v.flops_per_token if v.flops_per_token else None


def _versus(kind: str | None, value: float | None, v: Variant, tokens: float | None, flops: float | None,
            steps: float | None) -> str:
    """How the spend compares with the budget: a signed deviation and the size of one step."""
    if kind in ("flops", "tokens"):
        got = flops if kind == "flops" else tokens
        if got is None or not value or not steps:
            return fmt.DASH
        return f"{(got - value) / value:+.2%} (one step = {1 / steps:.2%})"
    if kind == "tokens_per_param":
        return f"{tokens / v.params:.1f} tokens/param" if tokens and v.params else fmt.DASH
    return fmt.DASH


def compute_section(results: Results, order: list[Variant]) -> list[Block]:
    """Steps/tokens/FLOPs per variant: shown with a budget, or when variants trained different steps."""
    planned = {v.name: _planned(v) for v in order}
    if not results.budget and len({p[0] for p in planned.values()}) <= 1:
        return []
    kind, value = next(iter(results.budget.items())) if results.budget else (None, None)
    rows = []
    for v in order:
        done = [r for r in v.runs if r.status == COMPLETED]
        steps, tokens, flops = planned[v.name]
        if done:  # what was recorded, not what was planned
            steps = summarize(r.steps for r in done).mean
            tokens = summarize(r.train_tokens for r in done).mean
            flops = summarize(r.train_flops for r in done).mean
        rows.append([v.name, fmt.human(v.params), fmt.DASH if steps is None else f"{steps:,.0f}", fmt.human(tokens),
                     fmt.human_flops(flops), _versus(kind, value, v, tokens, flops, steps),
                     "recorded" if done else "planned"])
    headers = ["Variant", "Params", "Steps", "Training tokens", "Training FLOPs", "vs budget", "Source"]
    note = budget_text(results.budget) or "No budget: each variant trained its own train.steps."
    return [Heading(2, "Compute"), Table(headers, rows, right={1, 2, 3, 4, 5}),
            Para([text(note + " Recorded = mean over completed seeds from results.json; planned = from the config "
                       "(no completed run yet). FLOPs count matmuls only, forward + backward (6 × weights + attention).")])]


def attention_section(order: list[Variant], summaries) -> list[Block]:
    """Query/KV heads, K/V projection weights and KV cache per token, when KV heads differ."""
    memory = {v.name: attention_memory(v.config.get("model") or {}) for v in order}
    if len({m["n_kv_heads"] for m in memory.values() if m}) <= 1:
        return []
    loss = {s.variant.name: s.val_loss for s in summaries}
    rows = []
    for v in order:
        m = memory[v.name]
        if m is None:
            rows.append([v.name] + [fmt.DASH] * 6)
            continue
        share = f"{m['kv_proj_params'] / v.params:.1%}" if v.params else fmt.DASH
        kind = "MHA" if m["n_kv_heads"] == m["n_heads"] else "MQA" if m["n_kv_heads"] == 1 else "GQA"
        rows.append([v.name, f"{m['n_heads']} / {m['n_kv_heads']} ({kind})", str(m["head_dim"]),
                     f"{fmt.human(m['kv_proj_params'])} ({share})", fmt.human(v.params),
                     f"{m['kv_cache_values_per_token'] * BF16_BYTES:,} B",
                     fmt.mean_std(loss[v.name]) if v.name in loss else fmt.DASH])
    headers = ["Variant", "Query / KV heads", "Head dim", "K/V projection params (share)", "Params",
               "KV cache per token (bf16)", "Val loss (mean ± std)"]
    return [Heading(2, "Attention: key/value heads"), Table(headers, rows, right={2, 3, 4, 5, 6}),
            Para([text("K/V projection params = layers × 2 × KV heads × head dim × (dim + bias). The KV cache holds "
                       "one key and one value vector per KV head and layer for every token generated: layers × 2 × "
                       f"KV heads × head dim values, at {BF16_BYTES} bytes each in bf16 (double in fp32). "
                       "Fewer KV heads shrink both; the loss column says what that costs.")])]
