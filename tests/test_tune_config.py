"""tune: in an experiment file and on the command line: the grids it expands to, and bad input refused in
one line (exit 2) naming the key."""

from __future__ import annotations

import math

import pytest
import yaml

from e2e import write_experiment
from workbench.cli import main
from workbench.config import ConfigError, load_experiment


def load(tmp_path, cache, extra: str, *overrides, variants=None):
    kwargs = {"variants": variants} if variants else {}
    return load_experiment(write_experiment(tmp_path, cache, extra=extra, **kwargs), list(overrides), machine=False)


def test_default_tune_is_five_points_in_x2_steps_around_each_variants_own_value(tmp_path, cache):
    exp = load(tmp_path, cache, "tune: {}", variants="  rms: {train: {lr: 1.0e-3}}\n  ln: {model: {norm: layernorm}}")
    for cell, base in (("rms", 1e-3), ("ln", 3e-3)):
        core = sorted(v.point.value for v in exp.variants.values() if v.cell == cell and v.point.step == 0)
        assert core == pytest.approx([base * m for m in (0.25, 0.5, 1, 2, 4)])
        steps = sorted(v.point.step for v in exp.variants.values() if v.cell == cell)
        assert steps == [-2, -1, 0, 0, 0, 0, 0, 1, 2]  # two extensions per side declared ahead
    for name, v in exp.variants.items():
        assert v.train.lr == v.point.value and name == f"{v.cell}@lr={v.point.value:.4g}"


def test_extensions_repeat_each_edges_own_step(tmp_path, cache):
    exp = load(tmp_path, cache, "tune: {values: [1.0e-3, 3.0e-3, 1.0e-2], extend: 2}")
    values = sorted(v.point.value for v in exp.variants.values() if v.cell == "rms")
    assert values == pytest.approx([1e-3 / 9, 1e-3 / 3, 1e-3, 3e-3, 1e-2, 1e-2 * 10 / 3, 1e-2 * (10 / 3) ** 2], rel=1e-5)


def test_sizes_times_tune_gives_each_variant_at_each_size_its_own_grid(tmp_path, cache):
    exp = load(tmp_path, cache, "sizes: [{name: s1, dim: 32}, {name: s2, dim: 64}]\ntune: {multipliers: [0.5, 1, 2], extend: 0}")
    assert sorted(exp.variants) == sorted(f"{a}@{s}@lr={v:.4g}" for a in ("rms", "ln") for s in ("s1", "s2")
                                          for v in (1.5e-3, 3e-3, 6e-3))
    assert {v.cell for v in exp.variants.values()} == {"rms@s1", "rms@s2", "ln@s1", "ln@s2"}
    assert sorted(exp.select(["rms@s2"])) == sorted(n for n in exp.variants if n.startswith("rms@s2@"))
    assert len(exp.select(["rms"])) == 6


def test_a_tuned_experiment_round_trips_through_experiment_yaml(tmp_path, cache):
    exp = load(tmp_path, cache, "tune: {values: [1.0e-3, 3.0e-3, 1.0e-2], seeds: 2}", "seeds=[0,1,2]")
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(exp.to_dict(), sort_keys=False))
    reloaded = load_experiment(again, machine=False)
    assert reloaded.to_dict() == exp.to_dict() and reloaded.tune == exp.tune
    assert {n: (v.point, v.to_dict()) for n, v in reloaded.variants.items()} == {
        n: (v.point, v.to_dict()) for n, v in exp.variants.items()}
    assert reloaded.tuning_seeds() == [0, 1]


def test_command_line_sets_and_clears_the_grid(tmp_path, cache):
    exp = load(tmp_path, cache, "tune: {}", "tune.values=[1.0e-3,2.0e-3,4.0e-3]", "tune.extend=0")
    assert sorted({v.point.value for v in exp.variants.values()}) == [1e-3, 2e-3, 4e-3]
    plain = load(tmp_path, cache, "tune: {}", "tune=null")
    assert plain.tune is None and sorted(plain.variants) == ["ln", "rms"]


def test_another_key_than_the_learning_rate_can_be_tuned(tmp_path, cache):
    exp = load(tmp_path, cache, "tune: {key: train.weight_decay, values: [0.01, 0.1, 1.0], extend: 0}")
    assert sorted(exp.variants) == sorted(f"{a}@weight_decay={v:g}" for a in ("rms", "ln") for v in (0.01, 0.1, 1.0))
    assert all(v.train.weight_decay == v.point.value and v.train.lr == 3e-3 for v in exp.variants.values())


@pytest.mark.parametrize("extra, key", [
    ("tune: {values: [1.0e-3, 3.0e-3]}", "tune.values"),  # two points cannot place a minimum
    ("tune: {values: [1.0e-3, -3.0e-3, 1.0e-2]}", "tune.values"),
    ("tune: {values: [1.0e-3, 1.0e-3, 1.0e-2]}", "tune.values"),
    ("tune: {multipliers: [0, 1, 2]}", "tune.multipliers"),
    ("tune: {values: [1.0e-3, 3.0e-3, 1.0e-2], multipliers: [1, 2, 4]}", "tune.values"),
    ("tune: {key: train.steps}", "tune.key"),
    ("tune: {key: train.lrr}", "tune.key"),
    ("tune: {seeds: 0}", "tune.seeds"),
    ("tune: {extend: 9}", "tune.extend"),
    ("tune: {values: [a, b, c]}", "tune.values"),
    ("tune: [1, 2, 3]", "tune"),
])
def test_a_bad_grid_is_one_line_naming_the_key_exit_2(tmp_path, cache, capsys, extra, key):
    exp = write_experiment(tmp_path, cache, extra=extra)
    assert main(["show", str(exp)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and key in err, err


def test_a_grid_of_values_refuses_a_variant_or_override_that_also_sets_the_key(tmp_path, cache, capsys):
    exp = write_experiment(tmp_path, cache, extra="tune: {values: [1.0e-3, 3.0e-3, 1.0e-2]}",
                           variants="  rms: {}\n  ln: {model: {norm: layernorm}, train: {lr: 1.0e-2}}")
    assert main(["show", str(exp)]) == 2
    err = capsys.readouterr().err
    assert "tune.values" in err and "variants.ln.train.lr" in err
    plain = write_experiment(tmp_path, cache, name="p", extra="tune: {values: [1.0e-3, 3.0e-3, 1.0e-2]}")
    assert main(["show", str(plain), "train.lr=0.01"]) == 2 and "tune.values" in capsys.readouterr().err
    # multipliers multiply each variant's own value: no conflict
    assert main(["show", str(exp), "tune={multipliers: [0.5, 1, 2]}"]) == 0


def test_a_multiplied_value_out_of_its_range_names_the_tuned_key(tmp_path, cache):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, cache, "tune: {key: train.beta2, multipliers: [0.5, 1, 2]}")
    assert "train.beta2" in str(err.value) and "tune.multipliers" in str(err.value)


def test_too_few_seeds_for_the_tuning_seeds_is_refused(tmp_path, cache, capsys):
    exp = write_experiment(tmp_path, cache, extra="tune: {seeds: 3}", seeds=[0, 1])
    assert main(["show", str(exp)]) == 2
    assert "tune.seeds" in capsys.readouterr().err


def test_grid_values_are_clean_decimals(tmp_path, cache):
    exp = load(tmp_path, cache, "tune: {multipliers: [0.3, 1, 3]}", "train.lr=0.003")
    values = sorted({v.point.value for v in exp.variants.values() if v.point.step == 0})
    assert values == [0.0009, 0.003, 0.009] and all(math.isfinite(v) for v in values)


def test_an_extension_beyond_the_keys_range_is_not_declared_and_the_grid_ends_there(tmp_path, cache):
    exp = load(tmp_path, cache, "tune: {key: train.beta2, values: [0.9, 0.95, 0.99], extend: 2}")
    values = sorted({v.point.value for v in exp.variants.values()})
    assert max(values) == 0.99 and min(values) < 0.9  # the low side extends, 0.99 x (0.99/0.95) > 1 is dropped
    assert all(0 <= v < 1 for v in values)
