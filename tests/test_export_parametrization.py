"""μP / CompleteP models leave the workbench exactly or not at all: ``fold_multipliers`` gives the standard
model with the same logits (float64, to rounding), ``to_hf`` of it computes transformers' logits (fp32,
1e-4), and a model whose multipliers do not fold is exported in the plain form with the reason.

Every case has multipliers far from 1 (base widths and depths well below the model's) and randomised norm
gains and biases, and the same weights read without the multipliers give other logits: a fold left out shows.
"""

from __future__ import annotations

import pytest
import torch

from components import TransformerConfig, TransformerLM
from workbench.interop import fold_multipliers

SMALL = dict(vocab_size=97, max_seq_len=32, dim=64, n_layers=2, n_heads=4)
MUP = dict(parametrization="mup", base_dim=16)
CP = dict(parametrization="completep", base_dim=16, base_layers=1, n_layers=3)
GPT2 = dict(norm="layernorm", ffn="gelu_tanh", positions="learned", bias=True)
MOE = {"name": "moe", "n_experts": 4, "top_k": 2}

# Each multiplier in each place it folds into: lm_head or the final norm (tied), the q rows of qkv or
# q_norm (QK-norm), the residual linear layers or the branch's own norm (reordered, sandwich).
FOLD_CASES = {
    "mup_llama": dict(MUP),
    "mup_tied_bias_gqa": dict(MUP, tie_embeddings=True, bias=True, n_kv_heads=2),
    "mup_gpt2_tied": dict(MUP, **GPT2, tie_embeddings=True),
    "mup_qk_head": dict(MUP, qk_norm="head", n_kv_heads=1),
    "mup_qk_proj_layernorm": dict(MUP, qk_norm="proj", norm="layernorm", bias=True),
    "mup_dyt_tied_qk_head": dict(MUP, norm="dyt", tie_embeddings=True, qk_norm="head"),
    "mup_moe": dict(MUP, ffn=MOE),
    "mup_alibi_window": dict(MUP, positions="alibi", window=6),  # q's multiplier leaves the ALiBi bias as it is
    "completep_pre": dict(CP),
    "completep_depth_only": dict(CP, base_dim=None, tie_embeddings=True),
    "completep_parallel_gpt2": dict(CP, **GPT2, norm_placement="parallel"),
    "completep_post": dict(CP, norm_placement="post", bias=True),
    "completep_reordered_qk_proj": dict(CP, norm_placement="reordered", qk_norm="proj", tie_embeddings=True),
    "completep_sandwich_layernorm": dict(CP, norm_placement="sandwich", norm="layernorm", bias=True),
    "completep_moe": dict(CP, ffn=MOE, n_kv_heads=2),
}


@torch.no_grad()
def randomise_vectors(model: torch.nn.Module) -> None:
    """Norm gains around 1 and biases around 0 instead of exactly 1 and 0, so a fold into them is tested."""
    for name, p in model.named_parameters():
        if p.ndim == 1:
            p.copy_(0.2 * torch.randn_like(p) + (1.0 if name.endswith(("weight", "alpha")) else 0.0))


def build(seed: int = 0, **fields) -> TransformerLM:
    torch.manual_seed(seed)
    model = TransformerLM(TransformerConfig(**{**SMALL, **fields}), init_seed=seed)
    randomise_vectors(model)
    return model.eval()


def without_multipliers(model: TransformerLM) -> TransformerLM:
    """``model``'s weights, read under ``standard``: what an export that forgot the multipliers computes."""
    fields = dict(model.config.to_dict(), parametrization="standard", base_dim=None, base_layers=None)
    plain = TransformerLM(TransformerConfig.from_dict(fields)).to(model.embed.weight.dtype)
    plain.load_state_dict(model.state_dict())
    return plain.eval()


def tokens(vocab_size: int) -> torch.Tensor:
    return torch.randint(0, vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("case", FOLD_CASES)
def test_the_folded_standard_model_computes_the_multiplied_logits(case):
    model = build(**FOLD_CASES[case]).double()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_multipliers(model)
    cfg = folded.config
    assert (cfg.parametrization, cfg.base_dim, cfg.base_layers) == ("standard", None, None)
    assert {k: v for k, v in cfg.to_dict().items() if k not in ("parametrization", "base_dim", "base_layers")} == {
        k: v for k, v in model.config.to_dict().items() if k not in ("parametrization", "base_dim", "base_layers")}
    assert not folded.training and next(folded.parameters()).dtype == torch.float64
    assert (folded.lm_head.weight is folded.embed.weight) == cfg.tie_embeddings
    ids = tokens(cfg.vocab_size)
    with torch.no_grad():
        expected = model(ids)
        torch.testing.assert_close(folded(ids), expected, rtol=1e-10, atol=1e-10)
        assert (without_multipliers(model)(ids) - expected).abs().max() > 1e-2  # the fold did something
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model itself is unchanged


def test_a_standard_model_is_its_own_fold():
    model = build()
    assert fold_multipliers(model) is model


def test_at_the_base_shape_nothing_needs_to_fold_even_with_tied_embeddings_and_no_final_norm():
    model = build(parametrization="mup", tie_embeddings=True, norm_placement="post").double()
    folded = fold_multipliers(model)
    assert folded.config.parametrization == "standard"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), folded.state_dict().values()))


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(MUP, tie_embeddings=True, norm_placement="post"),
         r"^the mup multipliers do not fold .*: the logits multiplier 0\.25 .* tie_embeddings=True .* final norm none"),
        (dict(CP, norm_placement="layerscale"),
         r"^the completep multipliers do not fold .*: the residual-branch multiplier 0\.333333 of norm_placement='layerscale'"),
        (dict(CP, base_dim=None, norm_placement="rezero"), r"norm_placement='rezero' with norm 'rmsnorm' has no known weights"),
    ],
    ids=["tied_without_final_norm", "completep_layerscale", "completep_rezero"],
)
def test_a_multiplier_without_weights_to_take_it_is_refused_naming_why(fields, match):
    with pytest.raises(ValueError, match=match):
        fold_multipliers(build(**fields))


def test_the_q_multiplier_after_a_qk_norm_without_affine_output_is_refused(sandbox_registry):
    from torch import nn

    def reference(module, x):
        x = x.double()
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6)

    @sandbox_registry.register("norm", "wbtest_unit_rms", weights={}, reference=reference)
    class UnitRMS(nn.Module):
        """x / rms(x): RMSNorm without a gain, so nothing of its own can carry a multiplier."""

        def __init__(self, dim: int):
            super().__init__()

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    fold_multipliers(build(**MUP, norm="wbtest_unit_rms"))  # without QK-norm q's rows of qkv take it
    with pytest.raises(ValueError, match=r"q multiplier 0\.5 comes after qk_norm='head' with norm 'wbtest_unit_rms'"):
        fold_multipliers(build(**MUP, norm="wbtest_unit_rms", qk_norm="head"))


# μP / CompleteP models of every transformers family, and the class to_hf must pick.
HF_CASES = {
    "llama_mup": (dict(MUP), "LlamaForCausalLM"),
    "llama_mup_tied_bias_gqa": (dict(MUP, tie_embeddings=True, bias=True, n_kv_heads=2), "LlamaForCausalLM"),
    "llama_completep": (dict(CP, ffn="geglu"), "LlamaForCausalLM"),
    "qwen3_mup": (dict(MUP, qk_norm="head", n_kv_heads=2), "Qwen3ForCausalLM"),
    "olmo2_completep": (dict(CP, norm_placement="reordered", qk_norm="proj"), "Olmo2ForCausalLM"),
    "mistral_mup_window": (dict(MUP, window=5), "MistralForCausalLM"),
    "gpt2_mup_tied": (dict(MUP, **GPT2, tie_embeddings=True), "GPT2LMHeadModel"),
    "mixtral_completep": (dict(CP, ffn={"name": "moe", "n_experts": 4, "top_k": 2}, ffn_hidden_dim=96), "MixtralForCausalLM"),
}


@pytest.mark.parametrize("case", HF_CASES)
def test_to_hf_of_a_mup_model_computes_its_logits_in_transformers(case):
    pytest.importorskip("transformers")
    from workbench.interop import from_hf, to_hf

    fields, model_class = HF_CASES[case]
    ours = build(**fields)
    with torch.no_grad():  # decisive routing: no near-tie of expert probabilities for rounding to flip
        for block in ours.blocks:
            if fields.get("ffn") and not isinstance(fields["ffn"], str):
                block.ffn.router.weight.mul_(10.0)
    experts = dict(experts_implementation="eager") if model_class == "MixtralForCausalLM" else {}
    hf = to_hf(ours, attn_implementation="eager", **experts).eval()
    assert type(hf).__name__ == model_class
    ids = tokens(ours.config.vocab_size)
    with torch.no_grad():
        expected = ours(ids)
        torch.testing.assert_close(hf(ids).logits, expected, rtol=1e-4, atol=1e-4)
        assert (without_multipliers(ours)(ids) - expected).abs().max() > 1e-2  # 1e-4 would see a missing fold
    back = from_hf(hf)  # transformers holds the folded standard model, weight for weight
    folded = fold_multipliers(ours).state_dict()
    assert back.config.parametrization == "standard"
    assert all(torch.equal(v, folded[k]) for k, v in back.state_dict().items())


def test_to_hf_refuses_a_model_whose_multipliers_do_not_fold():
    pytest.importorskip("transformers")
    from workbench.interop import to_hf

    with pytest.raises(ValueError, match="mup multipliers do not fold into the weights exactly: .*tie_embeddings=True"):
        to_hf(build(**MUP, tie_embeddings=True, norm_placement="post"))


@pytest.mark.e2e
def test_python_m_workbench_export_of_a_trained_mup_run(tmp_path, cache, capsys):
    """A real run: ``mup`` exports to transformers with its logits; ``tied_post`` (no weight for the logits
    multiplier) is written in the plain form, which loads back under mup, and both say so."""
    transformers = pytest.importorskip("transformers")
    from e2e import cli, write_experiment
    from workbench.cli import main
    from workbench.export import PLAIN_LOAD
    from workbench.load import load_run

    variants = ("  mup: {model: {parametrization: mup, base_dim: 16}}\n"
                "  tied_post: {model: {parametrization: mup, base_dim: 16, tie_embeddings: true, norm_placement: post}}")
    exp = write_experiment(tmp_path, cache, name="mup", steps=4, every=2, seeds=(0,), variants=variants, baseline="mup")
    run = tmp_path / "run"
    assert main(["run", str(exp), "--out", str(run)]) == 0
    capsys.readouterr()

    proc = cli("export", str(run), "--variant", "mup", "--out", str(tmp_path / "hf"))
    printed, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "AutoModelForCausalLM" in printed, err
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    model, tokenizer = load_run(run, "mup")
    assert model.config.parametrization == "mup" and model.multipliers.output == 0.5
    x = torch.tensor([tokenizer.encode("def main():\n    return [x * 2 for x in range(10)]\n")])
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x), rtol=0, atol=1e-4)

    plain = tmp_path / "plain"
    assert main(["export", str(run), "--variant", "tied_post", "--out", str(plain)]) == 0
    printed = capsys.readouterr().out
    reason = "the mup multipliers do not fold into the weights exactly"
    assert "plain workbench folder" in printed and reason in printed and "tie_embeddings=True" in printed
    assert reason in (plain / "README.md").read_text()
    namespace = {}
    exec(PLAIN_LOAD.format(dir=plain), namespace)  # the plain folder keeps the multipliers: its config is mup
    model, _ = load_run(run, "tied_post")
    assert namespace["model"].config == model.config and namespace["model"].config.parametrization == "mup"
    with torch.no_grad():
        torch.testing.assert_close(namespace["model"](x), model(x), rtol=0, atol=0)
