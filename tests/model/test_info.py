"""Parameter counts match real models; estimates move the way the paper says they should."""

from __future__ import annotations

from typer.testing import CliRunner

from dchag_cli.app import app
from pipelines.model.config import preset_config
from pipelines.model.info import count, estimate_memory, parameter_counts
from pipelines.model.mae import MAE


def test_meta_device_counts_equal_a_real_model():
    cfg = preset_config("tiny", 14, variant="C", tree=1, img_size=(16, 32))
    counts = parameter_counts(cfg, "mae")
    assert counts["total"] == count(MAE(cfg))
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]


def test_7b_preset_has_about_6_5_billion_parameters():
    total = parameter_counts(preset_config("7b", 500, img_size=(128, 256)), "mae")["total"]
    assert 6.3e9 < total < 6.8e9


def test_dchag_needs_less_memory_per_rank_than_the_baseline_and_less_with_more_ranks():
    def gb(variant: str, tp: int) -> float:
        cfg = preset_config("1b", 512, variant=variant, img_size=(128, 256))
        return estimate_memory(cfg, batch=2, tp=tp, task="forecast").total_gb

    assert gb("L", 8) < gb("baseline", 8) / 2
    assert gb("L", 8) < gb("L", 2)


def test_model_info_cli_prints_counts():
    r = CliRunner().invoke(app, ["model", "info", "--preset", "tiny", "--channels", "20",
                                 "--img", "32x64"])
    assert r.exit_code == 0, r.output
    assert "tokenizer" in r.output and "total" in r.output
    r = CliRunner().invoke(app, ["model", "info", "--img", "32by64"])
    assert r.exit_code == 1 and "HEIGHTxWIDTH" in r.output
