"""Contact sheets: tiles in a grid, each scaled to its own range, with its frame number above it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from optgen.lab.runfile.contact_sheet import LABEL_PX, write_contact_sheet


def test_each_tile_sits_under_its_label_band_and_the_band_holds_the_text(tmp_path):
    images = np.stack([np.full((4, 4), k, np.float32) + np.eye(4, dtype=np.float32) for k in range(3)])
    plain = cv2.imread(str(write_contact_sheet(tmp_path / "plain.png", images, columns=3, scale=4, gap=2)),
                       cv2.IMREAD_UNCHANGED)
    labelled = cv2.imread(str(write_contact_sheet(tmp_path / "numbered.png", images, columns=3, scale=4, gap=2,
                                                  labels=["#0", "#5", "#9"])), cv2.IMREAD_UNCHANGED)
    assert plain.shape == (2 + 16 + 2, 3 * 18 + 2)
    assert labelled.shape == (plain.shape[0] + LABEL_PX, plain.shape[1])
    np.testing.assert_array_equal(labelled[2 + LABEL_PX:, :], plain[2:, :])       # the tiles, moved down
    for c in range(3):                                                            # text drawn in each band
        band = labelled[2:2 + LABEL_PX - 1, 2 + c * 18:2 + c * 18 + 16]
        assert band.max() > 150
    assert plain[:2].max() == 40                                                  # no band: gap colour only


def test_labels_must_match_the_images(tmp_path):
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        write_contact_sheet(tmp_path / "x.png", np.zeros((3, 4, 4)), labels=["a", "b"])


def test_a_runs_contact_sheet_numbers_its_frames(small_bench, tmp_path, monkeypatch):
    from optgen.lab.run import generate
    from optgen.lab.run.decoder import load_decoder_phase
    from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder

    seen = {}
    real = generate.write_contact_sheet

    def spy(path, images, **kwargs):
        seen["labels"] = kwargs.get("labels")
        return real(path, images, **kwargs)

    monkeypatch.setattr(generate, "write_contact_sheet", spy)
    n = small_bench.config.geometry.seed_superpixels
    phase, decoder_id = load_decoder_phase("flat", small_bench.config.geometry.decoder_px)
    generate.run_generation(small_bench, EncoderSeedSource(PlaceholderEncoder(n * n), n), phase, decoder_id,
                            tmp_path / "run", 3)
    assert seen["labels"] == ["#0", "#1", "#2"]
    assert (tmp_path / "run" / "contact_sheet.png").stat().st_size > 0
