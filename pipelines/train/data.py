"""Training data over zarr artifacts, addressed by step so runs resume exactly.

The batch of step `s` is a pure function of (seed, s): sample order comes from a seeded
permutation per pass over the data, and every random choice of the step (masks, leads,
crops) from a generator seeded with (seed, s). A resumed run, or one on a different
number of ranks, therefore sees the same global batches; each data-parallel rank takes
its slice. Samples stay in their stored dtype; normalisation happens on the device.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import zarr
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from pipelines.data.bands import band_names, select_bands
from pipelines.data.channels import is_constant
from pipelines.data.datasets import SampleReader, batch_buffer
from pipelines.data.era5_stats import mean_std
from pipelines.data.forcings import FORCINGS
from pipelines.data.zarr_store import open_artifact
from pipelines.errors import DchagError
from pipelines.notes import note
from pipelines.run.config import TrainConfig
from pipelines.run.periods import Periods, make_periods, named_periods
from pipelines.train.artifact import Artifact
from pipelines.train.preempt import init_loader_worker

# The forecast targets of the D-CHAG authors' ERA5 run, when present in the artifact.
KEY_VARIABLES = ("z_500", "t_850", "t2m", "u10", "v10")


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 7 + stream)


def stream_positions(n: int, batch: int, step: int, seed: int) -> list[int]:
    """Indices into range(n) for the global batch of `step`: consecutive slices of a new
    random permutation per pass, so any n and batch size work (n < batch included)."""
    perms: dict[int, torch.Tensor] = {}
    out = []
    for p in range(step * batch, (step + 1) * batch):
        epoch, offset = divmod(p, n)
        if epoch not in perms:
            perms[epoch] = torch.randperm(n, generator=step_generator(seed, epoch, stream=1))
        out.append(int(perms[epoch][offset]))
    return out


def _artifact_kind(path: Path) -> str:
    if not Path(path).exists():
        raise DchagError("no such artifact", path=path)
    try:
        kind = zarr.open_group(str(path), mode="r").attrs.get("dchag_artifact")
    except Exception as exc:  # zarr raises several types for non-stores
        raise DchagError(f"not a zarr store ({type(exc).__name__})", path=path) from exc
    if kind not in ("era5", "appl"):
        raise DchagError("not a dchag data artifact", path=path,
                         fix="produce one with `dchag prep era5` or `dchag prep appl`")
    return kind


def describe_artifact(path: Path, cfg: TrainConfig) -> Artifact:
    """Open `path`, resolve the run's channels and targets, refuse what does not fit."""
    path = Path(path)
    kind = _artifact_kind(path)
    group = open_artifact(path, kind)
    if kind == "era5":
        names = [str(n) for n in group.attrs["channels"]]
        wanted = cfg.channels or names
        missing = [c for c in wanted if c not in names]
        if missing:
            raise DchagError(f"channels not in the artifact: {', '.join(missing)}", path=path,
                             fix=f"list its channels with `dchag channels {path}` or rebuild it")
        index = [names.index(c) for c in wanted]
        h, w = group["data"].shape[2:]
    else:
        wavelengths = group["wavelength"][:]
        names = band_names(wavelengths)
        index = (select_bands(names, wavelengths, cfg.channels, path) if cfg.channels
                 else list(range(len(names))))
        wanted = [names[i] for i in index]
        h, w = group["cube"].shape[2:]
    if cfg.task == "forecast" and kind != "era5":
        raise DchagError("forecasting needs an era5 artifact", path=path,
                         fix="use `dchag pretrain` for hyperspectral cubes")
    out_index: list[int] = []
    if cfg.task == "forecast":
        varying = [c for c in wanted if not is_constant(c)]
        targets = cfg.out_channels or [c for c in KEY_VARIABLES if c in wanted] or varying
        if targets == ["all"]:
            targets = varying
        missing = [c for c in targets if c not in wanted]
        if missing:
            raise DchagError(f"forecast targets not among the input channels: "
                             f"{', '.join(missing)}", path=path)
        constant = [c for c in targets if is_constant(c)]
        if constant:
            raise DchagError(f"{', '.join(constant)} is a constant field: an input, never a "
                             "forecast target", fix="drop it from --out-channels")
        out_index = [wanted.index(c) for c in targets]
        unpredicted = [c for c in varying if c not in targets]
        if cfg.rollout_steps > 1 and unpredicted:
            raise DchagError(f"--rollout-steps {cfg.rollout_steps} feeds the model its own "
                             f"predictions, but {', '.join(unpredicted[:4])} "
                             "would not be predicted", path=path,
                             fix="add --out-channels all (or drop those --channels)")
    img = (h, w)
    if cfg.crop is not None:
        if cfg.crop[0] > h or cfg.crop[1] > w:
            raise DchagError(f"--crop {cfg.crop[0]}x{cfg.crop[1]} is larger than the "
                             f"{h}x{w} images", path=path)
        img = (cfg.crop[0], cfg.crop[1])
    if img[0] % cfg.patch or img[1] % cfg.patch:
        raise DchagError(f"images of {img[0]}x{img[1]} are not divisible by --patch {cfg.patch}",
                         path=path, fix="choose a patch size dividing both sides (or --crop)")
    periods = None
    if kind == "era5":
        times = np.asarray(group["time"][:], dtype=np.int64)
        gap = max(cfg.leads) * cfg.rollout_steps if cfg.task == "forecast" else 0
        if cfg.train_period is not None:
            periods, trimmed = named_periods(times, cfg.train_period, cfg.val_period,
                                             cfg.test_period, gap)
            for text in trimmed:
                note(text)
        else:
            periods = make_periods(times, cfg.val_fraction, cfg.test_fraction, gap)
        mean, std = _training_statistics(group, periods, times, index, path)
    else:
        mean = np.asarray(group["mean"][:], dtype=np.float64)[index]
        std = np.asarray(group["std"][:], dtype=np.float64)[index]
    forcings = FORCINGS if cfg.uses_forcings else ()
    art = Artifact(kind, path, list(wanted), index, img, (h, w), mean, std, out_index,
                   periods, None, forcings)
    if kind == "appl" and cfg.task == "mae" and cfg.init and not cfg.new_channels:
        from pipelines.train.sensor_data import through_init_bands

        return through_init_bands(art, cfg)
    if cfg.new_channels:
        from pipelines.train.extend import with_pretrained_statistics

        return with_pretrained_statistics(art, cfg)
    return art


def _training_statistics(group: zarr.Group, periods: Periods, times: np.ndarray,
                         index: list[int], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the run's channels over the training period only (from the store's
    per-step sums): evaluation periods never leak into the normalisation."""
    if "stats_sum" not in group or group["stats_sum"].ndim != 2:
        note(f"{path}: an older store without per-step statistics; normalising with its "
             "statistics over all times (prepare it again to use the training period's)")
        return (np.asarray(group["mean"][:], np.float64)[index],
                np.asarray(group["std"][:], np.float64)[index])
    keep = periods.contains("train", times)
    sums = [np.asarray(group[name].get_orthogonal_selection((np.flatnonzero(keep), index)),
                       np.float64)
            for name in ("stats_sum", "stats_sumsq", "stats_count")]
    return mean_std(*sums)


def split_samples(art: Artifact, cfg: TrainConfig, split: str
                  ) -> tuple[list[int], dict[int, list[tuple[int, int]]]]:
    """The samples of a split ("train", "val" or "test") and, for weather, each start's
    (lead, valid index) pairs whose input and target both lie in the split's period
    (`periods.py`); hyperspectral splits by plant, so no plant is in two splits."""
    group = zarr.open_group(str(art.path), mode="r")
    if art.kind == "appl":
        frac = cfg.val_fraction
        plants = [str(p) for p in group["plant_id"][:]]
        unique = sorted(set(plants))
        n_val = max(1, round(len(unique) * frac)) if len(unique) > 1 and frac > 0 else 0
        val_plants = set(unique[len(unique) - n_val:]) if n_val else set()
        if split == "test":
            return [], {}
        keep = [i for i, p in enumerate(plants) if (p in val_plants) == (split == "val")]
        return keep, {}
    times = np.asarray(group["time"][:], dtype=np.int64)
    inside = art.periods.contains(split, times) if art.periods is not None else \
        np.ones(times.shape, bool)
    at = {int(t): i for i, t in enumerate(times) if inside[i]}
    leads = cfg.leads if cfg.task == "forecast" else [0]
    steps = cfg.rollout_steps if cfg.task == "forecast" else 1
    chosen, reach = [], {}
    for i in np.flatnonzero(inside):
        # with rollout training every step of the chain must be in the split
        pairs = [(lead, at[int(times[i]) + lead]) for lead in leads
                 if all(int(times[i]) + k * lead in at for k in range(1, steps + 1))]
        if pairs:
            chosen.append(int(i))
            reach[int(i)] = pairs
    return chosen, reach


def split_positions(art: Artifact, cfg: TrainConfig, split: str) -> list[int]:
    return split_samples(art, cfg, split)[0]


class _Source:
    """Sample access for one split; `positions` are the samples of that split."""

    def __init__(self, art: Artifact, cfg: TrainConfig, split: str):
        self.art, self.cfg = art, cfg
        self.reader = SampleReader(art.path, "data" if art.kind == "era5" else "cube",
                                   art.channel_index)
        self.positions, self.starts_leads = split_samples(art, cfg, split)
        self.times = np.asarray(zarr.open_group(str(art.path), mode="r")["time"][:],
                                np.int64) if art.kind == "era5" else np.zeros(0, np.int64)
        self.at = {int(t): i for i, t in enumerate(self.times)}
        if not self.positions:
            where = "validation" if split == "val" else "training"
            raise DchagError(f"no {where} samples", path=art.path,
                             fix="use more data, shorter --lead or another --val-fraction")

    def read(self, k: int) -> np.ndarray:
        return self.reader.read(k)


class StepBatches(Dataset):
    """Item `s` is this data-parallel rank's part of the global batch of step `s`."""

    def __init__(self, art: Artifact, cfg: TrainConfig, split: str, dp_rank: int,
                 dp_size: int, num_patches: int):
        self.src = _Source(art, cfg, split)
        self.cfg, self.art = cfg, art
        self.dp_rank, self.dp_size = dp_rank, dp_size
        self.num_patches = num_patches
        # Validation batches are the same every time they are evaluated.
        self.seed = cfg.seed if split == "train" else cfg.seed + 7919

    def __len__(self) -> int:
        return self.cfg.steps

    def _local(self, seq: list) -> list:
        per = len(seq) // self.dp_size
        return seq[self.dp_rank * per:(self.dp_rank + 1) * per]

    def __getitem__(self, step: int) -> dict[str, Tensor]:
        b = self.cfg.batch_size
        picks = [self.src.positions[i]
                 for i in stream_positions(len(self.src.positions), b, step, self.seed)]
        gen = step_generator(self.seed, step)
        out: dict[str, Tensor] = {}
        if self.cfg.task == "mae":
            out["noise"] = self._local(list(torch.rand(b, self.num_patches, generator=gen)))
        if self.cfg.task == "forecast":
            choice = [int(torch.randint(len(self.src.starts_leads[k]), (1,), generator=gen))
                      for k in picks]
            pairs = [self.src.starts_leads[k][c] for k, c in zip(picks, choice, strict=True)]
            out["lead"] = self._local([torch.tensor(lead) for lead, _ in pairs])
            out["time"] = self._local([torch.tensor(int(self.src.times[k])) for k in picks])
            # (K, C_out, H, W) per sample: the targets of every rollout step, this rank's only
            out["y"] = [self._chain(k, lead) for k, (lead, _) in self._local(
                list(zip(picks, pairs, strict=True)))]
        crops = self._local(self._crops(gen, b))
        h, w = self.art.img_size
        rows = self._local(picks)
        x, view = batch_buffer((len(rows), len(self.art.channel_index), h, w),
                               self.src.reader.dtype)
        for j, (k, (r, c)) in enumerate(zip(rows, crops, strict=True)):
            self.src.reader.read_into(k, view[j], r, c)  # whole chunk, no extra copy
        if self._augments():
            for j, op in enumerate(self._local(self._dihedral(step, b, (h, w)))):
                x[j] = dihedral(x[j], op)
        out["x"] = x
        if "y" in out:
            out["y"] = [y[..., r:r + h, c:c + w] for y, (r, c) in zip(out["y"], crops,
                                                                        strict=True)]
        batch = {k: (v if isinstance(v, Tensor) else torch.stack(v)) for k, v in out.items()}
        batch["step"] = torch.tensor(step)
        return batch

    def _augments(self) -> bool:
        mode = self.cfg.augment
        return mode == "dihedral" or (mode == "auto" and self.art.kind == "appl" and
                                      self.seed == self.cfg.seed)  # training batches only

    def _dihedral(self, step: int, b: int, shape: tuple[int, int]) -> list[int]:
        """One of the image's symmetries per sample, from its own stream (so turning
        augmentation off leaves every other draw of the step unchanged)."""
        gen = step_generator(self.seed, step, stream=2)
        return torch.randint(8 if shape[0] == shape[1] else 4, (b,), generator=gen).tolist()

    def _chain(self, start: int, lead: int) -> Tensor:
        t0 = int(self.src.times[start])
        rows = [self.src.at[t0 + k * lead] for k in range(1, self.cfg.rollout_steps + 1)]
        return torch.from_numpy(np.stack([self.src.read(j)[self.art.out_index]
                                          for j in rows]))

    def _crops(self, gen: torch.Generator, b: int) -> list[tuple[int, int]]:
        shape = self.art.full_size
        h, w = self.art.img_size
        if (h, w) == shape:
            return [(0, 0)] * b
        rows = torch.randint(shape[0] - h + 1, (b,), generator=gen).tolist()
        cols = torch.randint(shape[1] - w + 1, (b,), generator=gen).tolist()
        return list(zip(rows, cols, strict=True))


def dihedral(image: Tensor, op: int) -> Tensor:
    """(…, H, W) under symmetry `op` of the square (bits: flip x, flip y, transpose)."""
    dims = [d for bit, d in ((1, -1), (2, -2)) if op & bit]
    out = image.flip(dims) if dims else image
    return (out.transpose(-1, -2) if op & 4 else out).clone()


# Loader workers are forked from their rank on Linux, as from a single process: a spawned
# worker would import torch and the data code again (about two CPU-seconds each, at every
# new iterator), and one started by a rank's own fork server would outlive a rank killed
# outright (its parent is that server, so it never learns the rank is gone). zarr resets
# its I/O thread in a forked child.
LOADER_START = "fork" if sys.platform.startswith("linux") else None


def step_loader(ds: StepBatches, start: int, stop: int, workers: int, pin: bool) -> DataLoader:
    """Batches of steps start … stop−1 in order, prepared by `workers` processes."""
    return DataLoader(ds, sampler=range(start, stop), batch_size=None, num_workers=workers,
                      pin_memory=pin, persistent_workers=False,
                      multiprocessing_context=LOADER_START if workers else None,
                      prefetch_factor=2 if workers else None,
                      worker_init_fn=init_loader_worker if workers else None)
