"""One training run straight through and one stopped then resumed: the same loss curve."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.run.records import read_metrics
from tests.runner import app, runner


def metrics(run: Path) -> list[dict]:
    return read_metrics(run)


def whole_and_resumed(args: list[str], folder: Path, stop_at: int) -> tuple[Path, Path]:
    """`args` trained to the end in `folder/whole`, and in `folder/split` stopped at
    `stop_at` then resumed (every command asserted to succeed)."""
    whole, split = folder / "whole", folder / "split"
    r = runner.invoke(app, [*args, "--out", str(whole)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*args, "--out", str(split), "--stop-at", str(stop_at)])
    assert r.exit_code == 0, r.output
    assert (split / "checkpoints" / "latest").read_text() == f"step_{stop_at:08d}"
    command = args[:1] if args[0] == "pretrain" else args[:2]
    r = runner.invoke(app, [*command, "--resume", str(split)])
    assert r.exit_code == 0, r.output
    return whole, split


def assert_same_curve(a_run: Path, b_run: Path, steps: list[int]) -> None:
    a, b = metrics(a_run), metrics(b_run)
    assert [m["step"] for m in a] == [m["step"] for m in b] == steps
    for x, y in zip(a, b, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-6)
        assert (x.get("val_loss") is None) == (y.get("val_loss") is None)
        if x.get("val_loss") is not None:
            assert x["val_loss"] == pytest.approx(y["val_loss"], rel=1e-6)
