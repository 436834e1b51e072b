"""Hyperspectral pretraining under random symmetries: eight distinct ones for square
images, drawn per step from their own stream, on training batches only."""

from __future__ import annotations

from pathlib import Path

import torch

from pipelines.run.config import TrainConfig
from pipelines.train.data import StepBatches, describe_artifact, dihedral


def test_the_eight_symmetries_of_a_square_are_distinct_and_invertible():
    image = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3)
    seen = {tuple(dihedral(image, op).flatten().tolist()) for op in range(8)}
    assert len(seen) == 8
    for op in range(8):
        out = dihedral(image, op)
        assert any(torch.equal(dihedral(out, back), image) for back in range(8))
        assert torch.equal(out.sum((-1, -2)), image.sum((-1, -2)))  # pixels moved, per band


def _batches(data: Path, augment: str, split: str = "train") -> StepBatches:
    cfg = TrainConfig(task="mae", data=str(data), augment=augment, batch_size=4, steps=10)
    art = describe_artifact(data, cfg)
    return StepBatches(art, cfg, split, 0, 1, (16 // 4) ** 2)


def test_augmented_batches_are_symmetries_of_the_plain_ones(sample_appl_zarr):
    plain, auto = _batches(sample_appl_zarr, "none"), _batches(sample_appl_zarr, "auto")
    changed = 0
    for step in range(3):
        a, b = plain[step], auto[step]
        assert torch.equal(a["noise"], b["noise"])  # the masks are the same draws
        for x, y in zip(a["x"], b["x"], strict=True):
            ops = [op for op in range(8) if torch.equal(dihedral(x, op), y)]
            assert ops, "an augmented image is a symmetry of the plain one"
            changed += 0 not in ops
        assert torch.equal(auto[step]["x"], b["x"])  # a function of (seed, step)
    assert changed >= 6
    # validation batches are never augmented
    val_plain = _batches(sample_appl_zarr, "none", "val")[0]["x"]
    assert torch.equal(_batches(sample_appl_zarr, "auto", "val")[0]["x"], val_plain)


def test_weather_fields_are_not_augmented_by_default(sample_era5_zarr):
    cfg = TrainConfig(task="mae", data=str(sample_era5_zarr), batch_size=2, steps=4)
    art = describe_artifact(sample_era5_zarr, cfg)
    a = StepBatches(art, cfg, "train", 0, 1, 128)[0]
    b = StepBatches(art, cfg.with_(augment="none"), "train", 0, 1, 128)[0]
    assert torch.equal(a["x"], b["x"])
