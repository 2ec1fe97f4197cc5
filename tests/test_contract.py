"""Every registered entry of every kind, plugins included, checked against its kind's contract
(components.contract, docs/components.md): built with the kind's standard context, equal in float64
to the reference it declares, finite gradients, bf16 in -> bf16 out, and for FFNs forward FLOPs equal
to 2 * tokens * its matmul weights (active ones for a SparseCompute). Last, the example plugin package
(examples/plugin/) installed through the entry-point group, as a user's pip install would.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import sys
import tomllib
from pathlib import Path
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from components import BuildContext, TransformerConfig, TransformerLM, glu_hidden_dim, registry
from components.attention import NaiveAttention
from components.contract import KINDS, SparseCompute
from conftest import entry_params

ROOT = Path(__file__).resolve().parents[1]
DIM, HEADS, KV_HEADS, HEAD_DIM, T, LAYERS = 16, 4, 2, 8, 6, 3


class StandInContext(BuildContext):
    """The model's build context, with Affine stand-ins for the norms a placement builds, so each norm's place shows."""

    def make_norm(self, dim: int | None = None) -> nn.Module:
        return Affine(dim or DIM)


# What the model passes every kind, at test sizes: each kind's factory receives the fields it declares
# (KINDS[kind].sizes + settings).
STANDARD_CONTEXT = StandInContext(
    dim=DIM, n_layers=LAYERS, layer_idx=1, n_heads=HEADS, n_kv_heads=KV_HEADS, head_dim=HEAD_DIM, hidden_dim=48,
    max_seq_len=32, bias=True, theta=10000.0, init_std=0.02, norm="layernorm",
)
# Kinds whose built-in entries must each declare a float64 reference.
REFERENCE_REQUIRED = ("norm", "ffn", "norm_placement")


class Affine(nn.Module):
    """A stand-in norm for placement checks: h * g + b with its own random g, b, so each norm's place shows."""

    def __init__(self, dim: int = DIM):
        super().__init__()
        self.g = nn.Parameter(1.0 + 0.5 * torch.randn(dim))
        self.b = nn.Parameter(0.5 * torch.randn(dim))

    def forward(self, h):
        return h * self.g + self.b


class Sublayer(nn.Module):
    """A stand-in attention/FFN for placement checks: tanh(h W) (nonlinear, so wiring order matters)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(DIM, DIM) / math.sqrt(DIM))

    def forward(self, h):
        return torch.tanh(h @ self.w)


def device_of(kind: str, name: str) -> str:
    return "cuda" if (kind, name) == ("attention", "flash") else "cpu"


def setup(kind: str, name: str):
    """(module, forward(*inputs) -> output or tuple, inputs(dtype) -> tuple, extra modules with parameters)."""
    torch.manual_seed(0)
    device = device_of(kind, name)
    module = registry.build(kind, name, STANDARD_CONTEXT).to(device)
    with torch.no_grad():  # non-trivial parameters (gains away from 1, nonzero biases, ReZero's alpha off 0)
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    if kind == "norm_placement":
        attn, ffn = Sublayer(), Sublayer()
        extra = nn.ModuleDict({"attn": attn, "ffn": ffn, "place": module})

        def inputs(dtype):
            extra.to(dtype)
            return torch.randn(2, T, DIM, dtype=dtype), attn, ffn

        return module, module, inputs, extra
    if kind in ("norm", "ffn"):
        def inputs(dtype):
            return (2.0 * torch.randn(2, T, DIM, dtype=dtype) + 0.5,)

        return module, module, inputs, module
    if kind == "positions":
        def inputs(dtype):
            return torch.randn(2, T, DIM, dtype=dtype), torch.randn(2, HEADS, T, HEAD_DIM, dtype=dtype), torch.randn(2, HEADS, T, HEAD_DIM, dtype=dtype)

        return module, lambda x, q, k: (module.embed(x), *module.rotate(q, k)), inputs, module
    if kind == "attention":
        def inputs(dtype):
            q = torch.randn(2, HEADS, T, HEAD_DIM, dtype=dtype, device=device)
            kv = [torch.randn(2, KV_HEADS, T, HEAD_DIM, dtype=dtype, device=device) for _ in range(2)]
            return q, *kv

        return module, module, inputs, module
    raise AssertionError(f"no contract check for kind '{kind}': add its setup here")


def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


EVERY_ENTRY = [pytest.param(kind, *p.values, marks=p.marks, id=f"{kind}-{p.id}") for kind in sorted(KINDS) for p in entry_params(kind)]
CPU_ENTRIES = [p for p in EVERY_ENTRY if p.values != ("attention", "flash")]  # flash has no fp32/fp64 kernel


def test_every_kind_is_checked_and_declares_fields_of_the_build_context():
    assert set(registry.kinds()) <= set(KINDS)
    provided = {f.name for f in dataclasses.fields(BuildContext)} | {"make_norm"}
    for kind, contract in KINDS.items():
        assert set(contract.sizes + contract.settings) <= provided, kind
    assert callable(BuildContext.make_norm)


@pytest.mark.parametrize("kind, name", [p for p in EVERY_ENTRY if p.values[0] in REFERENCE_REQUIRED])
def test_builtin_entries_declare_a_reference(kind, name):
    entry = registry.get(kind, name)
    if entry.factory.__module__.startswith("components."):
        assert entry.traits["reference"] is not None, f"{kind} '{name}' declares no float64 reference"


def check_reference(kind: str, name: str) -> None:
    reference = registry.get(kind, name).traits["reference"]
    if reference is None:
        pytest.skip(f"{kind} '{name}' declares no reference")
    module, forward, inputs, extra = setup(kind, name)
    extra.double()
    args = inputs(torch.float64)
    with torch.no_grad():
        ours, theirs = as_tuple(forward(*args)), as_tuple(reference(module, *args))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert b.dtype == torch.float64
        torch.testing.assert_close(a, b)


def check_gradients(kind: str, name: str) -> None:
    module, forward, inputs, extra = setup(kind, name)
    dtype = torch.bfloat16 if device_of(kind, name) == "cuda" else torch.float32
    args = inputs(dtype)
    tensors = [a.requires_grad_() for a in args if isinstance(a, torch.Tensor)]
    sum(o.float().pow(2).sum() for o in as_tuple(forward(*args))).backward()
    grads = [t.grad for t in tensors] + [p.grad for p in extra.parameters()]
    assert any(g is not None for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)
    if kind == "norm_placement":  # every declared norm is used, and both sublayers
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in extra.parameters())


def check_bf16(kind: str, name: str) -> None:
    module, forward, inputs, extra = setup(kind, name)
    extra.to(torch.bfloat16)
    args = inputs(torch.bfloat16)
    with torch.no_grad():
        outputs = as_tuple(forward(*args))
    assert all(o.dtype == torch.bfloat16 for o in outputs), [o.dtype for o in outputs]
    assert all(torch.isfinite(o).all() for o in outputs)


def check_ffn_flops(name: str) -> None:
    module, forward, inputs, _ = setup("ffn", name)
    (x,) = inputs(torch.float32)
    with FlopCounterMode(display=False) as counter:
        forward(x)
    if isinstance(module, SparseCompute):
        matmul = module.active_matmul_params()
    else:
        matmul = sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))
    assert counter.get_total_flops() == 2 * x.shape[0] * x.shape[1] * matmul


@pytest.mark.parametrize("kind, name", CPU_ENTRIES)
def test_float64_output_equals_the_declared_reference(kind, name):
    check_reference(kind, name)


@pytest.mark.parametrize("kind, name", EVERY_ENTRY)
def test_gradients_are_finite(kind, name):
    check_gradients(kind, name)


@pytest.mark.parametrize("kind, name", EVERY_ENTRY)
def test_bf16_in_bf16_out(kind, name):
    check_bf16(kind, name)


@pytest.mark.parametrize("name", entry_params("ffn"))
def test_ffn_forward_flops_are_two_per_matmul_weight_per_token(name):
    check_ffn_flops(name)


# --- what each kind promises beyond its signature ------------------------------------------------


@pytest.mark.parametrize("name", entry_params("positions"))
def test_positions_add_a_content_free_term_and_rotate_without_scaling(name):
    module, _, inputs, _ = setup("positions", name)
    x, q, k = inputs(torch.float64)
    x2 = torch.randn_like(x)
    with torch.no_grad():
        torch.testing.assert_close(module.embed(x) - x, module.embed(x2) - x2)
        q_rot, k_rot = module.rotate(q, k)
    torch.testing.assert_close(q_rot.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(k_rot.norm(dim=-1), k.norm(dim=-1))


@pytest.mark.parametrize("name", entry_params("positions"))
def test_positions_are_what_they_declare_of_length_and_slopes(name):
    module, _, _, _ = setup("positions", name)
    traits = registry.get("positions", name).traits
    declared = STANDARD_CONTEXT.max_seq_len if traits["max_len"] == "max_seq_len" else traits["max_len"]
    assert module.max_len == declared
    assert (module.attention_slopes(torch.device("cpu")) is not None) == traits["slopes"]


@pytest.mark.parametrize("name", entry_params("norm_placement"))
def test_a_placement_builds_a_model_storing_its_parameters_as_the_blocks_own(name):
    # blocks.N.<name>, never blocks.N.place.<name>: the state dict round-trips and trains.
    cfg = TransformerConfig(vocab_size=64, dim=DIM, n_layers=2, n_heads=HEADS, max_seq_len=16, norm_placement=name)
    model = TransformerLM(cfg, init_seed=0)
    state = model.state_dict()
    assert not any(".place." in k for k in state)
    own = {n for n, _ in model.blocks[0].place.named_parameters()}
    assert {f"blocks.0.{n}" for n in own} <= set(state)
    again = TransformerLM(cfg, init_seed=1)
    again.load_state_dict(state)
    tokens = torch.randint(0, 64, (2, 8))
    torch.testing.assert_close(again(tokens), model(tokens))
    model(tokens[:, :-1], targets=tokens[:, 1:]).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", entry_params("attention"))
def test_attention_kernels_compute_causal_softmax_attention(name):
    kernel, _, inputs, _ = setup("attention", name)
    dtype, tol = (torch.bfloat16, dict(atol=2e-2, rtol=2e-2)) if name == "flash" else (torch.float32, {})
    q, k, v = inputs(dtype)
    torch.testing.assert_close(kernel(q, k, v), NaiveAttention()(q, k, v), **tol)


# --- the example plugin package, installed through the entry-point group --------------------------

PLUGIN_DIR = ROOT / "examples" / "plugin"
PLUGIN_MODULE = "workbench_example_plugin"


def install_through_entry_points(site: Path) -> None:
    """What `pip install examples/plugin` leaves for importlib.metadata: a dist-info folder whose
    entry_points.txt carries the pyproject's [project.entry-points."workbench.components"] table."""
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    group = project["entry-points"]["workbench.components"]
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in group.items())
    (dist / "entry_points.txt").write_text(f"[workbench.components]\n{lines}")


@pytest.fixture
def example_plugin(tmp_path, monkeypatch, sandbox_registry):
    install_through_entry_points(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))  # the module itself, where pip would copy it
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    sys.modules.pop(PLUGIN_MODULE, None)
    importlib.invalidate_caches()
    yield registry
    sys.modules.pop(PLUGIN_MODULE, None)


PLUGIN_ENTRIES = [("ffn", "example_bilinear"), ("norm", "example_scalenorm"), ("norm_placement", "example_normformer")]


def test_the_example_plugin_registers_through_its_entry_point(example_plugin):
    assert "example_bilinear" not in registry._entries["ffn"]
    for kind, name in PLUGIN_ENTRIES:
        assert name in registry.available(kind)  # the first lookup loads the entry point
    assert PLUGIN_MODULE in sys.modules


@pytest.mark.parametrize("kind, name", PLUGIN_ENTRIES)
def test_the_example_plugin_meets_the_contract(example_plugin, kind, name):
    registry.load_plugins()
    check_reference(kind, name)
    check_gradients(kind, name)
    check_bf16(kind, name)
    if kind == "ffn":
        check_ffn_flops(name)


def test_the_example_glu_gets_the_parameter_matched_width(example_plugin):
    for dim in (64, 96, 256):
        cfg = TransformerConfig(dim=dim, n_heads=4, ffn="example_bilinear")
        assert cfg.is_glu and cfg.ffn_hidden_dim == glu_hidden_dim(dim, multiple_of=1)
        model, mlp = TransformerLM(cfg), TransformerLM(TransformerConfig(dim=dim, n_heads=4, ffn="gelu", bias=False))
        ffn_params = [sum(p.numel() for p in m.blocks[0].ffn.parameters()) for m in (model, mlp)]
        assert abs(ffn_params[0] / ffn_params[1] - 1) < 0.01


def train_losses(model, opt, steps: int = 15) -> list[float]:
    """The losses of ``steps`` optimizer steps on one fixed random batch (vocab 64, 16 tokens); all finite."""
    torch.manual_seed(0)
    batch = torch.randint(0, 64, (4, 17))
    losses = []
    for _ in range(steps):
        loss = model(batch[:, :-1], targets=batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    return losses


def test_the_example_plugin_builds_a_model_that_trains(example_plugin):
    cfg = TransformerConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4, max_seq_len=16,
                            norm="example_scalenorm", norm_placement="example_normformer", ffn="example_bilinear")
    model = TransformerLM(cfg, init_seed=0)
    block = model.blocks[0]
    assert [type(getattr(block, n)).__name__ for n in ("attn_norm", "attn_post_norm", "ffn_norm")] == ["ScaleNorm"] * 3
    assert type(model.norm).__name__ == "ScaleNorm"  # final_norm=True
    # The declared residual projection is depth-scaled at init; the norm's own reset_parameters ran.
    assert "blocks.1.ffn.w_out" in model.residual_projections()
    assert model.init_stds()["blocks.1.ffn.w_out.weight"] == pytest.approx(0.02 / math.sqrt(4))
    with torch.no_grad():
        block.attn_norm.g.zero_()
    model.init_weights(0)
    assert block.attn_norm.g.item() == pytest.approx(math.sqrt(32))

    losses = train_losses(model, torch.optim.AdamW(model.parameters(), lr=1e-2))
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("parametrization, base", [("mup", {"base_dim": 32}), ("completep", {"base_dim": 32, "base_layers": 1})])
def test_the_example_plugin_runs_under_mup_and_completep(example_plugin, parametrization, base):
    """Its declared weights give every parameter a role, and its placement takes CompleteP's branch multiplier."""
    from components.parametrization import param_groups

    cfg = TransformerConfig(vocab_size=64, dim=64, n_layers=2, n_heads=4, max_seq_len=16, norm="example_scalenorm",
                            norm_placement="example_normformer", ffn="example_bilinear",
                            parametrization=parametrization, **base)
    model = TransformerLM(cfg, init_seed=0)
    roles = model.weight_roles()
    assert roles["blocks.0.ffn.w_gate.weight"] == "hidden" and roles["blocks.0.place.attn_norm.g"] == "input"
    assert model.blocks[1].place.branch_multiplier == (0.5 if parametrization == "completep" else 1.0)
    groups = param_groups(model, 1e-2, 0.1)
    hidden = next(g for g in groups if g["role"] == "hidden")
    assert hidden["lr"] == pytest.approx(1e-2 / 2)  # m_d = 64 / 32
    losses = train_losses(model, torch.optim.AdamW(groups))
    assert losses[-1] < 0.8 * losses[0]
