"""What a person sees of a sweep: TensorBoard, the log of a run without a terminal, `show`, `init`, the
report page, and an experiment outside the repository naming the shipped presets."""

from __future__ import annotations

import html
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser import NO_BROWSER, find_browser, measure
from e2e import REPO, results, write_experiment
from workbench.cli import main

pytestmark = pytest.mark.e2e  # trains sweeps (directly or in a module fixture)

LOG_EVERY = 2  # e2e.TINY's train.log_every
STEPS = 8


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One micro sweep (2 variants x 1 seed x 8 steps) run as a batch job would: stderr into a file."""
    folder = tmp_path_factory.mktemp("sweep")
    exp = write_experiment(folder, folder / "cache", steps=STEPS, every=4, seeds=[0])
    out = folder / "out"
    log = folder / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.run([sys.executable, "-m", "workbench", "run", str(exp), "--out", str(out)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                              stdout=subprocess.PIPE, stderr=err, text=True, timeout=300)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return out, log.read_text(), proc.stdout


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _steps(acc, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


# ---------------------------------------------------------------- TensorBoard

def test_tensorboard_scalars_are_named_and_share_the_validation_step_axis(sweep):
    out, _, _ = sweep
    acc = _events(out / "ln" / "seed0")
    tags = acc.Tags()["scalars"]
    assert "lr" in tags and not [t for t in tags if t.startswith("lr-") or "AdamW" in t]  # one named curve
    assert "epoch" not in tags and not [t for t in tags if t.startswith("final")]
    # train scalars at the step they describe (global_step after the step), the val loss's axis
    assert _steps(acc, "loss/train") == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    assert {4, 8} <= set(_steps(acc, "loss/val")) & set(_steps(acc, "loss/train"))
    # tokens/s from the first logging window on, not after a 100-step window
    speed = acc.Scalars("speed/tokens_per_sec")
    assert speed[0].step == LOG_EVERY and all(e.value > 0 for e in speed)
    assert "optim/grad_norm" in tags and "speed/mfu" not in tags  # no known peak on a CPU: no MFU


def test_logged_learning_rate_is_warmup_then_cosine(sweep):
    out, _, _ = sweep
    train = results(out)["variants"]["ln"]["config"]["train"]
    lr, warmup, total, floor = train["lr"], train["warmup_steps"], train["steps"], train["min_lr_ratio"]

    def expected(step: int) -> float:  # the schedule after `step` optimizer steps, written out independently
        if step < warmup:
            return lr * (step + 1) / warmup
        progress = min(1.0, (step - warmup) / (total - warmup))
        return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))

    for event in _events(out / "ln" / "seed0").Scalars("lr"):
        assert event.value == pytest.approx(expected(event.step), rel=1e-6)


def test_hparams_view_shows_variant_and_verdict_first_and_marks_the_compared_key(sweep):
    from tensorboard_api import default_hparam_columns, hparams_experiment, session_groups, tensorboard_client
    from workbench.training import tensorboard as tb

    out, _, _ = sweep
    client = tensorboard_client(out)
    experiment = hparams_experiment(client)
    assert default_hparam_columns(experiment)[:4] == ["variant", "verdict", "seed", "model/norm"]
    differs = {h["name"]: h["differs"] for h in experiment["hparamInfos"]}
    assert differs["model/norm"] and not differs["model/dim"] and not differs["train/lr"]
    assert not [name for name in differs if "tokens" in name]  # wall-clock tokens/s is not compared: a curve only
    assert [m["name"]["tag"] for m in experiment["metricInfos"]] == [tb.FINAL_VAL_LOSS]
    row = session_groups(client, experiment)["ln/seed0"]
    assert row["hparams"][tb.column("verdict")] == results(out)["variants"]["ln"]["comparison"]["verdict"]
    assert row["metrics"][tb.FINAL_VAL_LOSS] == pytest.approx(results(out)["variants"]["ln"]["runs"][0]["final_val_loss"],
                                                              rel=1e-6)


def test_custom_scalars_layout_makes_no_run_of_its_own_and_no_empty_mfu_chart(sweep):
    from tensorboard_api import custom_scalar_charts, runs, tensorboard_client

    out, _, _ = sweep
    assert not list(out.glob("events.out.tfevents.*"))
    client = tensorboard_client(out)
    assert sorted(runs(client)) == ["ln/seed0", "rms/seed0"]
    charts = [title for _, title in custom_scalar_charts(client)]
    assert charts == ["validation loss", "training loss", "learning rate", "tokens / s", "gradient norm"]  # on a CPU


# ---------------------------------------------------------------- the log of a run without a terminal

def test_log_file_has_a_train_line_every_log_every_steps_and_ends_with_the_result(sweep):
    out, log, stdout = sweep
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "  # every line of a log file starts with its time
    duration = r"\d+(?:h\d\dm|m\d\ds|s)"
    run_lines = [line for line in log.splitlines() if "[run " in line]
    assert run_lines and all(re.match(stamp, line) for line in run_lines), log[:2000]
    for variant, run in (("rms", "run 1/2"), ("ln", "run 2/2")):
        lines = re.findall(rf"(?m)^{stamp}\[{run} {variant} seed0\] step (\d+)/{STEPS}  loss (\S+)  lr (\S+)  (\S+) tok/s  "
                           rf"sweep (\d)/2 runs done, {duration} elapsed, ", log)
        assert [int(s) for s, *_ in lines] == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY)), log[-2000:]
        assert all(math.isfinite(float(loss)) and float(lr) > 0 for _, loss, lr, _, _ in lines)
        assert {done for *_, done in lines} == {"0" if run == "run 1/2" else "1"}
        # the two final losses say which is which: the curve's batches, the whole split
        assert re.search(rf"\[{run} {variant} seed0\] step {STEPS}/{STEPS}  val loss \S+ \(\d+ batches\)", log)
        final = results(out)["variants"][variant]["runs"][0]["final_val_loss"]
        assert f"[{run} {variant} seed0] completed, final val loss {final:.4f} (whole val split); sweep " in log
    assert re.search(rf"\[run 2/2 ln seed0\] training \(sweep 1/2 runs done, {duration} elapsed, ~{duration} left\)", log)
    tail = log[log.index("results of tiny"):]
    rows = {line.split()[2]: line for line in tail.splitlines()[2:4]}
    verdict = results(out)["variants"]["ln"]["comparison"]["verdict"]
    assert rows["rms"].rstrip().endswith("baseline") and rows["ln"].rstrip().endswith(verdict)
    final = results(out)["variants"]["ln"]["runs"][0]["final_val_loss"]
    assert f"{final:.4f}" in rows["ln"]
    assert str(out / "report.md") in tail and str(out / "report.html") in tail
    assert "v_num" not in log and stdout.count("report: ") == 1  # stdout, a pipe of its own, gets the path too


def test_no_browser_needed_short_curves_are_drawn_with_markers_and_a_note(tmp_path):
    exp = write_experiment(tmp_path, tmp_path / "cache", steps=2, every=100, seeds=[0], variants="  rms: {}")
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**Note:** only 2 evaluation points per run" in report  # val at steps 1 and 2 (the schedule's fractions)
    assert "**Note:** only 2 logged training points per run" in report


# ---------------------------------------------------------------- report.html in a browser

@pytest.mark.parametrize("width", [800, 1280])
def test_report_html_fits_the_window_opens_on_the_answer_and_splits_no_word(sweep, tmp_path, width):
    browser = find_browser()
    if browser is None:
        pytest.skip(f"{NO_BROWSER}; the table layout is checked by test_report_html_tables_are_split_to_fit")
    out, _, _ = sweep
    page = tmp_path / "report.html"
    shutil.copy(out / "report.html", page)
    seen = measure(page, width, 800, browser)
    width_used, client = seen["page"][:2]
    assert width_used <= client, f"report.html is {width_used}px wide in a {client}px window"
    assert seen["split"] == [], f"words split inside table cells at {width} px: {seen['split']}"
    assert seen["headline"]["text"].startswith("ln vs rms: ") and seen["headline"]["bottom"] <= 800
    assert seen["figure"]["bottom"] <= 800


def _narrowest_px(table: str) -> float:
    """A conservative estimate of a table's narrowest layout in the page's CSS: every column as wide as
    its longest word (cells wrap at spaces), at 0.62 em a character of the 0.85 em table font, plus padding
    and border. Browsers can go narrower (text cells also break inside words): below it, nothing overflows."""
    font = 16 * 0.85
    columns: dict[int, int] = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        for i, cell in enumerate(re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)):
            words = html.unescape(re.sub(r"<[^>]+>", "", cell)).split()
            columns[i] = max(columns.get(i, 0), max((len(w) for w in words), default=0))
    return sum(n * 0.62 * font + 2 * 0.45 * font + 1 for n in columns.values())


def test_report_html_tables_are_split_to_fit(sweep):
    out, _, _ = sweep
    page = (out / "report.html").read_text()
    tables = re.findall(r"<table>.*?</table>", page, re.S)
    body = 1200 - 2 * 16  # body max-width less its padding
    assert max(_narrowest_px(t) for t in tables) < body
    # the 14-column results table is two tables on the page, each starting with the variant
    assert "<caption>Loss and verdict</caption>" in page and "<caption>Size and cost</caption>" in page


# ---------------------------------------------------------------- show

def test_show_prints_the_baseline_in_full_and_each_variant_as_its_differences(tmp_path, capsys):
    exp = write_experiment(tmp_path, tmp_path / "cache", seeds=[0],
                           variants="  rms: {}\n  ln: {model: {norm: layernorm}}\n  mlp: {model: {ffn: gelu, n_kv_heads: 1}}")
    assert main(["show", str(exp)]) == 0
    out = capsys.readouterr().out
    base, ln, mlp = out.split("\n== ")[1:]
    assert base.startswith("rms == (baseline)") and "train: steps=12" in base
    glu = int(2 * 4 * 32 / 3)  # LLaMA's 2/3 of 4*dim for dim=32, multiple_of 1
    assert f"ffn_hidden_dim={glu} (GLU rule" in base and "head_dim=16 (dim / n_heads)" in base
    assert "n_kv_heads=2 (= n_heads, MHA)" in base
    assert not re.search(r"\b(n_kv_heads|head_dim|ffn_hidden_dim)=None", base)
    assert all(len(line) <= 100 for line in base.splitlines()[1:])
    assert ln.splitlines()[1:] == ["  model.norm: layernorm   (rms: rmsnorm)"]
    assert "model.ffn: gelu   (rms: swiglu)" in mlp and f"(rms: {glu} (GLU rule: 2/3 x 4 x dim))" in mlp
    assert f"model.ffn_hidden_dim: {4 * 32} (4 x dim)" in mlp and "model.n_kv_heads: 1 (MQA)" in mlp
    assert "train." not in ln + mlp and "params" in mlp and "vs rms: params" in mlp
    assert main(["show", str(exp), "--full"]) == 0
    full = capsys.readouterr().out
    assert full.count("train: steps=12") == 3 and "norm=layernorm" in full


# ---------------------------------------------------------------- experiments outside the repository

NAMED = """name: outside
defaults: [model/llama, size/tiny, data/stdlib, train/cpu]
seeds: [0]
model: {{dim: 32, n_layers: 1, n_heads: 2}}
data: {{max_bytes: 300000, vocab_size: 400, cache_dir: {cache}}}
train: {{steps: 2, batch_size: 8, seq_len: 32, eval_every: 2, checkpoint_every: 2, eval_batches: 2, log_every: 2}}
variants:
  rms: {{}}
  ln: {{model: {{norm: layernorm}}}}
"""


def test_an_experiment_in_an_empty_folder_names_the_presets_and_runs(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "exp.yaml").write_text(NAMED.format(cache=tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "workbench", "run", "exp.yaml"], cwd=folder, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = results(folder / "runs" / "outside")
    assert [r["status"] for v in done["variants"].values() for r in v["runs"]] == ["completed", "completed"]
    assert done["variants"]["rms"]["config"]["model"]["ffn"] == "swiglu"  # model/llama applied, then the file's sizes


def test_named_presets_and_relative_paths_mix_and_a_wrong_name_is_one_line(tmp_path, capsys):
    from workbench.config import load_experiment

    (tmp_path / "mine.yaml").write_text("train: {lr: 1.0e-3}\n")
    exp = tmp_path / "exp.yaml"
    exp.write_text("name: mix\ndefaults: [model/gpt2, size/tiny, data/stdlib, train/cpu, ./mine.yaml]\n")
    variant = next(iter(load_experiment(exp).variants.values()))
    assert variant.model["positions"] == "learned" and variant.model["dim"] == 128 and variant.train.lr == 1e-3
    exp.write_text("name: typo\ndefaults: [model/lama]\n")
    assert main(["show", str(exp)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no preset named 'model/lama', did you mean 'model/llama'?" in err


def test_every_shipped_preset_is_installed_with_the_package():
    import tomllib

    from workbench.presets import preset_names

    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    installed = {f"{target.removeprefix('share/workbench/configs/')}/{Path(f).stem}"
                 for target, patterns in data_files.items() for pattern in patterns for f in REPO.glob(pattern)}
    shipped = {p.relative_to(REPO / "configs").with_suffix("").as_posix() for p in (REPO / "configs").rglob("*.yaml")}
    assert installed == shipped == set(preset_names())


def test_an_unknown_component_names_the_plugins_that_were_loaded(tmp_path, capsys):
    (tmp_path / "exp.yaml").write_text(NAMED.format(cache=tmp_path / "cache").replace("seeds: [0]", "seeds: [0]\nimports: [json]"))
    assert main(["show", str(tmp_path / "exp.yaml"), "model.norm=mynorm"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown norm 'mynorm'" in err
    assert "imports: [json]" in err and "entry points (workbench.components)" in err


# ---------------------------------------------------------------- init

def test_init_writes_a_starter_that_loads_and_never_overwrites(tmp_path, monkeypatch, capsys):
    from workbench.config import load_experiment

    monkeypatch.chdir(tmp_path)
    assert main(["init", "my_exp"]) == 0
    path = tmp_path / "my_exp.yaml"
    text = path.read_text()
    experiment = load_experiment(path)
    assert experiment.name == "my_exp" and list(experiment.variants) == ["rmsnorm", "layernorm"]
    capsys.readouterr()
    assert main(["init", "my_exp"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already exists" in err and path.read_text() == text
    assert main(["init", "../escape"]) == 2 and not (tmp_path.parent / "escape.yaml").exists()


# ---------------------------------------------------------------- the terminal's progress bar

def test_progress_bar_shows_loss_and_speed_and_moves_log_lines_above_itself(tmp_path, capsys):
    from workbench.training.callbacks import RunRecorder, StepStats
    from workbench.training.progress import RunProgressBar

    train = {"steps": 10, "eval_every": 5, "log_every": 2, "checkpoint_every": 5}
    recorder = RunRecorder(tmp_path / "metrics.json", [], train, "run 1/2 rms seed0", 256)
    bar = RunProgressBar("run 1/2 rms seed0", recorder)
    assert bar.get_metrics(None, None) == {}
    recorder.last = StepStats(step=4, loss=5.123456, lr=1e-3, tokens_per_sec=20100.0)
    assert bar.get_metrics(None, None) == {"loss": "5.1235", "speed": "20.1k tok/s"}  # no v_num
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    root.addHandler(handler)
    try:
        bar._swap_handlers()
        assert handler not in root.handlers
        logging.getLogger("workbench").warning("above the bar")
        bar._restore_handlers()
        assert handler in root.handlers
    finally:
        root.removeHandler(handler)
    assert "above the bar" in capsys.readouterr().err
