"""What TensorBoard serves of a sweep's event files, read through its own backend (tensorboard_api): the HPARAMS
view's default columns, the runs, and the merged CUSTOM SCALARS layout. Event files are written here by the
workbench's writers, without training (the e2e sweep in test_what_people_see checks a trained folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tensorboard_api import (custom_scalar_charts, default_hparam_columns, hparams_experiment, runs, session_groups,
                             tensorboard_client)
from workbench.training import tensorboard as tb

# Config keys that sort before "variant" and "verdict", the way real ones do (data/, model/, seed, train/).
CONFIG = {"data/corpus": "stdlib", "model/dim": 32, "model/n_layers": 2, "train/lr": 1e-3, "train/steps": 8}


def _run(root: Path, variant: str, norm: str, verdict: str, final: float, mfu: bool = False) -> None:
    from torch.utils.tensorboard import SummaryWriter

    folder = root / variant / "seed0"
    writer = SummaryWriter(str(folder))
    tb.write_layout(writer, mfu=mfu)
    for step in (4, 8):
        writer.add_scalar(tb.VAL_LOSS, final + 1.0 / step, step)
        writer.add_scalar(tb.TOKENS_PER_SEC, 12000.0 + step, step)
    writer.add_scalar(tb.FINAL_VAL_LOSS, final, 8)
    writer.close()
    tb.write_hparams(folder, {"variant": variant, "verdict": verdict, "seed": 0}, {**CONFIG, "model/norm": norm},
                     {"model/norm"}, completed=True)


@pytest.fixture
def sweep(tmp_path):
    _run(tmp_path, "rms", "rmsnorm", "baseline", 4.25)
    _run(tmp_path, "ln", "layernorm", "better", 4.125)
    return tmp_path


def test_hparams_view_opens_on_variant_and_verdict_and_its_metric_is_the_final_loss(sweep):
    client = tensorboard_client(sweep)
    experiment = hparams_experiment(client)
    columns = default_hparam_columns(experiment)
    assert columns[:4] == ["variant", "verdict", "seed", "model/norm"]
    names = [info["name"] for info in experiment["hparamInfos"]]
    assert not [n for n in names if "tokens" in n or "final" in n]  # results are not hyperparameters
    assert [m["name"]["tag"] for m in experiment["metricInfos"]] == [tb.FINAL_VAL_LOSS]
    groups = session_groups(client, experiment)
    assert groups["ln/seed0"]["hparams"][tb.column("verdict")] == "better"
    assert groups["ln/seed0"]["metrics"][tb.FINAL_VAL_LOSS] == pytest.approx(4.125, rel=1e-6)
    assert groups["rms/seed0"]["metrics"][tb.FINAL_VAL_LOSS] == pytest.approx(4.25, rel=1e-6)


def test_layout_lives_in_the_runs_no_chart_twice_and_mfu_only_where_a_run_logs_it(sweep):
    client = tensorboard_client(sweep)
    assert sorted(runs(client)) == ["ln/seed0", "rms/seed0"]  # no root run "." holding the layout
    charts = custom_scalar_charts(client)
    assert len(charts) == len(set(charts)) and ("compare variants", "validation loss") in charts
    assert not [c for c in charts if c[1] == "MFU"]  # no run has a known peak: the chart could only be empty
    _run(sweep, "gpu", "rmsnorm", "n/a", 4.0, mfu=True)
    charts = custom_scalar_charts(tensorboard_client(sweep))
    assert len(charts) == len(set(charts)) and [c for c in charts if c[1] == "MFU"] == [("compare variants", "MFU")]


def test_runs_are_variant_slash_seed_so_the_colour_regex_groups_them_by_variant():
    import re

    assert [re.match(tb.VARIANT_OF_RUN, run).group(1) for run in ("ln/seed0", "ln/seed1", "rms/seed0")] == ["ln", "ln", "rms"]


def test_an_unset_config_key_gets_no_column_rather_than_the_text_none(tmp_path):
    from workbench.training.run import hparam_values

    values = hparam_values({"data": {"max_bytes": None, "vocab_size": 400}, "model": {"norm": {"name": "rmsnorm", "eps": 1e-6}}})
    assert values["data/max_bytes"] is None and values["data/vocab_size"] == 400 and isinstance(values["model/norm"], str)
    tb.write_hparams(tmp_path / "a" / "seed0", {"variant": "a", "verdict": "baseline", "seed": 0}, values, set(), True)
    names = [info["name"] for info in hparams_experiment(tensorboard_client(tmp_path))["hparamInfos"]]
    assert "data/max_bytes" not in names and "data/vocab_size" in names
