"""Length extrapolation: eval.lengths resolve to tokens; every run's val loss is measured at each
length on the same tokens; learned positions get a null and a reason instead of a crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from components import TransformerConfig, TransformerLM
from e2e import write_experiment
from workbench.cli import main
from workbench.config import load_experiment
from workbench.training.length_eval import eval_span, length_losses

ROOT = Path(__file__).resolve().parents[1]
PRESETS = [str(ROOT / f"configs/{p}.yaml") for p in ("model/llama", "size/tiny", "data/stdlib", "train/cpu")]
VOCAB, TRAIN_LEN = 97, 16


def model(positions: str) -> TransformerLM:
    cfg = TransformerConfig(vocab_size=VOCAB, max_seq_len=TRAIN_LEN, dim=32, n_layers=2, n_heads=2, positions=positions)
    return TransformerLM(cfg, init_seed=0).eval()


def losses(m: TransformerLM, tokens: np.ndarray, lengths: list[int], batch_tokens: int = 64):
    return length_losses(m, tokens, lengths, batch_tokens=batch_tokens, target_tokens=256, device=torch.device("cpu"),
                         forward_context=torch.no_grad())


TOKENS = np.random.default_rng(0).integers(0, VOCAB, 1000).astype(np.uint16)


@pytest.mark.parametrize("positions", ["rope", "sinusoidal", "none", "alibi"])
def test_schemes_without_a_table_get_a_loss_at_every_length(positions):
    got, notes = losses(model(positions), TOKENS, [8, 16, 32, 64])
    assert list(got) == ["8", "16", "32", "64"] and notes == {}
    assert all(np.isfinite(v) and v > 0 for v in got.values())


def test_learned_positions_are_not_applicable_past_their_table():
    got, notes = losses(model("learned"), TOKENS, [8, 16, 32])
    assert got["8"] is not None and got["16"] is not None and got["32"] is None
    assert notes == {"32": "not applicable (learned positions cover 16 tokens)"}


@pytest.mark.parametrize("length, batch_tokens", [(8, 64), (32, 64), (64, 16)])
def test_loss_is_the_token_mean_over_the_span_cut_into_windows(length, batch_tokens):
    """Reference: every window alone, cross-entropy summed in float64, divided by the token count."""
    m = model("rope")
    span = eval_span(len(TOKENS), 64, 256)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, span - length + 1, length):
            chunk = torch.from_numpy(TOKENS[start:start + length + 1].astype(np.int64))
            logits = m(chunk[None, :-1]).double()
            total += F.cross_entropy(logits[0], chunk[1:], reduction="sum").item()
            count += length
    got, _ = losses(m, TOKENS, [length], batch_tokens)
    assert count == span and got[str(length)] == pytest.approx(total / count, rel=1e-5)


def test_eval_span_is_a_multiple_of_the_longest_length_inside_the_split():
    assert eval_span(1000, 64, 256) == 256
    assert eval_span(1000, 96, 256) == 192
    assert eval_span(300, 64, 10_000) == 256  # capped by the split (each window needs one extra token)
    assert eval_span(1000, 512, 100) == 512  # at least one longest window
    with pytest.raises(ValueError, match="fewer than 513"):
        eval_span(500, 512, 100)


def test_lengths_are_multiples_up_to_16_and_token_counts_above(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "defaults": PRESETS, "eval": {"lengths": [4, 0.5, 1, 2, 512, 256]},
                                    "variants": {"a": {}, "short": {"train": {"seq_len": 64}}}}))
    exp = load_experiment(path)
    assert exp.eval == {"lengths": [4, 0.5, 1, 2, 512, 256]}
    assert exp.variants["a"].eval_lengths == [64, 128, 256, 512]  # sorted, 2x = 256 tokens once
    assert exp.variants["short"].eval_lengths == [32, 64, 128, 256, 512]




@pytest.mark.e2e
def test_extrapolation_end_to_end(tmp_path, cache):
    variants = "  rope: {}\n  sinusoidal: {model: {positions: sinusoidal}}\n  none: {model: {positions: none}}\n  learned: {model: {positions: learned}}"
    exp = write_experiment(tmp_path, cache, steps=8, seeds=[0], variants=variants, baseline="rope",
                           extra="eval: {lengths: [1, 2, 4]}")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["eval"] == {"lengths": [1, 2, 4]}
    runs = {name: e["runs"][0] for name, e in results["variants"].items()}
    for name in ("rope", "sinusoidal", "none"):
        assert set(runs[name]["length_eval"]) == {"32", "64", "128"}
        assert all(isinstance(v, float) and v > 0 for v in runs[name]["length_eval"].values()), name
        assert runs[name]["length_eval_notes"] == {}
    learned = runs["learned"]
    assert learned["length_eval"]["32"] > 0 and learned["length_eval"]["64"] is None and learned["length_eval"]["128"] is None
    assert learned["length_eval_notes"]["128"] == "not applicable (learned positions cover 32 tokens)"
    md = (out / "report.md").read_text()
    section = md[md.index("## Length extrapolation"):]
    row = next(line for line in section.splitlines() if line.startswith("| learned |"))
    assert row.count("not applicable (learned positions cover 32 tokens)") == 2
    assert (out / "plots" / "val_loss_vs_length.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.e2e
def test_a_length_longer_than_the_val_split_exits_2(tmp_path, cache, capsys):
    exp = write_experiment(tmp_path, cache, steps=2, seeds=[0], variants="  rms: {}", extra="eval: {lengths: [1, 100000]}")
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and str(exp.name) in err  # names the file
    assert "eval.lengths: 100000 tokens needs 100001 validation tokens" in err
    assert not (tmp_path / "out").exists()
