"""FLOPs per rank: the whole model is counted once, whatever the tensor-parallel degree a
layout search or a benchmark asks about."""

from __future__ import annotations

import pytest

from pipelines.model.config import preset_config
from pipelines.train import flops


def test_each_model_is_counted_once_and_every_tp_gets_its_share():
    mcfg = preset_config("tiny", 16, variant="L", groups=8, img_size=(16, 16), patch=4)
    flops._whole_model_flops.cache_clear()
    one = flops.rank_flops(mcfg, "mae", 2, 0.75, tp=1)
    two = flops.rank_flops(mcfg, "mae", 2, 0.75, tp=2)
    info = flops._whole_model_flops.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    # the cached count is the count: recounting from scratch gives the same numbers
    counts, _ = flops._module_flops(mcfg, "mae", 2, 0.75)
    assert one["model_total"] == two["model_total"] == counts["Global"]
    # tp 2 halves the ViT's attention and MLP and the rank's own channel groups
    assert two["vit"] < one["vit"] and two["tokenizer"] == pytest.approx(one["tokenizer"] / 2)
    assert two["heads"] == one["heads"]
    # and asking again for tp 1 after tp 2 gives tp 1's numbers, not a changed copy
    assert flops.rank_flops(mcfg, "mae", 2, 0.75, tp=1) == one
