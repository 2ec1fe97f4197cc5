"""tune: {at: smallest} and the μP / CompleteP base of a sized variant: the base resolved from the smallest size,
the run groups a transfer expands to (grid points at the smallest size only), what is refused (one line naming
tune.at, exit 2), and end to end a two-size μP sweep that tunes the small size and trains the large one at its
optimum, with the report and the run summary saying so."""

from __future__ import annotations

import logging
import math

import pytest
import yaml

from e2e import results, write_experiment
from workbench.cli import main
from components.parametrization import multipliers
from workbench.config import ConfigError, load_experiment
from workbench.reports.analysis.tuning import Point, transferred, tune

GRID = "tune: {values: [1.0e-3, 1.0e-2, 1.0e-1], extend: 1, at: smallest}"
WIDTHS = "sizes: [{name: d64, dim: 64}, {name: d32, dim: 32}]"  # the smallest listed second: found by FLOPs/token
MUP = "  rms: {model: {parametrization: mup}}\n  ln: {model: {norm: layernorm, parametrization: mup}}"


def load(tmp_path, cache, extra: str, variants: str = MUP, *overrides):
    return load_experiment(write_experiment(tmp_path, cache, extra=extra, variants=variants), list(overrides), machine=False)


def test_a_sized_mup_variant_takes_its_smallest_sizes_dim_as_base_and_without_sizes_is_its_own(tmp_path, cache):
    exp = load(tmp_path, cache, WIDTHS)
    assert {n: v.model["base_dim"] for n, v in exp.variants.items()} == {f"{a}@{s}": 32 for a in ("rms", "ln")
                                                                          for s in ("d64", "d32")}
    assert all(v.model["base_layers"] is None for v in exp.variants.values())  # read only under completep
    assert exp.to_dict()["variants"]["rms@d64"]["model"]["base_dim"] == 32  # what experiment.yaml stores
    plain = load(tmp_path, cache, "")
    assert [v.model["base_dim"] for v in plain.variants.values()] == [None, None]
    own = load(tmp_path, cache, WIDTHS, "  rms: {model: {parametrization: mup, base_dim: 16}}")
    assert [v.model["base_dim"] for v in own.variants.values()] == [16, 16]  # a base set is kept
    std = load(tmp_path, cache, WIDTHS, "  rms: {}")
    assert [v.model["base_dim"] for v in std.variants.values()] == [None, None]  # standard reads no base


@pytest.mark.parametrize("sizes, base_head_dim, q_scales", [
    # heads kept (the preset's 2): head_dim grows 16 -> 32, the scores scale sqrt(16) / 32 at d64
    ("[{name: d64, dim: 64}, {name: d32, dim: 32}]", 16, {"d32": 1.0, "d64": math.sqrt(16 / 32)}),
    # head_dim kept at 16, heads grow 2 -> 4 (LLaMA families): the attention scale does not change
    ("[{name: d32, dim: 32, n_heads: 2}, {name: d64, dim: 64, n_heads: 4}]", 16, {"d32": 1.0, "d64": 1.0}),
    # both grow: the base is the smallest size's own head_dim (base_dim / n_heads of d96 would not divide)
    ("[{name: d32, dim: 32, n_heads: 2}, {name: d96, dim: 96, n_heads: 3}]", 16, {"d32": 1.0, "d96": math.sqrt(16 / 32)}),
])
def test_the_base_head_dim_is_the_smallest_sizes_whether_width_grows_heads_or_head_dim(tmp_path, cache, sizes,
                                                                                     base_head_dim, q_scales):
    exp = load(tmp_path, cache, f"sizes: {sizes}", "  rms: {model: {parametrization: mup}}")
    assert {v.model["base_head_dim"] for v in exp.variants.values()} == {base_head_dim}
    scales = {n.split("@")[1]: multipliers(v.transformer_config(vocab_size=64)).q_scale for n, v in exp.variants.items()}
    assert scales == pytest.approx(q_scales)
    assert exp.to_dict()["variants"]["rms@d32"]["model"]["base_head_dim"] == base_head_dim  # experiment.yaml stores it
    # a base width set by hand is not the smallest size: its head_dim keeps the config's own rule
    own = load(tmp_path, cache, f"sizes: {sizes}", "  rms: {model: {parametrization: mup, base_dim: 48}}")
    assert {v.model.get("base_head_dim") for v in own.variants.values()} == {None}


@pytest.mark.parametrize("variants, says", [
    ("  rms: {model: {parametrization: mup, base_head_dim: 0}}", "variants.rms.model.base_head_dim: invalid value 0: must be a positive integer"),
    ("  rms: {model: {base_head_dim: 16}}", "variants.rms.model.base_head_dim: invalid value 16: is read only under parametrization mup or completep"),
])
def test_a_bad_base_head_dim_is_one_line_naming_the_file_and_key(tmp_path, cache, variants, says):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, cache, "sizes: [{name: d32, dim: 32, n_heads: 2}, {name: d64, dim: 64, n_heads: 4}]", variants)
    message = str(err.value)
    assert "tiny.yaml: " + says in message and "\n" not in message


def test_completep_over_a_depth_sweep_takes_the_smallest_depth_and_width(tmp_path, cache):
    exp = load(tmp_path, cache, "sweep: {model.n_layers: [4, 2]}", "  rms: {model: {parametrization: completep}}")
    assert {n: (v.model["base_dim"], v.model["base_layers"]) for n, v in exp.variants.items()} == {
        "rms@n_layers4": (32, 2), "rms@n_layers2": (32, 2)}


def test_only_the_smallest_size_gets_grid_points_and_the_larger_mirrors_them(tmp_path, cache):
    exp = load(tmp_path, cache, f"{WIDTHS}\n{GRID}")
    for arch in ("rms", "ln"):
        small = [v for v in exp.variants.values() if v.cell == f"{arch}@d32"]
        large = [v for v in exp.variants.values() if v.cell == f"{arch}@d64"]
        assert all(v.point.tuning for v in small) and not any(v.point.tuning for v in large)
        assert {v.point.source for v in large} == {f"{arch}@d32"}
        assert sorted((v.point.value, v.point.step) for v in large) == sorted((v.point.value, v.point.step) for v in small)
        assert [v.point.value for v in small if v.point.step == 0] == [1e-3, 1e-2, 1e-1]
        assert all(v.train.lr == v.point.value and v.name == f"{v.cell}@lr={v.point.value:.4g}" for v in large)
    from workbench.estimate import planned_runs
    tuning = {p.variant.name: p.first for p in planned_runs(exp) if p.kind == "tuning"}
    assert sum(tuning.values()) == 6 and all(tuning[n] == 0 for n in exp.variants if "@d64@" in n)


def test_a_transferred_experiment_round_trips_through_experiment_yaml(tmp_path, cache):
    exp = load(tmp_path, cache, f"{WIDTHS}\n{GRID}")
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(exp.to_dict(), sort_keys=False))
    reloaded = load_experiment(again, machine=False)
    assert reloaded.to_dict() == exp.to_dict() and reloaded.tune == exp.tune and reloaded.tune.at == "smallest"
    assert {n: (v.point, v.to_dict()) for n, v in reloaded.variants.items()} == {
        n: (v.point, v.to_dict()) for n, v in exp.variants.items()}


@pytest.mark.parametrize("extra, variants, says", [
    (GRID, MUP, "no sizes"),
    (f"{WIDTHS}\n{GRID}", "  rms: {}", "changes model.dim, and variant 'rms' is under parametrization standard"),
    (f"sweep: {{model.n_layers: [1, 2]}}\n{GRID}", MUP, "changes model.n_layers, and variant 'rms' is under parametrization mup"),
    (f"sweep: {{train.seq_len: [16, 32]}}\n{GRID}", MUP, "changes train.seq_len"),
    (f"sizes: [{{name: a, dim: 32}}, {{name: b, dim: 64, rope_theta: 500.0}}]\n{GRID}", MUP, "changes model.rope_theta"),
    ("tune: {at: largest}", MUP, "invalid value 'largest'"),
])
def test_a_transfer_the_parametrization_cannot_carry_is_refused_naming_tune_at(tmp_path, cache, extra, variants, says):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, cache, extra, variants)
    message = str(err.value)
    assert "tune.at" in message and says in message and "\n" not in message and "allowed:" in message


def test_completep_transfers_across_depth_and_a_budget_sets_steps_per_size(tmp_path, cache):
    path = write_experiment(tmp_path, cache, steps=None, variants="  rms: {model: {parametrization: completep}}",
                            extra=f"sweep: {{model.n_layers: [1, 2]}}\nbudget: {{tokens_per_param: 1}}\n{GRID}")
    exp = load_experiment(path, machine=False)
    assert {v.point.source for v in exp.variants.values()} == {None, "rms@n_layers1"}
    assert len({v.train.steps for v in exp.variants.values()}) == 2  # the budget's steps are no change of size


def test_the_cli_exits_2_with_one_line(tmp_path, cache, capsys):
    path = write_experiment(tmp_path, cache, extra=f"{WIDTHS}\n{GRID}", variants="  rms: {}")
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tune.at" in err and "mup or completep" in err


def test_show_names_the_base_and_which_sizes_train_at_which_optimum(tmp_path, cache, capsys):
    path = write_experiment(tmp_path, cache, extra=f"{WIDTHS}\n{GRID}", variants=MUP)
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "grid 0.001 0.01 0.1: rms@d32, ln@d32" in out
    assert "no grid, verdict seeds at rms@d32's optimum: rms@d64" in out
    assert out.count("parametrization: mup, base_dim 32 (the smallest size's dim), base_head_dim 16 "
                     "(the smallest size's head_dim); width x2") == 2
    assert "runs: 6 tuning + 6 verdict" in out  # 3 grid points x 2 variants; 1 + 2 verdict seeds per variant


def test_a_transferred_tuning_is_its_sources_optimum_at_its_own_run_group():
    points = [Point(v, f"a@s@lr={v:g}", 0, (loss,), (False,)) for v, loss in ((1e-3, 3.0), (1e-2, 2.0), (1e-1, 2.5))]
    source = tune("a@s", "train.lr", points, 6.0)
    t = transferred(source, "a@l", {v: f"a@l@lr={v:g}" for v in (1e-3, 1e-2, 1e-1)})
    assert (t.best, t.best_group, t.complete, t.transferred_from, t.points) == (1e-2, "a@l@lr=0.01", True, "a@s", [])
    assert t.as_json()["origin"] == "transferred from a@s" and source.as_json()["origin"] == "tuned here"
    waiting = transferred(tune("a@s", "train.lr", points[:2] + [Point(1e-1, "x", 0, (None,), (False,))], 6.0), "a@l", {})
    assert not waiting.complete and waiting.best_group is None


@pytest.mark.e2e
def test_two_size_mup_sweep_tunes_the_small_size_and_trains_the_large_one_at_its_optimum(tmp_path, cache, caplog):
    path = write_experiment(tmp_path, cache, name="transfer", seeds=(0,), variants="  rms: {model: {parametrization: mup}}",
                            extra="sizes: [{name: d32, dim: 32}, {name: d64, dim: 64}]\n"
                                  "tune: {values: [1.0e-3, 1.0e-2, 1.0e-1], extend: 0, at: smallest}")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="workbench"):
        assert main(["run", str(path), "--out", str(out)]) == 0
    data = results(out)["variants"]
    trained = {n for n, e in data.items() if e["runs"]}
    small = {f"rms@d32@lr={v:g}" for v in (1e-3, 1e-2, 1e-1)}
    best = next(data[n] for n in small if "tuning" in data[n])
    chosen = f"rms@d64@lr={best['tuning']['best']:g}"
    assert trained == small | {chosen}  # the grid at the small size only, the large size at its optimum
    assert best["tuning"]["origin"] == "tuned here"
    assert data[chosen]["tuning"]["origin"] == "transferred from rms@d32"
    assert data[chosen]["tuned"]["from"] == "rms@d32" and data[chosen]["config"]["model"]["base_dim"] == 32
    assert [r["tuned_value"] for r in data[chosen]["runs"]] == [best["tuning"]["best"]]
    line = ("tuned at d32 only; d64 trained at d32's optimum, its own not measured (μP is to carry the learning rate "
            "across width: docs/findings.md measures how far it does)")
    assert line[0].upper() + line[1:] in (out / "report.md").read_text()
    assert line in caplog.text  # the run summary
