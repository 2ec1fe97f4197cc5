"""``python -m workbench sample`` and ``export`` on a trained micro run, and the report's Samples section (made by
the runner at the end of the sweep, stored in results.json, rendered by the report).

One finished micro experiment (two variants, 6 steps): ``rms`` is LLaMA (transformers expresses it),
``ln`` is LayerNorm with RoPE (it does not: the plain export).
"""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from e2e import results  # noqa: E402
from workbench import export as export_module  # noqa: E402
from workbench.cli import main  # noqa: E402
from workbench.export import PLAIN_DECODE, PLAIN_GENERATE, PLAIN_LOAD, PLAIN_TOKENIZERS, export_run, hf_tokenizer  # noqa: E402
from workbench.load import load_run  # noqa: E402
from workbench.report_samples import MAX_PARAMS, PROMPT, SAMPLE_TOKENS, new_samples, record_samples  # noqa: E402
from workbench.reports.fmt import md  # noqa: E402
from workbench.reports.samples import shown  # noqa: E402
from workbench.results import ResultsStore  # noqa: E402

pytestmark = pytest.mark.e2e  # trains sweeps (directly or in a module fixture)

TEXT = "def greet(name):\n    return f'héllo, {name}!'  # ünïcode ✓ 日本\n\tx  =  1\r\n"


@pytest.fixture
def trained(tiny_run) -> Path:
    return tiny_run["out"]


@pytest.fixture
def copy(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "copy"))


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sample_prints_every_completed_variant_with_the_same_sampling_seed(trained, capsys):
    args = ("sample", trained, "--prompt", "def main():\n", "--max-new-tokens", "12", "--top-k", "50")
    code, out, _ = cli(capsys, *args)
    assert code == 0
    assert "=== rms (seed 0, " in out and "=== ln (seed 0, " in out and out.index("=== rms") < out.index("=== ln")
    assert "sampling seed 0" in out
    for name in ("rms", "ln"):  # each block is the prompt and the continuation load_run's model generates
        model, tokenizer = load_run(trained, name)
        prompt = torch.tensor([tokenizer.encode("def main():\n")])
        new = model.generate(prompt, 12, temperature=1.0, top_k=50, seed=0, eos_id=tokenizer.eos_id)[0, prompt.shape[1]:]
        assert "def main():\n" + tokenizer.decode(new.tolist()) in out
    assert cli(capsys, *args)[1] == out  # same seed, same text
    assert cli(capsys, *args, "--sampling-seed", "1")[1] != out
    code, greedy, _ = cli(capsys, "sample", trained, "--variant", "ln", "--prompt", "x", "--temperature", "0",
                          "--max-new-tokens", "5")
    assert code == 0 and "=== ln" in greedy and "=== rms" not in greedy and "greedy" in greedy


@pytest.mark.parametrize("case", ["missing run dir", "unknown variant", "unknown seed", "not completed", "empty prompt",
                                  "bad top-p"])
def test_sample_refuses_bad_input_in_one_line_with_exit_2(copy, capsys, case):
    args = ["sample", copy, "--prompt", "x"]
    if case == "missing run dir":
        args[1] = copy / "nowhere"
    elif case == "unknown variant":
        args += ["--variant", "rms", "--variant", "nope"]
    elif case == "unknown seed":
        args += ["--seed", "3"]
    elif case == "not completed":
        data = results(copy)
        data["variants"]["ln"]["runs"][0]["status"] = "diverged"
        (copy / "results.json").write_text(json.dumps(data))
        args += ["--variant", "ln"]
    elif case == "empty prompt":
        args[3] = ""
    else:
        args += ["--top-p", "1.5"]
    code, out, err = cli(capsys, *args)
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1
    expected = {"missing run dir": "no such folder", "unknown variant": "no variant 'nope' (variants: rms, ln)",
                "unknown seed": "has no seed 3", "not completed": "variant 'ln' has no completed run (seeds: 0 diverged)",
                "empty prompt": "prompt is empty", "bad top-p": "top_p must be in (0, 1]"}[case]
    assert expected in err


def test_sample_defaults_to_the_variants_with_a_completed_run(copy, capsys):
    data = results(copy)
    data["variants"]["ln"]["runs"][0]["status"] = "failed"
    (copy / "results.json").write_text(json.dumps(data))
    code, out, _ = cli(capsys, "sample", copy, "--prompt", "x", "--max-new-tokens", "3")
    assert code == 0 and "=== rms" in out and "=== ln" not in out


def python_source() -> str:
    """Real Python files, for comparing the two tokenizers on more than one sentence."""
    import json.decoder
    import json.encoder

    return inspect.getsource(json.encoder) + inspect.getsource(json.decoder)


def test_the_transformers_export_loads_with_auto_classes_and_computes_the_same_logits(trained, tmp_path, capsys):
    out = tmp_path / "hf"
    code, printed, _ = cli(capsys, "export", trained, "--variant", "rms", "--out", out)
    assert code == 0 and "AutoModelForCausalLM" in printed
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    model, tokenizer = load_run(trained, "rms")
    vocab = model.config.vocab_size
    for text in (TEXT, python_source(), "   leading spaces", "x"):
        assert hf_tok(text)["input_ids"] == tokenizer.encode(text)  # no BOS added, same pieces
        assert hf_tok.decode(tokenizer.encode(text)) == text
    specials = [hf_tok.unk_token_id, hf_tok.eos_token_id]
    assert all(0 <= i < vocab for i in specials) and len(hf_tok) == vocab and hf_tok.bos_token_id is None
    assert hf.config.eos_token_id == hf.generation_config.eos_token_id == hf_tok.eos_token_id == tokenizer.eos_id
    x = torch.tensor([hf_tok(TEXT)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x), rtol=0, atol=1e-4)
    prompt = x[:, :8]
    ours = model.generate(prompt, 10, temperature=0)
    assert torch.equal(hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10, do_sample=False),
                       ours)
    generated = transformers.pipeline("text-generation", model=str(out))("def main():", max_new_tokens=10)
    text = generated[0]["generated_text"]
    assert text.startswith("def main():") and len(text) > len("def main():")


def test_the_transformers_tokenizer_pads_a_batch_with_eos_on_the_left(trained, tmp_path):
    out = tmp_path / "hf"
    export_run(trained, "rms", out)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    _, tokenizer = load_run(trained, "rms")
    texts = ["x", "def main():\n    return 0"]
    batch = hf_tok(texts, padding=True, return_tensors="pt")
    short, long = (tokenizer.encode(t) for t in texts)
    pad = len(long) - len(short)
    assert hf_tok.pad_token_id == hf_tok.eos_token_id == tokenizer.eos_id and hf.config.pad_token_id is None
    assert batch["input_ids"][0].tolist() == [tokenizer.eos_id] * pad + short
    assert batch["attention_mask"][0].tolist() == [0] * pad + [1] * len(short)
    with torch.no_grad():  # the last position is every row's next-token logits (RoPE: relative positions only)
        last = hf(**batch).logits[:, -1]
        torch.testing.assert_close(last[0], hf(torch.tensor([short])).logits[0, -1], rtol=0, atol=1e-4)
        torch.testing.assert_close(last[1], hf(torch.tensor([long])).logits[0, -1], rtol=0, atol=1e-4)


def test_the_plain_export_loads_back_with_the_documented_lines(trained, tmp_path, capsys):
    out = tmp_path / "plain"
    code, printed, _ = cli(capsys, "export", trained, "--variant", "ln", "--out", out)
    assert code == 0 and "plain workbench folder" in printed and "norm='layernorm'" in printed  # what prevents it
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "tokenizer.model"]
    lines = PLAIN_LOAD.format(dir=out)
    assert PLAIN_LOAD.format(dir="DIR") in (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert len(lines.splitlines()) == 3 and lines in (out / "README.md").read_text().replace("DIR", str(out))
    namespace = {}
    exec(lines, namespace)  # exactly what the README tells a reader to run
    loaded = namespace["model"]
    model, tokenizer = load_run(trained, "ln")
    assert not loaded.training and loaded.config == model.config
    x = torch.tensor([tokenizer.encode(TEXT)])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    tokenizer_line = PLAIN_TOKENIZERS["sentencepiece"][1]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert tokenizer_line.format(dir="DIR") in (out / "README.md").read_text() and tokenizer_line.format(dir="DIR") in readme
    exec(tokenizer_line.format(dir=out), namespace)
    assert namespace["tokenizer"].encode(TEXT) == tokenizer.encode(TEXT)
    generate = PLAIN_GENERATE["sentencepiece"].format(prompt="def main():")
    assert generate + "\n" + PLAIN_DECODE in (out / "README.md").read_text()
    assert "pip install lm-ablation-components safetensors sentencepiece" in (out / "README.md").read_text()
    exec(generate, namespace)  # sentencepiece's eos_id() is a method: the line calls it
    prompt = torch.tensor([tokenizer.encode("def main():")])
    assert torch.equal(namespace["ids"], model.generate(prompt, 50, temperature=0.8, seed=0, eos_id=tokenizer.eos_id))


def test_a_conversion_that_computes_other_logits_falls_back_to_the_plain_export(trained, tmp_path, monkeypatch):
    from workbench import interop

    real = interop.to_hf

    def wrong(model, **overrides):  # as if transformers ignored part of the architecture
        hf = real(model, **overrides)
        with torch.no_grad():
            hf.model.norm.weight.mul_(1.5)
        return hf

    monkeypatch.setattr(interop, "to_hf", wrong)
    done = export_run(trained, "rms", tmp_path / "out")
    assert done.form == "plain" and "computes different logits" in done.reason
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_export_refuses_a_folder_in_use_and_a_run_it_cannot_load(trained, tmp_path, capsys):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    code, _, err = cli(capsys, "export", trained, "--variant", "rms", "--out", used)
    assert code == 2 and "already exists and is not an empty folder" in err and (used / "keep.txt").read_text() == "mine"
    code, _, err = cli(capsys, "export", trained, "--variant", "nope", "--out", tmp_path / "new")
    assert code == 2 and "no variant 'nope'" in err and not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]  # no staging folder left behind


def test_hf_tokenizer_decodes_byte_fallback_and_control_pieces_like_sentencepiece(trained):
    _, tokenizer = load_run(trained, "rms")
    hf_tok = hf_tokenizer(tokenizer)
    ids = tokenizer.encode("✓ 日本 \x00")  # characters outside the vocabulary: byte pieces
    assert any(tokenizer.piece(i).startswith("<0x") for i in ids)
    assert hf_tok.decode(ids) == tokenizer.decode(ids) == "✓ 日本 \x00"
    assert hf_tok.decode(ids + [tokenizer.eos_id], skip_special_tokens=True) == tokenizer.decode(ids)
    assert export_module.LOGIT_TOLERANCE == 1e-4


def section(report: str) -> str:
    return report[report.index("## Samples"):].split("\n## ")[0] if "## Samples" in report else ""


def test_the_sweep_stores_each_variants_greedy_sample_and_the_report_shows_it(trained):
    stored = json.loads((trained / "results.json").read_text())["samples"]
    assert stored["prompt"] == PROMPT and stored["max_new_tokens"] == SAMPLE_TOKENS == 40
    samples = section((trained / "report.md").read_text())
    for name in ("rms", "ln"):
        model, tokenizer = load_run(trained, name)
        prompt = torch.tensor([tokenizer.encode(PROMPT)])
        new = model.generate(prompt, SAMPLE_TOKENS, temperature=0, eos_id=tokenizer.eos_id)[0, prompt.shape[1]:].tolist()
        new = new[:-1] if new and new[-1] == tokenizer.eos_id else new
        assert stored["variants"][name]["seed"] == 0 and stored["variants"][name]["text"] == tokenizer.decode(new)
        assert f"| {name} | 0 | {md(shown(tokenizer.decode(new)))} |" in samples


def test_a_report_on_a_folder_whose_models_are_gone_still_shows_the_stored_samples(trained, copy):
    from workbench.reports import write_report

    shutil.rmtree(copy / "rms")
    shutil.rmtree(copy / "ln")
    expected = section((trained / "report.md").read_text()).replace(str(trained), str(copy))
    assert expected and section(write_report(copy).read_text()) == expected


def _retrained(run_dir: Path, name: str) -> None:
    """As if ``name`` was trained again: its completed record changes (results.json only)."""
    def change(data):
        data["variants"][name]["runs"][0]["wall_time_s"] += 1.0
    ResultsStore(run_dir).update(change)


def test_samples_are_made_again_only_for_a_variant_whose_completed_runs_changed(copy):
    before = (copy / "results.json").read_bytes()
    record_samples(ResultsStore(copy))
    assert (copy / "results.json").read_bytes() == before  # nothing changed: not even rewritten
    stored = json.loads(before)["samples"]["variants"]
    shutil.rmtree(copy / "ln")  # ln is not sampled again: its entry stays, from the model now gone
    _retrained(copy, "rms")
    record_samples(ResultsStore(copy))
    after = json.loads((copy / "results.json").read_text())["samples"]["variants"]
    assert after["ln"] == stored["ln"]
    assert after["rms"]["text"] == stored["rms"]["text"] and after["rms"]["runs"] != stored["rms"]["runs"]


def test_the_samples_section_is_left_out_when_no_model_can_be_loaded(copy):
    from workbench.reports import write_report

    shutil.rmtree(copy / "rms")
    shutil.rmtree(copy / "ln")
    _retrained(copy, "rms")
    _retrained(copy, "ln")
    record_samples(ResultsStore(copy))
    stored = json.loads((copy / "results.json").read_text())["samples"]["variants"]
    assert stored["rms"]["seed"] is None and stored["rms"]["why"].startswith("not loaded: ")
    assert "## Samples" not in write_report(copy).read_text()


def test_report_rebuild_keeps_the_stored_samples(trained, copy, capsys):
    stored = json.loads((copy / "results.json").read_text())["samples"]
    assert main(["report", "--rebuild", str(copy)]) == 0
    assert json.loads((copy / "results.json").read_text())["samples"] == stored
    expected = section((trained / "report.md").read_text()).replace(str(trained), str(copy))
    assert section((copy / "report.md").read_text()) == expected


def test_a_sweep_too_large_to_sample_stores_why_and_a_failure_is_only_a_warning(tmp_path, caplog):
    data = {"variants": {"big": {"params": MAX_PARAMS + 1, "runs": [{"seed": 0, "status": "completed"}]},
                         "none": {"params": 10**9, "runs": [{"seed": 0, "status": "failed"}]}}}
    assert new_samples(tmp_path, data)["skipped"] == {"largest_params": MAX_PARAMS + 1, "max_params": MAX_PARAMS}
    assert new_samples(tmp_path, {"variants": {"none": data["variants"]["none"]}}) is None
    (tmp_path / "results.json").write_text("{not json")
    record_samples(ResultsStore(tmp_path))  # never raises: the sweep's results stand without samples
    assert "report samples not stored: RunFolderError" in caplog.text


def test_shown_keeps_newlines_and_indentation_visible():
    assert shown("def f():\n    return 1\n\tx = 'a\\b'") == "def f():\\n····return 1\\n\\tx = 'a\\\\b'"
