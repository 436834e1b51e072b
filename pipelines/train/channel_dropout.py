"""`--channel-dropout P`: train with inputs missing, so the model still works when some are
absent at inference (`eval forecast --drop-channels`).

Each step, every data channel is dropped with probability P, and every channel group (D-CHAG's
unit of work) with probability P as a whole; at least one channel stays. The draw is a
function of the seed and the step alone — the same on every rank, so all tensor-parallel
ranks of a replica (and all replicas) agree on which channels exist without communicating,
and a resumed run draws exactly what the uninterrupted run drew. Computed forcings are never
dropped; validation always sees every input.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pipelines.train.data import step_generator

STREAM = 3  # the step generator's stream for these draws (0: batches, 2: augmentation)


def kept_channels(step: int, seed: int, p: float, n_data: int, n_total: int,
                  bounds: list[int] | None) -> Tensor | None:
    """Ids of the model channels kept at `step` (None: all of them). `bounds`: the group
    edges over the model channels (None for the baseline, which has no groups)."""
    if p <= 0:
        return None
    gen = step_generator(seed, step, STREAM)
    drop = torch.rand(n_data, generator=gen) < p
    if bounds is not None:
        whole = torch.rand(len(bounds) - 1, generator=gen) < p
        for g in torch.nonzero(whole).flatten().tolist():
            drop[bounds[g]:min(bounds[g + 1], n_data)] = True
    if bool(drop.all()):
        drop[int(torch.randint(n_data, (1,), generator=gen))] = False
    if not bool(drop.any()):
        return None
    keep = [i for i in range(n_total) if i >= n_data or not bool(drop[i])]
    return torch.tensor(keep, dtype=torch.long)
