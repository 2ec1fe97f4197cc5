"""The command line: bad input exits 2 with one line naming the culprit and writes nothing;
`components` lists every registered name; `show` trains nothing; `--help` stays fast."""

from __future__ import annotations

import sys

import pytest

from components import registry
from e2e import cli, results, write_experiment
from workbench.cli import main
from workbench.config import files
from workbench.config.files import SHIPPED_EXPERIMENTS

REQUIRED = {
    "norm": ["layernorm", "rmsnorm"], "norm_placement": ["pre", "post"], "ffn": ["relu", "gelu", "swiglu", "geglu", "reglu"],
    "positions": ["learned", "sinusoidal", "rope", "none"], "attention": ["naive", "sdpa", "flash"],
}

# (overrides, text the one-line message must contain)
BAD_OVERRIDES = [
    (["model.norm=rmsnrom"], "did you mean 'rmsnorm'"),
    (["model.nrom=layernorm"], "model.nrom"),
    (["train.steps=abc"], "train.steps"),
    (["train.steps=-5"], "train.steps"),
    (["model.n_heads=3"], "model.dim"),
    (["model.n_kv_heads=3"], "model.n_kv_heads"),
    (["model.attention=flash"], "flash"),
    (["model.ffn=swiglu2"], "available"),
    (["train.precision=fp8"], "train.precision"),
    (["data.source=files", "data.paths=[/nonexistent/dir/*.txt]"], "data.paths"),
    (["data.vocab_size=100000"], "data.vocab_size"),
    (["+model.foo=1"], "+model.foo"),
    (["seeds=[]"], "seeds"),
    (["baseline=nope"], "baseline"),
    (["train.lr=0"], "train.lr"),
    (["model.positions=alibi2"], "model.positions"),
    (["train.strategy=fsdp", "train.accelerator=cpu"], "train.strategy"),
    (["model.norm={name: rmsnorm, epsilon: 1e-5}"], "model.norm.epsilon: norm 'rmsnorm' has no option 'epsilon' (options: eps: float)"),
    (["model.norm.eps=abc"], "model.norm.eps: norm 'rmsnorm' option eps='abc' must be float"),
    (["model.norm=dyt"], "model.norm_eps"),  # llama.yaml's norm_eps, for a norm that takes no eps
    (["model.ffn={name: moe, top_k: 2.5}"], "model.ffn.top_k"),
]


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exp")
    return write_experiment(folder, folder / "cache", seeds=[0], steps=2, every=1)


@pytest.mark.parametrize("overrides,needle", BAD_OVERRIDES, ids=[" ".join(o) for o, _ in BAD_OVERRIDES])
def test_bad_override_exits_2_with_one_line_and_writes_nothing(exp, tmp_path, capsys, overrides, needle):
    out = tmp_path / "out"
    assert main(["run", str(exp), *overrides, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err
    assert "Traceback" not in err
    assert not out.exists()


def test_overrides_after_options_are_applied_in_order(exp, tmp_path, capsys):
    # `run EXP --out DIR key=value` is how people type it; the late override must not be dropped or refused.
    out = tmp_path / "out"
    assert main(["run", str(exp), "model.norm=layernorm", "--out", str(out), "model.norm=rmsnrom"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'rmsnorm'" in err and len(err.splitlines()) == 1 and not out.exists()
    with pytest.raises(SystemExit) as exc:
        main(["run", str(exp), "--out", str(out), "--bogus"])
    assert exc.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("content,needle", [
    ("name: [unclosed\n", "line"),
    ("- just\n- a list\n", "mapping"),
    ("name: x\nvariants: {a: {model: {dim: big}}}\n", "model.dim"),
])
def test_malformed_yaml_exits_2(tmp_path, capsys, content, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path.name) in err and needle in err
    assert not (tmp_path / "out").exists()


def test_missing_file_and_unknown_variant_exit_2(exp, tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert main(["run", str(exp), "--variant", "nope", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "rms" in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["show", "data", "run"])
@pytest.mark.parametrize("given,hint", [("ablate_norm", "the shipped ablate_norm is "),
                                        ("ablate_nrom.yaml", "did you mean the shipped ablate_norm, ")])
def test_missing_file_names_the_shipped_experiment(tmp_path, monkeypatch, capsys, command, given, hint):
    monkeypatch.chdir(tmp_path)  # outside the repository, as a new user types it
    assert main([command, given]) == 2
    err = capsys.readouterr().err.strip()
    shipped = SHIPPED_EXPERIMENTS / "ablate_norm.yaml"
    assert err == f"error: {given}: file not found; {hint}{shipped}" + ("?" if "did you" in hint else "")
    assert not (tmp_path / "runs").exists()


def test_missing_file_from_an_install_says_where_experiments_are(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(files, "SHIPPED_EXPERIMENTS", tmp_path / "absent")  # a wheel: no experiments/ beside the package
    monkeypatch.chdir(tmp_path)
    assert main(["show", "ablate_norm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ablate_norm: file not found; the shipped experiments are not installed")
    assert "experiments/" in err and "workbench init NAME" in err and len(err.splitlines()) == 1
    assert main(["show", str(tmp_path / "sub" / "mine.yaml")]) == 2  # a path of the user's own: no hint
    assert capsys.readouterr().err.strip().endswith("mine.yaml: file not found")


def test_real_process_exit_code_and_no_traceback(exp, tmp_path):
    proc = cli("run", str(exp), "model.norm=rmsnrom", "--out", str(tmp_path / "out"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip().count("\n") == 0 and "rmsnorm" in err and "Traceback" not in err


def test_components_lists_every_required_name(capsys):
    assert main(["components"]) == 0
    out = capsys.readouterr().out
    for kind, names in REQUIRED.items():
        assert f"{kind} (model.{kind}):" in out  # each kind with the model key that picks it
        for name in names:
            assert any(line.split()[:1] == [name] for line in out.splitlines()), (kind, name)
            assert registry.get(kind, name).description  # every entry has its one-line description


def test_show_prints_every_variant_and_trains_nothing(exp, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["show", str(exp)]) == 0
    out = capsys.readouterr().out
    assert "== rms ==" in out and "== ln ==" in out and "FLOPs/token" in out and "params" in out
    assert not (tmp_path / "runs").exists()


def test_show_takes_component_specs_from_the_command_line(exp, capsys):
    overrides = ["model.norm={name: rmsnorm, eps: 1e-5}", "variants.ln.model.ffn={name: moe, n_experts: 4}"]
    assert main(["show", str(exp), *overrides, "--full"]) == 0
    out = capsys.readouterr().out
    assert out.count("norm={name: rmsnorm, eps: 1e-05}") == 2 and "ffn={name: moe, n_experts: 4}" in out
    assert main(["show", str(exp), *overrides]) == 0  # the default view: ln shows only what differs from rms
    out = capsys.readouterr().out
    assert out.count("norm={name: rmsnorm, eps: 1e-05}") == 1 and "model.ffn: {name: moe, n_experts: 4}   (rms: swiglu)" in out


@pytest.mark.e2e
def test_spec_run_records_the_mapping_and_resumes_under_another_spelling(exp, tmp_path, capsys):
    out = tmp_path / "out"
    spec = "variants.rms.model.norm={name: rmsnorm, eps: 1e-5}"
    assert main(["run", str(exp), spec, "--variant", "rms", "--out", str(out)]) == 0
    config = results(out)["variants"]["rms"]["config"]["model"]
    assert config["norm"] == {"name": "rmsnorm", "eps": 1e-5} and config["norm_eps"] is None
    # the same spec written as an option override is the same run: kept, not refused as a changed config
    assert main(["run", str(exp), "variants.rms.model.norm.eps=1e-5", "--variant", "rms", "--out", str(out)]) == 0
    assert [r["status"] for r in results(out)["variants"]["rms"]["runs"]] == ["completed"]
    capsys.readouterr()
    assert main(["run", str(exp), "variants.rms.model.norm.eps=1e-4", "--variant", "rms", "--out", str(out)]) == 2
    assert "model.norm.eps: 1e-05 -> 0.0001" in capsys.readouterr().err


def test_help_does_not_import_lightning():
    code = "import sys, runpy; sys.argv=['workbench','--help']\ntry: runpy.run_module('workbench', run_name='__main__')\nexcept SystemExit: pass\nprint('lightning' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "False"
