"""``workbench coordcheck``: the probe against a hand-written forward, the verdicts, and the acceptance check
(under mup every kind stays within 2x over widths 64..512 after a few steps; under standard the logits grow
more than 3x), completep over depth, the JSON shape, the fast path and bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from components import TransformerConfig, TransformerLM
from e2e import REPO, write_experiment
from workbench.cli import main
from workbench.coordcheck.measure import Sweep, sweep_models
from workbench.coordcheck.probe import KINDS, ActivationProbe
from workbench.coordcheck.verdict import spread, verdict

WIDTHS = ["64", "128", "256", "512"]
# 2 layers, 4 sequences of 16 tokens, 3 steps at the CPU preset's lr 3e-3, one seed: seconds per sweep.
SMALL = ["model.n_layers=2", "train.batch_size=4", "train.seq_len=16", "--steps", "3", "--seeds", "1"]


@pytest.fixture
def exp(tmp_path, cache):
    return write_experiment(tmp_path, cache, variants="  rms: {}", seeds=(0,))


def coordcheck_json(exp, tmp_path, capsys, *args: str) -> dict:
    assert main(["coordcheck", str(exp), *SMALL, *args, "--json", "--out", str(tmp_path / "plot.png")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads(out)


@pytest.mark.e2e
def test_mup_keeps_every_kind_within_2x_over_widths_while_standard_logits_grow_over_3x(exp, tmp_path, capsys):
    standard = coordcheck_json(exp, tmp_path, capsys, "--widths", *WIDTHS)
    mup = coordcheck_json(exp, tmp_path, capsys, "--widths", *WIDTHS, "model.parametrization=mup")
    logits = standard["scales"]["logits"]
    assert logits[-1] / logits[0] > 3 and standard["verdicts"]["logits"] == "growing", standard
    for kind, values in mup["scales"].items():
        assert max(values) / min(values) <= 2, (kind, values)
    assert set(mup["verdicts"].values()) == {"flat"}, mup
    assert mup["parametrization"] == "mup" and standard["parametrization"] == "standard"


@pytest.mark.e2e
def test_mup_is_flat_over_widths_with_tied_embeddings_learned_positions_and_biases(tmp_path, cache, capsys):
    """GPT-2's family: the tied LM head is the embedding (input role, logits x 1/m_d), biases, LayerNorm, GELU."""
    exp = write_experiment(tmp_path, cache, variants="  gpt2: {}", baseline="gpt2", seeds=(0,))
    exp.write_text(exp.read_text().replace("model/llama.yaml", "model/gpt2.yaml"))
    mup = coordcheck_json(exp, tmp_path, capsys, "--widths", *WIDTHS, "model.parametrization=mup")
    assert set(mup["verdicts"].values()) == {"flat"}, mup


@pytest.mark.e2e
def test_completep_is_flat_over_depth_where_standard_residual_stream_grows(exp, tmp_path, capsys):
    depths = ["--depths", "2", "4", "8", "16", "model.dim=64"]
    completep = coordcheck_json(exp, tmp_path, capsys, *depths, "model.parametrization=completep")
    standard = coordcheck_json(exp, tmp_path, capsys, *depths)
    assert completep["depths"] == [2, 4, 8, 16]
    assert set(completep["verdicts"].values()) == {"flat"}, completep
    block = standard["scales"]["block"]
    assert block[-1] / block[0] > 2 and standard["verdicts"]["block"] == "growing", standard


@pytest.mark.e2e
def test_json_is_all_of_stdout_and_the_command_never_imports_lightning(exp, tmp_path):
    script = ("import sys; from workbench.cli import main; code = main(sys.argv[1:]); "
              "sys.stderr.write('LIGHTNING %s' % any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules)); "
              "sys.exit(code)")
    args = ["coordcheck", str(exp), *SMALL, "--widths", "32", "64", "--steps", "2", "--json", "--out", str(tmp_path / "p.png")]
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith("LIGHTNING False")
    result = json.loads(done.stdout)  # nothing else on stdout
    assert list(result) == ["parametrization", "widths", "scales", "verdicts"]
    assert result["widths"] == [32, 64]
    assert list(result["scales"]) == list(KINDS) and list(result["verdicts"]) == list(KINDS)
    assert all(len(v) == 2 and all(isinstance(x, float) and x > 0 for x in v) for v in result["scales"].values())
    assert set(result["verdicts"].values()) <= {"flat", "growing", "shrinking"}


@pytest.mark.e2e
def test_the_table_names_the_base_it_chose_and_says_what_flat_means(exp, tmp_path, capsys):
    out_png = tmp_path / "mup.png"
    assert main(["coordcheck", str(exp), *SMALL, "--widths", "32", "64", "--steps", "1", "model.parametrization=mup",
                 "--out", str(out_png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "parametrization mup (base_dim 32, the smallest width given: model.base_dim is unset)" in lines[0]
    assert lines[2].split() == ["width", "->", "32", "64", "max/min", "verdict"]
    assert [line.split()[0] for line in lines[3:8]] == list(KINDS)
    assert lines[-1] == f"plot: {out_png}" and out_png.stat().st_size > 10_000


@pytest.mark.parametrize("args, needle", [
    (["--widths", "64", "65"], "--widths: 65 is not divisible by model.n_heads 2"),
    (["--widths", "64", "66"], "--widths: 66: model.head_dim=33"),
    (["--widths", "64", "128", "--depths", "2", "4"], "--widths/--depths: both given"),
    (["--steps", "0"], "--steps: invalid value '0' (allowed: an integer >= 1)"),
    (["--steps", "ten"], "--steps: invalid value 'ten'"),
    (["--seeds", "-1"], "--seeds: invalid value '-1'"),
    (["--widths", "64"], "--widths: 64: a check compares at least two sizes"),
    (["--depths", "2", "x"], "--depths: invalid value 'x'"),
    (["--out", "plot.jpg"], "--out: 'plot.jpg': the plot is a PNG (allowed: a file name ending in .png)"),
    (["model.parametrization=mu"], "model.parametrization"),
])
def test_bad_input_is_one_line_and_exit_2(exp, capsys, args, needle):
    assert main(["coordcheck", str(exp), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_flags_alone_mean_their_defaults_and_overrides_caught_in_a_size_list_stay_overrides(tmp_path):
    from workbench.cli import _parser
    from workbench.coordcheck.cli import DEFAULT_DEPTHS, DEFAULT_WIDTHS, parse_request

    def request(*args):
        return parse_request(_parser().parse_args(["coordcheck", "exp.yaml", *args]))

    assert (request().axis, request().sizes, request().steps, request().seeds) == ("width", DEFAULT_WIDTHS, 3, 2)
    assert (request("--depths").axis, request("--depths").sizes) == ("depth", DEFAULT_DEPTHS)
    moved = request("model.norm=layernorm", "--widths", "256", "64", "train.lr=0.01", "--steps", "4")
    assert moved.sizes == (64, 256) and moved.steps == 4
    assert moved.overrides == ("model.norm=layernorm", "train.lr=0.01")


def test_verdicts_from_the_max_min_ratio():
    assert verdict([1.0, 1.5, 2.0]) == "flat"  # exactly 2x is flat
    assert verdict([1.0, 1.5, 2.01]) == "growing"
    assert verdict([3.0, 1.0, 1.4]) == "shrinking"
    assert verdict([1.0, math.nan, 1.0]) == "diverged" and spread([1.0, math.inf]) is None
    assert spread([0.0, 1.0]) == math.inf and verdict([0.0, 1.0]) == "growing"
    assert spread([0.0, 0.0]) == 1.0 and spread([2.0, 8.0, 4.0]) == 4.0


def test_base_shape_is_the_smallest_size_only_where_the_config_leaves_it_unset():
    model = {"dim": 64, "n_layers": 2, "parametrization": "mup", "base_dim": None, "base_layers": None}
    models, note = sweep_models(model, Sweep("width", (64, 256)))
    assert [m["dim"] for m in models] == [64, 256] and {m["base_dim"] for m in models} == {64} and "base_dim 64" in note
    models, note = sweep_models({**model, "base_dim": 128}, Sweep("width", (64, 256)))
    assert {m["base_dim"] for m in models} == {128} and note == "base_dim 128, from model.base_dim"
    models, note = sweep_models({**model, "parametrization": "standard"}, Sweep("width", (64, 256)))
    assert {m["base_dim"] for m in models} == {None} and note is None
    models, note = sweep_models({**model, "parametrization": "completep"}, Sweep("depth", (4, 2, 8)))
    assert [m["n_layers"] for m in models] == [4, 2, 8] and {m["base_layers"] for m in models} == {2}
    assert {m["base_dim"] for m in models} == {None} and "base_layers 2" in note  # one width: its own base


@pytest.mark.parametrize("shape", [{}, {"parametrization": "mup", "base_dim": 8},
                                   {"parametrization": "completep", "base_dim": 8, "base_layers": 1}], ids=str)
def test_probe_measures_each_kind_as_a_hand_written_forward_does(shape):
    """The hooks against the pre-norm block written out by hand, in float64: sublayer outputs before the
    completep branch multiplier, the stream after it, the logits after mup's output multiplier."""
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=50, max_seq_len=8, dim=16, n_layers=3, n_heads=2, **shape)
    model = TransformerLM(config, init_seed=0).double()
    branch = 1 / 3 if shape.get("parametrization") == "completep" else 1.0
    output = 0.5 if shape else 1.0
    tokens = torch.randint(0, 50, (2, 8))
    measured = ActivationProbe(model).measure(tokens)

    def mean_abs(t):
        return t.abs().mean().item()

    with torch.no_grad():
        x = model.positions.embed(model.embed(tokens), 0)
        expected = {"embedding": mean_abs(x), "attention": 0.0, "ffn": 0.0}
        for block in model.blocks:
            a = block.attn(block.attn_norm(x), model.positions, 0)
            f = block.ffn(block.ffn_norm(x + branch * a))
            x = x + branch * a + branch * f
            for kind, value in (("attention", a), ("ffn", f)):
                expected[kind] += mean_abs(value) / config.n_layers
        expected["block"] = mean_abs(x)  # the last block's output only
        expected["logits"] = mean_abs(model.lm_head(model.norm(x) * output))
    assert list(measured) == list(KINDS)
    for kind in KINDS:
        assert measured[kind] == pytest.approx(expected[kind], rel=1e-12), kind
