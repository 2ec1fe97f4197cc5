"""Experiment configs: composition order, defaults files, CLI overrides, and one-line errors for bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from components import TransformerConfig
from components.attention import flash_unavailable_reason
from workbench.config import ConfigError, load_experiment

ROOT = Path(__file__).resolve().parents[1]
PRESETS = [ROOT / "configs/model/llama.yaml", ROOT / "configs/size/tiny.yaml",
           ROOT / "configs/data/stdlib.yaml", ROOT / "configs/train/cpu.yaml"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def experiment_file(tmp_path: Path, **fields) -> Path:
    """A valid experiment on the real presets (absolute paths), with ``fields`` replacing its keys."""
    data = {"name": "exp", "defaults": [str(p) for p in PRESETS], "seeds": [0],
            "variants": {"a": {}, "b": {"model": {"norm": "layernorm"}}}}
    data.update(fields)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- composition -------------------------------------------------------------------------------


def test_merge_order_schema_defaults_experiment_variant_cli(tmp_path):
    write(tmp_path / "p1.yaml", "train: {steps: 100, lr: 1.0e-3, batch_size: 8, eval_every: 11}\n")
    write(tmp_path / "p2.yaml", "train: {eval_every: 12}\n")  # later defaults win over earlier ones
    path = write(tmp_path / "exp.yaml", """\
        name: order
        defaults: [p1.yaml, p2.yaml]
        train: {lr: 2.0e-3, batch_size: 4}
        variants:
          a: {train: {batch_size: 2, log_every: 5}}
          b: {}
        """)
    exp = load_experiment(path, ["train.log_every=7", "variants.b.train.log_every=9"])
    a, b = exp.variants["a"].train, exp.variants["b"].train
    assert a.eval_batches == 8  # schema default
    assert a.steps == 100 and a.eval_every == 12  # defaults files, in order
    assert a.lr == 2e-3  # the experiment over its defaults
    assert a.batch_size == 2 and b.batch_size == 4  # the variant over the experiment
    assert a.log_every == 7  # key=value over the variant
    assert b.log_every == 9  # variants.NAME.key=value over key=value


def test_variants_keep_file_order_and_baseline_defaults_to_first(tmp_path):
    exp = load_experiment(experiment_file(tmp_path, variants={"z": {}, "a": {}, "m": {}}))
    assert list(exp.variants) == ["z", "a", "m"] and exp.baseline == "z"


def test_no_variants_means_one_base_variant(tmp_path):
    exp = load_experiment(experiment_file(tmp_path, variants={}), ["variants.base.model.ffn=gelu"])
    assert list(exp.variants) == ["base"] and exp.baseline == "base"
    assert exp.variants["base"].model["ffn"] == "gelu"


def test_defaults_are_relative_to_the_file_that_lists_them_and_recurse(tmp_path):
    write(tmp_path / "configs/base/arch.yaml", "model: {dim: 64, n_heads: 2, ffn: gelu}\n")
    write(tmp_path / "configs/mine.yaml", "defaults: [base/arch.yaml]\nmodel: {n_heads: 4}\n")
    path = write(tmp_path / "experiments/deep/exp.yaml", "name: rel\ndefaults: [../../configs/mine.yaml]\n")
    model = load_experiment(path).variants["base"].model
    assert (model["dim"], model["n_heads"], model["ffn"]) == (64, 4, "gelu")  # a preset over its own defaults


def test_defaults_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "defaults: [b.yaml]\n")
    write(tmp_path / "b.yaml", "defaults: [a.yaml]\n")
    path = write(tmp_path / "exp.yaml", "name: cyc\ndefaults: [a.yaml]\n")
    with pytest.raises(ConfigError, match="cycle: a.yaml -> b.yaml -> a.yaml") as err:
        load_experiment(path)
    assert err.value.key.startswith("defaults")


def test_cli_overrides_top_level_and_every_variant(tmp_path):
    exp = load_experiment(experiment_file(tmp_path), ["seeds=[0,1]", "name=renamed", "baseline=b",
                                                      "model.ffn=gelu", "train.lr=3e-4", "model.n_kv_heads=null"])
    assert (exp.seeds, exp.name, exp.baseline) == ([0, 1], "renamed", "b")
    for variant in exp.variants.values():
        assert variant.model["ffn"] == "gelu" and variant.train.lr == 3e-4 and variant.model["n_kv_heads"] is None
    assert exp.variants["b"].model["norm"] == "layernorm"  # the variant's own change survives


def test_variant_names_may_contain_dots_in_cli_overrides(tmp_path):
    exp = load_experiment(experiment_file(tmp_path, variants={"v1.5": {}, "v1": {}}), ["variants.v1.5.model.ffn=relu"])
    assert exp.variants["v1.5"].model["ffn"] == "relu" and exp.variants["v1"].model["ffn"] == "swiglu"


def test_real_presets_resolve_to_the_tiny_llama_on_cpu(tmp_path):
    exp = load_experiment(experiment_file(tmp_path))
    v = exp.variants["a"]
    assert v.model["norm"] == "rmsnorm" and v.model["ffn"] == "swiglu" and v.model["dim"] == 128
    assert v.data["source"] == "stdlib" and v.train.precision == "32" and v.train.accelerator == "cpu"
    cfg = v.transformer_config()
    assert isinstance(cfg, TransformerConfig)
    assert (cfg.vocab_size, cfg.max_seq_len) == (v.data["vocab_size"], v.train.seq_len)
    assert v.transformer_config(vocab_size=300).vocab_size == 300  # the tokenizer's actual size


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_experiment_loads(path):
    # a budget override replaces any budget; a sweep of train.steps (which a budget would contradict) gets short horizons
    horizons = "train.steps" in (yaml.safe_load(path.read_text()).get("sweep") or {})
    short = ["sweep={train.steps: [10, 20]}"] if horizons else ["budget.steps=20"]
    exp = load_experiment(path, short + ["train.warmup_steps=2"])
    assert exp.variants and exp.baseline in exp.archs
    assert {v.train.steps for v in exp.variants.values()} == ({10, 20} if horizons else {20})


def test_warmup_may_exceed_steps(tmp_path):
    """A short budget must not fail on the preset's warmup: the LR then never reaches its peak."""
    exp = load_experiment(experiment_file(tmp_path), ["train.steps=5"])
    assert exp.variants["a"].train.steps == 5 and exp.variants["a"].train.warmup_steps == 20


def test_to_dict_round_trips_through_a_file(tmp_path):
    corpus = write(tmp_path / "corpus.txt", "hello world\n" * 10)
    exp = load_experiment(experiment_file(tmp_path, data={"source": "files", "paths": ["corpus.txt"]}), ["seeds=[3,4]"])
    resolved = write(tmp_path / "run/experiment.yaml", yaml.safe_dump(exp.to_dict(), sort_keys=False))
    again = load_experiment(resolved)
    assert again.to_dict() == exp.to_dict()
    assert exp.variants["a"].data["paths"] == [str(corpus)]


def test_data_paths_resolve_against_experiment_folder_then_cwd(tmp_path, monkeypatch):
    beside = write(tmp_path / "exp_dir/beside.txt", "x\n")
    in_cwd = write(tmp_path / "cwd/here.txt", "y\n")
    write(tmp_path / "exp_dir/globbed/a.txt", "z\n")
    monkeypatch.chdir(tmp_path / "cwd")
    paths = ["beside.txt", "here.txt", "globbed/*.txt", str(in_cwd)]
    exp = load_experiment(experiment_file(tmp_path / "exp_dir", data={"source": "files", "paths": paths}))
    assert exp.variants["a"].data["paths"] == [str(beside), str(in_cwd), str(tmp_path / "exp_dir/globbed/*.txt"), str(in_cwd)]


def test_imports_register_third_party_components(tmp_path, sandbox_registry):
    write(tmp_path / "wbtest_scalenorm.py", """\
        import torch
        from components import registry

        @registry.register("norm", "wbtest_scale")
        class ScaleNorm(torch.nn.Module):
            '''ScaleNorm (Nguyen & Salazar, 2019).'''
            def __init__(self, dim, eps=1e-5):
                super().__init__()
                self.g, self.eps = torch.nn.Parameter(torch.ones(1)), eps
            def forward(self, x):
                return self.g * x / x.norm(dim=-1, keepdim=True).clamp_min(self.eps)
        """)
    path = experiment_file(tmp_path, imports=["wbtest_scalenorm"], variants={"scale": {"model": {"norm": "wbtest_scale"}}})
    assert load_experiment(path).variants["scale"].model["norm"] == "wbtest_scale"


# --- bad input: each one a single-line ConfigError naming the key ------------------------------

BAD = {  # id: (experiment fields, overrides, key expected in the message, text expected in the message)
    "unknown-top-key": ({"seed": [1]}, [], "seed", "did you mean 'seeds'"),
    "unknown-model-key": ({"model": {"nrom": "x"}}, [], "model.nrom", "did you mean 'norm'"),
    "unknown-variant-key": ({"variants": {"a": {"model": {"nrm": "x"}}}}, [], "variants.a.model.nrm", "did you mean 'norm'"),
    "unknown-variant-section": ({"variants": {"a": {"modle": {}}}}, [], "variants.a.modle", "did you mean 'model'"),
    "variant-not-mapping": ({"variants": {"a": [1]}}, [], "variants.a", "expected a mapping"),
    "wrong-type": ({}, ["train.steps=abc"], "train.steps", "'abc'"),
    "wrong-type-in-file": ({"train": {"lr": "fast"}}, [], "train.lr", "'fast'"),
    "steps-zero": ({"train": {"steps": 0}}, [], "train.steps", "an integer >= 1"),
    "batch-size-negative": ({}, ["train.batch_size=-1"], "train.batch_size", "-1"),
    "seq-len-one": ({}, ["train.seq_len=1"], "train.seq_len", ">= 2"),
    "lr-negative": ({}, ["train.lr=-0.1"], "train.lr", "> 0"),
    "lr-nan": ({}, ["train.lr=.nan"], "train.lr", "nan"),
    "warmup-negative": ({}, ["train.warmup_steps=-1"], "train.warmup_steps", ">= 0"),
    "val-fraction": ({"data": {"val_fraction": 1.5}}, [], "data.val_fraction", "1.5"),
    "vocab-too-small": ({}, ["data.vocab_size=100"], "data.vocab_size", ">= 260"),
    "precision": ({}, ["train.precision=fp16"], "train.precision", "bf16-mixed"),
    "strategy": ({}, ["train.strategy=deepspeed"], "train.strategy", "fsdp"),
    "num-nodes": ({}, ["train.num_nodes=0"], "train.num_nodes", "0"),
    "grad-clip": ({}, ["train.grad_clip=-1"], "train.grad_clip", ">= 0"),
    "hidden-lr-ratio": ({}, ["train.hidden_lr_ratio=0"], "train.hidden_lr_ratio", "> 0"),
    "weight-decay": ({}, ["train.weight_decay=-0.1"], "train.weight_decay", ">= 0"),
    "eval-every": ({}, ["train.eval_every=0"], "train.eval_every", ">= 1"),
    "checkpoint-every": ({}, ["train.checkpoint_every=0"], "train.checkpoint_every", ">= 1"),
    "beta2": ({}, ["train.beta2=1.0"], "train.beta2", "[0, 1)"),
    "devices": ({}, ["train.devices=0"], "train.devices", "auto"),
    "fp16-on-cpu": ({}, ["train.precision=16-mixed"], "train.precision", "bf16-mixed"),
    "seeds-empty": ({"seeds": []}, [], "seeds", "non-empty"),
    "seeds-repeated": ({}, ["seeds=[1,1]"], "seeds", "distinct"),
    "seeds-not-int": ({"seeds": ["x"]}, [], "seeds", "invalid seed 'x'"),
    "unknown-component": ({}, ["model.norm=rmsnrom"], "model.norm", "did you mean 'rmsnorm'? available: "),
    "unknown-component-in-variant": ({"variants": {"a": {"model": {"ffn": "swigly"}}}}, [], "variants.a.model.ffn", "did you mean 'swiglu'"),
    # component specs: {name: ..., option: value}
    "unknown-option": ({}, ["model.norm={name: rmsnorm, epsilon: 1e-5}"], "model.norm.epsilon", "no option 'epsilon' (options: eps: float)"),
    "unknown-option-in-variant": ({"variants": {"a": {"model": {"ffn": {"name": "moe", "experts": 4}}}}}, [],
                                  "variants.a.model.ffn.experts", "no option 'experts'"),
    "ill-typed-option": ({}, ["model.norm.eps=abc"], "model.norm.eps", "must be float, not str"),
    "ill-typed-int-option": ({"variants": {"a": {"model": {"ffn": {"name": "moe", "top_k": 1.5}}}}}, [],
                             "variants.a.model.ffn.top_k", "must be int"),
    "size-as-option": ({}, ["model.norm.dim=64"], "model.norm.dim", "set by the model"),
    "unknown-name-in-spec": ({"variants": {"a": {"model": {"norm": {"name": "rmsnrom", "eps": 1e-5}}}}}, [],
                             "variants.a.model.norm.name", "did you mean 'rmsnorm'"),
    "spec-without-name": ({"variants": {"a": {"model": {"norm": {"name": None, "eps": 1e-5}}}}}, [], "variants.a.model.norm.name",
                          "no component name"),
    "option-breaks-the-build": ({"variants": {"a": {"model": {"ffn": {"name": "moe", "n_experts": 4, "top_k": 9}}}}}, [],
                                "variants.a.model.ffn.top_k", "top_k must be in 1..n_experts=4"),
    "spec-null": ({"variants": {"a": {"model": {"norm": None}}}}, [], "variants.a.model.norm", "invalid value None"),
    "spec-not-a-mapping": ({}, ["model.ffn=[swiglu]"], "model.ffn", "{name: NAME, OPTION: VALUE, ...}"),
    "norm-eps-and-spec-eps": ({}, ["model.norm={name: rmsnorm, eps: 1e-5}", "model.norm_eps=1e-6"], "model.norm_eps", "one place"),
    "qk-norm": ({}, ["model.qk_norm=heads"], "model.qk_norm", "did you mean 'head'"),
    "window": ({}, ["model.window=0"], "model.window", "positive integer"),
    "import-missing": ({"imports": ["no_such_module_xyz"]}, [], "imports", "no_such_module_xyz"),
    "baseline-not-variant": ({"baseline": "c"}, [], "baseline", "allowed: a, b"),
    "dim-not-divisible": ({}, ["model.dim=130"], "model.dim", "divisible by n_heads"),
    "kv-heads": ({}, ["model.n_kv_heads=3"], "model.n_kv_heads", "must divide n_heads"),
    "odd-rope-head-dim": ({}, ["model.dim=12", "model.n_heads=4"], "model.head_dim", "even"),
    "flash-on-cpu": ({}, ["model.attention=flash"], "model.attention", "CUDA only"),
    "files-without-paths": ({"data": {"source": "files"}}, [], "data.paths", "at least one"),
    "missing-data-path": ({"data": {"source": "files", "paths": ["nope/*.txt"]}}, [], "data.paths", "matches no file"),
    "data-path-directory": ({"data": {"source": "files", "paths": ["."]}}, [], "data.paths", "directory"),
    "unknown-source": ({}, ["data.source=web"], "data.source", "stdlib, files"),
    "bad-name": ({"name": "a/b"}, [], "name", "letters, digits"),
    "bad-variant-name": ({"variants": {"../up": {}}}, [], "variants.../up", "letters, digits"),
    "reserved-variant-name": ({"variants": {"plots": {}}}, [], "variants.plots", "reserved"),
    "hydra-plus": ({}, ["+model.norm=x"], "+model.norm=x", "Hydra"),
    "hydra-delete": ({}, ["~model.norm"], "~model.norm", "Hydra"),
    "hydra-sweep": ({}, ["model.norm=rmsnorm,layernorm"], "model.norm", "sweep"),
    "override-without-equals": ({}, ["train.steps"], "train.steps", "key=value"),
    "unknown-override-key": ({}, ["trian.steps=1"], "trian.steps", "did you mean 'train'"),
    "unknown-override-subkey": ({}, ["train.stpes=1"], "train.stpes", "did you mean 'steps'"),
    "unknown-variant-override": ({}, ["variants.c.model.norm=x"], "variants.c.model.norm", "unknown variant 'c'"),
    "defaults-override": ({}, ["defaults=[]"], "defaults", "command line"),
    "section-not-mapping": ({"model": 3}, [], "model", "expected a mapping"),
    "missing-interpolation": ({"train": {"eval_every": "${train.nope}"}}, [], "train.eval_every", "nope"),
    # budget:, sizes:, eval:
    "budget-two-kinds": ({"budget": {"steps": 5, "flops": 1e9}}, [], "budget", "steps, flops given"),
    "budget-empty": ({"budget": {}}, [], "budget", "exactly one of"),
    "budget-not-mapping": ({"budget": 5}, [], "budget", "expected a mapping"),
    "budget-negative": ({"budget": {"tokens": -5}}, [], "budget.tokens", "a number > 0"),
    "budget-nan": ({}, ["budget.flops=.nan"], "budget.flops", "a number > 0"),
    "budget-steps-not-int": ({}, ["budget.steps=2.5"], "budget.steps", "2.5"),
    "budget-unknown-kind": ({"budget": {"flop": 1e9}}, [], "budget.flop", "did you mean 'flops'"),
    "budget-unknown-override": ({}, ["budget.token=5"], "budget.token", "did you mean 'tokens'"),
    "budget-below-one-step": ({}, ["budget.flops=1000"], "budget.flops", "less than one training step"),
    "budget-tokens-below-one-step": ({"budget": {"tokens": 100}}, [], "budget.tokens", "4,096 tokens"),
    "budget-vs-steps-on-command-line": ({"budget": {"flops": 1e13}}, ["train.steps=5"], "train.steps", "conflicts with budget.flops"),
    "budget-vs-steps-in-variant": ({"budget": {"tokens": 1e6}, "variants": {"a": {"train": {"steps": 7}}}}, [],
                                   "variants.a.train.steps", "gives variant 'a' 244 steps"),
    "sizes-not-list": ({"sizes": "tiny"}, [], "sizes", "expected a list"),
    "sizes-item-type": ({"sizes": [3]}, [], "sizes[0]", "preset file path or a mapping"),
    "sizes-missing-file": ({"sizes": ["nope.yaml"]}, [], "sizes[0]", "file not found"),
    "sizes-unknown-key": ({"sizes": [{"dimm": 64}]}, [], "sizes[0].dimm", "did you mean 'dim'"),
    "sizes-duplicate-name": ({"sizes": [{"name": "s", "dim": 64}, {"name": "s", "dim": 32}]}, [], "sizes[1]", "two sizes"),
    "sizes-bad-name": ({"sizes": [{"name": "a/b", "dim": 64}]}, [], "sizes[0].name", "letters, digits"),
    "sizes-bad-value": ({"sizes": [{"dim": 30}]}, [], "sizes[0].dim", "divisible by n_heads"),
    "sizes-overlap-variant": ({"sizes": [{"dim": 64}], "variants": {"a": {"model": {"dim": 32}}}}, [], "sizes[0].dim",
                              "which variants.a also sets"),
    "sizes-overlap-override": ({"sizes": [{"dim": 64}]}, ["model.dim=32"], "sizes[0].dim", "override model.dim"),
    "sizes-variant-with-at": ({"sizes": [{"dim": 64}], "variants": {"a@b": {}}}, [], "variants.a@b", "letters, digits"),
    "eval-zero": ({"eval": {"lengths": [0]}}, [], "eval.lengths", "invalid length 0"),
    "eval-not-whole-tokens": ({"eval": {"lengths": [0.3]}}, [], "eval.lengths", "38.4 tokens"),
    "eval-fractional-token-count": ({"eval": {"lengths": [100.5]}}, [], "eval.lengths", "token count"),
    "eval-not-a-number": ({"eval": {"lengths": ["2x"]}}, [], "eval.lengths[0]", "2x"),
    "eval-unknown-key": ({"eval": {"length": [2]}}, [], "eval.length", "did you mean 'lengths'"),
    "eval-not-mapping": ({"eval": [2]}, [], "eval", "expected a mapping"),
}


@pytest.mark.parametrize("fields, overrides, key, text", list(BAD.values()), ids=list(BAD))
def test_bad_input_is_one_line_naming_the_key(tmp_path, fields, overrides, key, text):
    with pytest.raises(ConfigError) as err:
        load_experiment(experiment_file(tmp_path, **fields), overrides)
    message = str(err.value)
    assert "\n" not in message
    assert f"{key}:" in message and text in message, message
    written = [o.split("=")[0] for o in overrides]
    set_on_command_line = any(key.split("=")[0] in (w, *(f"{w}.{sub}" for sub in ("name", key.rpartition(".")[2]))) for w in written)
    assert err.value.file == "command line" if set_on_command_line else err.value.file.endswith(".yaml")


def test_errors_name_the_file_that_set_the_value(tmp_path):
    preset = write(tmp_path / "presets/short.yaml", "train: {eval_every: 0}\n")
    path = experiment_file(tmp_path, defaults=[str(p) for p in PRESETS] + [str(preset)])
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert err.value.file.endswith("short.yaml") and err.value.key == "train.eval_every"
    with pytest.raises(ConfigError) as err:
        load_experiment(experiment_file(tmp_path), ["train.steps=0"])
    assert err.value.file == "command line" and err.value.key == "train.steps"
    with pytest.raises(ConfigError) as err:
        load_experiment(experiment_file(tmp_path, variants={"a": {"train": {"steps": 0}}}))
    assert err.value.file.endswith("exp.yaml") and err.value.key == "variants.a.train.steps"


@pytest.mark.parametrize("text, problem", [
    ("name: x\nmodel: {dim: [1, 2\n", "invalid YAML at line 3"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("name: x\nname: y\n", "duplicate key"),
    ("name: x\nvariants:\n  yes: {}\n", "quote it"),
    ("description: no name\n", "name: missing"),
    ("name: x\ndefaults: [missing.yaml]\n", "file not found"),
])
def test_bad_files(tmp_path, text, problem):
    path = write(tmp_path / "exp.yaml", text)
    with pytest.raises(ConfigError, match=problem) as err:
        load_experiment(path)
    assert "\n" not in str(err.value) and err.value.file.endswith("exp.yaml")


def test_missing_file_and_preset_keys(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_experiment(tmp_path / "nope.yaml")
    write(tmp_path / "preset.yaml", "seeds: [1]\n")
    with pytest.raises(ConfigError, match=r"preset.yaml: seeds: not allowed in a preset .*allowed: defaults, model, data, train"):
        load_experiment(write(tmp_path / "exp.yaml", "name: x\ndefaults: [preset.yaml]\n"))


@pytest.mark.skipif(flash_unavailable_reason() is None, reason="flash attention can run here")
def test_flash_where_it_cannot_run_says_why(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_experiment(experiment_file(tmp_path), ["model.attention=flash", "train.precision=bf16-mixed", "train.accelerator=auto"])
    assert err.value.key == "model.attention" and flash_unavailable_reason() in str(err.value)


@pytest.mark.gpu
@pytest.mark.skipif(flash_unavailable_reason() is not None, reason=flash_unavailable_reason() or "")
def test_flash_in_fp32_names_the_precision(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_experiment(experiment_file(tmp_path), ["model.attention=flash", "train.precision=32", "train.accelerator=gpu"])
    assert err.value.key == "train.precision" and "fp16/bf16" in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_gpu_accelerator_without_a_gpu(tmp_path):
    with pytest.raises(ConfigError, match="train.accelerator: 'gpu' but no CUDA GPU"):
        load_experiment(experiment_file(tmp_path), ["train.accelerator=gpu"])


def test_checks_catch_hand_edited_variants(tmp_path):
    from workbench.config import check_experiment

    exp = load_experiment(experiment_file(tmp_path))
    exp.variants["a"].train.steps = "many"
    with pytest.raises(ConfigError, match="train.steps"):
        check_experiment(exp)
    exp.variants["a"].train.steps = 100
    del exp.variants["b"].model["norm"]
    with pytest.raises(ConfigError, match="model.norm: missing"):
        check_experiment(exp)


def test_loading_does_not_import_lightning():
    import subprocess
    import sys

    code = "import sys, workbench.config; assert 'lightning' not in sys.modules and 'lightning.pytorch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- seeds policy, sweep axes, ladder, reference -------------------------------------------------


def test_seed_policy_sweep_ladder_and_reference_load_and_round_trip(tmp_path):
    path = experiment_file(tmp_path, seeds={"min": 2, "max": 5}, sweep={"model.n_layers": [1, 2, 3]}, ladder=True,
                           equivalence_margin=0.02, reference={"source": "paper", "values": {"a": 1.9, "b": 2.0}})
    exp = load_experiment(path)
    assert exp.seeds == [0, 1, 2, 3, 4] and exp.seed_policy == {"min": 2, "max": 5} and exp.sequential
    assert list(exp.variants) == ["a@n_layers1", "a@n_layers2", "a@n_layers3", "b@n_layers1", "b@n_layers2", "b@n_layers3"]
    assert [exp.variants[f"b@n_layers{k}"].model["n_layers"] for k in (1, 2, 3)] == [1, 2, 3]
    assert exp.ladder and exp.equivalence_margin == 0.02 and exp.reference["values"] == {"a": 1.9, "b": 2.0}
    # experiment.yaml (to_dict) loads back to the same experiment.
    again = write(tmp_path / "again.yaml", yaml.safe_dump(exp.to_dict(), sort_keys=False))
    back = load_experiment(again)
    assert (back.seeds, back.seed_policy, back.ladder, back.reference) == (exp.seeds, exp.seed_policy, exp.ladder, exp.reference)
    # A horizon axis is one key too; an override replaces the file's axis and its seed policy.
    horizon = load_experiment(path, ["sweep={train.steps: [50, 100]}", "seeds=[0, 1, 2]"])
    assert [v.train.steps for v in horizon.variants.values()] == [50, 100, 50, 100] and not horizon.sequential
    assert load_experiment(path, ["seeds.max=3"]).seed_policy == {"min": 2, "max": 3}


@pytest.mark.parametrize("fields, overrides, key, text", [
    ({"seeds": {"min": 3, "max": 2}}, [], "seeds", "invalid policy"),
    ({"seeds": {"max": 4, "mn": 2}}, [], "seeds", "expected a list of seeds or {min: N, max: M}"),
    ({}, ["seeds=3"], "seeds", "expected a list of seeds"),
    ({"equivalence_margin": 0}, [], "equivalence_margin", "a positive number of nats"),
    ({"reference": {"source": "x", "claims": {"b": "best"}}}, [], "reference.claims.b", "better, worse, equivalent"),
    ({"reference": {"source": "x", "values": {"c": 1.0}}}, [], "reference.values.c", "'c' is not a variant"),
    ({"sweep": {"model.n_layer": [1, 2]}}, [], "sweep.model.n_layer", "did you mean 'model.n_layers'"),
    ({"sweep": {"model.n_layers": [2]}}, [], "sweep.model.n_layers", "at least two distinct values"),
    ({"sweep": {"model.n_layers": [1, 2]}, "sizes": [{"dim": 64}]}, [], "sweep", "both given"),
    ({"sweep": {"train.steps": [10, 20]}}, ["budget.tokens=1e6"], "sweep.train.steps", "a budget: sets train.steps"),
])
def test_policy_sweep_and_reference_errors_are_one_line(tmp_path, fields, overrides, key, text):
    with pytest.raises(ConfigError) as err:
        load_experiment(experiment_file(tmp_path, **fields), overrides)
    message = str(err.value)
    assert f": {key}: " in message and text in message and "\n" not in message


# --- component specs: a name or {name: ..., option: value} ------------------------------------------


def built_norm_eps(variant) -> float:
    """The eps the variant's model actually builds its first block's norm with."""
    from components import TransformerLM

    with torch.device("meta"):
        model = TransformerLM(variant.transformer_config())
    return model.blocks[0].attn_norm.eps


def test_spec_mapping_from_yaml_and_command_line_reaches_the_model(tmp_path):
    path = experiment_file(tmp_path, variants={"a": {}, "b": {"model": {"norm": {"name": "layernorm", "eps": 1e-4}}}})
    exp = load_experiment(path, ["variants.a.model.norm={name: rmsnorm, eps: 1e-5}"])
    a, b = exp.variants["a"], exp.variants["b"]
    assert a.model["norm"] == {"name": "rmsnorm", "eps": 1e-5} and b.model["norm"] == {"name": "layernorm", "eps": 1e-4}
    # the spec's eps replaces the llama preset's norm_eps (one setting written two ways: the later wins)
    assert a.model["norm_eps"] is None and b.model["norm_eps"] is None
    assert built_norm_eps(a) == 1e-5 and built_norm_eps(b) == 1e-4
    assert a.transformer_config().norm == {"name": "rmsnorm", "eps": 1e-5}


def test_spec_merge_rules(tmp_path):
    write(tmp_path / "preset.yaml", "model: {norm: {name: rmsnorm, eps: 1.0e-5}, norm_eps: null}\n")
    path = experiment_file(tmp_path, defaults=[str(p) for p in PRESETS] + [str(tmp_path / "preset.yaml")], variants={
        "named": {"model": {"norm": {"name": "layernorm"}}},  # a name replaces the spec: rmsnorm's eps does not leak
        "string": {"model": {"norm": "layernorm"}},
        "options": {"model": {"norm": {"eps": 1e-3}}},  # options without a name merge into the spec below
        "norm_eps": {"model": {"norm_eps": 1e-4}},  # norm_eps set later replaces the spec's eps
        "plain": {"model": {"norm": {"name": "rmsnorm"}}},
    })
    models = {n: v.model for n, v in load_experiment(path).variants.items()}
    assert models["named"]["norm"] == "layernorm" and models["string"]["norm"] == "layernorm"
    assert models["options"]["norm"] == {"name": "rmsnorm", "eps": 1e-3}
    assert models["norm_eps"]["norm"] == "rmsnorm" and models["norm_eps"]["norm_eps"] == 1e-4
    assert models["plain"]["norm"] == "rmsnorm"  # {name: X} without options is X: the same run, the same identity
    # key=value overrides are one layer: a name and options given together make one spec
    exp = load_experiment(experiment_file(tmp_path), ["model.ffn.n_experts=4", "model.ffn.name=moe"])
    assert exp.variants["a"].model["ffn"] == {"name": "moe", "n_experts": 4}
    exp = load_experiment(experiment_file(tmp_path), ["model.ffn={name: moe, top_k: 1}", "variants.b.model.ffn.n_experts=4"])
    assert exp.variants["a"].model["ffn"] == {"name": "moe", "top_k": 1}
    assert exp.variants["b"].model["ffn"] == {"name": "moe", "top_k": 1, "n_experts": 4}


def test_spec_errors_name_the_file_that_wrote_the_option(tmp_path):
    write(tmp_path / "preset.yaml", "model: {ffn: {name: moe, n_experts: 4}}\n")
    path = experiment_file(tmp_path, defaults=[str(p) for p in PRESETS] + [str(tmp_path / "preset.yaml")],
                           variants={"a": {"model": {"ffn": {"top_k": "two"}}}, "b": {}})
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert err.value.file.endswith("exp.yaml") and err.value.key == "variants.a.model.ffn.top_k", str(err.value)
    with pytest.raises(ConfigError) as err:  # the name came from the preset, the bad option from the command line
        load_experiment(experiment_file(tmp_path, defaults=[str(p) for p in PRESETS] + [str(tmp_path / "preset.yaml")]),
                        ["model.ffn.n_expert=2"])
    assert err.value.file == "command line" and err.value.key == "model.ffn.n_expert" and "n_experts: int" in str(err.value)


def test_norm_eps_for_a_norm_without_eps_is_an_error(tmp_path):
    # llama.yaml sets norm_eps; DyT divides by nothing and takes no eps: an error, not a silent drop
    with pytest.raises(ConfigError) as err:
        load_experiment(experiment_file(tmp_path), ["model.norm=dyt"])
    message = str(err.value)
    assert err.value.key == "model.norm_eps" and err.value.file.endswith("llama.yaml") and "dyt" in message, message
    exp = load_experiment(experiment_file(tmp_path), ["model.norm=dyt", "model.norm_eps=null"])
    assert exp.variants["a"].model["norm"] == "dyt"


def test_norm_eps_is_the_norm_specs_eps_written_another_way(tmp_path):
    # one eps: the later layer wins whichever spelling either used, and it is stored where it was written
    # (so configs written before keep their run folder identity)
    a = load_experiment(experiment_file(tmp_path), ["model.norm.eps=1e-4"]).variants["a"]
    assert (a.model["norm"], a.model["norm_eps"], built_norm_eps(a)) == ({"name": "rmsnorm", "eps": 1e-4}, None, 1e-4)
    a = load_experiment(experiment_file(tmp_path), ["model.norm={eps: 1e-4}", "variants.a.model.norm_eps=1e-3"]).variants["a"]
    assert (a.model["norm"], a.model["norm_eps"], built_norm_eps(a)) == ("rmsnorm", 1e-3, 1e-3)
    a = load_experiment(experiment_file(tmp_path), ["model.norm_eps=null"]).variants["a"]  # null: the norm's default
    assert (a.model["norm"], a.model["norm_eps"], built_norm_eps(a)) == ("rmsnorm", None, 1e-6)
    # written as norm_eps it outlives a change of norm (llama's 1e-6 on LayerNorm); a spec's own eps does not
    b = load_experiment(experiment_file(tmp_path)).variants["b"]
    assert (b.model["norm"], b.model["norm_eps"], built_norm_eps(b)) == ("layernorm", 1e-6, 1e-6)
    b = load_experiment(experiment_file(tmp_path, model={"norm": {"name": "rmsnorm", "eps": 1e-4}})).variants["b"]
    assert (b.model["norm"], b.model["norm_eps"], built_norm_eps(b)) == ("layernorm", None, 1e-5)
    with pytest.raises(ConfigError) as err:  # an error names the key as written, in the file that wrote it
        load_experiment(experiment_file(tmp_path), ["model.norm_eps=abc"])
    assert err.value.key == "model.norm_eps" and err.value.file == "command line", str(err.value)


def test_specs_round_trip_through_experiment_yaml(tmp_path):
    path = experiment_file(tmp_path, variants={"a": {}, "moe": {"model": {"ffn": {"name": "moe", "n_experts": 4, "top_k": 2}}}})
    exp = load_experiment(path, ["model.qk_norm=head", "model.window=16"])
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(exp.to_dict(), sort_keys=False))
    reloaded = load_experiment(again)
    assert {n: v.to_dict() for n, v in reloaded.variants.items()} == {n: v.to_dict() for n, v in exp.variants.items()}
    model = reloaded.variants["moe"].model
    assert model["ffn"] == {"name": "moe", "n_experts": 4, "top_k": 2} and model["qk_norm"] == "head" and model["window"] == 16
