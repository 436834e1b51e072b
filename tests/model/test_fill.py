"""The MAE's first guess: biharmonic inpainting inside the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.restoration import inpaint_biharmonic

from pipelines.errors import DchagError
from pipelines.model.config import ModelConfig, preset_config
from pipelines.model.fill import biharmonic_fill
from pipelines.model.mae import MAE
from pipelines.model.tokenizer import patchify, unpatchify


def _cube_and_holes(seed: int = 0, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    cube = np.stack([np.sin(3 * yy + k) * np.cos(2 * xx - k) + 0.05 * rng.random((size, size))
                     for k in range(5)]).astype(np.float32)
    hidden = np.kron(rng.random((size // 4, size // 4)) < 0.5, np.ones((4, 4))).astype(bool)
    return cube, hidden


@pytest.mark.parametrize("dense", [True, False], ids=["exact solve", "conjugate gradients"])
def test_the_fill_is_scikit_images_biharmonic_inpainting(dense):
    cube, hidden = _cube_and_holes()
    want = np.moveaxis(inpaint_biharmonic(np.moveaxis(cube, 0, -1), hidden, channel_axis=-1),
                       -1, 0)
    got = biharmonic_fill(torch.from_numpy(cube)[None], torch.from_numpy(~hidden)[None, None],
                          dense=dense)[0].numpy()
    np.testing.assert_array_equal(got[:, ~hidden], cube[:, ~hidden])
    np.testing.assert_allclose(got, want, atol=1e-4 if dense else 2e-3)
    assert np.abs(got[:, hidden] - cube[:, hidden]).mean() > 1e-3  # it did have to guess


def test_a_plane_is_filled_exactly_and_the_result_stays_in_the_visible_range():
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    plane = (0.2 + 0.01 * yy - 0.02 * xx)[None, None]
    visible = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    visible[..., 4:12, 4:12] = False
    torch.testing.assert_close(biharmonic_fill(plane, visible), plane, atol=1e-5, rtol=0)
    spike = torch.zeros(1, 1, 16, 16)
    spike[..., 3, 3] = 1.0  # the smoothest surface would overshoot below 0 around it
    filled = biharmonic_fill(spike, visible)
    assert filled.min() >= 0.0 and filled.max() <= 1.0


def test_the_decoder_corrects_the_fill_and_starts_from_it():
    cfg = preset_config("tiny", 5, img_size=(16, 16), fill="biharmonic")
    model = MAE(cfg).eval()
    torch.nn.init.zeros_(model.decoder_pred.weight)
    torch.nn.init.zeros_(model.decoder_pred.bias)
    cube, _ = _cube_and_holes()
    x = torch.from_numpy(cube)[None]
    with torch.no_grad():
        _, pred, mask = model(x, mask_ratio=0.5, generator=torch.Generator().manual_seed(0))
    hidden = unpatchify(mask[:, :, None, None].expand(-1, -1, 1, 16), 4, cfg.grid)
    torch.testing.assert_close(pred, patchify(biharmonic_fill(x, hidden < 0.5), 4))
    none = MAE(cfg.with_(fill="none")).eval()
    none.load_state_dict(model.state_dict())  # the fill has no parameters
    with torch.no_grad():
        _, pred, _ = none(x, mask_ratio=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.count_nonzero(pred) == 0


def test_a_saved_model_without_the_setting_keeps_predicting_from_nothing():
    saved = preset_config("tiny", 5, img_size=(16, 16)).to_dict()
    saved.pop("fill")
    assert ModelConfig.from_dict(saved).fill == "none"
    from pipelines.run.config import TrainConfig
    assert TrainConfig().fill == "biharmonic"
    assert TrainConfig.from_saved({"task": "mae"}, "config.json").fill == "none"
    with pytest.raises(DchagError, match="--fill none"):
        TrainConfig(norm_pix_loss=True)
    with pytest.raises(DchagError, match="--fill 'nearest'"):
        preset_config("tiny", 5, fill="nearest")
