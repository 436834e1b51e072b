"""The MAE's spectral prior: bands absent from the input start from the low-rank fit of
the present ones, with the basis of the run's training cubes kept in model.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipelines.model.config import preset_config
from pipelines.model.low_rank import fit_absent, principal_spectra
from pipelines.model.mae import MAE, random_masking
from pipelines.model.tokenizer import mask_pixels, patchify
from pipelines.run.load import load_run
from tests.runner import app, runner


def _low_rank_cube(rng: np.random.Generator, channels: int = 12, rank: int = 3,
                   size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A (1, C, H, W) cube whose spectra are mixtures of `rank` endmembers, and its basis
    learned from other mixtures of the same endmembers."""
    ends = rng.normal(size=(rank, channels))
    cube = (rng.uniform(0, 1, (size * size, rank)) @ ends).T.reshape(1, channels, size, size)
    library = rng.uniform(0, 1, (400, rank)) @ ends
    return cube.astype(np.float32), library


def test_fit_absent_rebuilds_the_absent_channels_of_a_low_rank_cube():
    rng = np.random.default_rng(0)
    cube, library = _low_rank_cube(rng)
    mean, comps = principal_spectra(library)
    assert len(comps) == 3
    present = torch.tensor([0, 3, 4, 8, 11])
    x = torch.from_numpy(cube)
    got = fit_absent(x[:, present], present, torch.from_numpy(mean), torch.from_numpy(comps))
    torch.testing.assert_close(got, x, atol=1e-4, rtol=0)
    # fewer present channels than components: fits only as many as are present, finite
    one = fit_absent(x[:, :1], torch.tensor([0]), torch.from_numpy(mean),
                     torch.from_numpy(comps))
    assert torch.isfinite(one).all() and not torch.allclose(one, x, atol=1e-2)


def test_the_mae_starts_absent_channels_from_the_prior():
    rng = np.random.default_rng(1)
    cube, library = _low_rank_cube(rng)
    model = MAE(preset_config("tiny", 12, img_size=(16, 16), fill="biharmonic")).eval()
    present = torch.tensor([1, 2, 5, 7, 9, 10])
    x = torch.from_numpy(cube)[:, present]
    _, mask, _ = random_masking(1, model.cfg.num_patches, 0.5, torch.device("cpu"),
                                generator=torch.Generator().manual_seed(0))
    without = model.first_guess(x, mask, present)
    absent = torch.ones(12, dtype=torch.bool)
    absent[present] = False
    assert (without[:, :, absent] == 0).all()  # no prior: the normalised mean

    mean, comps = principal_spectra(library)
    model.set_spectral_prior(torch.from_numpy(mean).float(), torch.from_numpy(comps).float())
    guess = model.first_guess(x, mask, present)
    visible = ~mask_pixels(mask, model.cfg.patch, model.cfg.grid)[0, 0]
    want = patchify(torch.from_numpy(cube), model.cfg.patch)
    seen = patchify(visible[None, None].expand(1, 12, -1, -1).float(), model.cfg.patch) > 0
    # at visible pixels the present channels are exact, so the absent ones are too
    torch.testing.assert_close(guess[seen & absent[None, None, :, None]],
                               want[seen & absent[None, None, :, None]], atol=1e-4, rtol=0)
    torch.testing.assert_close(guess[:, :, present], without[:, :, present])
    with pytest.raises(ValueError, match="over 5 channels"):
        model.set_spectral_prior(torch.zeros(5), torch.zeros(2, 5))


def test_a_run_records_its_training_basis_and_inference_uses_it(tmp_path, sample_appl_zarr):
    def pretrain(out, *extra):
        r = runner.invoke(app, ["pretrain", "--data", str(sample_appl_zarr), "--out",
                                str(tmp_path / out), "--steps", "2", "--workers", "0",
                                "--batch-size", "2", "--ckpt-every", "2", "--val-every", "2",
                                *extra])
        assert r.exit_code == 0, r.output
        return json.loads((tmp_path / out / "model.json").read_text())

    info = pretrain("run")
    basis = info["spectral_basis"]
    comps = np.array(basis["components"])
    assert comps.shape[1] == len(info["channel_names"]) == len(basis["mean"])
    assert 1 <= comps.shape[0] <= 16
    std = np.array(info["std"])
    assert basis["weight"] == pytest.approx(info["std"])
    # the principal spectra of reflectance, in normalised units: orthonormal once scaled back
    np.testing.assert_allclose((comps * std) @ (comps * std).T, np.eye(len(comps)), atol=1e-8)
    trained = load_run(tmp_path / "run", "mae", torch.device("cpu"))
    np.testing.assert_allclose(trained.model.spectral_components.numpy(), comps, atol=1e-6)
    assert pretrain("none", "--fill", "none")["spectral_basis"] is None


def test_untrained_corrections_of_absent_channels_are_not_added_where_patches_are_visible():
    """Without `--channel-dropout` the decoder never learned absent channels at visible
    patches: there the prediction is the first guess alone; with it, decoder + guess."""
    rng = np.random.default_rng(2)
    cube, library = _low_rank_cube(rng)
    model = MAE(preset_config("tiny", 12, img_size=(16, 16), fill="biharmonic")).eval()
    mean, comps = principal_spectra(library)
    model.set_spectral_prior(torch.from_numpy(mean).float(), torch.from_numpy(comps).float())
    present = torch.tensor([0, 2, 4, 6, 8, 10])
    x = torch.from_numpy(cube)[:, present]
    ids_keep, mask, ids_restore = random_masking(1, model.cfg.num_patches, 0.5,
                                                 torch.device("cpu"),
                                                 generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        guess = model.first_guess(x, mask, present)
        pred = model.predict(x, present, ids_keep, mask, ids_restore)
        model.absent_corrected = True
        corrected = model.predict(x, present, ids_keep, mask, ids_restore)
    absent = torch.ones(12, dtype=torch.bool)
    absent[present] = False
    visible = mask[0] == 0
    torch.testing.assert_close(pred[0][visible][:, absent], guess[0][visible][:, absent])
    assert not torch.allclose(corrected[0][visible][:, absent], guess[0][visible][:, absent])
    # hidden patches and present channels: decoder + guess either way
    torch.testing.assert_close(pred[0][~visible], corrected[0][~visible])
    torch.testing.assert_close(pred[0][:, present], corrected[0][:, present])


def test_the_weighted_fit_in_normalised_units_is_the_low_rank_baseline_in_reflectance():
    """The model fits normalised inputs; weighted by the normalisation's std its fit is
    the same least squares as the `low_rank` absent-band baseline in reflectance, noise
    included."""
    from pipelines.eval.absent_bands import low_rank_bands

    rng = np.random.default_rng(4)
    cube, library = _low_rank_cube(rng)
    cube = cube + 0.05 * rng.normal(size=cube.shape).astype(np.float32)
    library = library + 0.05 * rng.normal(size=library.shape)
    m, s = rng.normal(size=12), rng.uniform(0.5, 2.0, 12)
    mean, comps = principal_spectra(library)
    comps = comps[:3]  # the noise's components too would leave fewer bands than unknowns
    absent = np.zeros(12, bool)
    absent[[1, 5, 6, 9]] = True
    want = low_rank_bands(cube[0].astype(np.float64), absent, (mean, comps))
    present = torch.from_numpy(np.flatnonzero(~absent))
    xn = torch.from_numpy(((cube[0] - m[:, None, None]) / s[:, None, None])[None]).float()
    got = fit_absent(xn[:, present], present, torch.from_numpy((mean - m) / s).float(),
                     torch.from_numpy(comps / s).float(), torch.from_numpy(s).float())
    got = got[0].numpy() * s[:, None, None] + m[:, None, None]
    np.testing.assert_allclose(got[absent], want[absent], atol=2e-4)
