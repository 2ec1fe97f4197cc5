"""The bench's results as Markdown tables (what ``python -m workbench bench`` prints)."""

from __future__ import annotations

from .machine import one_line
from .step import compiled_reference


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _gemm(results: dict) -> list[str]:
    rows = [[name, str(r["size"]), f"{r['flops'] / 1e9:.0f}", f"{r['median_flops'] / 1e9:.0f}", _pct(r["spread"])]
            for name, r in results["gemm"].items()]
    return ["## GEMM peak (square matmul; the best call is the strict MFU denominator)", ""] + _table(
        ["dtype", "n", "peak GFLOP/s", "median GFLOP/s", "spread (IQR)"], rows)


def _step(results: dict) -> list[str]:
    s = results["step"]
    shape = s["shape"]
    title = (f"## Training step: workbench vs transformers LlamaForCausalLM (dim {shape['dim']}, {shape['n_layers']} layers, "
             f"{shape['n_heads']} heads, vocab {shape['vocab_size']}, batch {shape['batch_size']} x {shape['seq_len']})")
    names = sorted({n for row in s["rows"] for n in row["ms"] if n != "workbench"})
    rows = []
    for row in s["rows"]:
        mfu, ref_mfu, paired = row["mfu"], row["reference_mfu"], row["paired_mfu"]
        compiled_ref = row["speedup_vs"].get(compiled_reference(row))
        rows.append([
            row["precision"], row["mode"], f"{row['ms']['workbench']:.0f}",
            *[f"{row['ms'][n]:.0f}" if n in row["ms"] else "-" for n in names],
            f"**{row['speedup']:.2f}x** vs {row['reference'].removeprefix('transformers_')}",
            f"{compiled_ref:.2f}x" if compiled_ref else "-",
            f"{row['workbench_tflops'] * 1e3:.0f}",
            _pct(paired["workbench"]["vs_fp32_gemm"]),
            _pct(paired[row["reference"]]["vs_fp32_gemm"]),
            _pct(mfu["vs_fp32_peak"]) if "vs_fp32_peak" in mfu else "-",
            _pct(ref_mfu["vs_fp32_peak"]) if "vs_fp32_peak" in ref_mfu else "-",
            _pct(paired["workbench"][own]) if (own := f"vs_{row['precision']}_gemm") in paired["workbench"] else "-",
        ])
    header = ["precision", "mode", "workbench ms", *[f"{n} ms" for n in names], "speedup (target)",
              "speedup vs transformers compiled", "workbench GFLOP/s", "workbench MFU", "transformers MFU",
              "workbench MFU (strict)", "transformers MFU (strict)", "workbench MFU (GEMM of its dtype)"]
    lines = [title, "", f"{s['params']:,} parameters, {s['flops_per_token']:,} training FLOPs/token; initial losses "
             + ", ".join(f"{k} {v:.5f}" for k, v in s["initial_loss"].items()), ""] + _table(header, rows)
    for row in s["rows"]:
        if row["mode"] == "compile":
            lines.append(f"\ncompile time ({row['precision']}), cold (empty caches) / warm (from inductor's caches): "
                         + ", ".join(f"{k} {v['cold']:.0f} s / {v['warm']:.1f} s" for k, v in row["compile_s"].items()))
    lines.append("\nMFU: step FLOP/s over the fp32 square GEMM timed in the same rounds (median of the per-round "
                 "ratios); strict: over the best GEMM call of the whole run. The compiled rows time the workbench "
                 "compiled, transformers eager (the speedup target) and every transformers attention implementation compiled "
                 "side by side; the compiled speedup is against the faster of those.")
    if "gemm_ceiling" in s:
        c = s["gemm_ceiling"]
        lines.append(f"\nGEMM ceiling: the fp32 step's Linear GEMMs alone take {c['linear_gemm_ms']:.0f} ms at their real "
                     f"shapes, {_pct(c['linear_gemm_efficiency'])} of the square-GEMM peak.")
    return lines


def _attention(results: dict) -> list[str]:
    a = results["attention"]
    kernels = list(a["growth"])
    by = {(r["kernel"], r["seq_len"]): r for r in a["rows"]}
    seq_lens = sorted({r["seq_len"] for r in a["rows"]})
    rows = [[str(T)] + [f"{by[k, T]['ms']:.1f} ms / {by[k, T]['peak_mb']:.0f} MB" for k in kernels] for T in seq_lens]
    rows.append(["growth exponent (time / memory)"]
                + [f"{a['growth'][k]['time_exponent']:.2f} / {a['growth'][k]['memory_exponent']:.2f}" for k in kernels])
    sh = a["shape"]
    lines = [f"## Attention kernels, forward + backward (batch {sh['batch_size']}, {sh['n_heads']} heads, head_dim "
             f"{sh['head_dim']}, {sh['dtype']})", ""] + _table(["T"] + kernels, rows)
    for name, why in a["skipped"].items():
        lines.append(f"\n{name}: not measured ({why})")
    return lines


def _overhead(results: dict) -> list[str]:
    o = results["overhead"]
    m, b = o["model"], o["batch"]
    return [f"## Lightning overhead ({o['experiment']}: dim {m['dim']}, {m['n_layers']} layers, vocab {m['vocab_size']}, "
            f"batch {b['batch_size']} x {b['seq_len']}, fp32)", ""] + _table(
        ["plain loop ms/step", "Lightning ms/step", "extra ms/step", "extra ms/logging step", "overhead",
         "overhead of total time"],
        [[f"{o['plain_ms']:.1f}", f"{o['lightning_ms']:.1f}", f"{o['extra_ms_per_step']:.2f}",
          f"{o['extra_ms_per_logging_step']:.2f}", _pct(o["overhead"]), _pct(o["overhead_total_time"])]])


def _targets(results: dict) -> list[str]:
    rows = []
    for t in results["targets"]:
        as_pct = "MFU" in t["name"] or "overhead" in t["name"]
        value = _pct(t["value"]) if as_pct else f"{t['value']:.2f}"
        target = ("<= " if t.get("lower_is_better") else ">= " if "exponent" not in t["name"] else "~ ") + (
            _pct(t["target"]) if as_pct else f"{t['target']:.2f}")
        if "interval" in t:
            value += " [not bounded]" if t["interval"] is None else " [{:.2f}, {:.2f}]".format(*t["interval"])
        met = "yes" if t["met"] else "**no**"
        if "decided" in t and not t["decided"]:
            met += " (within noise)"
        rows.append([t["name"], value, target, met, t.get("machine", "-")])
    reasons = [f"- {t['name']}: {t['why']}" for t in results["targets"] if t.get("why")]
    noise = (["", "[a, b]: the 95% interval of the median per-round ratio (order statistics: no assumption on the "
              "timings' distribution). Within noise: the target lies inside it, so these rounds cannot tell whether "
              "it is met."] if any("interval" in t for t in results["targets"]) else [])
    return (["## Targets", ""] + _table(["target", "measured", "required", "met", "on"], rows) + noise
            + (["", "Why the missed ones were missed (torch.profiler, self time per step):", ""] + reasons if reasons else []))


def markdown(results: dict) -> str:
    """All measured sections, in order, as Markdown."""
    lines = [f"Machine: {one_line(results['machine'])}", f"Command: `{results['command']}`  ({results['date']}, "
             f"{results['wall_s']:.0f} s)"]
    lines += [f"{precision}: not benchmarked: {why}" for precision, why in results.get("skipped_precisions", {}).items()]
    for key, section in (("gemm", _gemm), ("step", _step), ("attention", _attention), ("overhead", _overhead)):
        if key in results:
            lines += [""] + section(results)
    if results.get("targets"):
        lines += [""] + _targets(results)
    elif results["settings"].get("quick"):
        lines += ["", "Targets: not checked at --quick sizes (they are set for the default ones)."]
    return "\n".join(lines) + "\n"
