"""Bad model files are refused on load with a ModelFileError naming the file and the field.

One test (or a few) for each way found to get a bad model past load_model, and the helpers that
write bad model files (used by test_model_file_fuzz.py too).
"""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from optgen.lab.bench.parse import parse_bench
from optgen.lab.model import ModelError, ModelFileError, OpticalGeometry, archive, load_model, save_model
from optgen.lab.model import model_file as mf
from optgen.lab.run.model_seeds import ModelSeedSource
from tests.conftest import small_bench_text
from tests.lab.test_model import tiny_model

SHIPPED_DIR = Path(__file__).parents[2] / "lab" / "model"


# -- helpers: model files as dicts of arrays, and zip archives by hand --------------------------------


def small_geometry() -> OpticalGeometry:
    return OpticalGeometry.from_bench(parse_bench(small_bench_text(), "small"))


def good_model(geom: OpticalGeometry | None = None):
    """A tiny model with teacher samples and their noise (every optional array present)."""
    geom = geom or small_geometry()
    model = tiny_model(geom)
    rng = np.random.default_rng(3)
    model.teacher_samples = rng.uniform(size=(6, geom.output_pixels, geom.output_pixels)).astype(np.float32)
    model.teacher_noise = rng.standard_normal((6, 16)).astype(np.float32)
    return model


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def header_of(arrays: dict) -> dict:
    return json.loads(arrays["header"].tobytes().decode())


def with_header(arrays: dict, header) -> dict:
    """``arrays`` with another header: any JSON value, or raw bytes."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return {**arrays, "header": np.frombuffer(raw, dtype=np.uint8)}


def with_fields(arrays: dict, **changes) -> dict:
    return with_header(arrays, header_of(arrays) | changes)


def with_geometry(arrays: dict, **changes) -> dict:
    header = header_of(arrays)
    return with_header(arrays, header | {"geometry": header["geometry"] | changes})


def without(arrays: dict, *keys: str) -> dict:
    return {k: v for k, v in arrays.items() if k not in keys}


def write(path: Path, arrays: dict, compressed: bool = False) -> Path:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def npy_bytes(shape: tuple, descr: str = "<f4", data: bytes = b"", fortran: bool = False,
              header_text: str | None = None, version: tuple[int, int] = (1, 0)) -> bytes:
    """A .npy file by hand: any declared shape and dtype, with whatever data."""
    text = header_text if header_text is not None else \
        f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    length = 2 if version == (1, 0) else 4
    text = text + " " * ((64 - (10 + length - 2 + len(text) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY" + bytes(version) + len(text).to_bytes(length, "little") + text.encode("latin1") + data


def npy_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=True)
    return buffer.getvalue()


def write_members(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    """A zip archive of raw members (names as given: add ".npy" yourself)."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def members_of(arrays: dict) -> dict[str, bytes]:
    return {f"{k}.npy": npy_of(v) for k, v in arrays.items()}


def data_start(data: bytes, info: zipfile.ZipInfo) -> int:
    """Where a member's (compressed) data begins: after its local header, whose extra field may
    differ from the directory's."""
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    return info.header_offset + 30 + name_len + extra_len


def write_zip_bomb(path: Path, arrays: dict, member: str = "teacher_samples", size: int = 200 * 2**20) -> Path:
    """``arrays`` plus ``member`` as ``size`` bytes of zeros deflated (about 200 KB): written in
    chunks, never held in memory."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            if key != member:
                zf.writestr(f"{key}.npy", npy_of(value))
        n = (size - 128) // 4
        with zf.open(f"{member}.npy", "w", force_zip64=True) as out:
            out.write(npy_bytes((n // 256, 16, 16), "<f4"))
            chunk = bytes(2**20)
            left = n * 4 // 256 * 256
            while left > 0:
                out.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))
    return path


def refused(path: Path, match: str = "") -> ModelFileError:
    """load_model(path) raises ModelFileError, its message naming the file (and matching ``match``)."""
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert path.name in message and "\n" not in message
    if match:
        import re

        assert re.search(match, message), message
    return info.value


@pytest.fixture
def good(tmp_path) -> dict:
    """The arrays of a good tiny model (float32 weights), and of the same in int8."""
    model = good_model()
    return {"float32": arrays_of(save_model(tmp_path / "good.npz", model)),
            "int8": arrays_of(save_model(tmp_path / "good8.npz", model, weights="int8"))}


def test_the_good_files_the_tests_start_from_load(tmp_path, good):
    for fmt, arrays in good.items():
        model = load_model(write(tmp_path / f"{fmt}.npz", arrays))
        assert model.teacher_noise.shape == (6, 16) and len(model.weights) == 2
    assert issubclass(ModelFileError, ModelError) and issubclass(ModelFileError, ValueError)


# -- 1. the header --------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [[1, 2, 3], "model", 42, None, True])
def test_a_header_that_is_not_a_json_object_is_refused(tmp_path, good, header):
    refused(write(tmp_path / "list.npz", with_header(good["float32"], header)),
            r"header: a JSON \w+; expected a JSON object")


@pytest.mark.parametrize("field", sorted(mf.REQUIRED_FIELDS))
def test_a_header_lacking_a_required_field_names_it(tmp_path, good, field):
    header = header_of(good["float32"])
    del header[field]
    refused(write(tmp_path / "lacks.npz", with_header(good["float32"], header)),
            rf"header field '{field}': missing; expected")


@pytest.mark.parametrize("field", sorted(mf.GEOMETRY_RANGES))
def test_a_geometry_lacking_a_field_names_it(tmp_path, good, field):
    header = header_of(good["float32"])
    del header["geometry"][field]
    refused(write(tmp_path / "lacks.npz", with_header(good["float32"], header)),
            rf"header field 'geometry.{field}': missing")


@pytest.mark.parametrize("raw", [b"\xff\xfe not utf-8", b"{not json", b"[" * 100_000, b""])
def test_a_header_that_is_not_json_text_is_refused(tmp_path, good, raw):
    refused(write(tmp_path / "text.npz", with_header(good["float32"], raw)), "header: corrupt header")


# -- 2. header numbers out of range -----------------------------------------------------------------


@pytest.mark.parametrize("layers", [0, -1, 65, 10**9, 2.0, True, "2", None])
def test_layers_out_of_range_are_refused(tmp_path, good, layers):
    refused(write(tmp_path / "layers.npz", with_fields(good["float32"], layers=layers)),
            r"header field 'layers': .*; expected an integer from 1 to 64")


@pytest.mark.parametrize("field, value", [
    ("wavelength_nm", 0.0), ("wavelength_nm", 1e9), ("wavelength_nm", float("nan")), ("pitch_um", 0.0),
    ("pitch_um", -8.0), ("d1_mm", float("inf")), ("d2_mm", -1.0), ("seed_superpixels", 0),
    ("seed_superpixels", 10**6), ("seed_superpixels", 16.0), ("superpixel_px", -6), ("decoder_px", 0),
    ("decoder_px", 10**5), ("output_window_px", 0), ("output_pixels", 10**7), ("aperture_mm", 0.0),
    ("grid_px", -256), ("grid_px", "256"), ("d1_mm", None), ("d1_mm", True),
])
def test_geometry_numbers_out_of_range_are_refused(tmp_path, good, field, value):
    refused(write(tmp_path / "geometry.npz", with_geometry(good["float32"], **{field: value})),
            rf"header field 'geometry.{field}': .*; expected (an integer|a finite number) from")


@pytest.mark.parametrize("field, value, match", [
    ("log_scale_offset", float("nan"), "'log_scale_offset': nan; expected a finite number"),
    ("log_scale_offset", float("inf"), "'log_scale_offset'"),
    ("log_scale_offset", 1e30, "'log_scale_offset'"),
    ("log_scale_offset", "0", "'log_scale_offset'"),
    ("noise_shape", [], "'noise_shape'"),
    ("noise_shape", [0, 16], "'noise_shape'"),
    ("noise_shape", [-4, -4], "'noise_shape'"),
    ("noise_shape", [4, 4.0], "'noise_shape'"),
    ("noise_shape", [10**6, 10**6], "'noise_shape'"),
    ("noise_shape", "4x4", "'noise_shape'"),
    ("noise_shape", [1, 1, 1, 4, 4], "'noise_shape'"),
    ("wavelengths_nm", [], "'wavelengths_nm'"),
    ("wavelengths_nm", [520.0, 520.5], "'wavelengths_nm'.*more than 1 nm apart"),
    ("wavelengths_nm", [5.2], "'wavelengths_nm'"),
    ("wavelengths_nm", 520.0, "'wavelengths_nm'"),
    ("wavelengths_nm", [520.0] * 100, "'wavelengths_nm'"),
    ("name", "", "'name'"),
    ("name", 7, "'name'"),
    ("name", "two\nlines", "'name'"),
    ("name", "x" * 1000, "'name'"),
    ("format_version", 0, "format version 0; this optgen reads 1 and 2"),
    ("format_version", "2", "format version '2'"),
    ("format_version", 2.0, "format version 2.0"),
    ("format_version", True, "format version True"),
    ("weights", "int4", "'weights': 'int4'; expected one of float32, float16, int8"),
    ("weights", "int8", "w0 are float32; expected int8, as header field 'weights' says"),
    ("info", [1, 2], "'info'"),
])
def test_other_header_fields_out_of_range_are_refused(tmp_path, good, field, value, match):
    refused(write(tmp_path / "field.npz", with_fields(good["float32"], **{field: value})), match)


def test_int8_weights_need_format_version_2(tmp_path, good):
    refused(write(tmp_path / "v1int8.npz", with_fields(good["int8"], format_version=1, weights="float32")),
            "w0 are int8; expected float16, float32 .format version 1.")


# -- 3. arrays declared huge ---------------------------------------------------------------------


@pytest.mark.parametrize("key, shape", [("w0", (10**6, 10**6)), ("teacher_samples", (10**12,)),
                                        ("header", (10**12,)), ("decoder_520nm", (10**6, 10**6))])
def test_an_array_declared_with_1e12_elements_is_refused_unallocated(tmp_path, good, key, shape):
    members = members_of(good["float32"])
    descr = "|u1" if key == "header" else "<f4"
    members[f"{key}.npy"] = npy_bytes(shape, descr, data=b"\0" * 64)
    path = write_members(tmp_path / "huge.npz", members)
    tracemalloc.start()
    try:
        error = refused(path, rf"array {key}: declares shape .* but its member holds 64 bytes of data")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, peak
    assert "10000" in str(error) or "1000000" in str(error)


@pytest.mark.parametrize("descr, match", [
    ("|O", "an array of Python objects"), ("<c8", "w0 are complex64"), ("<U4", "w0 are <U4"),
    ("<i4", "w0 are int32"), ("<f8", "w0 are float64"), ("|b1", "w0 are bool"),
])
def test_weights_of_another_dtype_are_refused(tmp_path, good, descr, match):
    members = members_of(good["float32"])
    rows, cols = good["float32"]["w0"].shape
    itemsize = np.dtype(descr).itemsize if descr != "|O" else 8
    members["w0.npy"] = npy_bytes((rows, cols), descr, data=b"\0" * (rows * cols * itemsize))
    refused(write_members(tmp_path / "dtype.npz", members), match)


@pytest.mark.parametrize("text, match", [
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (-16, 24), }", "sizes of 0 or more"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (16, 24)", "corrupt .npy header"),
    ("{'descr': 'nonsense', 'fortran_order': False, 'shape': (16, 24), }", "corrupt .npy header"),
    ("[" * 3000 + "]" * 3000, "corrupt .npy header"),
    ("{'descr': '<f4', 'shape': (16, 24), }", "corrupt .npy header"),
])
def test_a_corrupt_npy_header_is_refused(tmp_path, good, text, match):
    members = members_of(good["float32"])
    members["w0.npy"] = npy_bytes((), header_text=text, data=good["float32"]["w0"].tobytes())
    refused(write_members(tmp_path / "npyheader.npz", members), rf"array w0: .*{match}")


def test_npy_files_of_an_unknown_version_or_without_magic_are_refused(tmp_path, good):
    members = members_of(good["float32"])
    refused(write_members(tmp_path / "v3.npz", members | {"b0.npy": b"\x93NUMPY\x03\x00" + members["b0.npy"][8:]}),
            r"array b0: .npy format version 3.0; expected 1.0 or 2.0")
    refused(write_members(tmp_path / "magic.npz", members | {"b0.npy": b"PNG" + members["b0.npy"]}),
            "array b0: not a .npy array")
    refused(write_members(tmp_path / "long.npz", members | {"b0.npy": npy_bytes((24,), header_text=" " * 60_000,
                                                                                  version=(2, 0))}),
            r"array b0: a .npy header of \d+ bytes")


def test_npy_version_2_and_fortran_order_arrays_still_load(tmp_path, good):
    members = members_of(good["float32"])
    w1 = good["float32"]["w1"]
    members["w1.npy"] = npy_bytes(w1.shape, fortran=True, data=np.asfortranarray(w1).tobytes(order="F"),
                                  version=(2, 0))
    model = load_model(write_members(tmp_path / "fortran.npz", members))
    np.testing.assert_array_equal(model.weights[1][0], w1)


# -- 4. zip bombs and archive limits ----------------------------------------------------------------


@pytest.mark.parametrize("member", ["teacher_samples", "unknown_extra"])
def test_a_zip_bomb_is_refused_before_anything_is_decompressed(tmp_path, good, member):
    path = write_zip_bomb(tmp_path / "bomb.npz", good["float32"], member)
    assert path.stat().st_size < 2 * 2**20
    tracemalloc.start()
    try:
        refused(path, rf"member '{member}.npy': \d+ bytes compressed into \d+ \(a zip bomb\?\); expected at most "
                      rf"100 : 1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak


def test_archive_limits(tmp_path, good, monkeypatch):
    members = members_of(good["float32"])
    many = {f"extra{i}.npy": b"" for i in range(300)}
    refused(write_members(tmp_path / "many.npz", members | many), r"zip archive: 30\d members; expected at most 256")
    # many small members, each below the ratio threshold, together a bomb
    small_bombs = {f"extra{i}.npy": bytes(2**19) for i in range(20)}
    refused(write_members(tmp_path / "spread.npz", members | small_bombs, zipfile.ZIP_DEFLATED),
            r"zip archive: \d+ bytes compressed into \d+ \(a zip bomb\?\)")
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 10_000)
    refused(write(tmp_path / "big.npz", good["float32"]), r"member '\w+.npy': \d+ bytes uncompressed; "
                                                          r"expected at most 10000")
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 10_000)
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 10_000_000)
    refused(write(tmp_path / "total.npz", good["float32"]), r"zip archive: \d+ bytes uncompressed; expected at most")
    monkeypatch.setattr(mf, "MAX_FILE_BYTES", 10_000)
    refused(write(tmp_path / "file.npz", good["float32"]), r"file: \d+ bytes; expected a model file of at most")


def test_encrypted_duplicate_and_unusual_members_are_refused(tmp_path, good):
    members = members_of(good["float32"])
    refused(write_members(tmp_path / "bz2.npz", members, zipfile.ZIP_BZIP2), "compression method 12; expected stored")
    path = write_members(tmp_path / "encrypted.npz", members)
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x01\x02")                    # the last member's central directory entry: set "encrypted"
    data[at + 8] |= 1
    path.write_bytes(bytes(data))
    refused(path, "encrypted")
    write_members(tmp_path / "twice.npz", members)
    with zipfile.ZipFile(tmp_path / "twice.npz", "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("w0.npy", members["w0.npy"])
    refused(tmp_path / "twice.npz", "member 'w0.npy': array 'w0' appears twice")


# -- 5. shapes along the encoder chain ------------------------------------------------------------


def test_layer_shapes_that_disagree_are_refused_at_load(tmp_path, good):
    a = good["float32"]
    refused(write(tmp_path / "w1rows.npz", a | {"w1": a["w1"][:-1]}), r"array w1: .*expected 24 rows, one for each "
                                                                      r"of the outputs of w0")
    refused(write(tmp_path / "w0rows.npz", a | {"w0": a["w0"][:-1]}), r"array w0: .*expected 16 rows, one for each "
                                                                      r"of the noise values")
    refused(write(tmp_path / "seed.npz", a | {"w1": a["w1"][:, :-1], "b1": a["b1"][:-1]}),
            r"array w1: .*expected 257 columns: 1 colour\(s\) x \(16x16 seed values \+ 1 scale\)")
    refused(write(tmp_path / "bias.npz", a | {"b0": a["b0"][:-1]}), r"array b0: biases b0 have shape \(23,\)")
    refused(write(tmp_path / "bias2d.npz", a | {"b0": a["b0"][None]}), r"array b0: biases b0 have shape \(1, 24\)")
    refused(write(tmp_path / "noise.npz", with_fields(a, noise_shape=[5, 5])), r"array w0: .*expected 25 rows")
    refused(write(tmp_path / "seedpx.npz", with_geometry(a, seed_superpixels=15)), r"array w1: .*expected 226 columns")
    refused(write(tmp_path / "fewer.npz", with_fields(a, layers=1)), r"array w0: .*expected 257 columns")
    refused(write(tmp_path / "more.npz", with_fields(a, layers=3)), r"array w1: .*expected 1 to \d+ columns|w2")
    refused(write(tmp_path / "colours.npz", with_fields(a, wavelengths_nm=[638.0, 520.0, 450.0])),
            r"array w1: .*expected 771 columns: 3 colour")
    q = good["int8"]
    refused(write(tmp_path / "scale.npz", q | {"w0_scale": q["w0_scale"][:, :-1]}),
            r"array w0_scale: scale w0_scale has shape \(1, 23\); expected \(1, 24\)")
    refused(write(tmp_path / "scale1d.npz", q | {"w0_scale": q["w0_scale"][0]}), r"w0_scale has shape \(24,\)")
    refused(write(tmp_path / "scale64.npz", q | {"w0_scale": q["w0_scale"].astype(np.float64)}),
            r"w0_scale .*float32 values \(it is float64\)")
    refused(write(tmp_path / "extra_scale.npz", a | {"w0_scale": q["w0_scale"]}), "w0 are float32 with a scale")


def test_shape_errors_come_before_any_device_opens_through_the_seed_source(tmp_path, good):
    """What was found at the first seed before (a reshape error, after the devices opened)."""
    a = good["float32"]
    with pytest.raises(ModelFileError):
        ModelSeedSource(load_model(write(tmp_path / "x.npz", a | {"w1": a["w1"][:, :100], "b1": a["b1"][:100]})),
                        520.0)


# -- 6. decoder phases ----------------------------------------------------------------------------


@pytest.mark.parametrize("change, match", [
    (lambda p: p.astype(np.complex64), "complex64"),
    (lambda p: (p * 10).astype(np.int32), "int32"),
    (lambda p: p > 3, "bool"),
    (lambda p: p[:-1], r"shape \(127, 128\)"),
    (lambda p: p[None], r"shape \(1, 128, 128\)"),
    (lambda p: p.ravel(), r"shape \(16384,\)"),
    (lambda p: np.where(p > 6, np.nan, p).astype(np.float32), "holds NaN, infinite"),
    (lambda p: np.where(p > 6, np.inf, p).astype(np.float32), "holds NaN, infinite"),
    (lambda p: p * np.float32(1e30), r"\|values\| above 10000 rad"),
])
def test_decoder_phases_must_be_real_finite_and_of_the_decoder_size(tmp_path, good, change, match):
    a = good["float32"]
    refused(write(tmp_path / "decoder.npz", a | {"decoder_520nm": change(a["decoder_520nm"])}),
            rf"array decoder_520nm: the decoder phase at 520 nm is not a finite 128x128 array.*{match}")


def test_float16_and_float64_decoder_phases_load_as_float32(tmp_path, good):
    a = good["float32"]
    for dtype in (np.float16, np.float64):
        model = load_model(write(tmp_path / "d.npz", a | {"decoder_520nm": a["decoder_520nm"].astype(dtype)}))
        assert model.decoder_phase[520.0].dtype == np.float32


def test_a_wavelength_without_its_decoder_phase_is_refused(tmp_path, good):
    refused(write(tmp_path / "nodec.npz", without(good["float32"], "decoder_520nm")),
            r"array decoder_520nm: missing \(no member decoder_520nm.npy\); expected the decoder phase at 520 nm")
    refused(write(tmp_path / "wl.npz", with_fields(good["float32"], wavelengths_nm=[532.0])),
            "array decoder_532nm: missing")


# -- 7. absurd weights -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, key, factor, match", [
    ("float32", "w0", 1e30, r"array w0: encoder weights reach \|w\| = .*; expected at most 10000"),
    ("float32", "w1", 1e5, r"array w1: encoder weights reach"),
    ("float32", "b1", 1e30, r"array b1: encoder biases"),
    ("float32", "w0", np.inf, r"array w0: encoder weights contain NaN or infinite values"),
    ("float32", "w0", np.nan, r"array w0: encoder weights contain NaN"),
    ("float32", "b0", np.nan, r"array b0: encoder biases contain NaN"),
    ("int8", "w0_scale", 1e30, r"array w0_scale: scale w0_scale .* of finite positive values \(at most 10000\)"),
    ("int8", "w1_scale", -1.0, r"array w1_scale: scale w1_scale has shape \(1, 257\); expected \(1, 257\) of finite"),
    ("int8", "w1_scale", 0.0, r"array w1_scale"),
    ("int8", "w1_scale", np.nan, r"array w1_scale"),
])
def test_absurd_or_non_finite_weights_are_refused(tmp_path, good, fmt, key, factor, match):
    a = good[fmt]
    with np.errstate(all="ignore"):
        value = np.full_like(a[key], factor) if key[0] == "b" else (a[key] * factor).astype(a[key].dtype)
    refused(write(tmp_path / "absurd.npz", a | {key: value}), match)


def test_an_encoder_whose_seeds_do_not_change_with_the_noise_is_refused(tmp_path, good):
    a = good["float32"]
    flat = a | {"w1": np.zeros_like(a["w1"]), "b1": np.full_like(a["b1"], 0.5)}
    refused(write(tmp_path / "flat.npz", flat), r"encoder \(w0 \.\.\. w1, log_scale_offset\): at 520 nm it gives "
                                                r"\(nearly\) the same seed for 8 different noise vectors")
    tiny = a | {"w0": a["w0"] * np.float32(1e-9)}
    refused(write(tmp_path / "tiny.npz", tiny), "the same seed")


def test_an_encoder_whose_seeds_are_far_out_of_range_or_scales_overflow_is_refused(tmp_path, good):
    a = good["float32"]
    w1 = a["w1"] * np.float32(1e3)
    w1[:, -1] = 0.0                                   # the scale stays finite
    loud = a | {"w0": a["w0"] * np.float32(1e3), "w1": w1}   # |w| < 1e4, seed values about 1e6
    refused(write(tmp_path / "loud.npz", loud), r"seed values are far out of range \(median \|value\| [\d.e+]+\)")
    b1 = a["b1"].copy()
    b1[-1] = 9000.0                                   # the scale's logit: exp(9000) overflows
    refused(write(tmp_path / "scale.npz", a | {"b1": b1}), "non-finite seed values or scales")
    refused(write(tmp_path / "zero.npz", with_fields(a, log_scale_offset=-80.0) | {"b1": b1 * 0 - 80}),
            "encoder")


# -- 8. everything else -------------------------------------------------------------------------


def test_files_that_are_not_model_archives_are_refused(tmp_path, good):
    for name, data in {"empty.npz": b"", "text.npz": b"hello", "junk.npz": b"PK\x03\x04 not really a zip",
                       "npy.npz": npy_of(np.zeros(3)), "random.npz": np.random.default_rng(0).bytes(5000)}.items():
        (tmp_path / name).write_bytes(data)
        refused(tmp_path / name, "not a readable model file")
    (tmp_path / "folder.npz").mkdir()
    refused(tmp_path / "folder.npz", "model file not found")
    refused(tmp_path / "missing.npz", "model file not found")
    with pytest.raises(ModelFileError, match="model file not found"):
        load_model(str(tmp_path / "nul\0.npz"))


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_a_truncated_file_is_refused(tmp_path, good, cut):
    for compressed in (False, True):
        data = write(tmp_path / "full.npz", good["int8"], compressed).read_bytes()
        (tmp_path / "cut.npz").write_bytes(data[:int(len(data) * cut)])
        refused(tmp_path / "cut.npz", "not a readable model file")


def test_damaged_member_data_is_refused(tmp_path, good):
    for compressed in (False, True):
        path = write(tmp_path / "ok.npz", good["float32"], compressed)
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("w1.npy")
        data = bytearray(path.read_bytes())
        start = data_start(data, info)
        data[start + info.compress_size // 2] ^= 0x5A
        (tmp_path / "damaged.npz").write_bytes(bytes(data))
        refused(tmp_path / "damaged.npz", "array w1: not a readable model file")


@pytest.mark.parametrize("key", ["header", "w0", "b0", "w1", "b1", "decoder_520nm"])
def test_a_missing_member_is_named(tmp_path, good, key):
    refused(write(tmp_path / "drop.npz", without(good["float32"], key)), rf"\b{key}\b")


def test_a_missing_int8_scale_and_object_arrays_are_refused(tmp_path, good):
    refused(write(tmp_path / "noscale.npz", without(good["int8"], "w1_scale")),
            "array w1: encoder weights w1 are int8 without their scale w1_scale")
    a = good["float32"]
    objects = a | {"teacher_noise": np.array([{"x": 1}] * 6, dtype=object)}
    refused(write(tmp_path / "pickle.npz", objects), "array teacher_noise: an array of Python objects")
    refused(write(tmp_path / "pickle_header.npz", a | {"header": np.array([header_of(a)], dtype=object)}),
            "array header: an array of Python objects")


def test_a_header_stored_as_another_array_is_refused(tmp_path, good):
    a = good["float32"]
    refused(write(tmp_path / "h32.npz", a | {"header": a["header"].astype(np.float32)}),
            r"header: a float32 array .*; expected the bytes \(uint8, one axis\)")
    refused(write(tmp_path / "h2d.npz", a | {"header": a["header"][None]}), "header: a uint8 array")


@pytest.mark.parametrize("change, match", [
    (lambda a: a | {"teacher_samples": a["teacher_samples"][:, :-1]}, r"teacher_samples have shape \(6, 15, 16\)"),
    (lambda a: a | {"teacher_samples": a["teacher_samples"][0]}, r"teacher_samples have shape \(16, 16\)"),
    (lambda a: a | {"teacher_samples": a["teacher_samples"][:0], "teacher_noise": a["teacher_noise"][:0]},
     r"teacher_samples have shape \(0, 16, 16\)"),
    (lambda a: a | {"teacher_samples": a["teacher_samples"].astype(np.complex64)}, "complex64"),
    (lambda a: a | {"teacher_samples": (a["teacher_samples"] * 100).astype(np.int16)}, "int16"),
    (lambda a: a | {"teacher_samples": a["teacher_samples"] * np.float32(np.nan)}, "teacher_samples hold NaN"),
    (lambda a: a | {"teacher_noise": a["teacher_noise"][:5]}, r"teacher_noise has shape \(5, 16\); expected \(6, 16\)"),
    (lambda a: a | {"teacher_noise": a["teacher_noise"][:, :-1]}, r"teacher_noise has shape \(6, 15\)"),
    (lambda a: a | {"teacher_noise": a["teacher_noise"].astype(np.int32)}, "teacher_noise .*int32"),
    (lambda a: a | {"teacher_noise": a["teacher_noise"] * np.float32(np.inf)}, "teacher_noise has shape"),
    (lambda a: without(a, "teacher_samples"), r"teacher_noise has shape \(6, 16\); expected \(0, 16\)"),
])
def test_teacher_samples_and_noise_of_the_wrong_shape_or_values_are_refused(tmp_path, good, change, match):
    with np.errstate(all="ignore"):
        refused(write(tmp_path / "teacher.npz", change(good["float32"])), match)


def test_a_model_without_teacher_arrays_still_loads(tmp_path, good):
    model = load_model(write(tmp_path / "bare.npz", without(good["float32"], "teacher_samples", "teacher_noise")))
    assert model.teacher_samples is None and model.teacher_noise is None


# -- the shipped models --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["digits-v7", "digits-rgb-v3"])
def test_the_shipped_models_load_bit_for_bit_as_numpy_reads_them(name):
    """The checked loader gives exactly what the loader before it gave (numpy.load, int8 x scale)."""
    import hashlib

    path = SHIPPED_DIR / f"{name}.npz"
    model = load_model(name)
    with np.load(path) as f:
        header = json.loads(f["header"].tobytes().decode())
        for i, (w, b) in enumerate(model.weights):
            expected = f[f"w{i}"].astype(np.float32) * f[f"w{i}_scale"] if f[f"w{i}"].dtype == np.int8 else f[f"w{i}"]
            assert w.dtype == np.float32 and w.tobytes() == expected.astype(np.float32, copy=False).tobytes()
            assert b.tobytes() == f[f"b{i}"].astype(np.float32).tobytes()
        for wl in model.wavelengths_nm:
            assert model.decoder_phase[wl].dtype == f[f"decoder_{wl:g}nm"].dtype
            assert model.decoder_phase[wl].tobytes() == f[f"decoder_{wl:g}nm"].tobytes()
        assert model.teacher_samples.tobytes() == f["teacher_samples"].astype(np.float32).tobytes()
        assert model.teacher_noise.tobytes() == f["teacher_noise"].tobytes()
    assert model.log_scale_offset == header["log_scale_offset"] and model.info == header["info"]
    assert model.id == f"{name}:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    assert model.geometry.as_dict() == header["geometry"] and model.noise_shape == tuple(header["noise_shape"])


# -- training checkpoints ------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_tampered_training_checkpoint_is_refused_without_running_its_code(tmp_path):
    torch = pytest.importorskip("torch")
    from optgen.lab.model.train import _load_checkpoint

    marker = tmp_path / "ran"
    torch.save({"model": {}, "optimizer": {}, "step": 1, "losses": [], "elapsed_s": 0.0,
                "payload": _RunsCode(marker)}, tmp_path / "student.pt")
    with pytest.raises(ValueError, match="student.pt: not a student checkpoint that can be read safely"):
        _load_checkpoint(tmp_path / "student.pt")
    assert not marker.exists()


def test_a_checkpoint_from_before_keeps_loading(tmp_path):
    """Checkpoints written before held numpy float64 learning rates: those (and nothing else) still load."""
    torch = pytest.importorskip("torch")
    from optgen.lab.model.train import _load_checkpoint

    state = {"model": {"x": torch.zeros(2)}, "optimizer": {"state": {}, "param_groups": [{"lr": np.float64(0.1)}]},
             "step": 4, "losses": [0.5], "elapsed_s": 1.0}
    torch.save(state, tmp_path / "student.pt")
    loaded = _load_checkpoint(tmp_path / "student.pt")
    assert loaded["step"] == 4 and float(loaded["optimizer"]["param_groups"][0]["lr"]) == 0.1
