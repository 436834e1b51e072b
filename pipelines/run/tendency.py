"""Tendency targets: the network predicts the *change* over a lead, in units of that
change's own spread.

With state-normalised residuals the loss of a 6-h forecast is tiny beside a 7-d one (the
quickstart's 6-h change of z_500 is 0.05 of its state spread, the 7-d change 0.42), so
training serves the long leads and the 6-h correction is noise larger than the 6-h change.
GraphCast, Stormer and anemoi instead scale each lead's change by its own spread:

    x̂(t + ℓ) = x(t) + σ_ℓ ⊙ f(x(t), ℓ)          σ_ℓ[c] = std over training pairs of
    loss     = ‖(x̂ − x(t + ℓ)) / σ_ℓ‖²_lat             x_c(t + ℓ) − x_c(t)

so every lead and channel enters the loss with unit-variance targets. σ is measured on the
training period only (like the normalisation), in physical units, and recorded in
`model.json` as `tendency_std` {lead hours: [per output channel]}; the model divides it by
the state std to work in normalised space.
"""

from __future__ import annotations

import numpy as np
import zarr

from pipelines.errors import DchagError

MAX_PAIRS = 256  # per lead: evenly spaced over the training period; σ to about 5 %
FLOOR = 1e-6  # of the state std: a constant target must not divide by zero


def tendency_std(group: zarr.Group, times: np.ndarray, train: np.ndarray, channels: list[int],
                 leads: list[int], path: object) -> dict[int, np.ndarray]:
    """σ_ℓ (physical units) per lead for the store channels `channels`, from pairs whose
    both ends lie in the training period (`train`, a boolean mask over `times`)."""
    at = {int(t): i for i, t in enumerate(times) if train[i]}
    arr = group["data"]
    out: dict[int, np.ndarray] = {}
    cache: dict[int, np.ndarray] = {}

    def field(i: int) -> np.ndarray:
        if i not in cache:
            cache[i] = np.asarray(arr.get_orthogonal_selection(
                (i, channels, slice(None), slice(None))), np.float64)
        return cache[i]

    for lead in leads:
        pairs = [(i, at[int(times[i]) + lead]) for i in np.flatnonzero(train)
                 if int(times[i]) + lead in at]
        if len(pairs) < 2:
            raise DchagError(f"the training period has {len(pairs)} pair(s) of times "
                             f"{lead} h apart: too few to measure the {lead}-h tendency",
                             path=path, fix="use more data, shorter --lead, or --target state")
        pick = np.unique(np.linspace(0, len(pairs) - 1, min(MAX_PAIRS, len(pairs))).round()
                         ).astype(int)
        diffs = np.stack([field(pairs[k][1]) - field(pairs[k][0]) for k in pick])
        out[lead] = diffs.std(axis=(0, 2, 3))
        if len(cache) > 4 * MAX_PAIRS:
            cache.clear()
    return out


def normalised_scale(table: dict[int, list[float]] | None, state_std: np.ndarray
                     ) -> dict[int, list[float]] | None:
    """σ_ℓ in units of the output channels' state std (what the network sees), floored."""
    if table is None:
        return None
    std = np.asarray(state_std, np.float64)
    return {int(lead): np.maximum(np.asarray(v, np.float64) / std, FLOOR).tolist()
            for lead, v in table.items()}


def table_to_json(table: dict[int, np.ndarray] | None) -> dict[str, list[float]] | None:
    return None if table is None else {str(k): np.asarray(v).tolist()
                                       for k, v in sorted(table.items())}


def table_from_json(d: dict | None) -> dict[int, list[float]] | None:
    return None if not d else {int(k): [float(x) for x in v] for k, v in d.items()}
