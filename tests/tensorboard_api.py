"""TensorBoard's own backend, in this process, for tests that check what its HTTP API serves (the data the
dashboards draw): the same WSGI app ``tensorboard --logdir`` runs, loading the logdir once, synchronously."""

from __future__ import annotations

from pathlib import Path

DEFAULT_HPARAM_COLUMNS = 5  # the HPARAMS view shows this many hparam columns until one picks others


def tensorboard_client(logdir: Path):
    """A werkzeug test client on TensorBoard's app for ``logdir`` (``tensorboard --logdir`` with the Python loader)."""
    from tensorboard import default, program
    from tensorboard.backend import application
    from werkzeug.test import Client

    tb = program.TensorBoard(default.get_plugins())
    tb.configure(argv=[None, "--logdir", str(logdir), "--load_fast", "false", "--reload_task", "blocking",
                       "--reload_interval", "0"])
    provider, multiplexer = tb._make_data_provider()
    return Client(application.TensorBoardWSGIApp(tb.flags, tb.plugin_loaders, provider, tb.assets_zip_provider,
                                                 multiplexer))


def hparams_experiment(client) -> dict:
    """What the HPARAMS dashboard requests first: hparam and metric infos, in the backend's order."""
    response = client.post("/data/plugin/hparams/experiment", json={"experimentName": "", "hparamsLimit": 1000})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def default_hparam_columns(experiment: dict) -> list[str]:
    """The hparam columns the HPARAMS view shows by default, as its frontend picks them (tf-hparams-query-pane
    in TensorBoard 2.21's webfiles: a stable sort putting differing hparams first, then the first five),
    under the names it shows (displayName, else name)."""
    infos = sorted(experiment["hparamInfos"], key=lambda info: not info.get("differs", False))
    return [info.get("displayName") or info["name"] for info in infos[:DEFAULT_HPARAM_COLUMNS]]


def session_groups(client, experiment: dict) -> dict[str, dict]:
    """Each session (one run folder with an HPARAMS row): {"hparams": {name: value}, "metrics": {tag: value}}."""
    cols = [{"hparam": info["name"], "includeInResult": True} for info in experiment["hparamInfos"]]
    cols += [{"metric": info["name"], "includeInResult": True} for info in experiment["metricInfos"]]
    request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                                          "STATUS_RUNNING"],
               "colParams": cols, "startIndex": 0, "sliceSize": 1000}
    response = client.post("/data/plugin/hparams/session_groups", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {group["name"]: {"hparams": group["hparams"],
                            "metrics": {m["name"]["tag"]: m["value"] for m in group["metricValues"]}}
            for group in response.get_json()["sessionGroups"]}


def runs(client) -> list[str]:
    return client.get("/data/runs").get_json()


def custom_scalar_charts(client) -> list[tuple[str, str]]:
    """(category, chart title) of the merged CUSTOM SCALARS layout, in the order the tab shows them."""
    layout = client.get("/data/plugin/custom_scalars/layout").get_json()
    return [(category["title"], chart["title"]) for category in layout.get("category", []) for chart in category["chart"]]
