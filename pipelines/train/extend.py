"""`--init RUN --new-channels ...`: a trained forecaster (`train forecast`) or a
pretrained MAE (`pretrain`) extended by channels it was not trained on (a variable; bands
outside its range), training only what the new channels need.

The pretrained channels keep their groups, their weights and their normalisation; the
new channels form a channel group of their own (its tokenizer and partial aggregation
fresh), whose partial joins the shared final cross-attention like any other, and a head
of their own (`model/new_outputs.py`: the encoder's features plus the new channels' state
and the forcings at each patch) predicts the new variables. With
`--tune new-channels` (the default here) nothing else trains: the pretrained forecasts
change only through the new group's partial in the final aggregation, and the cost is
that of the new parameters' gradients and optimizer state.

The channel groups are contiguous ranges of channel ids, and a forecaster's inputs end
with its computed forcings; the new channels therefore take ids after the forcings
(`ModelConfig.input_ids` maps each input position to its id), so no pretrained channel
moves. An extended MAE reads its bands in wavelength order, the new ones with ids after
the pretrained, and its decoder's rows for them are a layer of their own.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.data.channels import is_constant
from pipelines.errors import DchagError
from pipelines.model.aggregate import group_bounds, split_even
from pipelines.model.config import ModelConfig
from pipelines.model_header import is_model_file
from pipelines.run.config import load_run_config
from pipelines.run.model_file import open_model_file, saved_info

if TYPE_CHECKING:
    from pipelines.run.config import TrainConfig
    from pipelines.train.artifact import Artifact

# What the extended run takes from the run it extends (its model, and a forecaster's
# targets and inputs).
INHERITED = ("preset", "variant", "tree", "groups", "patch", "crop", "channel_impl",
             "aggregation")
INHERITED_BY_TASK = {"forecast": ("target", "forcings"), "mae": ("fill", "norm_pix_loss")}
# (what --new-channels extends, the command that makes one, what else --init may be)
WHAT = {"forecast": ("a trained forecaster", "dchag train forecast", "a pretraining run"),
        "mae": ("a pretrained MAE", "dchag pretrain", "a forecaster")}


def _init_settings(init: Path) -> dict[str, Any]:
    if is_model_file(init):
        return dict(open_model_file(init).config)
    return load_run_config(init).to_dict()


def _new_bands(settings: dict[str, Any], known: list[str]) -> list[str]:
    """--new-channels of an MAE: band names or wavelength ranges of the store's bands,
    which must also hold every band the pretrained run knows."""
    import zarr

    from pipelines.data.bands import band_names, select_bands

    data = Path(settings["data"])
    try:
        wavelengths = np.asarray(zarr.open_group(str(data), mode="r")["wavelength"][:])
    except Exception as exc:  # zarr raises several types for non-stores
        raise DchagError("not a hyperspectral store (no wavelength array)", path=data,
                         fix="extend on a store of `dchag prep appl`") from exc
    names = band_names(wavelengths)
    lacking = [b for b in known if b not in names]
    if lacking:
        raise DchagError(f"the store lacks {len(lacking)} of the pretrained run's "
                         f"{len(known)} bands (e.g. {lacking[0]})", path=data,
                         fix="prepare it on the run's band grid (`prep appl --bands/--range` "
                         "extending the run's range at the same spacing)")
    picked = [names[i] for i in select_bands(names, wavelengths, settings["new_channels"],
                                             data, flag="--new-channels")]
    return [b for b in picked if b not in known]


def extension_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The run's settings with the extended run's model, channels and (forecast) targets:
    the pretrained channels and the new ones (a forecaster's after its own; an MAE's
    bands in the store's wavelength order)."""
    task = settings["task"]
    what, command, other = WHAT[task]
    if not settings.get("init"):
        raise DchagError(f"--new-channels extends {what}",
                         fix=f"name it with --init RUN (a run of `{command}`)")
    init = Path(settings["init"])
    saved = _init_settings(init)
    if saved.get("task") != task:
        raise DchagError(f"--new-channels extends {what}, not {other}", path=init,
                         fix=f"pass --init a run of `{command}`")
    info = saved_info(init)
    known = list(info["channel_names"])
    if task == "mae":
        new = _new_bands(settings, known)
        if not new:
            raise DchagError(f"--new-channels {','.join(settings['new_channels'])}: every "
                             "band it names is already one of the run's", path=init,
                             fix="name bands outside the run's range")
    else:
        new = list(dict.fromkeys(settings["new_channels"]))
        again = [c for c in new if c in known]
        if again:
            raise DchagError(f"--new-channels {', '.join(again)}: already an input of the "
                             "run", path=init, fix="name only channels the run was trained "
                             "without")
    inherited = (*INHERITED, *INHERITED_BY_TASK[task])
    for key in inherited:
        if settings.get(key) is not None and settings[key] != saved.get(key):
            raise DchagError(f"--{key.replace('_', '-')} {settings[key]!r} differs from the "
                             f"extended run's {saved.get(key)!r}", path=init,
                             fix=f"leave out --{key.replace('_', '-')}: it is the run's")
    for key in ("channels", "out_channels"):
        if settings.get(key):
            raise DchagError(f"--{key.replace('_', '-')} with --new-channels: the run's "
                             "channels are the extended run's plus the new ones",
                             fix=f"leave out --{key.replace('_', '-')}")
    if settings.get("channel_dropout"):
        raise DchagError("--channel-dropout with --new-channels",
                         fix="extend without it (the pretrained groups are fixed)")
    out = dict(settings)
    out.update({k: saved.get(k) for k in inherited}, channels=known + new, new_channels=new)
    if task == "forecast":
        out["out_channels"] = (list(info["out_channels"])
                               + [c for c in new if not is_constant(c)])
    out.setdefault("tune", "new-channels")
    return out


def extended_model(cfg: TrainConfig, art: Artifact) -> ModelConfig:
    """The extended model: the pretrained one's groups, then the new channels' own
    (under tensor parallelism: as many groups as make the total divide)."""
    info = saved_info(Path(cfg.init or ""))
    base = ModelConfig.from_dict(info["model"])
    n = len(cfg.new_channels or [])
    tp = cfg.tp_size
    old = group_bounds(base)
    old_sizes = [hi - lo for lo, hi in pairwise(old)]
    k = next((k for k in range(1, n + 1) if (len(old_sizes) + k) % tp == 0), None)
    if k is None:
        raise DchagError(f"{n} new channel(s) cannot form groups that divide over --tp {tp} "
                         f"with the run's {len(old_sizes)}", fix="extend with --tp 1 (or "
                         "add more channels), then evaluate on any layout")
    bounds = split_even(n, k)
    sizes = old_sizes + [hi - lo for lo, hi in pairwise(bounds)]
    c_old = len(info["channel_names"])
    forcings = base.channels - c_old
    ids = list(range(c_old)) + [base.channels + j for j in range(n)] + \
        [c_old + f for f in range(forcings)]
    if cfg.task == "mae":  # bands in wavelength order, the new ones' ids after the known
        known = {name: i for i, name in enumerate(info["channel_names"])}
        new = iter(range(c_old, c_old + n))
        ids = [known[b] if b in known else next(new) for b in art.channel_names]
        return base.with_(channels=c_old + n, group_sizes=tuple(sizes), new_outputs=n,
                          input_ids=tuple(ids), groups=None)
    new_out = len(art.out_index) - (base.n_out)
    return base.with_(channels=base.channels + n, group_sizes=tuple(sizes),
                      input_ids=tuple(ids), out_channels=len(art.out_index),
                      new_outputs=new_out, groups=None,
                      new_head_inputs=tuple(range(c_old, base.channels + n)))


def with_pretrained_statistics(art: Artifact, cfg: TrainConfig) -> Artifact:
    """The pretrained channels normalised as the extended run was (its weights expect
    exactly that); the new channels by this store's training period."""
    from dataclasses import replace

    info = saved_info(Path(cfg.init or ""))
    mean, std = art.mean.copy(), art.std.copy()
    for i, name in enumerate(info["channel_names"]):
        j = art.channel_names.index(name)
        mean[j], std[j] = info["mean"][i], info["std"][i]
    return replace(art, mean=np.asarray(mean), std=np.asarray(std))


def new_groups(mcfg: ModelConfig, n_new: int) -> list[int]:
    """The channel groups holding the new channels (ids ≥ channels − n_new)."""
    bounds = group_bounds(mcfg)
    return [g for g in range(len(bounds) - 1) if bounds[g] >= mcfg.channels - n_new]


def pretrained_scales(cfg: TrainConfig, measured: dict[int, list[float]],
                      n_known: int) -> dict[int, list[float]]:
    """Tendency scales per lead: the extended run's for its outputs (its head predicts in
    those units), this store's for the new outputs."""
    from pipelines.run.tendency import table_from_json

    table = table_from_json(saved_info(Path(cfg.init or "")).get("tendency_std")) or {}
    missing = sorted(set(measured) - set(table))
    if missing:
        raise DchagError(f"the extended forecaster has no tendency scale for lead(s) "
                         f"{missing} h", path=cfg.init, fix="extend with --lead among its leads")
    return {lead: list(table[lead][:n_known]) + list(v[n_known:])
            for lead, v in measured.items()}
