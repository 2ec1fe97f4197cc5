"""An A/A control in results.json (``"control": "aa"``) as the report reads it: not a variant of the design (no
rung, no scale pair, no tuning row), compared with the run group it copies, and shown beside the verdicts as the
experiment's false-positive check. Synthetic run folders with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.reports import ReportError, compare, load_results, scale_summary, write_report
from workbench.reports.control_section import control_section

BASE = [3.30, 3.32, 3.28]
SMALL = [0.003, -0.003, 0.0]


def group(losses: list[float], **keys) -> dict:
    return {"flops_per_token": 1000, "config": {}, **keys,
            "runs": [{"seed": s, "status": "completed", "final_val_loss": x, "train_flops": 1e12} for s, x in enumerate(losses)]}


def write(root: Path, variants: dict, **top) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({"experiment": "x", "baseline": "base", "seeds": [0, 1, 2],
                                                   "controls": ["aa"], "variants": variants, **top}))
    return root


def shifted(delta: float) -> list[float]:
    return [b + delta + e for b, e in zip(BASE, SMALL)]


def test_the_twin_is_a_control_not_a_variant(tmp_path):
    run_dir = write(tmp_path, {"base": group(BASE), "v": group(shifted(-0.1)), "base~aa": group(shifted(0.0), control="aa")})
    results = load_results(run_dir)
    assert results.archs == ["base", "v"] and [v.name for v in results.controls] == ["base~aa"]
    twin = results.variant("base~aa")
    assert twin.control == "aa" and results.baseline_for(twin).name == "base"
    got = compare(results, run_dir)
    assert got["base~aa"].baseline == "base" and got["v"].baseline == "base"
    assert [v.name for v in results.design().variants] == ["base", "v"] and results.design().controls == []


def test_a_malformed_control_is_refused_in_one_line(tmp_path):
    write(tmp_path, {"base": group(BASE), "base~aa": group(BASE, control=["aa"])})
    with pytest.raises(ReportError, match=r"variants\.base~aa\.control must be a string"):
        load_results(tmp_path)


def test_in_a_ladder_the_twin_is_no_rung(tmp_path):
    run_dir = write(tmp_path, {"base": group(BASE), "r1": group(shifted(-0.1)), "base~aa": group(shifted(0.0), control="aa")},
                    ladder=True)
    results = load_results(run_dir)
    twin = results.variant("base~aa")
    assert results.previous_rung(twin).name == "base" and results.first_rung(twin).name == "base"
    assert compare(results, run_dir)["r1"].baseline == "base"
    md = write_report(run_dir).read_text()
    ladder = md[md.index("## Ladder"):md.index("## How to read this")]
    assert "| r1 |" in ladder and "base~aa" not in ladder


def test_the_twin_is_in_no_scale_pair(tmp_path):
    variants = {}
    for size in ("s0", "s1"):
        variants[f"base@{size}"] = group(BASE, arch="base", size=size)
        variants[f"v@{size}"] = group(shifted(-0.1), arch="v", size=size)
        variants[f"base~aa@{size}"] = group(shifted(0.2), arch="base~aa", size=size, control="aa")
    run_dir = write(tmp_path, variants, sizes=["s0", "s1"])
    results = load_results(run_dir)
    scale = scale_summary(results, compare(results, run_dir))
    assert list(scale["by_arch"]) == ["v"]
    assert [(p["first"], p["second"]) for p in scale["agreement"]["by_size"][0]["list"]] == [("base", "v")]
    md = write_report(run_dir).read_text()
    section = md[md.index("### A/A control"):md.index("## How to read this")]
    assert "- **A/A control at s0:** base vs itself under a second seed stream (base~aa@s0): **worse**" in section
    assert "- **A/A control at s1:** base vs itself" in section
    assert section.count("Here it is one: read this experiment's other better/worse verdicts") == 2


def test_the_line_beside_the_verdicts(tmp_path):
    run_dir = write(tmp_path, {"base": group(BASE), "v": group(shifted(-0.1)),
                               "base~aa": group([b + e for b, e in zip(BASE, [0.0001, -0.0001, 0.0])], control="aa")})
    results = load_results(run_dir)
    comparisons = compare(results, run_dir)
    c = comparisons["base~aa"]
    assert c.verdict == "equivalent"
    [heading, para] = control_section(results, comparisons)
    line = "".join(s for _, s in para.spans)
    assert heading.text == "A/A control"
    assert line.startswith("A/A control: base vs itself under a second seed stream (base~aa): equivalent, Δ +0.0000 [")
    assert line.endswith("over 3 paired seeds — the measured false-positive check of this experiment "
                         "(a better/worse here is a false positive).")
    md = write_report(run_dir).read_text()
    assert md.index("## Results") < md.index("### A/A control") < md.index("## How to read this")
    assert control_section(results, {})[1].spans[-1][1].startswith("not compared yet")
    no_twin = write(tmp_path / "plain", {"base": group(BASE), "v": group(shifted(-0.1))})
    assert control_section(load_results(no_twin), {}) == []
    assert "A/A control" not in write_report(no_twin).read_text()


def test_a_tuned_twin_is_compared_at_its_optimum_and_kept_out_of_the_tuning_section(tmp_path):
    from test_tuning_report import BOWL, make_tuned_dir, section

    run_dir = make_tuned_dir(tmp_path, {("rmsnorm", None): BOWL, ("layernorm", None): BOWL, ("rmsnorm~aa", None): BOWL})
    data = json.loads((run_dir / "results.json").read_text())
    for name, entry in data["variants"].items():
        if name.startswith("rmsnorm~aa@"):
            entry["control"] = "aa"
    (run_dir / "results.json").write_text(json.dumps(data))
    results = load_results(run_dir)
    assert "rmsnorm~aa" in results.tuning  # the runner picks the twin's optimum from it
    assert [v.name for v in results.controls] == ["rmsnorm~aa@lr=0.003"]
    assert compare(results, run_dir)["rmsnorm~aa@lr=0.003"].baseline == "rmsnorm@lr=0.003"
    assert "rmsnorm~aa" not in results.design().tuning and results.design().grid
    md = write_report(run_dir).read_text()
    assert "rmsnorm~aa" not in section(md, "Learning rate") and "| layernorm |" in section(md, "Learning rate")
    assert "**A/A control:** rmsnorm vs itself under a second seed stream (rmsnorm~aa@lr=0.003)" in md


def test_an_undecided_aa_gets_the_next_seed_like_a_variant(tmp_path):
    from types import SimpleNamespace

    from workbench.post_sweep import undecided
    from workbench.results import ResultsStore

    noisy = [b + e for b, e in zip(BASE, [0.2, -0.2, 0.05])]  # no verdict yet: another seed is due
    run_dir = write(tmp_path, {"base": group(BASE), "v": group(shifted(-0.1)), "base~aa": group(noisy, control="aa")},
                    seed_policy={"min": 3, "max": 5, "alpha": 0.05})
    experiment = SimpleNamespace(variants=dict.fromkeys(["base", "v", "base~aa"]))
    assert undecided(experiment, ResultsStore(run_dir), ["base", "v", "base~aa"]) == ["base", "base~aa"]
    stored = json.loads((run_dir / "results.json").read_text())["variants"]
    assert stored["base~aa"]["comparison"]["verdict"] == "undecided" and stored["v"]["comparison"]["verdict"] == "better"


def test_rebuild_keeps_the_twins_after_the_variants_while_experiment_yaml_lists_the_control(tmp_path):
    from workbench.run_folder import rebuild_results

    def register(name: str, **info) -> None:
        (tmp_path / name / "seed0").mkdir(parents=True)
        (tmp_path / name / "variant.json").write_text(json.dumps({"config": {}, **info}))
        (tmp_path / name / "seed0" / "record.json").write_text(json.dumps({"seed": 0, "status": "completed",
                                                                           "final_val_loss": 3.0}))

    for arch, control in (("a", None), ("b", None), ("a~aa", "aa")):
        for size in ("s1", "s0"):
            for value in (0.003, 0.001):
                register(f"{arch}@{size}@lr={value:.4g}", arch=arch, size=size, tuned={"key": "train.lr", "value": value,
                                                                                    "step": 0},
                         **({"control": control} if control else {}))
    spec = {"name": "x", "baseline": "a", "seeds": [0], "tune": {"key": "train.lr", "values": [0.001, 0.003]},
            "variants": {"a@s0": {}, "a@s1": {}, "b@s0": {}, "b@s1": {}}}
    (tmp_path / "experiment.yaml").write_text(json.dumps({**spec, "controls": ["aa"]}))
    data = rebuild_results(tmp_path)
    assert data["controls"] == ["aa"]
    assert list(data["variants"]) == [f"{cell}@lr={v}" for cell in ("a@s0", "a@s1", "b@s0", "b@s1", "a~aa@s0", "a~aa@s1")
                                      for v in ("0.001", "0.003")]
    assert data["variants"]["a~aa@s1@lr=0.003"]["control"] == "aa"
    (tmp_path / "experiment.yaml").write_text(json.dumps(spec))  # the control taken out: left out, as a variant is
    data = rebuild_results(tmp_path)
    assert data["controls"] == [] and not any("~" in name for name in data["variants"])
