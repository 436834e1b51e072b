"""`dchag eval bands`: which bands carry the information, and which k of them a cheaper
sensor should keep.

Every score here is the error of the whole spectrum (all of the run's bands, every pixel
of the held-out cubes) rebuilt from a subset of the bands, so nothing but the bands is
missing: no patch is hidden.

- **Importance** of a band group (contiguous, `--groups` of equal width over the range):
  the model's RMSE when that group alone is absent from the input. A group whose loss
  the rest of the spectrum cannot make up scores high.
- **k bands that keep most**: three ways to pick k of the candidate bands (the band
  nearest each group's centre), each scored for k = 1 … K by two reconstructors, the
  model and the low-rank fit of `absent_bands` (the library's principal spectra fitted to
  the k bands; at most k components, so the fit stays determined):
  - `model_greedy`: forward selection — add the candidate that lowers the model's RMSE
    most, one at a time (nested: the k-band set holds the (k−1)-band set);
  - `low_rank_greedy`: the same forward selection by the low-rank fit's RMSE — the
    classic sensor-design answer, which needs no model;
  - `evenly_spaced`: k candidates evenly spread over the range;
  - `pca_loadings`: for each of the library's first k principal components in turn, the
    candidate band with the largest absolute loading not picked yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pipelines.eval.absent_bands import low_rank_bands
from pipelines.metrics.images import spectral_angle
from pipelines.model.mae import random_masking
from pipelines.model.tokenizer import unpatchify
from pipelines.progress import NoProgress, Progress
from pipelines.run.load import TrainedRun

PICKERS = ("model_greedy", "low_rank_greedy", "evenly_spaced", "pca_loadings")
RECONSTRUCTORS = ("model", "low_rank")


@dataclass
class HeldOut:
    """The cubes scored: reflectance (n, band, H, W), plant pixels (n, H, W), the run's
    wavelengths and the library's (mean, components) from the other cubes."""

    cubes: np.ndarray
    plant: np.ndarray
    wavelength: np.ndarray
    basis: tuple[np.ndarray, np.ndarray]
    sources: list[str]


def band_groups(wavelength: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(group of each band, (group, 2) edges in nm): `groups` equal widths over the range."""
    edges = np.linspace(wavelength.min(), wavelength.max(), groups + 1)
    which = np.clip(np.searchsorted(edges, wavelength, side="right") - 1, 0, groups - 1)
    return which, np.stack([edges[:-1], edges[1:]], axis=1)


def candidates(wavelength: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The band nearest each group's centre (one candidate per group)."""
    centres = edges.mean(axis=1)
    return np.array([int(np.argmin(np.abs(wavelength - c))) for c in centres])


def evenly_spaced(cands: np.ndarray, k: int) -> list[int]:
    return [int(cands[i]) for i in np.unique(np.round(np.linspace(0, len(cands) - 1, k))
                                             .astype(int))]


def pca_loadings(cands: np.ndarray, comps: np.ndarray, k: int) -> list[int]:
    picked: list[int] = []
    for c in range(k):
        row = np.abs(comps[c % len(comps), cands])
        for i in np.argsort(-row):
            if int(cands[i]) not in picked:
                picked.append(int(cands[i]))
                break
    return picked


class ModelReconstructor:
    """The MAE's whole spectrum from the bands kept, nothing hidden spatially."""

    def __init__(self, run: TrainedRun, device: torch.device):
        self.run, self.device = run, device
        self.mean = torch.tensor(run.info["mean"], dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(run.info["std"], dtype=torch.float32)[:, None, None]

    def __call__(self, cubes: np.ndarray, keep: list[int]) -> np.ndarray:
        run, p = self.run, self.run.mcfg.patch
        x = torch.from_numpy(cubes.astype(np.float32))
        xn = ((x - self.mean) / self.std).to(self.device)
        present = torch.tensor(sorted(keep), device=self.device)
        ids_keep, mask, ids_restore = random_masking(len(x), run.mcfg.num_patches, 0.0,
                                                     self.device)
        with torch.no_grad():
            pred = run.model.predict(xn[:, present], present, ids_keep, mask, ids_restore)
        full = unpatchify(pred.float().cpu(), p, run.mcfg.grid) * self.std + self.mean
        full[:, present.cpu()] = x[:, present.cpu()]
        return full.numpy().astype(np.float64)


def low_rank_reconstruct(cubes: np.ndarray, keep: list[int],
                         basis: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    mean, comps = basis
    absent = np.ones(cubes.shape[1], bool)
    absent[keep] = False
    truncated = (mean, comps[:max(1, min(len(keep), len(comps)))])
    return np.stack([low_rank_bands(c, absent, truncated) for c in cubes])


def scores(held: HeldOut, rec: np.ndarray) -> tuple[float, float]:
    """(RMSE over every band and pixel, mean SAM° over plant pixels)."""
    rmse = float(np.sqrt(((rec - held.cubes) ** 2).mean()))
    sam = [spectral_angle(o, r, m) for o, r, m in zip(held.cubes, rec, held.plant,
                                                      strict=True)]
    return rmse, float(np.nanmean(sam)) if np.isfinite(sam).any() else float("nan")


@dataclass
class BandStudy:
    wavelength: np.ndarray  # (band,)
    edges: np.ndarray  # (group, 2) nm
    group_rmse: np.ndarray  # (group,) the model's RMSE with the group absent
    group_sam: np.ndarray  # (group,)
    candidates: np.ndarray  # (group,) band positions
    picks: np.ndarray  # (picker, k, K) band positions, -1 beyond k
    rmse: np.ndarray  # (picker, reconstructor, k)
    sam: np.ndarray  # (picker, reconstructor, k)
    sources: list[str]

    @property
    def max_k(self) -> int:
        return self.picks.shape[1]


def greedy(held: HeldOut, rebuild: Callable[[np.ndarray, list[int]], np.ndarray],
           cands: np.ndarray, max_k: int, progress: Progress
           ) -> tuple[list[int], list[tuple[float, float]]]:
    """Forward selection of `max_k` candidates by `rebuild`'s RMSE: the picks in order and
    the (RMSE, SAM) after each."""
    chosen: list[int] = []
    after: list[tuple[float, float]] = []
    for _ in range(max_k):
        tries = {int(c): scores(held, rebuild(held.cubes, [*chosen, int(c)]))
                 for c in cands if int(c) not in chosen}
        progress.advance(len(tries))
        best = min(tries, key=lambda c: tries[c][0])
        chosen.append(best)
        after.append(tries[best])
    return chosen, after


def study_bands(held: HeldOut, model: Callable[[np.ndarray, list[int]], np.ndarray],
                groups: int, max_k: int, progress: Progress | None = None) -> BandStudy:
    progress = progress or NoProgress()
    wl = held.wavelength
    which, edges = band_groups(wl, groups)
    cands = candidates(wl, edges)
    everyone = np.arange(len(wl))
    greedy_evals = sum(groups - i for i in range(max_k))
    progress.start(groups + 2 * greedy_evals + 4 * max_k, "band subsets")
    group_scores = []
    for g in range(groups):
        group_scores.append(scores(held, model(held.cubes, [int(b) for b in
                                                            everyone[which != g]])))
        progress.advance()
    rebuilders = (model, lambda cubes, keep: low_rank_reconstruct(cubes, keep, held.basis))
    by_model, _ = greedy(held, rebuilders[0], cands, max_k, progress)
    by_rank, _ = greedy(held, rebuilders[1], cands, max_k, progress)
    picks = np.full((len(PICKERS), max_k, max_k), -1, int)
    rmse = np.full((len(PICKERS), len(RECONSTRUCTORS), max_k), np.nan)
    sam = np.full_like(rmse, np.nan)
    for k in range(1, max_k + 1):
        sets = [by_model[:k], by_rank[:k], evenly_spaced(cands, k),
                pca_loadings(cands, held.basis[1], k)]
        for m, keep in enumerate(sets):
            picks[m, k - 1, :len(keep)] = keep
            for r, rebuild in enumerate(rebuilders):
                rmse[m, r, k - 1], sam[m, r, k - 1] = scores(held, rebuild(held.cubes, keep))
            progress.advance()
    return BandStudy(wl, edges, np.array([s[0] for s in group_scores]),
                     np.array([s[1] for s in group_scores]), cands, picks, rmse, sam,
                     held.sources)


def verdict(study: BandStudy) -> list[str]:
    """Per reconstructor, at the largest k: its own greedy picks against the better of
    the two fixed designs (evenly spaced, PCA loadings), on RMSE."""
    k = study.max_k
    lines = []
    for r, name in enumerate(RECONSTRUCTORS):
        own = study.rmse[r, r, k - 1]
        best = min((2, 3), key=lambda m: study.rmse[m, r, k - 1])
        other = study.rmse[best, r, k - 1]
        word = "beat" if own < other else "do not beat"
        lines.append(f"{k} bands rebuilt by {name.replace('_', ' ')}: its greedy picks {word} "
                     f"{PICKERS[best].replace('_', ' ')} picks: RMSE {own:.4f} vs "
                     f"{other:.4f} (ratio {own / other:.3f}), SAM {study.sam[r, r, k - 1]:.2f}° "
                     f"vs {study.sam[best, r, k - 1]:.2f}°")
    top = np.argsort(-study.group_rmse)[:3]
    lines.append("most important groups (RMSE with the group absent): " + ", ".join(
        f"{study.edges[g, 0]:.0f}–{study.edges[g, 1]:.0f} nm {study.group_rmse[g]:.4f}"
        for g in top))
    return lines
