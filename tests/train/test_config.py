"""Resolving a run's settings: leads, config files, flag precedence, the mesh arithmetic."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from pipelines.data.times import format_lead, parse_lead, parse_leads
from pipelines.errors import DchagError
from pipelines.run.config import (
    TrainConfig,
    coerce_settings,
    read_config_file,
)
from pipelines.train.data import stream_positions
from pipelines.train.optim import lr_at


@pytest.mark.parametrize(("text", "hours"), [("6h", 6), ("1d", 24), ("3d", 72), ("2w", 336),
                                             ("12", 12), ("0.5d", 12)])
def test_leads_parse_in_hours(text, hours):
    assert parse_lead(text) == hours


@pytest.mark.parametrize("text", ["", "abc", "-1d", "0h", "1.5h", "3y"])
def test_bad_leads_are_refused(text):
    with pytest.raises(DchagError):
        parse_lead(text)


def test_leads_from_repeated_and_comma_flags_are_sorted_once():
    assert parse_leads(["7d,1d", "6h", "1d"]) == [6, 24, 168]
    assert [format_lead(h) for h in (6, 24, 168, 30)] == ["6h", "1d", "7d", "30h"]


def test_config_files_in_toml_and_yaml(tmp_path: Path):
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "small"\nbatch-size = 16\nleads = ["6h", "1d"]\n')
    assert coerce_settings(read_config_file(toml), "c.toml") == {
        "preset": "small", "batch_size": 16, "leads": [6, 24]}
    yml = tmp_path / "c.yaml"
    yml.write_text("variant: C\ntree: 2\n")
    assert read_config_file(yml) == {"variant": "C", "tree": 2}
    bad = tmp_path / "c.toml"
    bad.write_text("preset = \n")
    with pytest.raises(DchagError, match="cannot parse"):
        read_config_file(bad)
    with pytest.raises(DchagError, match="unknown setting"):
        TrainConfig.from_dict({"presett": "tiny"}, source="c.toml")


def test_files_and_flags_share_one_syntax(tmp_path: Path):
    """Lists as lists or comma strings, the flag's own names (`lead`), type errors named."""
    as_string = coerce_settings({"channels": "z_500,t2m", "lead": "6h,1d"}, "f.toml")
    as_list = coerce_settings({"channels": ["z_500", "t2m"], "leads": ["1d", "6h"]}, "f.toml")
    assert as_string == as_list == {"channels": ["z_500", "t2m"], "leads": [6, 24]}
    assert coerce_settings({"crop": "192x384"}, "f")["crop"] == [192, 384]
    for bad, match in (({"steps": "abc"}, "steps = 'abc' is not a whole number"),
                       ({"lr": True}, "lr = True is not a number"),
                       ({"ac": "yes"}, "ac = 'yes' is not true or false"),
                       ({"channels": [1, 2]}, "not a list of names")):
        with pytest.raises(DchagError, match=match):
            coerce_settings(bad, "f.toml")


def test_mesh_arithmetic_is_checked():
    cfg = TrainConfig(gpus=8, tp=4, batch_size=8)
    assert (cfg.dp_size, cfg.tp_size) == (2, 4)
    assert TrainConfig(gpus=4).tp_size == 4
    with pytest.raises(DchagError, match="not divisible by --tp 3"):
        TrainConfig(gpus=8, tp=3)
    with pytest.raises(DchagError, match="data-parallel"):
        TrainConfig(gpus=4, tp=1, batch_size=6)


def test_batches_cover_every_sample_once_per_pass_and_repeat_exactly():
    n, batch = 10, 4
    first_pass = [i for step in range(5) for i in stream_positions(n, batch, step, seed=3)]
    assert sorted(first_pass[:10]) == list(range(10))
    assert sorted(first_pass[10:20]) == list(range(10))
    assert stream_positions(n, batch, 3, seed=3) == first_pass[12:16]
    assert stream_positions(n, batch, 3, seed=4) != first_pass[12:16]


def test_learning_rate_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, 1e-3, 1e-5, warmup=10, total=100) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in pairwise(lrs[10:]))
    assert lr_at(100, 1e-3, 1e-5, 10, 100) == pytest.approx(1e-5)
