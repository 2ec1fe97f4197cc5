"""Everything read from a run folder stays in it (issue 29): a run folder from someone else (a shared disk,
an archive) cannot make the workbench read outside it, read forever (/dev/zero), hang (a FIFO) or crash
with a traceback; every refusal is one line naming the file, exit 2. Exports get the umask's permissions
and leave no staging folder behind, whatever stops them.

The unit tests need no training; the end-to-end ones (marked slow and e2e) share one tiny trained run
folder (two variants, one seed, 6 steps), copied for each test that damages it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from e2e import REPO, results
from workbench.checkpoint_file import digest_path, load_verified
from workbench.cli import main
from workbench.data.tokenizer import Tokenizer, TokenizerFileError
from workbench.fileio import locked, normal_permissions, read_json, remove_stale_temps, staging_folder
from workbench.folder_safety import RunFolderError
from workbench.load import LoadError, load_run
from workbench.reports.load import Run, Variant, load_curves
from workbench.training.checkpoint_io import AtomicCheckpointIO, resume_checkpoint

PROMPT_TIMEOUT = 120  # seconds for a refusal that must not hang (a Python start, torch imported)


def finishes(fn, timeout: float = 20):
    """``fn()``'s result (or its exception, raised here), failing if it does not return within ``timeout``
    (a FIFO opened for reading blocks forever: a daemon thread keeps the suite from hanging)."""
    box = {}

    def call():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn} did not return within {timeout} s (blocked on a FIFO?)"
    if "error" in box:
        raise box["error"]
    return box["value"]


def one_line(message: str, *names: str) -> str:
    assert "\n" not in message.strip() and "Traceback" not in message, message
    for name in names:
        assert name in message, (name, message)
    return message


def fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def to_dev_zero(path: Path) -> Path:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def workbench(*args, timeout: float = PROMPT_TIMEOUT) -> subprocess.CompletedProcess:
    """``python -m workbench ARGS`` in a subprocess with 4 GiB of address space (so reading /dev/zero
    ends in MemoryError, not in the machine's memory) and a timeout (so a FIFO cannot hang the suite)."""
    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        return subprocess.run([sys.executable, "-m", "workbench", *map(os.fsencode, map(str, args))], cwd=REPO, env=env,
                              capture_output=True, timeout=timeout, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"workbench {' '.join(map(str, args))} did not finish within {timeout} s (blocked on a FIFO?)")


def refused(proc: subprocess.CompletedProcess, *names: str) -> str:
    """The one-line error of a command that exited 2 (after the progress lines ``run`` logs), checked to
    name ``names``."""
    err = proc.stderr.decode("utf-8", "replace").strip()
    assert proc.returncode == 2 and "Traceback" not in err, (proc.returncode, err[-2000:])
    last = err.splitlines()[-1]
    assert last.startswith("error: ") and "error: " not in "\n".join(err.splitlines()[:-1]), err[-2000:]
    return one_line(last, *names)


def cli_error(capsys, *args) -> str:
    """The one line an in-process ``main(ARGS)`` printed when it exited 2."""
    capsys.readouterr()
    code = main([a if isinstance(a, str) else str(a) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


# -- lock files, JSON files, checkpoints, tokenizer files (no training) -----------------------------

@pytest.mark.parametrize("kind", ["folder", "symlink", "fifo"])
def test_a_lock_file_replaced_by_a_folder_symlink_or_fifo_is_refused_in_one_line(tmp_path, kind):
    lock = tmp_path / "run" / ".results.lock"
    lock.parent.mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    {"folder": lock.mkdir, "symlink": lambda: lock.symlink_to(target), "fifo": lambda: os.mkfifo(lock)}[kind]()

    def take():
        with locked(lock):
            pass

    with pytest.raises(RunFolderError) as info:
        finishes(take)
    one_line(str(info.value), str(lock), "lock file")
    assert target.read_text() == "keep" and (lock.is_dir() if kind == "folder" else True)
    with locked(tmp_path / "run" / "fresh.lock") as held:  # a missing lock file is created, as before
        assert held and (tmp_path / "run" / "fresh.lock").is_file()


def test_read_json_never_reads_a_fifo_or_a_device(tmp_path):
    assert finishes(lambda: read_json(fifo(tmp_path / "a.json"))) is None
    assert finishes(lambda: read_json(to_dev_zero(tmp_path / "b.json"))) is None
    (tmp_path / "c.json").write_text('{"ok": 1}')
    assert read_json(tmp_path / "c.json") == {"ok": 1}


def save(folder: Path, name: str, step: int) -> Path:
    path = folder / name
    AtomicCheckpointIO().save_checkpoint({"global_step": step, "workbench": {"fingerprint": "f"}}, path)
    return path


@pytest.mark.parametrize("which", ["checkpoint", "checksum"])
@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "outside"])
def test_resume_refuses_a_checkpoint_that_is_not_a_regular_file_inside_its_folder(tmp_path, which, kind):
    folder = tmp_path / "checkpoints"
    save(folder, "epoch=0-step=10.ckpt", 10)
    last = save(folder, "last.ckpt", 20)
    victim = last if which == "checkpoint" else digest_path(last)
    if kind == "fifo":
        fifo(victim)
    elif kind == "dev_zero":
        to_dev_zero(victim)
    else:  # a regular file, but outside the folder
        outside = tmp_path / "outside" / victim.name
        outside.parent.mkdir()
        shutil.copy(victim, outside)
        victim.unlink()
        victim.symlink_to(outside)
    with pytest.raises(RunFolderError) as info:
        finishes(lambda: resume_checkpoint(folder, None))
    one_line(str(info.value), victim.name)
    with pytest.raises(RunFolderError):  # and the load itself refuses, whoever calls it
        finishes(lambda: load_verified(last, root=folder))


def test_a_tokenizer_file_that_holds_no_tokenizer_is_one_line(tmp_path):
    cases = {"not_a_tokenizer.json": b'{"a": 1}', "list.json": b"[1, 2]", "bad.json": b"{not json",
             "garbage.model": b"\x00\x01garbage", "ids.json": b'{"workbench_ids_only": {"vocab_size": "x"}}',
             "ids2.json": b'{"workbench_ids_only": 7}'}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(TokenizerFileError) as info:
            Tokenizer(tmp_path / name)
        one_line(str(info.value), name, "not a tokenizer" if "ids" not in name else "vocab_size")
    with pytest.raises(RunFolderError):
        finishes(lambda: Tokenizer(fifo(tmp_path / "pipe.model")))
    with pytest.raises(RunFolderError):
        finishes(lambda: Tokenizer(to_dev_zero(tmp_path / "zero.model")))


def test_saving_a_tokenizer_over_a_fifo_or_device_replaces_it_without_reading(tmp_path):
    tokenizer = Tokenizer.from_bytes(b'{"workbench_ids_only": {"vocab_size": 5}}')
    for path in (fifo(tmp_path / "a.json"), to_dev_zero(tmp_path / "b.json")):
        finishes(lambda: tokenizer.save(path))
        assert path.is_file() and not path.is_symlink() and path.read_bytes() == tokenizer.serialized()


# -- the report's metrics files (no training) -----------------------------------------------------

@pytest.mark.parametrize("metrics", ["/dev/zero", "../outside/metrics.json", "v/seed0/../../../outside/metrics.json",
                                     "link.json", "fifo.json", "/etc/passwd"])
def test_a_metrics_path_leading_outside_or_to_a_non_regular_file_is_no_curve(tmp_path, metrics, caplog):
    run_dir = tmp_path / "run"
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "metrics.json").write_text(json.dumps({"train": [{"step": 1, "loss": 2.0}]}))
    run_dir.mkdir()
    (run_dir / "link.json").symlink_to(tmp_path / "outside" / "metrics.json")
    os.mkfifo(run_dir / "fifo.json")
    run = Run(0, "completed", metrics=metrics, variant="v")
    assert finishes(lambda: load_curves(run_dir, Variant("v", 0, {}, None, None, None, [run]), run)) is None
    assert "skipping metrics file" in caplog.text
    ok = Run(0, "completed", metrics="inside.json", variant="v")
    (run_dir / "inside.json").write_text(json.dumps({"train": [{"step": 1, "loss": 2.0}]}))
    assert load_curves(run_dir, Variant("v", 0, {}, None, None, None, [ok]), ok).train.loss.tolist() == [2.0]


def test_the_report_of_a_run_whose_metrics_path_is_dev_zero_is_written(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = {"seed": 0, "status": "completed", "final_val_loss": 3.0, "metrics": "/dev/zero"}
    variants = {"a": {"config": {}, "runs": [record]},
                "b": {"config": {}, "runs": [{**record, "metrics": "../../etc/passwd"}]}}
    (run_dir / "results.json").write_text(json.dumps({"experiment": "x", "seeds": [0], "baseline": "a",
                                                      "variants": variants}))
    capsys.readouterr()
    assert finishes(lambda: main(["report", str(run_dir)]), timeout=120) == 0
    assert "report:" in capsys.readouterr().out and (run_dir / "report.md").is_file()


# -- staging folders and permissions (no training) ------------------------------------------------

def test_staging_folders_are_removed_on_errors_and_ctrl_c_and_stale_ones_later(tmp_path):
    for error in (ValueError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with staging_folder(tmp_path, "out") as staging:
                (staging / "half.bin").write_bytes(b"x")
                raise error
        assert not staging.exists()
    with staging_folder(tmp_path, "out") as live:  # this process: alive, kept
        stale = tmp_path / live.name.replace(f".{os.getpid()}.", f".{dead_pid()}.")
        (stale / "sub").mkdir(parents=True)
        assert remove_stale_temps(tmp_path, recursive=False) == [stale]
        assert live.is_dir() and not stale.exists()
        os.replace(live, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_normal_permissions_follow_the_umask(tmp_path, umask):
    folder = tmp_path / "f"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a").write_text("x")
    os.chmod(folder, 0o700)
    os.chmod(folder / "sub", 0o700)
    os.chmod(folder / "sub" / "a", 0o600)
    previous = os.umask(umask)
    try:
        normal_permissions(folder)
    finally:
        os.umask(previous)
    assert [stat.S_IMODE(p.stat().st_mode) for p in (folder, folder / "sub", folder / "sub" / "a")] == [
        0o777 & ~umask, 0o777 & ~umask, 0o666 & ~umask]


# -- end to end, on a trained run folder ----------------------------------------------------------

@pytest.fixture
def trained(tiny_run) -> dict:
    return tiny_run


@pytest.fixture
def copy(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained["out"], tmp_path / "run", symlinks=True))


def last_ckpt(run_dir: Path, variant: str = "rms") -> Path:
    return run_dir / variant / "seed0" / "checkpoints" / "last.ckpt"


def forget_record(run_dir: Path, variant: str) -> None:
    """As if ``variant`` seed 0 was killed before it was recorded: a later ``run`` resumes it."""
    (run_dir / variant / "seed0" / "record.json").unlink()
    data = results(run_dir)
    data["variants"][variant]["runs"] = []
    (run_dir / "results.json").write_text(json.dumps(data))


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("which", ["checkpoint", "checksum"])
@pytest.mark.parametrize("kind", ["dev_zero", "fifo"])
def test_sample_refuses_a_checkpoint_that_is_a_device_or_fifo_promptly(copy, which, kind):
    victim = last_ckpt(copy) if which == "checkpoint" else digest_path(last_ckpt(copy))
    (fifo if kind == "fifo" else to_dev_zero)(victim)
    refused(workbench("sample", copy, "--prompt", "x", "--max-new-tokens", "2"), victim.name, "rms")


@pytest.mark.slow
@pytest.mark.e2e
def test_run_refuses_to_resume_from_a_fifo_checkpoint_promptly(copy, trained):
    forget_record(copy, "rms")
    fifo(last_ckpt(copy))
    refused(workbench("run", trained["exp"], "--out", copy, "--variant", "rms"), "last.ckpt")


def rewrite_identity(path: Path, **changes) -> None:
    """Rewrite a checkpoint's identity, with a matching checksum (what a crafted folder holds)."""
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["workbench"].update(changes)
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_a_checkpoint_naming_a_tokenizer_outside_the_folder_is_refused(copy, tmp_path, capsys, where):
    tokenizer = next((copy / "tokenizer").iterdir())
    outside = tmp_path / "x.model"
    shutil.copy(tokenizer, outside)  # a real tokenizer: loading it would succeed, it must not be read
    if where == "symlink":
        (copy / "tokenizer" / "link.model").symlink_to(outside)
    name = {"parent": "../x.model", "absolute": str(outside), "symlink": "tokenizer/link.model"}[where]
    rewrite_identity(last_ckpt(copy), tokenizer=name)
    with pytest.raises(LoadError) as info:
        load_run(copy, "rms")
    one_line(str(info.value), "variant 'rms' seed 0", "x.model" if where != "symlink" else "link.model")
    assert "outside the run folder" in str(info.value)
    cli_error(capsys, "sample", copy, "--prompt", "x", "--variant", "rms")


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("change", [{"dim": 2**17}, {"n_layers": 3}, {"vocab_size": 401}, "not a mapping"])
def test_a_checkpoint_whose_model_config_does_not_fit_its_weights_is_refused_before_building(copy, change):
    checkpoint = torch.load(last_ckpt(copy), weights_only=True)  # dim 2**17: ~270 GB of fp32 weights if built
    model = change if isinstance(change, str) else {**checkpoint["workbench"]["model"], **change}
    rewrite_identity(last_ckpt(copy), model=model)
    with pytest.raises(LoadError) as info:
        finishes(lambda: load_run(copy, "rms"), timeout=60)
    one_line(str(info.value), "variant 'rms' seed 0", "model config")


@pytest.mark.slow
@pytest.mark.e2e
def test_a_variant_name_leading_outside_is_never_loaded(copy, tmp_path, capsys):
    other = tmp_path / "p7" / "a"
    shutil.copytree(copy / "rms", other)  # a loadable run in another folder
    data = results(copy)
    data["variants"]["../p7/a"] = data["variants"].pop("rms")
    (copy / "results.json").write_text(json.dumps(data))
    for args in (("sample", copy, "--prompt", "x"), ("sample", copy, "--prompt", "x", "--variant", "../p7/a"),
                 ("export", copy, "--variant", "../p7/a", "--out", tmp_path / "exported")):
        assert "../p7/a" in cli_error(capsys, *args)
    with pytest.raises(LoadError):
        load_run(copy, "../p7/a")
    assert not (tmp_path / "exported").exists()


@pytest.mark.slow
@pytest.mark.e2e
def test_a_variant_folder_that_is_a_symlink_outside_is_refused(copy, tmp_path, capsys):
    moved = shutil.move(str(copy / "rms"), str(tmp_path / "elsewhere"))
    (copy / "rms").symlink_to(moved)
    assert "outside the run folder" in cli_error(capsys, "sample", copy, "--prompt", "x", "--variant", "rms")


@pytest.mark.slow
@pytest.mark.e2e
def test_report_of_a_run_whose_metrics_path_is_dev_zero_still_has_the_other_curves(copy, capsys):
    data = results(copy)
    data["variants"]["rms"]["runs"][0]["metrics"] = "/dev/zero"
    (copy / "results.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert finishes(lambda: main(["report", str(copy)]), timeout=300) == 0
    assert "rms" in (copy / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("prompt", [b"\xff\xfe", b"ok \xc3(", b"\xed\xa0\x80"])
def test_a_prompt_that_is_not_utf8_is_one_line(trained, prompt):
    err = refused(workbench("sample", trained["out"], "--prompt", os.fsdecode(prompt)), "--prompt", "UTF-8")
    assert "byte 0x" in err


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("content", [b'{"a": 1}', b"[]", b"\x00garbage"])
def test_a_run_folder_tokenizer_that_holds_no_tokenizer_is_one_line(copy, capsys, content):
    for path in (copy / "tokenizer").iterdir():
        path.write_bytes(content)
    assert "tokenizer" in cli_error(capsys, "sample", copy, "--prompt", "x")
    assert "tokenizer" in cli_error(capsys, "export", copy, "--variant", "ln", "--out", copy.parent / "e")


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("sub", ["sub", "sub/deeper"])
def test_export_under_a_regular_file_is_one_line(trained, tmp_path, capsys, sub):
    (tmp_path / "FILE").write_text("mine")
    err = cli_error(capsys, "export", trained["out"], "--variant", "ln", "--out", tmp_path / "FILE" / sub)
    assert "FILE" in err and "is a file" in err and (tmp_path / "FILE").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]


@pytest.mark.slow
@pytest.mark.e2e
def test_a_results_lock_replaced_by_a_folder_is_one_line(copy, trained, capsys):
    (copy / ".results.lock").unlink(missing_ok=True)
    (copy / ".results.lock").mkdir()
    err = cli_error(capsys, "run", trained["exp"], "--out", copy)
    assert ".results.lock" in err and "a folder" in err


@pytest.mark.slow
@pytest.mark.e2e
def test_a_runs_lock_replaced_by_a_folder_is_one_line(copy, trained, capsys):
    forget_record(copy, "ln")
    (copy / "ln" / "seed0" / ".lock").unlink(missing_ok=True)
    (copy / "ln" / "seed0" / ".lock").mkdir()
    err = cli_error(capsys, "run", trained["exp"], "--out", copy, "--variant", "ln")
    assert str(copy / "ln" / "seed0" / ".lock") in err and "a folder" in err


def modes(folder: Path) -> set[tuple[str, int]]:
    return {("d" if p.is_dir() else "f", stat.S_IMODE(p.stat().st_mode)) for p in [folder, *folder.rglob("*")]}


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_exports_get_the_umasks_permissions(trained, tmp_path, umask):
    pytest.importorskip("transformers")
    from workbench.export import export_run

    previous = os.umask(umask)
    try:
        forms = {v: export_run(trained["out"], v, tmp_path / v).form for v in ("rms", "ln")}
    finally:
        os.umask(previous)
    assert forms == {"rms": "transformers", "ln": "plain"}
    for v in forms:
        assert modes(tmp_path / v) == {("d", 0o777 & ~umask), ("f", 0o666 & ~umask)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ln", "rms"]  # no staging folder left


@pytest.mark.slow
@pytest.mark.e2e
def test_an_export_interrupted_by_ctrl_c_leaves_no_staging_folder(trained, tmp_path, monkeypatch):
    from workbench import export

    def interrupted(folder, *args):
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write_plain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export_run(trained["out"], "ln", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


STOPPED_EXPORT = """
import sys, time
from pathlib import Path
from workbench import export
def stop_here(folder, *args):
    (folder / "model.safetensors").write_bytes(b"half")
    Path(sys.argv[3]).touch()
    time.sleep(120)
export._write_plain = stop_here
export.export_run(sys.argv[1], "ln", sys.argv[2])
"""


@pytest.mark.slow
@pytest.mark.e2e
def test_an_export_stopped_by_sigterm_or_kill_leaves_no_staging_folder(trained, tmp_path):
    out_dir, marker = tmp_path / "exports", tmp_path / "writing"
    out_dir.mkdir()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        marker.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", STOPPED_EXPORT, str(trained["out"]), str(out_dir / "out"),
                                 str(marker)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.time() + PROMPT_TIMEOUT
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the export never reached its writing step"
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
        if sig == signal.SIGTERM:
            assert list(out_dir.iterdir()) == []
    assert len(list(out_dir.iterdir())) == 1  # kill -9 runs no cleanup: its staging folder stays ...
    from workbench.export import export_run

    export_run(trained["out"], "ln", out_dir / "out")  # ... until the next export removes it
    assert [p.name for p in out_dir.iterdir()] == ["out"]
