"""workbench.reports: statistics against numpy/scipy, and the rendered report on synthetic run folders."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from workbench.reports import ReportError, paired_diff_ci, summarize, write_report

STEPS, BATCH, SEQ = 200, 4, 32
FLOPS_PER_TOKEN = 1_000_000
XSS = "<script>alert(1)</script>"


# ---------------------------------------------------------------- synthetic run folders

def _metrics(final: float, seed: int, steps: int = STEPS) -> dict:
    rng = np.random.default_rng(seed)

    def curve(step: int) -> float:
        return final + (8.0 - final) * math.exp(-step / 40.0)

    train = [{"step": s, "loss": curve(s) + 0.15 * rng.standard_normal(), "lr": 1e-3, "tokens": s * BATCH * SEQ}
             for s in range(10, steps + 1, 10)]
    val = [{"step": s, "loss": curve(s) + 0.02 * rng.standard_normal(), "tokens": s * BATCH * SEQ}
           for s in range(50, steps + 1, 50)]
    return {"train": train, "val": val}


def make_run_dir(root: Path, runs: dict[str, dict[int, tuple]], *, baseline: str, seeds=(0, 1, 2),
                 metrics: bool = True) -> Path:
    """runs: variant -> {seed: (status, final_val_loss, tokens_per_sec, error)}; absent seeds are MISSING."""
    variants = {}
    for i, (name, by_seed) in enumerate(runs.items()):
        entries = []
        for seed, (status, loss, tps, error) in by_seed.items():
            rel = f"v{i}/seed{seed}/metrics.json"
            if metrics and status != "failed":
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(_metrics(loss if loss else 3.0, seed,
                                                    STEPS if status == "completed" else 120)))
            entries.append({"seed": seed, "status": status, "final_val_loss": loss, "final_train_loss": loss,
                            "val_bpb": None if loss is None else loss / math.log(2) / 4.0,
                            "tokens_per_sec": tps, "steps": STEPS, "train_tokens": STEPS * BATCH * SEQ,
                            "train_flops": STEPS * BATCH * SEQ * FLOPS_PER_TOKEN, "wall_time_s": 61.2,
                            "peak_memory_mb": 512.0, "metrics": rel if status != "failed" else None,
                            "batch_fingerprint": "ab12", "error": error})
        variants[name] = {"config": {"model": {"norm": name if i else "rmsnorm", "dim": 64},
                                     "train": {"steps": STEPS, "batch_size": BATCH, "seq_len": SEQ}},
                          "params": 1_234_567 + i, "non_embedding_params": 800_000, "flops_per_token": FLOPS_PER_TOKEN,
                          "runs": entries}
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({
        "experiment": "ablate_norm", "description": "LayerNorm vs RMSNorm.", "baseline": baseline,
        "seeds": list(seeds), "variants": variants, "updated": "2026-11-23T13:00:00Z"}))
    return root


BASE = [3.20, 3.25, 3.22]
WORSE = {1: 3.35, 2: 3.33}  # seed 0 missing: pairs are (1, 1) and (2, 2), not positional
MAIN = {
    "rmsnorm": {s: ("completed", x, 1000.0 + 10 * s, None) for s, x in enumerate(BASE)},
    "layernorm": {s: ("completed", x, 900.0 + 10 * s, None) for s, x in WORSE.items()},
    "post_norm": {0: ("completed", 3.21, 950.0, None),
                  1: ("diverged", 4.5, None, "loss is NaN at step 120"),  # last finite loss: not averaged
                  2: ("failed", None, None, "Traceback (most recent call last):\n  ...\nRuntimeError: out of memory")},
}


@pytest.fixture(scope="module")
def main_report(tmp_path_factory) -> Path:
    run_dir = make_run_dir(tmp_path_factory.mktemp("main"), MAIN, baseline="rmsnorm")
    return write_report(run_dir)


def table_rows(md: str, first_header: str = "Variant") -> dict[str, list[str]]:
    """The first Markdown table whose header starts with first_header, as {first cell: cells}."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        rows[cells[0]] = cells
    return rows


def numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+", cell)]


# ---------------------------------------------------------------- statistics

def test_summarize_matches_numpy_and_ignores_missing():
    s = summarize([3.2, None, 3.5, float("nan"), 3.3])
    x = np.array([3.2, 3.5, 3.3])
    assert (s.n, s.min, s.max) == (3, 3.2, 3.5)
    assert s.mean == pytest.approx(x.mean(), abs=1e-15) and s.std == pytest.approx(x.std(ddof=1), abs=1e-15)
    assert summarize([4.0]).std is None and summarize([4.0]).mean == 4.0
    assert summarize([None]).mean is None and summarize([]).n == 0


def test_paired_diff_ci_matches_scipy_t_interval():
    a, b = [3.31, 3.29, 3.40, 3.35], [3.20, 3.28, 3.31, 3.30]
    d = np.subtract(a, b)
    low, high = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    r = paired_diff_ci(a, b)
    assert r.n == 4 and r.mean == pytest.approx(d.mean(), abs=1e-12)
    assert (r.low, r.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    low90, _ = sps.t.interval(0.90, 3, loc=d.mean(), scale=sps.sem(d))
    assert paired_diff_ci(a, b, conf=0.90).low == pytest.approx(low90, abs=1e-12)


def test_paired_diff_ci_pairs_only_finite_and_handles_small_n():
    r = paired_diff_ci([3.0, None, 3.5, float("nan")], [2.9, 3.0, None, 3.0])
    assert r.n == 1 and r.mean == pytest.approx(0.1) and r.low is None and r.verdict == "n/a"
    assert paired_diff_ci([], []).mean is None
    with pytest.raises(ValueError):
        paired_diff_ci([1.0], [1.0, 2.0])


@pytest.mark.parametrize("shift, verdict", [(-0.1, "better"), (0.1, "worse"), (0.0, "within noise")])
def test_verdicts(shift, verdict):
    base = np.array([3.20, 3.25, 3.22, 3.28])
    noise = np.array([0.01, -0.012, 0.008, -0.006])
    assert paired_diff_ci(list(base + shift + noise), list(base)).verdict == verdict


# ---------------------------------------------------------------- rendered report

def test_table_numbers_equal_direct_computation(main_report):
    rows = table_rows(main_report.read_text())
    assert list(rows) == ["rmsnorm (baseline)", "layernorm", "post_norm"]
    base, worse, single = rows["rmsnorm (baseline)"], rows["layernorm"], rows["post_norm"]
    # columns: Variant, Runs, Params, Non-emb, FLOPs/token, loss, bpb, delta, verdict, tok/s, mem, wall
    assert base[1] == "3/3 completed" and worse[1] == "2/3 completed, 1 missing"
    assert single[1] == "1/3 completed, 1 diverged, 1 failed"
    assert base[2] == "1.23M" and base[3] == "800K" and base[4] == "1M"
    mean, std = numbers(base[5])
    assert mean == pytest.approx(np.mean(BASE), abs=6e-5) and std == pytest.approx(np.std(BASE, ddof=1), abs=6e-5)
    assert numbers(base[6])[0] == pytest.approx(np.mean(BASE) / math.log(2) / 4, abs=6e-5)
    assert base[7] == "—" and base[8] == "baseline"
    d = np.subtract(list(WORSE.values()), [BASE[s] for s in WORSE])
    low, high = sps.t.interval(0.95, 1, loc=d.mean(), scale=sps.sem(d))
    assert numbers(worse[7]) == pytest.approx([d.mean(), low, high], abs=6e-5)
    assert "(n=2)" in worse[7] and worse[8] == "worse"
    assert numbers(single[5])[0] == pytest.approx(3.21) and single[5].endswith("± —")
    assert "n=1, no CI" in single[7] and numbers(single[7])[0] == pytest.approx(0.01, abs=6e-5)
    assert single[8] == "n/a"
    assert base[9] == "1.01K"  # tokens/s mean of 1000, 1010, 1020


def test_verdicts_in_rendered_table(tmp_path):
    runs = {"base": {s: ("completed", x, 1.0, None) for s, x in enumerate(BASE)},
            "good": {s: ("completed", x - 0.1 + 0.003 * s, 1.0, None) for s, x in enumerate(BASE)},
            "bad": {s: ("completed", x + 0.1 - 0.003 * s, 1.0, None) for s, x in enumerate(BASE)},
            "same": {s: ("completed", x + (0.01, -0.01, 0.002)[s], 1.0, None) for s, x in enumerate(BASE)}}
    rows = table_rows(write_report(make_run_dir(tmp_path, runs, baseline="base", metrics=False)).read_text())
    assert {k: v[8] for k, v in rows.items()} == {
        "base (baseline)": "baseline", "good": "better", "bad": "worse", "same": "within noise"}


def test_missing_diverged_failed_are_named(main_report):
    md = main_report.read_text()
    lines = {line.split(":**")[0]: line for line in md.splitlines() if line.startswith("- **")}
    assert "layernorm seed 0" in lines["- **MISSING (not run yet, or interrupted)"]
    assert "post_norm seed 1 (loss is NaN at step 120)" in lines["- **DIVERGED"]
    assert "post_norm seed 2 (RuntimeError: out of memory)" in lines["- **FAILED"]
    assert "6/9 completed" in lines["- **Runs"]
    run_lines = [line for line in md[md.index("## Per-run results"):].splitlines() if line.startswith("| ")][2:]
    assert len(run_lines) == 9 and any("| missing |" in line for line in run_lines)


def test_every_linked_plot_exists(main_report):
    md = main_report.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(Path(p).name for p in links) == sorted(
        ["val_loss_vs_step.png", "val_loss_vs_flops.png", "train_loss_vs_step.png", "final_val_loss.png",
         "throughput.png"])
    for link in links:
        assert (main_report.parent / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Skipped" not in md
    assert not [p for p in main_report.parent.rglob("*") if p.name.endswith(".tmp")]


def test_html_is_self_contained_and_escapes_names(tmp_path):
    runs = {"base": {0: ("completed", 3.2, 100.0, None), 1: ("completed", 3.3, 100.0, None)},
            XSS: {0: ("completed", 3.1, 100.0, None), 1: ("failed", None, None, "bad <b>thing</b>")},
            "a|b": {0: ("completed", 3.0, 100.0, None)}}
    md_path = write_report(make_run_dir(tmp_path, runs, baseline="base", seeds=(0, 1)))
    page = (tmp_path / "report.html").read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]*)""", page, flags=re.I)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert XSS not in page and "<b>thing" not in page
    assert html.escape(XSS) in page and "bad &lt;b&gt;thing&lt;/b&gt;" in page
    assert page.count("<script") == 0
    md = md_path.read_text()
    rows = table_rows(md)
    assert "a\\|b" in rows and len(rows["a\\|b"]) == len(rows["base (baseline)"]) == 12
    assert "\\<script\\>" in md and XSS not in md


def test_renders_without_any_metrics_files(tmp_path):
    run_dir = make_run_dir(tmp_path, MAIN, baseline="rmsnorm")
    write_report(run_dir)
    assert (run_dir / "plots" / "val_loss_vs_step.png").exists()
    for i in range(len(MAIN)):  # the metrics vanish: the next render drops the stale curve plots
        shutil.rmtree(run_dir / f"v{i}")
    md = write_report(run_dir).read_text()
    for title in ("Validation loss vs step", "Validation loss vs training FLOPs", "Training loss vs step"):
        section = md[md.index(f"### {title}"):]
        assert section.split("\n\n")[1].startswith("Skipped:")
    assert (run_dir / "plots" / "final_val_loss.png").exists() and (run_dir / "plots" / "throughput.png").exists()
    assert not (run_dir / "plots" / "val_loss_vs_step.png").exists()
    assert "**No metrics.json (no curves):** rmsnorm seed 0" in md


def test_minimal_results_without_optional_keys(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(
        {"variants": {"a": {"runs": [{"seed": 0, "status": "completed"}]}, "b": {}}}))
    md = write_report(tmp_path).read_text()
    assert "none given, so no Δ is computed" in md and "1/1 completed" in md and "0/0 completed" in md
    assert "Skipped: no completed run reports a final validation loss" in md


@pytest.mark.parametrize("content, message", [
    (None, "not found"), ("{not json", "not valid JSON"), ('{"variants": []}', "malformed"),
    ('{"variants": {"a": {"runs": [{"status": "completed"}]}}}', "without a seed"),
])
def test_missing_or_malformed_results_raise(tmp_path, content, message):
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    with pytest.raises(ReportError, match=message) as e:
        write_report(tmp_path)
    assert str(tmp_path / "results.json") in str(e.value) and "\n" not in str(e.value)


def test_import_pulls_in_neither_lightning_nor_torch():
    code = "import sys, workbench.reports; print(sorted({'lightning', 'torch'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
