"""The class as one-hot encoder inputs (lab.model.class_input): the same class the teacher reads, and
model files that declare it."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.lab.model import ModelFileError, load_model, save_model
from optgen.lab.model.class_input import class_inputs, class_of_noise, with_class_inputs
from tests.lab.test_model_file import arrays_of, good_model, header_of, with_header, write


def test_the_class_is_the_decile_of_the_first_noise_value_as_the_teacher_reads_it():
    torch = pytest.importorskip("torch")
    from optgen.lab.model.teacher import class_from_noise

    noise = np.random.default_rng(0).standard_normal((2000, 5)).astype(np.float32)
    noise[:3, 0] = [-40.0, 0.0, 40.0]                       # far tails, and the median
    got = class_of_noise(noise, 10)
    np.testing.assert_array_equal(got, class_from_noise(torch.from_numpy(noise), 10).numpy())
    assert list(got[:3]) == [0, 5, 9]
    assert np.all(np.abs(np.bincount(got, minlength=10) / 2000 - 0.1) < 0.03)   # deciles: equally likely


def test_class_inputs_follow_the_noise_one_hot():
    noise = np.array([[-2.0, 1.0], [0.1, -1.0], [2.0, 0.5]], np.float32)
    x = with_class_inputs(noise, 4)
    assert x.dtype == np.float32 and x.shape == (3, 6)
    np.testing.assert_array_equal(x[:, :2], noise)
    np.testing.assert_array_equal(x[:, 2:], np.eye(4, dtype=np.float32)[[0, 2, 3]])


@pytest.mark.parametrize("info, count", [({}, 0), (None, 0), ({"classes": 10}, 0),
                                         ({"class_input": "one-hot", "classes": 10}, 10)])
def test_class_inputs_counts_what_a_model_declares(info, count):
    assert class_inputs(info) == count


@pytest.mark.parametrize("info", [{"class_input": "embedding", "classes": 10}, {"class_input": "one-hot"},
                                  {"class_input": "one-hot", "classes": 1}, {"class_input": "one-hot", "classes": "10"}])
def test_a_class_input_that_cannot_be_honoured_is_refused(info):
    with pytest.raises(ValueError, match="class_input .*expected 'one-hot' with 2 to 1000 classes"):
        class_inputs(info)


def _one_hot_model(classes: int = 3):
    """The tiny test model with its first layer widened by ``classes`` one-hot inputs."""
    model = good_model()
    w0, b0 = model.weights[0]
    extra = np.random.default_rng(4).standard_normal((classes, w0.shape[1])).astype(np.float32)
    model.weights[0] = (np.concatenate([w0, extra]), b0)
    model.info = {**(model.info or {}), "class_input": "one-hot", "classes": classes}
    return model, extra


def test_a_model_with_one_hot_class_inputs_saves_loads_and_encodes_its_class(tmp_path):
    model, extra = _one_hot_model()
    loaded = load_model(save_model(tmp_path / "m.npz", model))
    assert loaded.classes == 3 and class_inputs(loaded.info) == 3
    noise = np.random.default_rng(5).standard_normal((4, 16)).astype(np.float32)
    noise[:, 0] = [-2.0, 0.0, 0.0, 2.0]                      # classes 0, 1, 1, 2
    values, scale = loaded.encode(noise)
    for c, rows in ((0, [0]), (1, [1, 2]), (2, [3])):   # class c: the plain layers with c's row added to w0's bias
        plain = good_model()
        w0, b0 = plain.weights[0]
        plain.weights[0] = (w0, b0 + extra[c])
        want, want_scale = plain.encode(noise[rows])
        np.testing.assert_allclose(values[rows], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(scale[rows], want_scale, rtol=1e-5)


def test_a_model_file_whose_first_layer_lacks_the_class_inputs_is_refused(tmp_path):
    good = arrays_of(save_model(tmp_path / "good.npz", good_model()))
    header = header_of(good)
    declared = with_header(good, {**header, "info": {**header.get("info", {}), "class_input": "one-hot", "classes": 3}})
    with pytest.raises(ModelFileError, match=r"w0 have shape \(16, \d+\); expected 19 rows, one for each of the noise "
                                             r"values \(noise_shape \[4, 4\]\) and 3 one-hot class inputs"):
        load_model(write(tmp_path / "short.npz", declared))
    odd = with_header(good, {**header, "info": {**header.get("info", {}), "class_input": "embedding", "classes": 3}})
    with pytest.raises(ModelFileError, match=r"header field 'info': class_input 'embedding'"):
        load_model(write(tmp_path / "odd.npz", odd))
