"""μP and CompleteP (components.parametrization, docs/parametrization.md): every multiplier rule against a
formula computed here (float64 where it is a forward pass), standard bit-identical to the two-group AdamW
it replaced, the base shape bit-identical to standard, and the ``weights`` declarations every entry makes
(a plugin that makes none is refused under mup, in Python and through the CLI)."""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import test_contract
from components import BuildContext, InvalidConfig, TransformerConfig, TransformerLM, registry
from components.contract import KINDS
from components.generation import KVCache
from components.parametrization import PARAMETRIZATIONS, READOUT, ROLES, multipliers, param_groups
from conftest import entry_params
from e2e import REPO, write_experiment
from workbench.config.schedule import lr_factor
from workbench.config.schema import TrainSettings
from workbench.training.optim import build_optimizer

VOCAB, SEQ = 64, 16
TRAIN = dict(lr=3e-3, weight_decay=0.1, steps=5, warmup_steps=1)


def config(**overrides) -> TransformerConfig:
    return TransformerConfig(**{**dict(vocab_size=VOCAB, max_seq_len=SEQ, dim=32, n_layers=2, n_heads=2), **overrides})


def expected_role(name: str, p: torch.Tensor) -> str:
    """Each parameter's role by the rules of docs/parametrization.md, written out by name and shape."""
    if name == "lm_head.weight":
        return READOUT
    if name.endswith("router.weight"):
        return "output"
    if p.dim() == 2 and name not in ("embed.weight", "positions.weight"):
        return "hidden"
    return "input"


def batch(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (4, SEQ + 1), generator=torch.Generator().manual_seed(seed))


def losses(model: TransformerLM, optimizer, schedule, steps: int = 4) -> list[float]:
    out, tokens = [], batch()
    for _ in range(steps):
        loss = model(tokens[:, :-1], targets=tokens[:, 1:])
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        out.append(loss.item())
    return out


# --- the factors ----------------------------------------------------------------------------------


def test_the_factors_follow_the_tables():
    mup = multipliers(config(dim=128, parametrization="mup", base_dim=32))  # m_d = 4, head_dim 64 vs base 16
    assert (mup.width, mup.depth, mup.output, mup.branch) == (4.0, 1.0, 0.25, 1.0)
    assert mup.q_scale == pytest.approx(math.sqrt(16 / 64))  # times 1/sqrt(64): sqrt(16)/64
    assert [mup.init(r) for r in ROLES + (READOUT,)] == pytest.approx([0.5, 1.0, 0.25, 1.0])
    assert [mup.lr(r) for r in ROLES + (READOUT,)] == pytest.approx([0.25, 1.0, 0.25, 1.0])
    assert [mup.eps(r) for r in ROLES + (READOUT,)] == pytest.approx([0.25, 1.0, 1.0, 1.0])
    assert [mup.weight_decay(r) for r in ROLES + (READOUT,)] == [1.0] * 4
    cp = multipliers(config(dim=64, n_layers=8, parametrization="completep", base_dim=32, base_layers=2))  # m_d 2, m_L 4
    assert (cp.width, cp.depth, cp.output, cp.branch) == (2.0, 4.0, 0.5, 0.25)
    assert cp.eps("hidden") == pytest.approx(1 / 8) and cp.weight_decay("hidden") == 2.0 and cp.lr("hidden") == 0.5
    # the base's head_dim set (an experiment whose sizes grow the heads sets it): scores scale sqrt(16) / 16 here
    assert multipliers(config(dim=128, n_heads=8, parametrization="mup", base_dim=32, base_head_dim=16)).q_scale == 1.0
    assert multipliers(config(dim=128, parametrization="mup", base_dim=32, base_head_dim=8)).q_scale == pytest.approx(math.sqrt(8 / 64))
    # head_dim set by hand does not change with width: no q scaling
    assert multipliers(config(dim=128, head_dim=16, parametrization="mup", base_dim=32)).q_scale == 1.0


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_every_factor_is_exactly_one_under_standard_and_at_the_base_shape(parametrization):
    base = {} if parametrization == "standard" else dict(base_dim=64)
    if parametrization == "completep":
        base["base_layers"] = 3
    m = multipliers(config(dim=64, n_layers=3, parametrization=parametrization, **base))
    factors = [m.width, m.depth, m.output, m.q_scale, m.branch]
    factors += [f(r) for r in ROLES + (READOUT,) for f in (m.init, m.lr, m.eps, m.weight_decay)]
    assert all(f == 1.0 and type(f) is float for f in factors)


# --- init ------------------------------------------------------------------------------------------


def formula_std(name: str, role: str, cfg: TransformerConfig, m_d: float) -> float:
    """The std docs/parametrization.md gives, from the config alone (no Multipliers)."""
    std = cfg.init_std
    residual = name.endswith(("attn.out.weight", "down.weight"))
    depth = cfg.base_layers if cfg.parametrization == "completep" else cfg.n_layers
    if role in ("input", READOUT):
        return std
    if cfg.init == "fan_in":
        fan_in = {"qkv": cfg.dim, "out": cfg.n_heads * cfg.head_dim, "router": cfg.dim, "gate": cfg.dim, "up": cfg.dim,
                  "down": cfg.ffn_hidden_dim // (2 if cfg.component("ffn")[0] == "moe" else 1)}[name.split(".")[-2]]
        return 1 / math.sqrt(fan_in) * (m_d ** -0.5 if role == "output" else 1.0)
    if residual and cfg.init == "gpt2":  # olmo2: no depth scaling
        std /= math.sqrt(2 * depth)
    return std / math.sqrt(m_d) if role == "hidden" else std / m_d


@pytest.mark.parametrize("parametrization, init", [("mup", "gpt2"), ("mup", "fan_in"), ("completep", "gpt2"), ("completep", "olmo2")])
def test_init_std_per_role_is_the_formula_and_is_what_is_drawn(parametrization, init):
    extra = dict(base_layers=2) if parametrization == "completep" else {}
    cfg = config(dim=128, n_layers=4, n_heads=4, ffn={"name": "moe", "n_experts": 4, "top_k": 2}, positions="learned",
                 init=init, parametrization=parametrization, base_dim=32, **extra)
    model = TransformerLM(cfg, init_seed=0)
    stds = model.init_stds()
    params = dict(model.named_parameters())
    assert set(stds) == {n for n, p in params.items() if p.dim() == 2}
    for name, std in stds.items():
        role = expected_role(name, params[name])
        assert model.weight_roles()[name] == role
        want = formula_std(name, role, cfg, m_d=4.0)
        assert std == pytest.approx(want, rel=1e-12), name
        # What init_weights drew: the sample std of 1k-16k draws is within 7% (olmo2 truncates at 3 std: -1.3%)
        assert params[name].std().item() == pytest.approx(want, rel=0.07), name


def test_completep_init_does_not_change_with_depth():
    def stds(n_layers):
        cfg = config(dim=64, n_layers=n_layers, parametrization="completep", base_dim=32, base_layers=2)
        return {k: v for k, v in TransformerLM(cfg).init_stds().items() if k.startswith("blocks.0.")}
    assert stds(2) == stds(8)
    mup = TransformerLM(config(dim=64, n_layers=8, parametrization="mup", base_dim=32)).init_stds()
    assert mup["blocks.0.attn.out.weight"] == pytest.approx(0.02 / math.sqrt(16) / math.sqrt(2))  # mup keeps 1/sqrt(2L)


# --- optimizer groups --------------------------------------------------------------------------------


@pytest.mark.parametrize("parametrization, ratio", [("mup", 1.0), ("completep", 1.0), ("mup", 0.25), ("standard", 0.125)])
@pytest.mark.parametrize("tie", [False, True])
def test_each_parameter_gets_its_roles_lr_eps_and_weight_decay(parametrization, ratio, tie):
    extra = dict(n_layers=4, base_layers=2) if parametrization == "completep" else {}
    base = {} if parametrization == "standard" else dict(base_dim=16)
    cfg = config(dim=64, n_heads=4, ffn={"name": "moe", "n_experts": 4, "top_k": 2}, positions="learned", bias=True,
                 norm_placement="layerscale", tie_embeddings=tie, parametrization=parametrization, **base, **extra)
    model = TransformerLM(cfg)
    m_d = 1.0 if parametrization == "standard" else 4.0
    m_l = 2.0 if parametrization == "completep" else 1.0
    lr, wd, eps = 1e-3, 0.1, 1e-8
    groups = param_groups(model, lr, wd, eps, hidden_lr_ratio=ratio)
    where = {id(p): g for g in groups for p in g["params"]}
    named = list(model.named_parameters())
    assert len(where) == len(named) == sum(len(g["params"]) for g in groups)
    for name, p in named:
        role, g = expected_role(name, p), where[id(p)]
        decays = name.endswith(".weight") and p.dim() == 2 and name not in ("embed.weight", "positions.weight")
        assert g["lr"] == pytest.approx(lr * ratio / m_d if role in ("hidden", "output") else lr), name
        assert g["eps"] == pytest.approx(eps / (m_d * m_l) if role == "hidden" else eps), name
        want_wd = (wd * (m_d if role == "hidden" and parametrization == "completep" else 1.0)) if decays else 0.0
        assert g["weight_decay"] == pytest.approx(want_wd), name


def test_training_takes_train_hidden_lr_ratio_under_the_schedule():
    model = TransformerLM(config(dim=64, parametrization="mup", base_dim=32))
    optimizer, _ = build_optimizer(model, {**TRAIN, "hidden_lr_ratio": 0.25}, fused=False)
    peak = {g["role"]: g["initial_lr"] for g in optimizer.param_groups}  # the schedule scales these
    lr = TRAIN["lr"]
    assert peak == pytest.approx({"input": lr, "hidden": lr * 0.25 / 2, READOUT: lr})


def test_a_hidden_lr_ratio_needs_a_model_that_declares_its_roles():
    with pytest.raises(TypeError, match="hidden_lr_ratio=0.5 needs each parameter's role"):
        param_groups(nn.Sequential(nn.Linear(4, 4)), 1e-3, 0.1, hidden_lr_ratio=0.5)


def old_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """workbench/training/optim.py before issue 30, re-implemented: decay Linear weights except a tied head."""
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embed = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay = [p for p in model.parameters() if id(p) in linear and id(p) not in embed]
    rest = [p for p in model.parameters() if not (id(p) in linear and id(p) not in embed)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@pytest.mark.parametrize("overrides", [{}, dict(ffn="moe", bias=True, tie_embeddings=True, norm_placement="layerscale")],
                         ids=["llama", "moe-tied"])
def test_standard_trains_bit_for_bit_as_the_old_two_groups(overrides):
    train = TrainSettings.of(TRAIN)
    new, old = (TransformerLM(config(**overrides), init_seed=0) for _ in range(2))
    groups, before = param_groups(new, train.lr, train.weight_decay), old_param_groups(old, train.weight_decay)
    assert [[n for n, p in new.named_parameters() if any(p is q for q in g["params"])] for g in groups] == \
           [[n for n, p in old.named_parameters() if any(p is q for q in g["params"])] for g in before]
    assert [(g["lr"], g["weight_decay"], g["eps"]) for g in groups] == [(3e-3, 0.1, 1e-8), (3e-3, 0.0, 1e-8)]
    optimizer, schedule = build_optimizer(new, TRAIN, fused=False)
    old_opt = torch.optim.AdamW(before, lr=train.lr, betas=(train.beta1, train.beta2))
    old_schedule = torch.optim.lr_scheduler.LambdaLR(old_opt, lambda step: lr_factor(step, train))
    assert losses(new, optimizer, schedule) == losses(old, old_opt, old_schedule)


@pytest.mark.parametrize("parametrization", ["mup", "completep"])
def test_at_the_base_shape_mup_and_completep_train_bit_for_bit_as_standard(parametrization):
    base = dict(base_dim=32, base_layers=2) if parametrization == "completep" else dict(base_dim=32)
    arch = dict(ffn={"name": "moe", "n_experts": 4, "top_k": 2}, bias=True, positions="learned")
    runs = []
    for cfg in (config(**arch), config(**arch, parametrization=parametrization, **base)):
        model = TransformerLM(cfg, init_seed=0)
        runs.append((model.state_dict(), losses(model, *build_optimizer(model, TRAIN, fused=False))))
    (a, loss_a), (b, loss_b) = runs
    assert all(torch.equal(a[k], b[k]) for k in a) and loss_a == loss_b


# --- forward multipliers ----------------------------------------------------------------------------


@pytest.mark.parametrize("tie", [False, True])
def test_logits_are_the_float64_readout_over_m_d(tie):
    model = TransformerLM(config(dim=64, parametrization="mup", base_dim=16, tie_embeddings=tie), init_seed=0).double()
    tokens = batch()[:, :SEQ]
    h = model.hidden_states(tokens).double()
    reference = h @ model.lm_head.weight.double().T / 4.0
    torch.testing.assert_close(model(tokens), reference)
    cfg = model.config
    cache = KVCache(cfg.n_layers, 4, cfg.n_kv_heads, cfg.head_dim, SEQ, torch.float64, torch.device("cpu"))
    torch.testing.assert_close(model.forward_cached(tokens, cache), reference)
    targets = batch(2)[:, :SEQ]
    loss = nn.functional.cross_entropy(reference.reshape(-1, VOCAB), targets.reshape(-1))
    torch.testing.assert_close(model(tokens, targets=targets), loss)


@pytest.mark.parametrize("name", entry_params("attention"))
def test_attention_scores_scale_as_sqrt_base_head_dim_over_head_dim(name):
    cfg = config(dim=64, parametrization="mup", base_dim=16, positions="none", attention=name, bias=True)  # head_dim 32, base 8
    model = TransformerLM(cfg, init_seed=0).double()
    attn = model.blocks[0].attn
    x = torch.randn(2, 7, 64, dtype=torch.float64)
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = (t.reshape(2, 7, 2, 32).transpose(1, 2) for t in qkv.split(64, dim=-1))  # (B, H, T, D)
    scores = q @ k.transpose(-1, -2) * math.sqrt(8) / 32
    scores = scores.masked_fill(torch.ones(7, 7, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 7, 64)
    torch.testing.assert_close(attn(x, model.positions), y @ attn.out.weight.T + attn.out.bias)


# Every placement that takes the branch multiplier (all built-ins but DeepNorm, refused under completep).
BRANCHED = [p for p in entry_params("norm_placement")
            if "branch_multiplier" in inspect.signature(registry.get("norm_placement", p.values[0]).factory).parameters]


@pytest.mark.parametrize("name", BRANCHED)
def test_placements_scale_each_branch_as_their_float64_reference(name, monkeypatch):
    context = dataclasses.replace(test_contract.STANDARD_CONTEXT, branch_multiplier=0.3)
    monkeypatch.setattr(test_contract, "STANDARD_CONTEXT", context)
    module = test_contract.setup("norm_placement", name)[0]
    assert module.branch_multiplier == 0.3
    test_contract.check_reference("norm_placement", name)


def test_every_builtin_placement_but_deepnorm_takes_the_branch_multiplier():
    builtin = [e.name for e in registry.entries("norm_placement") if e.factory.__module__.startswith("components.")]
    assert sorted(p.values[0] for p in BRANCHED if p.values[0] in builtin) == sorted(set(builtin) - {"deepnorm"})


def test_completep_passes_one_over_m_l_to_every_block():
    model = TransformerLM(config(n_layers=8, parametrization="completep", base_dim=32, base_layers=2, norm_placement="post"))
    assert [b.place.branch_multiplier for b in model.blocks] == [0.25] * 8


# --- declarations ----------------------------------------------------------------------------------

DECLARING = [pytest.param(kind, *p.values, marks=p.marks, id=f"{kind}-{p.id}") for kind in sorted(KINDS) for p in entry_params(kind)]


@pytest.mark.parametrize("kind, name", DECLARING)
def test_every_entry_declares_roles_covering_its_own_parameters(kind, name):
    declared = registry.get(kind, name).traits["weights"]
    assert declared is not None, f"{kind} '{name}' declares no weights"
    cfg = config(dim=16, n_heads=4, n_kv_heads=2, bias=True)
    module = registry.build(kind, name, BuildContext.from_config(cfg, 1))
    assert registry.built_by(module) is registry.get(kind, name)
    inner = [n for n, m in module.named_modules() if n and registry.built_by(m) is not None]  # a placement's norms
    for pname, p in module.named_parameters():
        if any(pname.startswith(f"{r}.") for r in inner):
            continue
        role = next((r for pattern, r in declared.items() if fnmatch.fnmatchcase(pname, pattern)), None)
        assert role in ROLES, f"{kind} '{name}': {pname} has no declared role"
        assert role == "input" or p.dim() == 2, f"{kind} '{name}': {pname} ({tuple(p.shape)}) is no matrix, so not {role}"


def test_a_malformed_declaration_is_refused_at_registration(sandbox_registry):
    for weights in ({"*": "embedding"}, {"": "input"}, ["*"]):
        with pytest.raises(TypeError, match="trait weights="):
            registry.register("ffn", "wbtest_bad", width="mlp", residual=(), weights=weights)


def test_a_parameter_no_pattern_covers_is_refused_when_the_model_is_built(sandbox_registry):
    @registry.register("ffn", "wbtest_partial", width="mlp", residual=("down",), weights={"up.*": "hidden"})
    class Partial(nn.Module):
        def __init__(self, dim: int, hidden_dim: int):
            super().__init__()
            self.up, self.down = nn.Linear(dim, hidden_dim), nn.Linear(hidden_dim, dim)

    with pytest.raises(ValueError, match=r"ffn 'wbtest_partial' declares .*no pattern covers its parameter 'down.weight'"):
        TransformerLM(config(ffn="wbtest_partial", parametrization="mup"))
    TransformerLM(config(ffn="wbtest_partial"))  # standard reads no roles


def test_a_plugin_ffn_without_weights_is_refused_under_mup_naming_ffn(sandbox_registry):
    __import__("wbtest_undeclared_ffn")
    TransformerLM(config(ffn="wbtest_undeclared"))  # standard: nothing checked
    with pytest.raises(InvalidConfig) as caught:
        config(ffn="wbtest_undeclared", parametrization="mup")
    assert caught.value.field == "ffn" and "\n" not in str(caught.value)
    assert "ffn 'wbtest_undeclared' does not declare its weights' roles" in str(caught.value)


def test_the_cli_refuses_the_undeclared_plugin_under_mup_in_one_line(tmp_path):
    exp = write_experiment(tmp_path, tmp_path / "cache", imports=["wbtest_undeclared_ffn"],
                           variants="  plain: {model: {ffn: wbtest_undeclared}}", baseline="plain")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    run = subprocess.run([sys.executable, "-m", "workbench", "show", str(exp), "model.parametrization=mup"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert "model.ffn" in lines[0] and "does not declare its weights' roles" in lines[0]


@pytest.mark.parametrize("overrides, field, message", [
    (dict(parametrization="mpu"), "parametrization", "did you mean 'mup'"),
    (dict(base_dim=32), "base_dim", "read only under parametrization mup or completep"),
    (dict(parametrization="mup", base_layers=2), "base_layers", "read only under parametrization completep"),
    (dict(parametrization="mup", base_dim=0), "base_dim", "positive integer"),
    (dict(parametrization="completep", base_layers=1.5), "base_layers", "positive integer"),
    (dict(parametrization="mup", base_dim=33), "base_dim", "divisible by n_heads=2"),
    (dict(parametrization="completep", norm_placement="deepnorm"), "norm_placement", "residual_init"),
])
def test_bad_parametrization_settings_are_refused_naming_the_field(overrides, field, message):
    with pytest.raises(InvalidConfig, match=message) as caught:
        config(**overrides)
    assert caught.value.field == field


def test_completep_refuses_a_placement_that_cannot_scale_its_branches(sandbox_registry):
    @registry.register("norm_placement", "wbtest_fixed", final_norm=True, residual_init=None, weights={})
    class Fixed(nn.Module):
        def __init__(self, make_norm):
            super().__init__()
            self.norm = make_norm()

        def forward(self, x, attn, ffn):
            return x + attn(self.norm(x)) + ffn(self.norm(x))

    config(norm_placement="wbtest_fixed", parametrization="mup")
    with pytest.raises(InvalidConfig, match="does not take branch_multiplier") as caught:
        config(norm_placement="wbtest_fixed", parametrization="completep")
    assert caught.value.field == "norm_placement"


def test_stored_configs_without_the_new_keys_load_as_standard():
    stored = config().to_dict()
    for key in ("parametrization", "base_dim", "base_layers"):
        stored.pop(key)
    cfg = TransformerConfig.from_dict(stored)
    assert (cfg.parametrization, cfg.base_dim, cfg.base_layers) == ("standard", None, None)
    again = config(parametrization="completep", base_dim=16, base_layers=1)
    assert TransformerConfig.from_dict(again.to_dict()) == again


def test_a_deep_copy_keeps_its_roles_and_groups():
    import copy

    model = TransformerLM(config(dim=64, parametrization="mup", base_dim=16, ffn="moe"))
    clone = copy.deepcopy(model)  # its modules are new objects: the registry never built them
    assert clone.weight_roles() == model.weight_roles()
    assert [(g["role"], g["lr"], len(g["params"])) for g in param_groups(clone, 1e-3, 0.1)] == \
           [(g["role"], g["lr"], len(g["params"])) for g in param_groups(model, 1e-3, 0.1)]
