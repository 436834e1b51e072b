"""`train forecast --init RUN --new-channels VARS`: a trained forecaster extended by
channels it was not trained on, training only what the new channels need.

The pretrained channels keep their groups, their weights and their normalisation; the
new channels form a channel group of their own (its tokenizer and partial aggregation
fresh), whose partial joins the shared final cross-attention like any other, and a new
output layer on the head's hidden features predicts the new variables. With
`--tune new-channels` (the default here) nothing else trains: the pretrained forecasts
change only through the new group's partial in the final aggregation, and the cost is
that of the new parameters' gradients and optimizer state.

The channel groups are contiguous ranges of channel ids, and a forecaster's inputs end
with its computed forcings; the new channels therefore take ids after the forcings
(`ModelConfig.input_ids` maps each input position to its id), so no pretrained channel
moves.
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

# What the extended run takes from the forecaster it extends (its model and targets).
INHERITED = ("preset", "variant", "tree", "groups", "patch", "crop", "channel_impl",
             "aggregation", "target", "forcings")


def _init_settings(init: Path) -> dict[str, Any]:
    if is_model_file(init):
        return dict(open_model_file(init).config)
    return load_run_config(init).to_dict()


def extension_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The run's settings with the extended forecaster's model, channels and targets."""
    new = list(dict.fromkeys(settings["new_channels"]))
    if not settings.get("init"):
        raise DchagError("--new-channels extends a trained forecaster",
                         fix="name it with --init RUN (a run of `dchag train forecast`)")
    init = Path(settings["init"])
    saved = _init_settings(init)
    if saved.get("task") != "forecast":
        raise DchagError("--new-channels extends a forecaster, not a pretraining run",
                         path=init, fix="pass --init a run of `dchag train forecast`")
    info = saved_info(init)
    known = list(info["channel_names"])
    again = [c for c in new if c in known]
    if again:
        raise DchagError(f"--new-channels {', '.join(again)}: already an input of the run",
                         path=init, fix="name only channels the run was trained without")
    for key in INHERITED:
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
    out.update({k: saved.get(k) for k in INHERITED}, channels=known + new,
               out_channels=list(info["out_channels"]) + [c for c in new if not is_constant(c)],
               new_channels=new)
    out.setdefault("tune", "new-channels")
    return out


def extended_model(cfg: TrainConfig, art: Artifact) -> ModelConfig:
    """The extended forecaster's model: the pretrained one's groups, then the new
    channels' own group (under tensor parallelism: as many as make the groups divide)."""
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
