"""What TensorBoard shows of a sweep: scalar tags, the custom-scalars layout and the HPARAMS rows.

Tags are grouped by what a reader compares: ``loss/`` (train and val, on the same step axis), ``lr``,
``optim/`` and ``speed/``. TIME SERIES lists groups alphabetically, so it opens on ``loss``. Runs are named
``<variant>/seed<k>``: TIME SERIES colours runs, and grouping its colours by the regex ``^([^/]+)/`` gives one
colour per variant. CUSTOM SCALARS overlays every run on one chart per quantity; each run carries the layout
in its own events (TensorBoard merges identical charts), so no extra run holds it, and a chart that cannot have
data on the run's device (MFU without a known peak) is left out. HPARAMS has one row per run: variant and
verdict first, then the seed and the config keys that differ between variants, then the rest; its one metric
column is the final validation loss on the whole split, the number the verdict compares.
"""

from __future__ import annotations

import math

import torch

TRAIN_LOSS = "loss/train"
VAL_LOSS = "loss/val"  # the curve: ``train.eval_batches`` batches at each evaluation step
FINAL_VAL_LOSS = "loss/val_whole_split"  # one point at the last step: the whole split, as results.json's final_val_loss
LR = "lr"  # one curve while every parameter group follows the schedule, else lr/decay and lr/no_decay
GRAD_NORM = "optim/grad_norm"
TOKENS_PER_SEC = "speed/tokens_per_sec"  # every process together, over the logging window
MFU = "speed/mfu"  # model FLOPs utilisation, only where the accelerator's peak is known

# Runs are "<variant>/seed<k>": this regex's group is the variant (TIME SERIES' "color by regex").
VARIANT_OF_RUN = "^([^/]+)/"


def layout(mfu: bool) -> dict:
    """CUSTOM SCALARS: category -> chart -> ("Multiline", tag regexes); each chart overlays every run.
    ``mfu``: whether this run logs MFU (a known peak on its device); without it the chart could only be empty."""
    charts = {
        "validation loss": ["Multiline", [f"^{VAL_LOSS}$"]],
        "training loss": ["Multiline", [f"^{TRAIN_LOSS}$"]],
        "learning rate": ["Multiline", [f"^{LR}(/.*)?$"]],
        "tokens / s": ["Multiline", [f"^{TOKENS_PER_SEC}$"]],
        **({"MFU": ["Multiline", [f"^{MFU}$"]]} if mfu else {}),
        "gradient norm": ["Multiline", [f"^{GRAD_NORM}$"]],
    }
    return {"compare variants": charts}


# HPARAMS: TensorBoard sorts columns by (not differs, name) and its HPARAMS view shows the first five, so the
# leading columns are marked differing and named to sort first ("1 variant"), shown under their plain names.
LEADING = ("variant", "verdict", "seed")
METRICS = (FINAL_VAL_LOSS,)  # metric columns: each run's last value of these scalars


def column(label: str) -> str:
    """The HPARAMS name of a leading column: its position first, so TensorBoard's name sort keeps LEADING's order."""
    return f"{LEADING.index(label) + 1} {label}"


def lr_scalars(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """``{"lr": x}`` while all parameter groups share one learning rate (standard: optim.py's decay and
    no-decay groups follow one schedule); else one tag per group name: its μP role where it has one
    (``lr/hidden``, ``lr/input``: components.parametrization), else its weight decay (``lr/decay``).
    Groups that share a name and a rate share a tag; where they do not, ``lr/group{i}``."""
    groups = optimizer.param_groups
    rates = [float(g["lr"]) for g in groups]
    if len(set(rates)) == 1:
        return {LR: rates[0]}
    by_name: dict[str, set[float]] = {}
    for group, rate in zip(groups, rates):
        name = group.get("role") or ("decay" if group["weight_decay"] > 0 else "no_decay")
        by_name.setdefault(f"{LR}/{name}", set()).add(rate)
    if any(len(r) > 1 for r in by_name.values()):
        return {f"{LR}/group{i}": rate for i, rate in enumerate(rates)}
    return {name: r.pop() for name, r in by_name.items()}


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


def write_layout(writer, mfu: bool) -> None:
    """The CUSTOM SCALARS layout into a run's own events (``writer``: its SummaryWriter)."""
    from torch.utils.tensorboard.summary import custom_scalars

    writer.file_writer.add_summary(custom_scalars(layout(mfu)))


def differing_keys(configs: list[dict]) -> set[str]:
    """Flattened keys whose values are not the same in every one of ``configs`` (a key some lack differs)."""
    keys = set().union(*configs) if configs else set()
    return {k for k in keys if len({repr(c.get(k)) for c in configs}) > 1}


def write_hparams(folder, leading: dict, config: dict, differing: set[str], completed: bool) -> None:
    """One HPARAMS row for the run in ``folder``: the ``leading`` columns (LEADING's labels) first, then
    ``config`` (str, bool or number; None and NaN left out), its keys in ``differing`` marked as differing
    between runs. The metric column is the run's last FINAL_VAL_LOSS scalar, written by the run itself."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    values = {**{column(k): v for k, v in leading.items()}, **config}
    kept = {k: v for k, v in values.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
    experiment, start, end = hparams(kept, {tag: 0.0 for tag in METRICS})
    content = experiment.value[0].metadata.plugin_data
    data = plugin_data_pb2.HParamsPluginData.FromString(content.content)
    shown = {column(k): k for k in leading}
    for info in data.experiment.hparam_infos:
        info.differs = info.name in shown or info.name in differing
        info.display_name = shown.get(info.name, "")
    content.content = data.SerializeToString()
    if not completed:
        end_content = end.value[0].metadata.plugin_data
        end_data = plugin_data_pb2.HParamsPluginData.FromString(end_content.content)
        end_data.session_end_info.status = api_pb2.Status.Value("STATUS_FAILURE")
        end_content.content = end_data.SerializeToString()
    writer = SummaryWriter(log_dir=str(folder))
    for summary in (experiment, start, end):
        writer.file_writer.add_summary(summary)
    writer.close()
