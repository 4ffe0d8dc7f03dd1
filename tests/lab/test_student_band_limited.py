"""The student's band-limited optics (issue 24): pruned transforms against two full-grid propagations."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.lab.bench.parse import parse_bench
from optgen.lab.model import OpticalGeometry
from tests.conftest import small_bench_text
from tests.lab.test_model import IDEAL_TWIN

torch = pytest.importorskip("torch")

from optgen.lab.model.bench_optics import BenchOptics  # noqa: E402
from optgen.lab.model.pruned_transforms import from_band, to_band, two_pass  # noqa: E402
from optgen.lab.model.student import OpticalStudent, _quantize_ste, propagate_torch  # noqa: E402

COLOURS = (638.0, 520.0, 450.0)


@pytest.fixture(scope="module")
def geom() -> OpticalGeometry:
    return OpticalGeometry.from_bench(parse_bench(small_bench_text(IDEAL_TWIN), "ideal"))


def _measured(geom: OpticalGeometry, d1_m: float = 0.0406, d2_m: float = 0.0296,
              corrected: str | None = None, slm1_corrected: bool = False) -> BenchOptics:
    """Every measured effect at once: distances, a tilted beam, wavefronts on both SLMs, unmodulated light;
    ``corrected``: runs add a correction to SLM2's phase that cancels its panel (``"exactly"``) or
    leaves some of it (``"in part"``); ``slm1_corrected``: runs add one to SLM1's phase too."""
    n = geom.grid_px
    y, x = (np.mgrid[0:n, 0:n] - (n - 1) / 2) / n
    amplitude = np.exp(-((x - 0.02) ** 2 + (y + 0.01) ** 2) / 0.02).astype(np.float32)
    beam = (amplitude * np.exp(1j * (9.0 * x - 4.0 * y))).astype(np.complex64)
    panel2 = (20.0 * (x**2 - y**2)).astype(np.float32)
    correction = {None: None, "exactly": -panel2, "in part": (-0.8 * panel2 + 3.0 * x * y).astype(np.float32)}[corrected]
    return BenchOptics(d1_m=d1_m, d2_m=d2_m, beam=beam, slm1_residual_rad=(0.8 * x * y).astype(np.float32),
                       slm1_panel_rad=(1.5 * x**2).astype(np.float32), slm2_panel_rad=panel2, unmodulated=(0.03, 0.05),
                       slm2_correction_rad=correction,
                       slm1_correction_rad=(-25.0 * (x**2 + 0.5 * y**2)).astype(np.float32) if slm1_corrected else None)


def _two_full_grid_propagations(student: OpticalStudent, seed: torch.Tensor, dec: torch.Tensor, colour: int,
                                shift: tuple[float, float], rotation_deg: float) -> torch.Tensor:
    """The window's irradiance with nothing left out: the whole grid, propagate_torch over d1 and d2."""
    g = student.geom
    n, w = g.grid_px, g.output_window_px
    big = seed.repeat_interleave(g.superpixel_px, -2).repeat_interleave(g.superpixel_px, -1)
    edge = (n - big.shape[-1]) // 2
    phase = torch.nn.functional.pad(big, (edge, n - big.shape[-1] - edge) * 2)
    field = propagate_torch(student.beam * torch.polar(torch.ones_like(phase), phase), student.h1[colour])
    mask = student.decoder_mask(student._shown_decoder(dec, realistic=False), shift, rotation_deg)
    panel = student.panel2 if student.panel2 is not None else torch.ones((), dtype=torch.complex64)
    unmodulated = student._slm2_panel()

    def window(arriving: torch.Tensor, slm2: torch.Tensor) -> torch.Tensor:
        out = propagate_torch(arriving * slm2, student.h2[colour])[..., (n - w) // 2:(n + w) // 2, (n - w) // 2:(n + w) // 2]
        return out.abs() ** 2

    u1, u2 = student.optics.unmodulated
    out = (1 - u2) * window(field, mask * panel) + u2 * window(field, unmodulated)
    if u1 > 0:
        incident = student.unmodulated1[colour]
        out = (1 - u1) * out + u1 * ((1 - u2) * window(incident, mask * panel) + u2 * window(incident, unmodulated))
    return out


def _inputs(geom: OpticalGeometry, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    n, d = geom.seed_superpixels, geom.decoder_px
    return (torch.from_numpy(rng.uniform(0, 2 * np.pi, (batch, n, n)).astype(np.float32)),
            torch.from_numpy(rng.uniform(0, 2 * np.pi, (d, d)).astype(np.float32)))


@pytest.mark.parametrize("n, at, first, second", [(16, (3, 5), (-4, 7), (-3, 6)), (16, (0, 0), (0, 16), (0, 16)),
                                                 (12, (9, 10), (2, 5), (10, 4))])
@pytest.mark.parametrize("inverse", [False, True])
def test_a_pruned_transform_is_the_full_one_restricted_and_its_backward_is_its_adjoint(n, at, first, second, inverse):
    from optgen.lab.model.pruned_transforms import TwoPass

    rng = np.random.default_rng(1)
    x = torch.from_numpy((rng.standard_normal((2, 5, 6)) + 1j * rng.standard_normal((2, 5, 6))).astype(np.complex128))
    grid = torch.zeros(2, n, n, dtype=torch.complex128)
    rows, cols = (at[1] + np.arange(5)) % n, (at[0] + np.arange(6)) % n
    grid[:, rows[:, None], cols[None, :]] = x
    full = (torch.fft.ifft2 if inverse else torch.fft.fft2)(grid)
    want = full[:, ((second[0] + np.arange(second[1])) % n)[:, None], ((first[0] + np.arange(first[1])) % n)[None, :]]
    got = two_pass(x, n, first, second, at, inverse)
    np.testing.assert_allclose(got.numpy(), want.transpose(-1, -2).numpy(), atol=1e-12)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: TwoPass.apply(v, None, n, first, second, at, inverse), (x,))


def test_to_band_and_from_band_undo_each_other_on_the_whole_grid():
    rng = np.random.default_rng(2)
    x = torch.from_numpy((rng.standard_normal((3, 8, 8)) + 1j * rng.standard_normal((3, 8, 8))).astype(np.complex64))
    band = to_band(x, 8, (0, 0), (-4, 8), (-4, 8))
    np.testing.assert_allclose(from_band(band, 8, (-4, 8), (-4, 8), (0, 0), (8, 8)).numpy(), x.numpy(), atol=1e-5)


@pytest.mark.parametrize("shift, rotation_deg", [((0, 0), 0.0), ((2, -1), 0.0), ((0.4, -1.7), 0.3)])
@pytest.mark.parametrize("colours", [None, COLOURS])
def test_the_band_limited_path_is_two_full_grid_propagations_to_float32_precision(geom, shift, rotation_deg, colours):
    student = OpticalStudent(geom, noise_dim=8, hidden=16, wavelengths_nm=colours)
    seed, dec = _inputs(geom, 3)
    for c in range(len(student.wavelengths_nm)):
        with torch.no_grad():
            ours = student.intensity(seed, dec, shift, realistic=False, colour=c, rotation_deg=rotation_deg)
            plain = _two_full_grid_propagations(student, seed, dec, c, shift, rotation_deg)
        assert float(plain.max()) > 0
        np.testing.assert_allclose(ours.numpy(), plain.numpy(), rtol=0, atol=1e-5 * float(plain.max()))


@pytest.mark.parametrize("d1_m, d2_m, corrected", [(0.0406, 0.0296, None), (0.025, 0.045, None),   # h1's band inside h2's, and around it
                                                    (0.0406, 0.0296, "exactly"), (0.025, 0.045, "in part")])
def test_measured_optics_take_the_same_path_panel_wavefront_and_unmodulated_light_included(geom, d1_m, d2_m, corrected):
    student = OpticalStudent(geom, noise_dim=8, hidden=16, wavelengths_nm=COLOURS,
                             optics=_measured(geom, d1_m, d2_m, corrected))
    assert (student._correction_block is None) is (corrected is None)
    seed, dec = _inputs(geom, 2, seed=3)
    for c in range(3):
        with torch.no_grad():
            ours = student.intensity(seed, dec, (1.3, -0.6), realistic=False, colour=c, rotation_deg=0.2)
            plain = _two_full_grid_propagations(student, seed, dec, c, (1.3, -0.6), 0.2)
        np.testing.assert_allclose(ours.numpy(), plain.numpy(), rtol=0, atol=1e-5 * float(plain.max()))


@pytest.mark.parametrize("optics", ["nominal", "measured", "measured, SLM2 corrected in runs",
                                    "measured, SLM1 corrected in runs"])
def test_the_band_limited_path_gives_the_full_grid_path_s_gradients(geom, optics):
    """A whole training step's loss and gradients, realistic SLMs included, against the previous full-grid code."""
    kwargs = {"optics": _measured(geom, corrected="in part" if "SLM2 corrected" in optics else None,
                                  slm1_corrected="SLM1 corrected" in optics)} if optics != "nominal" else {}
    torch.manual_seed(0)
    student = OpticalStudent(geom, noise_dim=8, hidden=16, wavelengths_nm=COLOURS, **kwargs)
    with torch.no_grad():
        student.decoder_logits.normal_()
    noise = torch.randn(4, 8)
    target = torch.rand(4, 3, geom.output_pixels, geom.output_pixels)
    results = []
    for full_grid in (True, False):
        student.zero_grad()
        predicted = student(noise, shift=(0.7, -1.4), rotation_deg=0.05, full_grid=full_grid)
        loss = torch.mean((predicted / predicted.mean() - target) ** 2)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in student.parameters() if p.grad is not None]))
    (full_loss, full_grads), (loss, grads) = results
    assert loss == pytest.approx(full_loss, rel=1e-5)
    assert len(grads) == len(full_grads) > 2
    for ours, want in zip(grads, full_grads):
        assert float(want.abs().max()) > 0
        np.testing.assert_allclose(ours.numpy(), want.numpy(), rtol=0, atol=2e-4 * float(want.abs().max()))


def test_the_shown_seed_is_the_quantized_superpixels_blurred(geom):
    """Two small matmuls show the seed as repeating, quantizing and blurring the whole block did."""
    from optgen.lab.model.student import _blur

    student = OpticalStudent(geom, noise_dim=8, hidden=16)
    seed, _ = _inputs(geom, 2, seed=4)
    big = seed.repeat_interleave(geom.superpixel_px, 1).repeat_interleave(geom.superpixel_px, 2)
    want = _blur(_quantize_ste(big, student.levels), student.kernel)
    lit = student._lit[1] - student._lit[0]
    edge = (lit - big.shape[-1]) // 2
    e = student._show_blurred
    shown = (e @ _quantize_ste(seed, student.levels) @ e.T)[:, edge:edge + big.shape[-1], edge:edge + big.shape[-1]]
    np.testing.assert_allclose(shown.numpy(), want.numpy(), atol=1e-5)


def test_train_on_cuda_says_so_at_once_where_torch_sees_no_gpu(tmp_path, capsys):
    from optgen.lab.cli import main
    from optgen.lab.model.train import training_device

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert training_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        training_device("cuda")
    assert main(["train", "--out", str(tmp_path / "t"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda: torch sees no CUDA device here" in err and "--device cpu" in err
    assert not (tmp_path / "t").exists()
    with pytest.raises(SystemExit):                                                   # argparse's choices
        main(["train", "--out", str(tmp_path / "t"), "--device", "tpu"])
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


def test_one_colour_per_sample_is_forward_s_image_of_that_colour_and_its_gradient(geom):
    """A step that trains each sample in one colour: the images, the loss and every gradient of forward's
    images restricted to those colours."""
    torch.manual_seed(1)
    student = OpticalStudent(geom, noise_dim=8, hidden=16, wavelengths_nm=COLOURS)
    with torch.no_grad():
        student.decoder_logits.normal_()
    noise = torch.randn(5, 8)
    colour_of = torch.tensor([2, 0, 1, 0, 2])
    target = torch.rand(5, geom.output_pixels, geom.output_pixels)
    results = []
    for one in (False, True):
        student.zero_grad()
        if one:
            predicted = student.forward_one_colour(noise, colour_of, shift=(0.7, -1.4), rotation_deg=0.05)
        else:
            predicted = student(noise, shift=(0.7, -1.4), rotation_deg=0.05)[torch.arange(5), colour_of]
        loss = torch.mean((predicted / predicted.mean() - target) ** 2)
        loss.backward()
        results.append((predicted.detach(), loss.item(), [p.grad.clone() for p in student.parameters()
                                                           if p.grad is not None]))
    (want, full_loss, full_grads), (images, loss, grads) = results
    np.testing.assert_allclose(images.numpy(), want.numpy(), rtol=1e-5, atol=1e-6 * float(want.max()))
    assert loss == pytest.approx(full_loss, rel=1e-5)
    assert len(grads) == len(full_grads) > 2
    for ours, theirs in zip(grads, full_grads):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=0, atol=2e-4 * float(theirs.abs().max()))
    assert all(float(student.decoder_logits.grad[c].abs().max()) > 0 for c in range(3))   # each had a sample


@pytest.mark.parametrize("colour_of", [[0, 1], [0, 1, 3], [-1, 0, 1]])
def test_one_colour_per_sample_refuses_a_colour_the_model_has_not(geom, colour_of):
    student = OpticalStudent(geom, noise_dim=8, hidden=16, wavelengths_nm=COLOURS)
    with pytest.raises(ValueError, match=r"colour_of .*expected one colour in 0\.\.2 for each of the 3 samples"):
        student.forward_one_colour(torch.randn(3, 8), torch.tensor(colour_of))
