"""A lab's own images to train on: folders (with class sub-folders), .npy/.npz arrays and MNIST IDX
files, read whole and checked; bad data stops naming the file; training records what it learned."""

from __future__ import annotations

import gzip
import json

import cv2
import numpy as np
import pytest

from optgen.lab.cli import main
from optgen.lab.model.datasets import DataError, load_image_data

from ..conftest import small_bench_text


def write_png(path, image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def class_folder(root, classes=("circle", "bar", "cross"), per_class=4, size=12):
    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        for i in range(per_class):
            image = np.zeros((size, size), np.uint8)
            image[k * 3:k * 3 + 3, :] = 200 + i          # each class its own band
            image += rng.integers(0, 20, image.shape, dtype=np.uint8)
            write_png(root / name / f"{i:03d}.png", image)
    return root


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_a_folder_of_class_folders_gives_images_labels_and_class_names(tmp_path):
    data = load_image_data(class_folder(tmp_path / "shapes"))
    assert data.images.shape == (12, 1, 12, 12) and data.images.dtype == np.float32
    assert data.class_names == ["bar", "circle", "cross"]           # sorted folder names
    np.testing.assert_array_equal(data.labels, [0] * 4 + [1] * 4 + [2] * 4)
    first_bar = cv2.imread(str(tmp_path / "shapes" / "bar" / "000.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(data.images[0, 0], first_bar / 255.0, atol=1e-6)
    record = data.record()
    assert record["count"] == 12 and record["classes"] == 3 and record["size"] == [12, 12]
    assert record["sha256"] == load_image_data(tmp_path / "shapes").sha256()     # the same data, the same hash
    write_png(tmp_path / "shapes" / "bar" / "000.png", first_bar // 2)
    assert load_image_data(tmp_path / "shapes").sha256() != record["sha256"]


def test_colour_images_come_in_rgb_order_and_turn_grey_by_luminance(tmp_path):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 2] = 255                                                # OpenCV writes BGR
    write_png(tmp_path / "c" / "a.png", red)
    write_png(tmp_path / "c" / "b.png", np.full((8, 8), 255, np.uint8))   # a grey one among colour ones
    data = load_image_data(tmp_path / "c")
    assert data.images.shape == (2, 3, 8, 8) and data.labels is None and data.classes == 0
    np.testing.assert_allclose(data.images[0, :, 0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(data.grey()[:, 0, 0], [0.299, 1.0], atol=1e-6)


def test_arrays_in_npy_and_npz_with_labels_in_any_layout(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 10, 10, 3), dtype=np.uint8)
    np.savez(tmp_path / "set.npz", x=images, y=np.array([0, 1, 2, 0, 1, 2]))
    data = load_image_data(tmp_path / "set.npz")
    assert data.images.shape == (6, 3, 10, 10) and data.classes == 3
    np.testing.assert_allclose(data.images[2, 1], images[2, ..., 1] / 255.0)
    floats = rng.random((5, 9, 9)).astype(np.float32)
    np.save(tmp_path / "grey.npy", floats)
    data = load_image_data(tmp_path / "grey.npy")
    np.testing.assert_array_equal(data.images[:, 0], floats)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_with_their_labels_beside_them(tmp_path, gz):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (7, 28, 28))
    labels = np.array([3, 1, 4, 1, 5, 9, 2])
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    for path in (tmp_path / f"train-images-idx3-ubyte{suffix}", tmp_path):      # the file, or its folder
        data = load_image_data(path)
        assert data.images.shape == (7, 1, 28, 28)
        np.testing.assert_array_equal(data.labels, labels)
        assert data.classes == 10                                     # 0..9: the largest label + 1
        np.testing.assert_allclose(data.images[3, 0], images[3] / 255.0)


def bad_data(tmp_path):
    """(path, words the error must contain) for each kind of bad data."""
    cases = []
    (tmp_path / "empty").mkdir()
    cases.append((tmp_path / "empty", ["empty", "no images"]))
    write_png(tmp_path / "mixed" / "a.png", np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "mixed" / "b.png", np.zeros((9, 8), np.uint8))
    cases.append((tmp_path / "mixed", ["b.png", "8 x 9", "one size"]))
    write_png(tmp_path / "broken" / "a.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "broken" / "b.png").write_text("not an image")
    cases.append((tmp_path / "broken", ["b.png", "not a readable image"]))
    class_folder(tmp_path / "both")
    write_png(tmp_path / "both" / "loose.png", np.zeros((12, 12), np.uint8))
    cases.append((tmp_path / "both", ["loose.png", "sub-folder"]))
    (tmp_path / "classes" / "empty-class").mkdir(parents=True)
    write_png(tmp_path / "classes" / "ones" / "a.png", np.zeros((8, 8), np.uint8))
    cases.append((tmp_path / "classes", ["empty-class", "without images"]))
    np.savez(tmp_path / "mismatch.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.array([0, 1, 0]))
    cases.append((tmp_path / "mismatch.npz", ["mismatch.npz", "3 labels for 4 images"]))
    np.savez(tmp_path / "nolabels.npz", pictures=np.zeros((4, 8, 8)))
    cases.append((tmp_path / "nolabels.npz", ["nolabels.npz", "'images'"]))
    np.save(tmp_path / "range.npy", np.full((3, 8, 8), 2.0, np.float32))
    cases.append((tmp_path / "range.npy", ["range.npy", "expected 0 to 1"]))
    np.save(tmp_path / "nan.npy", np.full((3, 8, 8), np.nan, np.float32))
    cases.append((tmp_path / "nan.npy", ["nan.npy", "not finite"]))
    np.save(tmp_path / "shape.npy", np.zeros((3, 2, 8, 8), np.uint8))
    cases.append((tmp_path / "shape.npy", ["shape.npy", "(N, h, w)"]))
    np.savez(tmp_path / "oneclass.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.zeros(4, np.int64))
    cases.append((tmp_path / "oneclass.npz", ["oneclass.npz", "two classes"]))
    (tmp_path / "garbage.npz").write_text("not a zip")
    cases.append((tmp_path / "garbage.npz", ["garbage.npz", "not a readable"]))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3)
    cases.append((tmp_path / "t10k-images-idx3-ubyte", ["t10k-images-idx3-ubyte", "header says"]))
    cases.append((tmp_path / "nowhere", ["nowhere", "no such file"]))
    (tmp_path / "notes.txt").write_text("hello")
    cases.append((tmp_path / "notes.txt", ["notes.txt", "expected a folder of images"]))
    return cases


def test_bad_data_stops_with_an_error_naming_the_file(tmp_path):
    for path, words in bad_data(tmp_path):
        with pytest.raises(DataError) as caught:
            load_image_data(path)
        for word in words:
            assert word in str(caught.value), (path, str(caught.value))


def test_optgen_train_refuses_bad_data_before_training(tmp_path, capsys):
    pytest.importorskip("torch")
    np.savez(tmp_path / "mismatch.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.array([0, 1, 0]))
    assert main(["train", "--out", "t", "--data", str(tmp_path / "mismatch.npz")]) == 2
    assert "3 labels for 4 images" in capsys.readouterr().err
    assert not (tmp_path / "t" / "teacher.pt").exists()


def test_a_model_trained_on_a_class_folder_records_its_data_and_generates_its_classes_on_request(tmp_path):
    pytest.importorskip("torch")
    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.model import OpticalGeometry, load_model
    from optgen.lab.model.train import TrainSettings, train_model
    from optgen.lab.run.model_seeds import ModelSeedSource

    folder = class_folder(tmp_path / "shapes")
    geom = OpticalGeometry.from_bench(parse_bench(small_bench_text(), "small"))
    settings = TrainSettings(teacher_steps=30, pairs=64, student_steps=2, batch=2, checkpoint_every=1,
                             name="shapes-tiny", encoder_hidden=16, encoder_layers=2, data=str(folder))
    model = load_model(train_model(tmp_path / "train", geom, settings, log=lambda m: None))
    expected = load_image_data(folder).record()
    assert model.info["data"] == expected and model.classes == 3
    assert json.loads((tmp_path / "train" / "data.json").read_text())["sha256"] == expected["sha256"]
    assert ModelSeedSource(model, geom.wavelength_nm, class_index=2).class_index == 2
    with pytest.raises(Exception, match="classes 0 to 2"):
        ModelSeedSource(model, geom.wavelength_nm, class_index=3)
    write_png(folder / "bar" / "000.png", np.zeros((12, 12), np.uint8))    # other data, same training folder
    (tmp_path / "train" / "student.pt").unlink()
    with pytest.raises(DataError, match="not the data the teacher"):
        train_model(tmp_path / "train", geom, settings, log=lambda m: None)


def test_a_model_trained_with_one_hot_class_inputs_encodes_in_numpy_as_it_trained(tmp_path):
    """``TrainSettings.class_one_hot`` (what ``optgen train --data`` sets for labelled data): the encoder's
    first layer takes the class as one-hot inputs; the model file's numpy encoder and the student built
    from it for fine-tuning give the training student's outputs, and a resume without it is refused."""
    torch = pytest.importorskip("torch")
    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.model import OpticalGeometry, load_model
    from optgen.lab.model.fine_tune import student_from
    from optgen.lab.model.train import TrainSettings, _load_checkpoint, train_model

    folder = class_folder(tmp_path / "shapes")
    geom = OpticalGeometry.from_bench(parse_bench(small_bench_text(), "small"))
    settings = TrainSettings(teacher_steps=30, pairs=64, student_steps=2, batch=2, checkpoint_every=1,
                             name="shapes-one-hot", encoder_hidden=16, encoder_layers=2, data=str(folder),
                             class_one_hot=True)
    model = load_model(train_model(tmp_path / "train", geom, settings, log=lambda m: None))
    assert model.info["class_input"] == "one-hot" and model.classes == 3
    assert model.weights[0][0].shape[0] == 64 + 3
    noise = np.random.default_rng(1).standard_normal((6, 64)).astype(np.float32)
    noise[:, 0] = [-2.0, -1.0, 0.0, 0.1, 1.0, 2.0]              # all three classes
    values, scale = model.encode(noise)
    student = student_from(model, None, 0.6)
    assert student.classes == 3
    trained = _load_checkpoint(tmp_path / "train" / "student.pt")["model"]
    for key, value in student.state_dict().items():         # the model file holds what was trained
        if key.startswith("encoder."):
            np.testing.assert_allclose(value.numpy(), trained[key].numpy(), rtol=1e-6, atol=1e-7)
    with torch.no_grad():
        phase, log_scale = student.encode(torch.from_numpy(noise))
    np.testing.assert_allclose(np.clip(phase.numpy() / np.pi - 1.0, -1, 1), np.clip(values, -1, 1), atol=1e-5)
    np.testing.assert_allclose(np.exp(log_scale.numpy()), scale, rtol=1e-5)
    moved = noise.copy()
    moved[2, 0] = 1.0                                        # same noise otherwise, another class
    assert not np.allclose(model.encode(moved)[0][2], values[2], atol=1e-4)
    (tmp_path / "train" / "shapes-one-hot.npz").unlink()
    settings.student_steps = 3
    settings.class_one_hot = False
    with pytest.raises(ValueError, match="trained so far with the class as one-hot inputs; asked now without"):
        train_model(tmp_path / "train", geom, settings, log=lambda m: None)


def test_optgen_train_data_with_labels_trains_with_one_hot_class_inputs(tmp_path, mocker):
    pytest.importorskip("torch")
    train = mocker.patch("optgen.lab.model.train.train_model", return_value=None)
    folder = class_folder(tmp_path / "shapes")
    assert main(["train", "--out", str(tmp_path / "t"), "--data", str(folder)]) == 0
    assert train.call_args.args[2].class_one_hot is True
    np.savez(tmp_path / "plain.npz", images=np.zeros((4, 8, 8), np.uint8))
    assert main(["train", "--out", str(tmp_path / "u"), "--data", str(tmp_path / "plain.npz")]) == 0
    assert train.call_args.args[2].class_one_hot is False
