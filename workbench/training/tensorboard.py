"""What TensorBoard shows of a sweep: scalar tags, the custom-scalars layout and the HPARAMS rows.

Tags are grouped by what a reader compares: ``loss/`` (train and val, on the same step axis), ``lr``,
``optim/`` and ``speed/``. TIME SERIES lists groups alphabetically, so it opens on ``loss``; the
CUSTOM SCALARS tab (one layout per run folder) overlays every variant and seed on one chart per
quantity. HPARAMS has one row per run: its variant, verdict and final metrics, then the config keys
that differ between variants (marked as differing, so TensorBoard lists them first), then the rest.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

TRAIN_LOSS = "loss/train"
VAL_LOSS = "loss/val"
LR = "lr"  # one curve while every parameter group follows the schedule, else lr/decay and lr/no_decay
GRAD_NORM = "optim/grad_norm"
TOKENS_PER_SEC = "speed/tokens_per_sec"  # every process together, over the logging window
MFU = "speed/mfu"  # model FLOPs utilisation, only where the accelerator's peak is known

# CUSTOM SCALARS: category -> chart -> ("Multiline", tag regexes); each chart overlays every run.
LAYOUT = {
    "compare variants": {
        "validation loss": ["Multiline", [f"^{VAL_LOSS}$"]],
        "training loss": ["Multiline", [f"^{TRAIN_LOSS}$"]],
        "learning rate": ["Multiline", [f"^{LR}(/.*)?$"]],
        "tokens / s": ["Multiline", [f"^{TOKENS_PER_SEC}$"]],
        "MFU": ["Multiline", [f"^{MFU}$"]],
        "gradient norm": ["Multiline", [f"^{GRAD_NORM}$"]],
    },
}

# HPARAMS metric columns: TensorBoard reads each run's last value of these scalars.
METRICS = (VAL_LOSS, TOKENS_PER_SEC)


def lr_scalars(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """``{"lr": x}`` while all parameter groups share one learning rate (optim.py's decay and no-decay
    groups follow one schedule), else one tag per group named by its weight decay."""
    groups = optimizer.param_groups
    rates = [float(g["lr"]) for g in groups]
    if len(set(rates)) == 1:
        return {LR: rates[0]}
    names = [f"{LR}/{'decay' if g['weight_decay'] > 0 else 'no_decay'}" for g in groups]
    if len(set(names)) < len(names):
        names = [f"{LR}/group{i}" for i in range(len(groups))]
    return dict(zip(names, rates))


_PRECISION_DTYPES = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16,
                     "16-true": torch.float16, "32-true": torch.float32, "32": torch.float32, "64-true": torch.float64}


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The accelerator's dense peak FLOP/s at the training precision (Lightning's table of GPUs);
    None on CPU or an unlisted device: MFU is then not logged."""
    if device.type != "cuda" or precision not in _PRECISION_DTYPES:
        return None
    import warnings

    from lightning.fabric.utilities.throughput import get_available_flops

    with warnings.catch_warnings():  # an unlisted GPU: no MFU, no warning
        warnings.simplefilter("ignore")
        peak = get_available_flops(device, _PRECISION_DTYPES[precision])
    return float(peak) if peak else None


def _writer(folder: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder))


def write_layout(run_dir: Path) -> None:
    """The CUSTOM SCALARS layout, once per run folder (an event file at its top, beside the variants)."""
    run_dir = Path(run_dir)
    if any(run_dir.glob("events.out.tfevents.*")):
        return
    from torch.utils.tensorboard.summary import custom_scalars

    writer = _writer(run_dir)
    writer.file_writer.add_summary(custom_scalars(LAYOUT))
    writer.close()


def differing_keys(configs: list[dict]) -> set[str]:
    """Flattened keys whose values are not the same in every one of ``configs`` (a key some lack differs)."""
    keys = set().union(*configs) if configs else set()
    return {k for k in keys if len({repr(c.get(k)) for c in configs}) > 1}


def write_hparams(folder: Path, values: dict, differing: set[str], completed: bool) -> None:
    """One HPARAMS row for the run in ``folder``: ``values`` (str, bool or number; None left out),
    keys in ``differing`` marked as differing between runs. No scalar is written: the metric columns
    are the run's last ``loss/val`` and ``speed/tokens_per_sec``."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from torch.utils.tensorboard.summary import hparams

    kept = {k: v for k, v in values.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
    experiment, start, end = hparams(kept, {tag: 0.0 for tag in METRICS})
    content = experiment.value[0].metadata.plugin_data
    data = plugin_data_pb2.HParamsPluginData.FromString(content.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in differing
    content.content = data.SerializeToString()
    if not completed:
        end_content = end.value[0].metadata.plugin_data
        end_data = plugin_data_pb2.HParamsPluginData.FromString(end_content.content)
        end_data.session_end_info.status = api_pb2.Status.Value("STATUS_FAILURE")
        end_content.content = end_data.SerializeToString()
    writer = _writer(folder)
    for summary in (experiment, start, end):
        writer.file_writer.add_summary(summary)
    writer.close()
