"""A run folder never records a mixed result: every compared run has the identity its variant states.

Identity = the variant's resolved config, the corpus fingerprint and the tokenizer; the folder's seed
policy counts too once verdicts were looked at. Scenarios: two processes with different configs on one
folder (D1), a changed corpus under an unchanged config (D2), a refused run rewriting the registration
(D3), a seed policy changed after looking (D4); plus the unit-level checks at claim and record.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from e2e import cli, results, runs, wait_for, write_experiment
from workbench.cli import main
from workbench.folder_safety import RunFolderError
from workbench.run_folder import RunFolder, identity, rebuild_results
from workbench.run_record import RunRecord

pytestmark = pytest.mark.e2e




def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def registration(out: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in [out / "experiment.yaml", *sorted(out.glob("*/variant.json"))]}


def assert_one_identity(out: Path) -> None:
    """Every recorded run carries the identity its variant's registration states, with the steps it says."""
    data = results(out)
    for name, entry in data["variants"].items():
        stamp = entry["identity"]["fingerprint"]
        for run in entry["runs"]:
            assert run["identity"] == stamp, (name, run["seed"])
            assert run["steps"] == entry["config"]["train"]["steps"], (name, run["seed"])


def test_a_second_process_with_another_config_is_refused_while_the_first_trains(tmp_path, cache):
    exp = write_experiment(tmp_path, cache, steps=60, every=20, seeds=[0])
    out = tmp_path / "out"
    assert main(["show", str(exp)]) == 0  # the data cache, so the first process trains at once
    first = cli("run", str(exp), "--out", str(out))
    wait_for(first, out, "rms/seed0/hparams.yaml")  # written after the run is claimed
    second = cli("run", str(exp), "--out", str(out), "train.steps=80")
    _, err = second.communicate(timeout=300)
    assert second.returncode == 2, err[-2000:]
    assert "another identity" in err and "train.steps: 60 -> 80" in err and "--out" in err
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert set(runs(out)) == {("rms", 0), ("ln", 0)}
    assert_one_identity(out)
    assert results(out)["variants"]["rms"]["config"]["train"]["steps"] == 60


def test_variant_jobs_with_different_overrides_never_share_a_folder(tmp_path, cache, capsys):
    exp = write_experiment(tmp_path, cache, steps=8, every=4, seeds=[0])
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--variant", "rms"]) == 0
    before = registration(out)
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(out), "--variant", "ln", "train.lr=0.001"]) == 2
    assert "variant 'rms'" in one_line_error(capsys)
    assert registration(out) == before
    assert main(["run", str(exp), "--out", str(out), "--variant", "ln"]) == 0
    assert_one_identity(out)


def test_a_changed_corpus_is_refused_even_when_the_config_is_unchanged(tmp_path, cache, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    source = Path(json.__file__).parent.parent  # some stdlib modules as a user corpus
    for name in ("textwrap.py", "shlex.py", "fractions.py", "difflib.py", "argparse.py"):
        shutil.copy(source / name, corpus / name)
    exp = write_experiment(tmp_path, cache, steps=8, every=4, seeds=[0])
    data = ["data.source=files", f"data.paths=['{corpus}/*.py']"]
    out = tmp_path / "out"
    assert main(["run", str(exp), *data, "--out", str(out), "--variant", "rms"]) == 0
    before = registration(out)
    (corpus / "difflib.py").unlink()
    capsys.readouterr()
    assert main(["run", str(exp), *data, "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "variant 'rms'" in err and "corpus" in err and "--restart rms" in err
    assert registration(out) == before and set(runs(out)) == {("rms", 0)}
    assert main(["run", str(exp), *data, "--out", str(out), "--restart", "rms"]) == 0  # the way out named
    assert_one_identity(out)
    corpora = {e["identity"]["corpus"] for e in results(out)["variants"].values()}
    assert len(corpora) == 1


def test_a_refused_run_writes_nothing_and_rebuild_keeps_the_old_records(tmp_path, cache, capsys):
    exp = write_experiment(tmp_path, cache, steps=8, every=4, seeds=[0])
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    old = runs(out)
    before = registration(out)
    (out / "results.json").unlink()
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(out), "train.steps=12"]) == 2
    assert "train.steps: 8 -> 12" in one_line_error(capsys)
    assert registration(out) == before and not (out / "results.json").exists()
    assert main(["report", "--rebuild", str(out)]) == 0
    assert {k: r["final_val_loss"] for k, r in runs(out).items()} == {k: r["final_val_loss"] for k, r in old.items()}
    assert_one_identity(out)
    assert main(["run", str(exp), "--out", str(out)]) == 0  # the old config resumes: every run kept
    assert runs(out) == old


@pytest.mark.parametrize("first, then", [("{min: 2, max: 3}", "{min: 2, max: 5}"), ("[0, 1]", "{min: 2, max: 6}"),
                                         ("[0, 1]", "[0, 1, 2]")])
def test_a_seed_policy_changed_after_looking_is_refused_with_the_ways_out(tmp_path, cache, capsys, first, then):
    exp = write_experiment(tmp_path, cache, steps=4, every=2, seeds=[0])
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), f"seeds={first}"]) == 0
    before = registration(out)
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(out), f"seeds={then}"]) == 2
    err = one_line_error(capsys)
    assert "seed policy changed" in err and "--out" in err and "alpha" in err
    assert registration(out) == before
    assert main(["run", str(exp), "--out", str(out), f"seeds={first}"]) == 0  # the same policy resumes


# -- unit level: the checks at claim, keep and record -----------------------------------------------

def _registered(tmp_path: Path, steps: int) -> tuple[RunFolder, dict]:
    folder = RunFolder(tmp_path)
    config = {"model": {"dim": 8}, "data": {}, "train": {"steps": steps}}
    ident = identity(config, "corpus", "tok")
    info = {"config": config, "identity": ident, "data": {"fingerprint": "corpus"}}
    folder.register({"experiment": "x", "seeds": [0], "seed_policy": {"min": 1, "max": 1}},
                    {"name": "x", "seeds": [0], "variants": {"a": config}}, {"a": info})
    return folder, ident


def test_a_record_is_refused_when_another_process_registered_another_identity(tmp_path):
    folder, sixty = _registered(tmp_path, 60)
    _, eighty = _registered(tmp_path, 80)  # re-registered: nothing had started
    with pytest.raises(RunFolderError, match="not recorded"):
        folder.record("a", RunRecord(0, "completed", identity=sixty["fingerprint"]), sixty)
    assert folder.store.load()["variants"]["a"]["runs"] == []
    with pytest.raises(RunFolderError, match="stops without training"):
        with folder.claim_run("a", 0, sixty, wait=False):
            pass
    folder.record("a", RunRecord(0, "completed", identity=eighty["fingerprint"]), eighty)
    with pytest.raises(RunFolderError, match="another identity"):
        folder.kept("a", 0, sixty)
    assert folder.kept("a", 0, eighty)["seed"] == 0


def test_a_changed_seed_policy_is_accepted_once_every_run_is_discarded(tmp_path):
    folder, ident = _registered(tmp_path, 60)
    folder.record("a", RunRecord(0, "completed", identity=ident["fingerprint"]), ident)
    info = {"config": {"model": {"dim": 8}, "data": {}, "train": {"steps": 60}}, "identity": ident}
    header = {"experiment": "x", "seeds": [0, 1], "seed_policy": {"min": 2, "max": 6}}
    with pytest.raises(RunFolderError, match="seed policy changed"):
        folder.register(header, {"name": "x", "variants": {}}, {"a": info})
    folder.register(header, {"name": "x", "variants": {}}, {"a": info}, restart=["a"])
    assert folder.store.load()["seed_policy"]["max"] == 6 and folder.store.load()["variants"]["a"]["runs"] == []


def test_identity_counts_keys_added_later_at_their_default_and_each_part(tmp_path):
    config = {"model": {"dim": 8}, "train": {"steps": 5}}
    later = {"model": {"dim": 8, "new_key": 1}, "train": {"steps": 5}}
    defaults = {"model": {"new_key": 1}}
    assert identity(config, "c", "t", defaults) == identity(later, "c", "t", defaults)
    base = identity(config, "c", "t")["fingerprint"]
    assert len({base, identity(config, "d", "t")["fingerprint"], identity(config, "c", "u")["fingerprint"],
                identity({**config, "train": {"steps": 6}}, "c", "t")["fingerprint"]}) == 4


def test_rebuild_leaves_out_a_record_of_another_identity(tmp_path):
    folder, ident = _registered(tmp_path, 60)
    for seed, stamp in ((0, ident["fingerprint"]), (1, "someone-else")):
        path = folder.record_file("a", seed)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"seed": seed, "status": "completed", "identity": stamp}))
    data = rebuild_results(tmp_path)
    assert [r["seed"] for r in data["variants"]["a"]["runs"]] == [0]


@pytest.mark.parametrize("seeds", ['"abc"', "[-1]", "{min: 3, max: 2}", "null"])
def test_rebuild_refuses_malformed_seeds_in_one_line(tmp_path, seeds):
    _registered(tmp_path, 60)
    (tmp_path / "experiment.yaml").write_text(f"name: x\nseeds: {seeds}\nvariants: {{a: {{}}}}\n")
    with pytest.raises(RunFolderError, match="seeds"):
        rebuild_results(tmp_path)


def test_an_ill_shaped_index_points_to_rebuild_not_to_restart(tmp_path):
    folder, ident = _registered(tmp_path, 60)
    folder.record("a", RunRecord(0, "completed", identity=ident["fingerprint"]), ident)
    data = json.loads(folder.results_file.read_text())
    del data["variants"]["a"]["config"]  # an index damaged by hand
    folder.results_file.write_text(json.dumps(data))
    info = {"config": {"model": {"dim": 8}, "data": {}, "train": {"steps": 60}}, "identity": ident}
    with pytest.raises(RunFolderError) as refused:
        folder.register({"experiment": "x", "seeds": [0], "seed_policy": {"min": 1, "max": 1}}, {"name": "x"}, {"a": info})
    message = str(refused.value)
    assert "report --rebuild" in message and "--restart" not in message and "None ->" not in message


def test_an_index_that_disagrees_with_variant_json_is_refused(tmp_path):
    folder, ident = _registered(tmp_path, 60)
    folder.record("a", RunRecord(0, "completed", identity=ident["fingerprint"]), ident)
    data = json.loads(folder.results_file.read_text())
    data["variants"]["a"]["config"]["train"]["steps"] = 20  # what an older version's refused run left behind
    folder.results_file.write_text(json.dumps(data))
    info = {"config": {"model": {"dim": 8}, "data": {}, "train": {"steps": 60}}, "identity": ident}
    with pytest.raises(RunFolderError, match="train.steps: 20 -> 60"):
        folder.register({"experiment": "x", "seeds": [0], "seed_policy": {"min": 1, "max": 1}}, {"name": "x"}, {"a": info})


@pytest.mark.parametrize("content", ['{"bad": 1}', '{"variants": {"a": {"runs": [{"seed": null}]}}}',
                                     '{"variants": {"../p7/a": {"runs": []}}}', '{"variants": {}, "seeds": ["abc"]}'])
def test_an_ill_shaped_results_json_is_one_line_for_run_report_and_load(tmp_path, capsys, content):
    (tmp_path / "results.json").write_text(content)
    capsys.readouterr()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results.json" in err and "Traceback" not in err
    with pytest.raises(RunFolderError, match="results.json"):
        RunFolder(tmp_path).store.load()
