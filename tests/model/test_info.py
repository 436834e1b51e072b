"""Parameter counts match real models; `dchag model info` prints them and the plan."""

from __future__ import annotations

from typer.testing import CliRunner

from dchag_cli.app import app
from pipelines.model.config import preset_config
from pipelines.model.info import count, parameter_counts
from pipelines.model.mae import MAE


def test_meta_device_counts_equal_a_real_model():
    cfg = preset_config("tiny", 14, variant="C", tree=1, img_size=(16, 32))
    counts = parameter_counts(cfg, "mae")
    assert counts["total"] == count(MAE(cfg))
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]


def test_7b_preset_has_about_6_5_billion_parameters():
    total = parameter_counts(preset_config("7b", 500, img_size=(128, 256)), "mae")["total"]
    assert 6.3e9 < total < 6.8e9


def test_model_info_cli_prints_counts_and_the_planned_memory():
    r = CliRunner().invoke(app, ["model", "info", "--preset", "tiny", "--channels", "20",
                                 "--img", "32x64", "--tp", "2"])
    assert r.exit_code == 0, r.output
    assert "tokenizer" in r.output and "total" in r.output
    assert "memory per rank, planned" in r.output and "optimizer state" in r.output
    # the planning (minutes for 7b) reports each phase as it ends, also into a log file
    phases = [ln for ln in r.output.splitlines() if ln.startswith("laying out the model")]
    assert [ln.split(": ")[1].split()[0] for ln in phases] == ["1/3", "2/3", "3/3"]
    r = CliRunner().invoke(app, ["model", "info", "--img", "32by64"])
    assert r.exit_code == 1 and "HEIGHTxWIDTH" in r.output
    r = CliRunner().invoke(app, ["model", "info", "--preset", "tiny", "--tp", "8"])
    assert r.exit_code == 1 and "4 heads cannot be split over --tp 8" in r.output
