"""workbench.reports: seed statistics against numpy, and the rendered report on synthetic run folders."""

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

from workbench.reports import ReportError, summarize, write_report
from workbench.reports.analysis.verdicts import DEFAULT_MARGIN, SeedPolicy, method_text, seeds_needed

STEPS, BATCH, SEQ = 200, 4, 32
FLOPS_PER_TOKEN = 1_000_000
XSS = "<script>alert(1)<script>"  # hostile, and still a plain name (variant names hold no "/")


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
                 metrics: bool = True, data: dict | None = None, **top) -> Path:
    """runs: variant -> {seed: (status, final_val_loss, tokens_per_sec, error)}; absent seeds are MISSING.
    data: every variant's corpus summary (results.json "data", e.g. the unigram floor); top: further top-level keys of
    results.json (seed_policy, reference, speed, ...)."""
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
                          "runs": entries, **({"data": data} if data else {})}
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({
        "experiment": "ablate_norm", "description": "LayerNorm vs RMSNorm.", "baseline": baseline,
        "seeds": list(seeds), "variants": variants, "updated": "2026-11-23T13:00:00Z", **top}))
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


# ---------------------------------------------------------------- rendered report

def test_table_numbers_equal_direct_computation(main_report):
    rows = table_rows(main_report.read_text())
    assert list(rows) == ["rmsnorm (baseline)", "layernorm", "post_norm"]
    base, worse, single = rows["rmsnorm (baseline)"], rows["layernorm"], rows["post_norm"]
    # columns: Variant, Runs, Params, Non-emb, FLOPs/token, loss, bpb, verdict, delta, multiplier, seeds, diff std,
    # memory, wall time
    assert base[1] == "3/3 completed" and worse[1] == "2/3 completed, 1 missing"
    assert single[1] == "1/3 completed, 1 diverged, 1 failed"
    assert base[2] == "1.23M" and base[3] == "800K" and base[4] == "1M"
    mean, std = numbers(base[5])
    assert mean == pytest.approx(np.mean(BASE), abs=6e-5) and std == pytest.approx(np.std(BASE, ddof=1), abs=6e-5)
    assert numbers(base[6])[0] == pytest.approx(np.mean(BASE) / math.log(2) / 4, abs=6e-5)
    assert base[7] == "baseline" and base[8:12] == ["—"] * 4
    # layernorm: seeds 1 and 2 paired (seed 0 missing). Nothing else to pool its noise with (post_norm completed one
    # run), so its variance is its own on 1 df: no verdict and no interval, the point estimate and what would decide.
    d = np.subtract(list(WORSE.values()), [BASE[s] for s in WORSE])
    assert worse[8] == f"{d.mean():+.4f} (not estimable at n = 2)"
    assert worse[7] == ("undecided (variance from 1 degree of freedom: a 3rd seed, or run groups of comparable noise "
                        "to pool with, would allow a decision; how many seeds it needs is not estimable from 1 degree "
                        "of freedom)")
    assert worse[10] == "2 of 3" and numbers(worse[11])[0] == pytest.approx(d.std(ddof=1), abs=6e-5)
    assert worse[11].endswith(" (1 df, cell)")
    assert re.fullmatch(r"0\.\d\dx \(not estimable at n = 2\)", worse[9])  # worse: the baseline needs less compute
    assert numbers(single[5])[0] == pytest.approx(3.21) and single[5].endswith("± —")
    assert single[7] == "undecided (fewer than 2 paired seeds)" and single[10] == "1 of 3"
    assert single[8] == "+0.0100 (not estimable at n = 1)"
    assert single[9].endswith("x (not estimable at n = 1)") and single[11] == "—"


def verdict_column(tmp_path, runs, seeds=(0, 1, 2), **top) -> dict[str, str]:
    rows = table_rows(write_report(make_run_dir(tmp_path, runs, baseline="base", seeds=seeds, metrics=False,
                                                **top)).read_text())
    return {k: v[7] for k, v in rows.items()}


def test_verdicts_in_rendered_table(tmp_path):
    runs = {"base": {s: ("completed", x, 1.0, None) for s, x in enumerate(BASE)},
            "good": {s: ("completed", x - 0.1 + 0.003 * s, 1.0, None) for s, x in enumerate(BASE)},
            "bad": {s: ("completed", x + 0.1 - 0.003 * s, 1.0, None) for s, x in enumerate(BASE)},
            "same": {s: ("completed", x, 1.0, None) for s, x in enumerate(BASE)},
            "noisy": {s: ("completed", x + (0.03, -0.03, 0.006)[s], 1.0, None) for s, x in enumerate(BASE)}}
    got = verdict_column(tmp_path, runs)
    assert got["base (baseline)"] == "baseline" and got["good"] == "better" and got["bad"] == "worse"
    assert got["same"] == "equivalent" and re.fullmatch(r"undecided \(~\d+ seeds to decide\)", got["noisy"])


def test_two_seeds_that_agree_promise_no_decision(tmp_path):
    """Two seeds whose differences agree by chance (the main job's -0.0281 and -0.0289; its 3rd seed gave +0.0167)
    would, read as a variance, promise a decision at the 3rd seed: from 1 df neither a verdict nor the seeds it
    needs is estimable, and the report says so instead of printing a count."""
    runs = {"base": {0: ("completed", 4.2611, 1.0, None), 1: ("completed", 4.3185, 1.0, None)},
            "v": {0: ("completed", 4.2330, 1.0, None), 1: ("completed", 4.2896, 1.0, None)}}
    d = [4.2330 - 4.2611, 4.2896 - 4.3185]
    assert seeds_needed(np.mean(d), np.std(d, ddof=1), 2, DEFAULT_MARGIN, SeedPolicy(2, 2), m=1) == 3
    assert verdict_column(tmp_path, runs, seeds=(0, 1))["v"] == (
        "undecided (variance from 1 degree of freedom: a 3rd seed, or run groups of comparable noise to pool with, "
        "would allow a decision; how many seeds it needs is not estimable from 1 degree of freedom)")


def test_single_seed_renders_undecided(tmp_path):
    runs = {"base": {0: ("completed", 3.2, 1.0, None)}, "v": {0: ("completed", 3.0, 1.0, None)}}
    md = write_report(make_run_dir(tmp_path, runs, baseline="base", seeds=(0,))).read_text()
    assert table_rows(md)["v"][7] == "undecided (fewer than 2 paired seeds)"
    assert "Every comparison has 1 seed and is tested once" in md


def test_how_to_read_states_the_method_of_this_run(tmp_path):
    policy = {"min": 2, "max": 5, "alpha": 0.1}
    runs = {"base": {s: ("completed", 3.2 + s / 100, 1.0, None) for s in range(3)},
            "a": {s: ("completed", 3.1 + s / 100, 1.0, None) for s in range(3)},
            "b": {s: ("completed", 3.3 + s / 100, 1.0, None) for s in range(3)}}
    md = write_report(make_run_dir(tmp_path, runs, baseline="base", seed_policy=policy, equivalence_margin=0.02,
                                   metrics=False)).read_text()
    section = md[md.index("## How to read this"):].split("\n## ")[0]
    assert method_text(0.02, SeedPolicy(2, 5, 0.1), 2) in section.replace("\n\n", " ")
    assert "within ±0.02 nats" in section and "Holm" in section and "tensorboard --logdir" in section
    assert "(added one at a time to the undecided comparisons, 2 to 5 each)" in md
    assert "within noise" not in md and "Student" not in md


SPEED = {"method": "paired, interleaved timing of one training step per variant (20 rounds)", "rounds": 20,
         "device": "cpu", "confidence": 0.95, "variants": {
             "rmsnorm": {"ms_per_step": 12.5, "tokens_per_sec": 10240.0, "baseline": "rmsnorm", "ratio": 1.0,
                         "low": 1.0, "high": 1.0},
             "layernorm": {"ms_per_step": 14.0, "tokens_per_sec": 9142.9, "baseline": "rmsnorm", "ratio": 1.12,
                           "low": 1.08, "high": 1.16},
             "post_norm": {"ms_per_step": 12.4, "tokens_per_sec": 10322.6, "baseline": "rmsnorm", "ratio": 0.992,
                           "low": 0.97, "high": 1.015},
             "huge": {"ms_per_step": None, "tokens_per_sec": None, "baseline": "rmsnorm", "ratio": None, "low": None,
                      "high": None, "skipped": "2.1B params, over max_params"}}}


def test_speed_section_from_paired_timing(tmp_path):
    md = write_report(make_run_dir(tmp_path, MAIN, baseline="rmsnorm", speed=SPEED, metrics=False)).read_text()
    section = md[md.index("## Speed (paired timing)"):].split("\n## ")[0]
    rows = table_rows(section)
    assert rows["rmsnorm (baseline)"][1:] == ["12.50", "10.2K", "—", "—", ""]
    assert rows["layernorm"][3] == "1.120x [1.080, 1.160], slower" and rows["layernorm"][4] == "rmsnorm"
    assert rows["post_norm"][3] == "0.992x [0.970, 1.015], no clear difference"
    assert rows["huge"][1:4] == ["—"] * 3 and rows["huge"][5] == "not timed: 2.1B params, over max_params"
    assert "Paired, interleaved timing of one training step per variant (20 rounds). Timed on cpu." in section
    assert "compare speed under Speed (paired timing)" in md
    # The per-run wall-clock throughput is labelled as such, and kept out of the results table.
    header = next(line for line in md.splitlines() if line.startswith("| Variant | Runs |"))
    assert "tok/s" not in header.lower() and "tokens/s" not in header.lower() and "| Wall-clock tok/s (not paired) |" in md
    assert "## Speed" not in write_report(make_run_dir(tmp_path / "old", MAIN, baseline="rmsnorm")).read_text()


REFERENCE = {"source": "Zhang & Sennrich (2019), Table 2", "metric": "val loss", "note": "WMT, 6-layer model.",
             "values": {"rmsnorm": 3.300, "layernorm": 3.305, "post_norm": 3.40, "same": 3.25},
             "claims": {"layernorm": "worse"}}


def test_literature_check_agrees_disagrees_and_waits(tmp_path):
    base = [3.20, 3.25, 3.22]
    runs = {"rmsnorm": {s: ("completed", x, 1.0, None) for s, x in enumerate(base)},
            "layernorm": {s: ("completed", x + 0.001 * (s - 1), 1.0, None) for s, x in enumerate(base)},  # equivalent
            "post_norm": {s: ("completed", x + 0.1 + 0.002 * s, 1.0, None) for s, x in enumerate(base)},  # worse
            "same": {s: ("completed", x + (0.03, -0.03, 0.006)[s], 1.0, None) for s, x in enumerate(base)}}
    md = write_report(make_run_dir(tmp_path, runs, baseline="rmsnorm", reference=REFERENCE, metrics=False)).read_text()
    section = md[md.index("## Literature check"):].split("\n## ")[0]
    rows = table_rows(section)
    assert list(rows) == ["layernorm", "post_norm", "same"]
    # layernorm: claimed worse by an effect (+0.005) inside our margin, and we find equivalent: agrees.
    assert rows["layernorm"][1:4] == ["3.305", "worse, +0.005", "equivalent"] and rows["layernorm"][5] == "agrees"
    # post_norm: no claim, the values say worse (+0.1), and we find worse.
    assert rows["post_norm"][2] == "worse, +0.1 (from the values)" and rows["post_norm"][5] == "agrees"
    assert rows["same"][2] == "better, -0.05 (from the values)" and rows["same"][3:6:2] == ["undecided", "undecided"]
    assert "Source: Zhang & Sennrich (2019), Table 2. WMT, 6-layer model." in section and "±0.01" in section
    # Equivalent against a published effect beyond the margin disagrees.
    far = {**REFERENCE, "values": {**REFERENCE["values"], "layernorm": 3.35}}
    md = write_report(make_run_dir(tmp_path / "far", runs, baseline="rmsnorm", reference=far, metrics=False)).read_text()
    assert table_rows(md[md.index("## Literature check"):])["layernorm"][5] == "disagrees"


def test_missing_diverged_failed_are_named(main_report):
    md = main_report.read_text()
    lines = {line.split(":**")[0]: line for line in md.splitlines() if line.startswith("- **")}
    assert "layernorm seed 0" in lines["- **MISSING (not run yet, or interrupted)"]
    assert "post_norm seed 1 (loss is NaN at step 120)" in lines["- **DIVERGED"]
    assert "post_norm seed 2 (RuntimeError: out of memory)" in lines["- **FAILED"]
    assert "**Runs:** 6/9 completed;" in lines["- **Baseline"]
    run_lines = [line for line in md[md.index("## Per-run results"):].splitlines() if line.startswith("| ")][2:]
    assert len(run_lines) == 9 and any("| missing |" in line for line in run_lines)


def test_every_linked_plot_exists(main_report):
    md = main_report.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(Path(p).name for p in links) == sorted(
        ["paired_differences.png", "val_loss_vs_step.png", "val_loss_vs_flops.png", "train_loss_vs_step.png",
         "final_val_loss.png", "throughput.png"])
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
    assert "a\\|b" in rows and len(rows["a\\|b"]) == len(rows["base (baseline)"]) == 14
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
    assert "plots/final_val_loss.png" not in md and "paired_differences" not in md  # nothing to draw, nothing shown


@pytest.mark.parametrize("content, message", [
    (None, "not found"), ("{not json", "not valid JSON"), ('{"variants": []}', "malformed"),
    ('{"variants": {"a": {"runs": [{"status": "completed"}]}}}', "without a seed"),
    ('{"variants": {}, "seed_policy": {"min": 3, "max": 2}}', "seed_policy: SeedPolicy needs"),
    ('{"variants": {}, "equivalence_margin": -0.01}', "equivalence_margin must be a number >= 0"),
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


def test_the_analysis_loads_no_matplotlib_and_the_rendering_no_model():
    """reports.analysis is what the runner needs: no plotting; write_report renders results.json: no torch."""
    analysis = ("import sys, workbench.reports, workbench.reports.analysis.comparisons, "
                "workbench.reports.analysis.scale_verdicts, workbench.reports.analysis.scaling; "
                "print(sorted({'matplotlib', 'torch', 'lightning'} & set(sys.modules)))")
    rendering = ("import sys; from workbench.reports import write_report; "
                 "print(sorted({'torch', 'lightning', 'components', 'workbench.load', 'workbench.sample'} & set(sys.modules)))")
    for code in (analysis, rendering):
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


SAMPLES = {"prompt": "def f():\n", "max_new_tokens": 40, "variants": {
    "rmsnorm": {"seed": 0, "text": "    return 1\n", "note": None, "runs": "a"},
    "layernorm": {"seed": 1, "text": "pass|", "note": "ended with the end-of-document token", "runs": "b"},
    "post_norm": {"seed": None, "text": None, "why": "not loaded: no checkpoint", "runs": "c"}}}


def samples_md(tmp_path, samples) -> str:
    md = write_report(make_run_dir(tmp_path, MAIN, baseline="rmsnorm", metrics=False, samples=samples)).read_text()
    return md[md.index("## Samples"):].split("\n## ")[0] if "## Samples" in md else ""


def test_the_samples_section_renders_what_results_json_stores(tmp_path):
    section = samples_md(tmp_path, SAMPLES)
    rows = table_rows(section)
    assert rows["rmsnorm"][1:] == ["0", "····return 1\\\\n"]
    assert rows["layernorm"][1:] == ["1", "pass\\| (ended with the end-of-document token)"]
    assert rows["post_norm"][1:] == ["—", "not loaded: no checkpoint"]
    assert "Greedy continuation (40 new tokens) of the prompt `def f():\\n`" in section
    assert f"python -m workbench sample {tmp_path} --prompt TEXT --temperature 0" in section
    # a sample of a seed that is no longer a completed run (trained again, or discarded) is not shown
    stale = {**SAMPLES, "variants": {**SAMPLES["variants"], "layernorm": {**SAMPLES["variants"]["layernorm"], "seed": 0}}}
    assert "layernorm" not in table_rows(samples_md(tmp_path / "stale", stale))


def test_the_samples_section_is_left_out_without_a_loaded_model_and_notes_a_skipped_sweep(tmp_path):
    assert samples_md(tmp_path / "none", None) == ""
    not_loaded = {**SAMPLES, "variants": {"post_norm": SAMPLES["variants"]["post_norm"]}}
    assert samples_md(tmp_path / "not_loaded", not_loaded) == ""
    skipped = samples_md(tmp_path / "skipped", {**SAMPLES, "variants": {},
                                                 "skipped": {"largest_params": 30_000_000, "max_params": 25_000_000}})
    assert "Not sampled after the sweep: the largest variant has 30M parameters" in skipped and "(the limit is 25M)" in skipped
    for malformed in ({"variants": []}, {"prompt": 5, "max_new_tokens": "x", "variants": {"rmsnorm": "x"}},
                      {"variants": {"rmsnorm": {"seed": "0", "text": 7}, "layernorm": {"seed": True, "text": "t"}}}):
        assert samples_md(tmp_path / f"bad{len(str(malformed))}", malformed) == ""
    shown = samples_md(tmp_path / "odd", {"prompt": 5, "variants": {"rmsnorm": {"seed": 0, "text": 7, "why": 8}}})
    assert table_rows(shown)["rmsnorm"][1:] == ["—", "not sampled"]


def test_a_component_spec_is_one_config_difference_with_its_options():
    from workbench.reports.sections import config_diff

    moe = {"model": {"ffn": {"name": "moe", "n_experts": 4, "top_k": 2}, "dim": 8}}
    assert config_diff(moe, {"model": {"ffn": "swiglu", "dim": 8}}) == 'model.ffn="{name: moe, n_experts: 4, top_k: 2}"'
    assert config_diff({"model": {"ffn": "relu", "dim": 8}}, {"model": {"ffn": "swiglu", "dim": 8}}) == 'model.ffn="relu"'
