"""Bad input refused in one line with exit 2 (issue 29, second pass): truncated compressed corpora,
component options checked like their model keys, unbounded sizes, odd paths and names, and the
command line's own values."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest

from workbench.data import DataError, DataSettings, prepare

HAVE_ZSTD = importlib.util.find_spec("zstandard") is not None
TEXT = "".join(f"line {i}: {i * 7919 % 10007} words of a corpus\n" for i in range(20_000)).encode()


# --- D5: a truncated compressed file is refused, never read as a shorter document ---------------------

def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def _cuts(blob: bytes, first: int = 0) -> list[int]:
    """Cut points inside a frame (the first ``first`` bytes are a complete one): in the header, the
    middle, the last bytes."""
    rest = len(blob) - first
    return sorted({first + 2, first + 7, first + rest // 2, len(blob) - 4, len(blob) - 1} | ({first // 2} if first else set()))


@pytest.mark.skipif(not HAVE_ZSTD, reason="zstandard is not installed")
@pytest.mark.parametrize("suffix", [".txt.zst", ".jsonl.zst"])
def test_a_truncated_zstd_file_is_refused_naming_it(tmp_path, suffix):
    data = b"".join(b'{"text": "record %d"}\n' % i for i in range(5000)) if suffix == ".jsonl.zst" else TEXT
    first = _zstd(data[: len(data) // 2])
    blob = first + _zstd(data[len(data) // 2:])  # two frames, as pzstd writes
    for cut in _cuts(blob, len(first)):
        path = tmp_path / f"cut{cut}{suffix}"
        path.write_bytes(blob[:cut])
        with pytest.raises(DataError) as err:
            prepare(DataSettings(source="files", paths=[path.name], cache_dir=str(tmp_path / f"c{cut}")), tmp_path)
        message = str(err.value)
        assert err.value.key == "data.paths" and path.name in message and "truncated" in message
        assert "\n" not in message


@pytest.mark.skipif(not HAVE_ZSTD, reason="zstandard is not installed")
def test_concatenated_zstd_frames_are_read_whole(tmp_path):
    from workbench.data.formats import read_documents

    path = tmp_path / "two.txt.zst"
    path.write_bytes(_zstd(TEXT) + _zstd(b"the second frame\n"))
    (doc,) = read_documents(path, "two", "text")
    assert doc.data == TEXT + b"the second frame\n"


def test_a_truncated_gzip_file_is_refused_at_any_cut(tmp_path):
    blob = gzip.compress(TEXT, mtime=0)
    for cut in _cuts(blob):
        path = tmp_path / f"cut{cut}.txt.gz"
        path.write_bytes(blob[:cut])
        with pytest.raises(DataError) as err:
            prepare(DataSettings(source="files", paths=[path.name], cache_dir=str(tmp_path / f"c{cut}")), tmp_path)
        assert path.name in str(err.value) and "truncated" in str(err.value) and "\n" not in str(err.value)


# --- D7: a component option is checked like its model key, by the range its factory declares -----------

import inspect  # noqa: E402
import math  # noqa: E402
import typing  # noqa: E402

from torch import nn  # noqa: E402

from components import registry  # noqa: E402
from components.contract import KINDS, Bound, bounds_of  # noqa: E402
from components.registry import InvalidOption, Registry, _hints  # noqa: E402
from workbench.cli import main  # noqa: E402

BAD_NUMBERS = [-1, 0, -1e-9, math.nan, math.inf, -math.inf]


def _numeric_options():
    """(kind, name, option, annotation) of every int or float option of every built-in component."""
    found = []
    for kind in registry.kinds():
        for entry in registry.entries(kind):
            if not entry.factory.__module__.startswith("components."):
                continue
            hints = _hints(entry.factory)
            for option in registry.options(kind, entry.name, KINDS[kind].sizes if kind in KINDS else ()):
                hint = hints.get(option)
                bare = {typing.get_args(a)[0] if bounds_of(a) else a for a in (typing.get_args(hint) or (hint,))
                        if typing.get_origin(a) is not typing.Union} - {type(None)}
                if bare & {int, float} or bounds_of(hint) or any(bounds_of(a) for a in typing.get_args(hint)):
                    found.append((kind, entry.name, option, hint))
    return found


def test_every_numeric_option_of_a_builtin_declares_its_range_and_its_default_is_in_it():
    options = _numeric_options()
    assert {(k, n, o) for k, n, o, _ in options} >= {
        ("norm", "rmsnorm", "eps"), ("norm", "layernorm", "eps"), ("norm", "dyt", "alpha_init"),
        ("positions", "rope", "theta"), ("positions", "sinusoidal", "base"), ("positions", "sinusoidal", "init_std"),
        ("ffn", "moe", "n_experts"), ("ffn", "moe", "top_k"), ("ffn", "moe", "aux_loss_coef")}
    for kind, name, option, hint in options:
        bounds = bounds_of(hint) or [b for a in typing.get_args(hint) for b in bounds_of(a)]
        assert bounds, f"{kind} '{name}' option {option} declares no range (Annotated[..., Bound(...)])"
        default = inspect.signature(registry.get(kind, name).factory).parameters[option].default
        assert default is None or all(b.accepts(default) for b in bounds), (kind, name, option, default)


@pytest.mark.parametrize("kind,name,option", [("norm", "rmsnorm", "eps"), ("norm", "layernorm", "eps"),
                                               ("norm", "dyt", "alpha_init"), ("positions", "rope", "theta"),
                                               ("positions", "sinusoidal", "base"), ("positions", "sinusoidal", "init_std"),
                                               ("ffn", "moe", "n_experts"), ("ffn", "moe", "top_k")])
def test_an_option_outside_its_range_is_refused_in_one_line(kind, name, option):
    for value in BAD_NUMBERS:
        if option in ("n_experts", "top_k") and isinstance(value, float):
            value = -3  # an int option: floats are refused by type already
        with pytest.raises(InvalidOption) as err:
            registry.validate(kind, {"name": name, option: value}, KINDS[kind].sizes)
        assert f"option {option}={value!r} must be" in str(err.value) and "\n" not in str(err.value)


def test_moe_expert_count_has_an_upper_bound_and_negative_loss_weights_are_refused():
    with pytest.raises(InvalidOption, match=r"n_experts=100000000 must be int in \[1, 1024\]"):
        registry.validate("ffn", {"name": "moe", "n_experts": 100_000_000})
    with pytest.raises(InvalidOption, match="aux_loss_coef=-0.1 must be finite float >= 0"):
        registry.validate("ffn", {"name": "moe", "aux_loss_coef": -0.1})
    assert registry.validate("ffn", {"name": "moe", "n_experts": 1024, "top_k": 1, "aux_loss_coef": 0})


Unit = typing.Annotated[float, Bound(ge=0, le=1)]  # module level: the factory's annotations resolve here


def test_a_plugin_declares_its_own_ranges_the_same_way():
    def factory(dim: int, mix: Unit = 0.5, gain: typing.Annotated[float, Bound(gt=0)] | None = None):
        return nn.Identity()

    reg = Registry()
    reg._plugins_loaded = True
    reg.register("norm", "wbtest_ranged")(factory)
    assert reg.validate("norm", {"name": "wbtest_ranged", "mix": 1, "gain": None}, ("dim",))
    with pytest.raises(InvalidOption, match=r"option mix=1.5 must be finite float in \[0, 1\]"):
        reg.validate("norm", {"name": "wbtest_ranged", "mix": 1.5})
    with pytest.raises(InvalidOption, match=r"option gain=0 must be finite float > 0 \| None"):
        reg.validate("norm", {"name": "wbtest_ranged", "gain": 0})
    with pytest.raises(InvalidOption, match="must be float, not str"):  # the type is still checked first
        reg.validate("norm", {"name": "wbtest_ranged", "mix": "half"})
    with pytest.raises(TypeError, match="finite numbers"):
        Bound(gt=math.nan)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from e2e import write_experiment

    folder = tmp_path_factory.mktemp("tiny")
    return write_experiment(folder, folder / "cache", seeds=[0], steps=2, every=1)


@pytest.mark.parametrize("override,key", [
    ("model.norm={name: rmsnorm, eps: -1}", "model.norm.eps"),
    ("model.norm={name: rmsnorm, eps: 0}", "model.norm.eps"),
    ("model.norm.eps=.nan", "model.norm.eps"),
    ("model.norm={name: layernorm, eps: .inf}", "model.norm.eps"),
    ("model.norm={name: dyt, alpha_init: -0.5}", "model.norm.alpha_init"),
    ("model.positions={name: rope, theta: -5}", "model.positions.theta"),
    ("model.positions={name: sinusoidal, base: 0}", "model.positions.base"),
    ("model.ffn={name: moe, n_experts: 100000000}", "model.ffn.n_experts"),
    ("model.ffn={name: moe, top_k: 0}", "model.ffn.top_k"),
    ("model.rope_theta=.inf", "model.rope_theta"),
    ("model.norm_eps=.inf", "model.norm_eps"),
    ("model.init_std=.nan", "model.init_std"),
])
def test_show_and_run_refuse_an_out_of_range_option_naming_its_key(tiny, tmp_path, capsys, override, key):
    for command in (["show", str(tiny), override], ["run", str(tiny), override, "--out", str(tmp_path / "out")]):
        extra = ["model.norm_eps=null"] if "name: dyt" in override else []
        assert main(command + extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: command line: {key}: ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


# --- D7: sizes are bounded, and an oversized model is refused at once -------------------------------

import time  # noqa: E402

import torch  # noqa: E402

from components import TransformerConfig, TransformerLM  # noqa: E402
from workbench.config.model_size import MAX_LAYERS, MAX_PARAMS, parameter_count  # noqa: E402


@pytest.mark.parametrize("config", [
    TransformerConfig(vocab_size=300, dim=32, n_layers=3, n_heads=2),
    TransformerConfig(vocab_size=300, dim=32, n_layers=2, n_heads=2, tie_embeddings=True, positions="learned", max_seq_len=64),
    TransformerConfig(vocab_size=300, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn={"name": "moe", "n_experts": 4},
                      norm_placement="sandwich", bias=True, norm="layernorm"),
], ids=["llama", "tied-learned", "moe-sandwich"])
def test_the_parameter_count_is_exact(config):
    with torch.device("meta"):
        expected = TransformerLM(config).num_params()
    assert parameter_count(config)[0] == expected


@pytest.mark.parametrize("overrides,key", [
    (["model.n_layers=100000"], "model.n_layers"),
    ([f"model.n_layers={MAX_LAYERS + 1}"], "model.n_layers"),
    (["model.dim=1000000", "model.n_heads=4"], "model.dim"),
    (["data.vocab_size=400000000"], "data.vocab_size"),
    (["model.ffn_hidden_dim=100000000000"], "model.ffn_hidden_dim"),
    (["model.n_layers=1024", "model.dim=8192", "model.n_heads=64"], "model"),  # 1024 x 805M: over the bound
])
def test_an_oversized_model_is_refused_in_show_and_run_in_seconds(tiny, tmp_path, capsys, overrides, key):
    for command in (["show", str(tiny)], ["run", str(tiny), "--out", str(tmp_path / "out")]):
        start = time.monotonic()
        assert main(command + overrides) == 2
        assert time.monotonic() - start < 5
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: command line: {key}") and len(err.splitlines()) == 1, err
        assert "layers" in err and "docs/reliability.md" in err
    assert not (tmp_path / "out").exists()


def test_a_model_at_the_bounds_is_still_accepted(tiny, capsys):
    assert main(["show", str(tiny), "model.ffn={name: moe, n_experts: 64, top_k: 2}"]) == 0
    assert MAX_PARAMS >= 20_000_000_000 and MAX_LAYERS >= 1000
    capsys.readouterr()


# --- D8: odd paths and names are refused in one line, before anything is written ------------------------

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from e2e import REPO, cli  # noqa: E402
from workbench.config import ConfigError, load_experiment  # noqa: E402


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert all(n in err for n in needles), err
    return err


@pytest.mark.parametrize("cache", ["afile", "afile/below"])
def test_a_cache_dir_that_is_a_file_is_refused(tiny, tmp_path, capsys, cache):
    (tmp_path / "afile").write_text("not a folder")
    for command in (["show", str(tiny)], ["data", str(tiny)], ["run", str(tiny), "--out", str(tmp_path / "out")]):
        assert main(command + [f"data.cache_dir={tmp_path / cache}"]) == 2
        _one_line_error(capsys, "command line: data.cache_dir", "is not a folder")
    assert not (tmp_path / "out").exists() and (tmp_path / "afile").read_text() == "not a folder"


def _experiment(folder: Path, body: str, name: str = "x") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\ndefaults: [model/llama, size/tiny, data/stdlib, train/cpu]\n"
                    f"baseline: a\nvariants:\n  a: {{}}\n  b: {{model: {{norm: layernorm}}}}\n{body}")
    return path


@pytest.mark.parametrize("reference,key", [
    ("{source: s, values: [1]}", "reference.values"),
    ("{source: s, claims: [better]}", "reference.claims"),
    ("[1]", "reference"),
    ("5", "reference"),
    ("{source: s, values: {a: .nan}}", "reference.values.a"),
])
def test_a_reference_of_the_wrong_shape_is_refused_naming_its_key(tmp_path, reference, key):
    path = _experiment(tmp_path, f"reference: {reference}\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert err.value.key == key and err.value.file.endswith("x.yaml")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("section,value,key", [("eval", "[2]", "eval"), ("sweep", "[1]", "sweep"), ("imports", "json", "imports"),
                                               ("sizes", "5", "sizes")])
def test_a_section_of_the_wrong_shape_is_refused_naming_it(tmp_path, section, value, key):
    with pytest.raises(ConfigError) as err:
        load_experiment(_experiment(tmp_path, f"{section}: {value}\n"))
    assert err.value.key == key and "expected" in str(err.value)


@pytest.mark.parametrize("name", ["results.json", "experiment.yaml", "report.md", "report.html", "samples.json",
                                  ".hidden", "..", "a/b", "plots"])
def test_a_variant_named_like_a_run_folder_file_is_refused_at_validation(tmp_path, capsys, name):
    path = tmp_path / "x.yaml"
    path.write_text(f"name: x\ndefaults: [model/llama, size/tiny, data/stdlib, train/cpu]\nvariants:\n  '{name}': {{}}\n")
    assert main(["show", str(path)]) == 2
    _one_line_error(capsys, "x.yaml", f"variants.{name}")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, f"variants.{name}")
    assert not (tmp_path / "out").exists()


def test_init_refuses_a_name_too_long_for_a_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a" * 300, "b" * 101):
        assert main(["init", name]) == 2
        _one_line_error(capsys, "at most 100 characters")
    assert main(["init", "c" * 100]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["c" * 100 + ".yaml"]


def test_show_into_a_closed_pipe_ends_quietly(tiny):
    proc = cli("show", str(tiny))
    proc.stdout.close()  # the reader is gone before anything is written, as with `| head -1` on a long listing
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == "", err


def test_show_piped_into_head_prints_its_first_line_only(tiny):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(f"{sys.executable} -m workbench show {tiny} --full | head -1", shell=True, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("experiment: ") and len(done.stdout.splitlines()) == 1 and done.stderr == ""


@pytest.mark.parametrize("out", ["", " ", "dangling", "dangling/below", "loop"])
def test_an_empty_or_dangling_out_is_refused_and_nothing_is_written(tiny, tmp_path, capsys, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["run", str(tiny), "--out", out]) == 2
    _one_line_error(capsys, "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not (tmp_path / "missing").exists()


def test_export_refuses_an_empty_out(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--variant", "a", "--out", ""]) == 2
    _one_line_error(capsys, "--out ''")


# --- D11: what the command line says and takes ---------------------------------------------------------

def test_a_whole_eval_mapping_can_be_given_on_the_command_line(tiny):
    assert load_experiment(tiny, ["eval={lengths: [2]}"]).eval["lengths"] == load_experiment(tiny, ["eval.lengths=[2]"]).eval["lengths"]
    assert load_experiment(tiny, ["eval={lengths: [2]}"]).eval["lengths"] == [2]
    with pytest.raises(ConfigError, match="evl: unknown key, did you mean 'eval'"):
        load_experiment(tiny, ["evl={lengths: [2]}"])


def test_show_states_a_sequential_seed_policy_as_written(tiny, capsys):
    assert main(["show", str(tiny), "seeds={min: 2, max: 4}"]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert "min 2, max 4" in line and "sequential" in line and "[0, 1, 2, 3]" not in line
    assert main(["show", str(tiny), "seeds=[3, 5]"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("seeds: [3, 5]")


@pytest.mark.parametrize("seed", [str(10**23), str(2**64), "-1"])
def test_a_sampling_seed_out_of_range_is_refused_naming_the_option(tmp_path, capsys, seed):
    assert main(["sample", str(tmp_path), "--prompt", "hi", "--sampling-seed", seed]) == 2
    _one_line_error(capsys, "--sampling-seed", "[0, 18446744073709551615]")
