"""A run folder is data: loading it never runs code, and a damaged checkpoint is named and
skipped in favour of the newest intact one.

Payloads are planted where an attacker would: in `.metadata` (which torch's own reader
unpickles) and in a non-tensor value of a shard (which torch's default planner loads with
`weights_only=False`). Every route that loads a checkpoint is tried: `eval forecast`,
`predict masks`, `--resume` and `--init`."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from pipelines.run.records import read_metrics
from pipelines.run.safe_checkpoint import checkpoint_problem, read_metadata
from tests.runner import app, one_error_line, runner

FAST = ["--workers", "0", "--batch-size", "2", "--log-every", "2", "--val-every", "4",
        "--ckpt-every", "4", "--steps", "8"]


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sample_era5_zarr, sample_appl_zarr) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    fc, mae = base / "fc", base / "mae"
    r = runner.invoke(app, ["train", "forecast", "--data", str(sample_era5_zarr), "--lead",
                            "6h,1d", "--out", str(fc), *FAST])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out", str(mae),
                            *FAST])
    assert r.exit_code == 0, r.output
    return {"forecast": fc, "mae": mae}


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _plant_in_metadata(run: Path, marker: Path) -> Path:
    target = run / "checkpoints" / "step_00000008" / ".metadata"
    target.write_bytes(pickle.dumps(_Payload(marker)))
    return target


def _plant_in_bytes_value(run: Path, marker: Path) -> Path:
    """Replace the stored learning rate by a pickled payload: append it to the shard and
    point the (legitimate) metadata at it. Every route refuses the checkpoint, also those
    that would only read model weights: a tampered run folder is not trusted at all."""
    ckpt = run / "checkpoints" / "step_00000008"
    md = read_metadata(ckpt)
    key = next(k for k in md.storage_data if k.fqn.endswith("param_groups.0.lr"))
    info = md.storage_data[key]
    buf = io.BytesIO()
    torch.save(_Payload(marker), buf)
    shard = ckpt / info.relative_path
    offset = shard.stat().st_size
    with open(shard, "ab") as fh:
        fh.write(buf.getvalue())
    info.offset, info.length = offset, len(buf.getvalue())
    (ckpt / ".metadata").write_bytes(pickle.dumps(md))
    # only the newest checkpoint is poisoned: make it the only one
    for old in (run / "checkpoints").glob("step_00000004"):
        shutil.rmtree(old)
    return shard


ROUTES = {
    "eval forecast": lambda run, data: ["eval", "forecast", "--run", str(run), "--data",
                                        str(data["era5"]), "--out", str(run.parent / "ev")],
    "predict masks": lambda run, data: ["predict", "masks", "--run", str(run), "--data",
                                        str(data["appl"]), "--out",
                                        str(run.parent / "rec.zarr")],
    "resume": lambda run, data: ["train", "forecast", "--resume", str(run), "--steps", "12"],
    "init": lambda run, data: ["train", "forecast", "--data", str(data["era5"]), "--init",
                               str(run), "--lead", "6h", "--out", str(run.parent / "ft"),
                               *FAST],
}
KIND = {"eval forecast": "forecast", "predict masks": "mae", "resume": "forecast",
        "init": "mae"}


@pytest.mark.parametrize("where", ["metadata", "bytes value"])
@pytest.mark.parametrize("route", list(ROUTES))
def test_a_planted_payload_never_runs(tmp_path, runs, sample_era5_zarr, sample_appl_zarr,
                                      route, where):
    if route == "init":  # fine-tuning a forecaster from the weather MAE needs era5 MAE
        r = runner.invoke(app, ["pretrain", "--data", str(sample_era5_zarr), "--out",
                                str(tmp_path / "src"), *FAST])
        assert r.exit_code == 0, r.output
        run = tmp_path / "src"
    else:
        run = _copy(runs[KIND[route]], tmp_path / "run")
    marker = tmp_path / "PWNED"
    planted = (_plant_in_metadata if where == "metadata" else _plant_in_bytes_value)(run,
                                                                                     marker)
    data = {"era5": sample_era5_zarr, "appl": sample_appl_zarr}
    r = runner.invoke(app, ROUTES[route](run, data))
    assert not marker.exists(), f"{route}: the payload ran"
    assert r.exit_code == 1, r.output
    line = one_error_line(r.output)
    assert "refused to load" in line and "posix.system" in line
    assert str(planted) in line


def test_truncated_or_empty_checkpoints_are_named_and_skipped(tmp_path, runs,
                                                              sample_era5_zarr):
    run = _copy(runs["forecast"], tmp_path / "run")
    newest = run / "checkpoints" / "step_00000008"
    shard = next(newest.glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert "truncated" in checkpoint_problem(newest)
    r = runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data",
                            str(sample_era5_zarr), "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert "step_00000008 is damaged" in r.output and "truncated" in r.output
    assert json.loads((run / "config.json").read_text())["steps"] == 8
    (newest / ".metadata").write_bytes(b"")
    assert "unreadable checkpoint metadata" in checkpoint_problem(newest)
    r = runner.invoke(app, ["train", "forecast", "--resume", str(run), "--steps", "12"])
    assert r.exit_code == 0, r.output
    assert "falling back" in r.output and "resuming from" in r.output
    steps = [r["step"] for r in read_metrics(run)]
    assert steps == [2, 4, 6, 8, 10, 12]  # resumed at 4: steps 6 and 8 were redone


def test_no_intact_checkpoint_is_one_line(tmp_path, runs, sample_era5_zarr):
    run = _copy(runs["forecast"], tmp_path / "run")
    for ckpt in (run / "checkpoints").glob("step_*"):
        (ckpt / ".metadata").write_bytes(b"\x80\x04junk")
    r = runner.invoke(app, ["eval", "forecast", "--run", str(run), "--data",
                            str(sample_era5_zarr), "--out", str(tmp_path / "ev")])
    assert r.exit_code == 1
    assert "no intact checkpoint" in r.output
    assert not (tmp_path / "ev").exists()


def test_a_metadata_length_field_of_two_to_the_sixty_is_damage_not_a_crash(tmp_path, runs):
    """BINBYTES8 with a length of 2⁶⁰: read from a file, the unpickler would ask for that
    much memory; dchag names the checkpoint damaged and falls back to an earlier one."""
    run = _copy(runs["forecast"], tmp_path / "run")
    newest = run / "checkpoints" / "step_00000008"
    (newest / ".metadata").write_bytes(b"\x80\x04\x8e" + (2**60).to_bytes(8, "little") + b"x")
    assert "unreadable checkpoint metadata" in checkpoint_problem(newest)
    r = runner.invoke(app, ["train", "forecast", "--resume", str(run), "--steps", "10"])
    assert r.exit_code == 0, r.output
    assert "step_00000008 is damaged" in r.output and "Traceback" not in r.output
