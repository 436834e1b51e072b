"""The single-process D-CHAG model: the reference every distributed run must reproduce."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from pipelines.errors import DchagError
from pipelines.model.aggregate import ChannelAggregator, split_even
from pipelines.model.config import ModelConfig, preset_config
from pipelines.model.encoder import DCHAGEncoder
from pipelines.model.forecast import Forecaster, lat_weighted_mse, latitude_weights
from pipelines.model.mae import MAE, random_masking
from pipelines.model.tokenizer import ChannelTokenizer, patchify, unpatchify

VARIANTS = [("baseline", 0), ("L", 0), ("L", 1), ("L", 2), ("C", 0), ("C", 1), ("C", 2)]


def tiny(channels: int = 14, **kw) -> ModelConfig:
    return preset_config("tiny", channels, **{"img_size": (16, 32), "patch": 4, **kw})


@pytest.mark.parametrize(("variant", "tree"), VARIANTS)
def test_mae_and_forecaster_shapes_for_every_variant_and_tree(variant, tree):
    torch.manual_seed(0)
    cfg = tiny(variant=variant, tree=tree)
    x = torch.randn(2, 14, 16, 32)
    loss, pred, mask = MAE(cfg)(x, mask_ratio=0.75)
    assert pred.shape == (2, 32, 14, 16) and mask.shape == (2, 32)
    loss.backward()
    y = Forecaster(cfg)(x, torch.tensor([6.0, 24.0]))
    assert y.shape == (2, 14, 16, 32)


def test_patchify_round_trip_and_layout():
    x = torch.randn(2, 3, 8, 12)
    p = patchify(x, 4)
    assert p.shape == (2, 6, 3, 16)
    torch.testing.assert_close(p[0, 1, 2].view(4, 4), x[0, 2, 0:4, 4:8])
    assert torch.equal(unpatchify(p, 4, (2, 3)), x)


def test_random_masking_keeps_the_ratio_and_restores_order():
    ids_keep, mask, ids_restore = random_masking(3, 40, 0.75, torch.device("cpu"))
    assert ids_keep.shape == (3, 10)
    assert torch.equal(mask.sum(dim=1), torch.full((3,), 30.0))
    for b in range(3):  # visible patches are exactly the unmasked ones
        assert set(ids_keep[b].tolist()) == set(torch.nonzero(mask[b] == 0).flatten().tolist())
    shuffled = torch.argsort(ids_restore, dim=1)
    assert torch.equal(torch.gather(shuffled, 1, ids_restore), torch.arange(40).expand(3, -1))


def test_channel_subset_tokenization_equals_the_full_tokens_of_those_channels():
    torch.manual_seed(0)
    tok = ChannelTokenizer(channels=10, patch=4, dim=8)
    x = torch.randn(2, 10, 8, 8)
    full = tok(x, torch.arange(10))
    ids = torch.tensor([7, 2, 5])
    torch.testing.assert_close(tok(x[:, ids], ids), full[:, :, ids])


@pytest.mark.parametrize(("variant", "tree"), [("L", 0), ("L", 2), ("C", 1), ("baseline", 0)])
def test_aggregation_follows_channel_identity_not_input_order(variant, tree):
    """Tokenize + aggregate is invariant to the order channels arrive in (ids travel with
    them) but not to which channel a field is labelled as."""
    torch.manual_seed(0)
    encoder = DCHAGEncoder(tiny(channels=12, variant=variant, tree=tree, embed_dim=16))
    x = torch.randn(2, 12, 16, 32)
    ids = torch.arange(12)
    ref = encoder.embed(x, ids)
    perm = torch.randperm(12)
    torch.testing.assert_close(encoder.embed(x[:, perm], ids[perm]), ref)
    swapped = ids.clone()
    swapped[[0, 11]] = swapped[[11, 0]]
    assert not torch.allclose(encoder.embed(x, swapped), ref)


def test_a_partial_depends_only_on_its_own_channel_group():
    torch.manual_seed(0)
    cfg = tiny(channels=10, variant="C", tree=1, groups=4, embed_dim=16)
    agg = ChannelAggregator(cfg)
    assert agg.bounds == split_even(10, 4) == [0, 3, 6, 8, 10]
    tokens = torch.randn(1, 3, 10, 16)

    def partials() -> list[torch.Tensor]:
        return [agg.partial(g, tokens[:, :, lo:hi], torch.arange(hi - lo))
                for g, (lo, hi) in enumerate(pairwise(agg.bounds))]

    before = partials()
    tokens[:, :, 4] += 1.0  # a channel of group 1
    after = partials()
    changed = [(a - b).abs().max().item() > 0 for a, b in zip(after, before, strict=True)]
    assert changed == [False, True, False, False]


def test_a_channel_subset_that_empties_a_group_masks_that_partial():
    torch.manual_seed(0)
    encoder = DCHAGEncoder(tiny(channels=8, variant="L", groups=4, embed_dim=16))
    ids = torch.tensor([0, 1, 4, 5, 6, 7])  # group 1 (channels 2, 3) is absent
    assert encoder.aggregator.group_presence(ids).tolist() == [True, False, True, True]
    x = torch.randn(1, 6, 16, 32)
    out = encoder.embed(x, ids)
    assert torch.isfinite(out).all()
    # The empty group's partial is masked out: changing its (unused) bias changes nothing.
    with torch.no_grad():
        encoder.aggregator.groups["1"].levels[0].bias.add_(5.0)
    torch.testing.assert_close(encoder.embed(x, ids), out)


def test_tiny_mae_overfits_one_sample():
    torch.manual_seed(0)
    model = MAE(tiny(channels=6, img_size=(16, 16)))
    x = torch.randn(1, 6, 16, 16)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    first = None
    for _ in range(300):
        loss, _, _ = model(x, mask_ratio=0.75, generator=gen)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10


@pytest.mark.slow
def test_tiny_forecaster_learns_a_pure_longitude_shift():
    torch.manual_seed(0)
    model = Forecaster(tiny(channels=3))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    lat = torch.linspace(-80, 80, 16)
    lon = torch.arange(32.0) * 2 * torch.pi / 32

    def batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        k = torch.randint(1, 4, (n, 3, 1, 1)).float()
        phase = torch.rand(n, 3, 1, 1) * 2 * torch.pi
        x = torch.sin(k * lon + phase) * torch.cos(torch.linspace(-1, 1, 16)[:, None] * k)
        return x, torch.roll(x, 2, dims=-1)  # "one day later": two cells east

    for _ in range(400):
        x, y = batch()
        loss = lat_weighted_mse(model(x, torch.full((8,), 24.0)), y, lat)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = batch(32)
    with torch.no_grad():
        model_err = lat_weighted_mse(model(x, torch.full((32,), 24.0)), y, lat)
    persistence_err = lat_weighted_mse(x, y, lat)
    assert model_err < persistence_err / 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradients_are_finite_in_fp32_and_bf16(dtype):
    torch.manual_seed(0)
    model = MAE(tiny(variant="C", tree=1))
    x = torch.randn(2, 14, 16, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        loss, _, _ = model(x)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_latitude_weights_average_to_one_and_favour_the_equator():
    w = latitude_weights(torch.linspace(-87.1875, 87.1875, 32))
    assert w.mean().item() == pytest.approx(1.0) and w[16] > w[0]


def test_config_is_validated_with_a_reason():
    with pytest.raises(DchagError, match="not divisible by patch"):
        tiny(img_size=(15, 32))
    with pytest.raises(DchagError, match="channel groups but only"):
        tiny(channels=3, groups=4)
    with pytest.raises(DchagError, match="--tree must be"):
        tiny(tree=3)
    with pytest.raises(DchagError, match="unknown model preset"):
        preset_config("huge", 3)


def test_mae_with_bands_absent_reconstructs_and_scores_them_whole():
    """`full`: the absent channels count at every patch, the present ones at the masked
    patches only; without it (the input's channels only) absent ones get no gradient."""
    torch.manual_seed(0)
    cfg = preset_config("tiny", 6, variant="L", groups=3, img_size=(16, 16), patch=4)
    model = MAE(cfg)
    full = torch.randn(2, 6, 16, 16)
    keep = torch.tensor([0, 2, 3, 5])
    noise = torch.rand(2, cfg.num_patches)
    loss, pred, mask = model(full[:, keep], channel_ids=keep, mask_ratio=0.5, noise=noise,
                             full=full)
    assert pred.shape == (2, cfg.num_patches, 6, 16)
    err = ((pred - patchify(full, 4)) ** 2).mean(-1)  # (B, L, C)
    weight = mask[:, :, None].expand(-1, -1, 6).clone()
    weight[:, :, [1, 4]] = 1.0
    assert loss.item() == pytest.approx(((err * weight).sum() / weight.sum()).item(), rel=1e-6)
    loss.backward()
    rows = model.decoder_pred.weight.grad.view(6, 16, -1)
    assert rows[1].abs().sum() > 0 and rows[4].abs().sum() > 0
    model.zero_grad()
    subset_loss, subset_pred, _ = model(full[:, keep], channel_ids=keep, mask_ratio=0.5,
                                        noise=noise)
    assert subset_pred.shape[2] == 4
    subset_loss.backward()
    rows = model.decoder_pred.weight.grad.view(6, 16, -1)
    assert rows[1].abs().sum() == 0 and rows[0].abs().sum() > 0
