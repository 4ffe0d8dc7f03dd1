"""A generated corpus of bad model files (fixed random seed): every one is refused by load_model
with a ModelFileError naming the file; no other exception, no bad file accepted, a zip bomb
refused in little memory, and ``optgen run`` on a bench naming a bad model stops before any
device opens."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from optgen.lab.model import ModelFileError, OpticalGeometry, OpticalModel, load_model, save_model
from optgen.lab.model import model_file as mf
from tests.conftest import small_bench_text
from tests.lab.test_model_file import (
    SHIPPED_DIR,
    arrays_of,
    data_start,
    good_model,
    header_of,
    members_of,
    npy_bytes,
    npy_of,
    small_geometry,
    with_header,
    without,
    write,
    write_members,
    write_zip_bomb,
)

SEED = 20251205
BAD_NUMBERS = [0, -1, -1e300, 1e300, 1.5, float("nan"), float("inf"), "1", None, True, [], {}]


def rgb_model(geom: OpticalGeometry) -> OpticalModel:
    """A tiny three-colour model (noise 3x4x4)."""
    rng = np.random.default_rng(1)
    n = geom.seed_superpixels
    colours = (638.0, 520.0, 450.0)
    dims = [48, 24, len(colours) * (n * n + 1)]
    weights = [((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), (rng.standard_normal(b) / 10)
                .astype(np.float32)) for a, b in zip(dims[:-1], dims[1:])]
    d = geom.decoder_px
    decoder = {wl: rng.uniform(0, 2 * np.pi, (d, d)).astype(np.float32) for wl in colours}
    return OpticalModel("tiny-rgb", geom, (3, 4, 4), colours, weights, decoder, log_scale_offset=-2.0)


# -- mutations: each yields (label, arrays dict | raw bytes) -------------------------------------


Case = tuple[str, "dict | bytes"]


def header_cases(a: dict, rng: np.random.Generator) -> Iterator[Case]:
    header = header_of(a)
    for value in ([header], [1, 2], "model", 7, None, False):
        yield f"header-{type(value).__name__}", with_header(a, value)
    for field in mf.REQUIRED_FIELDS:
        yield f"no-{field}", with_header(a, {k: v for k, v in header.items() if k != field})
    for field in mf.GEOMETRY_RANGES:
        yield f"no-geometry-{field}", with_header(a, header | {"geometry": {k: v for k, v in header["geometry"].items()
                                                                            if k != field}})
        for value in rng.choice(np.array(BAD_NUMBERS, dtype=object), 3, replace=False):
            if isinstance(value, float) and value == 1.5 and not mf.GEOMETRY_RANGES[field][0]:
                value = -1.5
            yield f"geometry-{field}-{value!r}", with_header(a, header | {"geometry": header["geometry"] | {field: value}})
    layers = header["layers"]
    for value in (0, -1, -layers, 65, 10**6, 10**18, 2.5, str(layers), None, True, layers + 1, layers - 1):
        yield f"layers-{value!r}", with_header(a, header | {"layers": value})
    for value in (float("nan"), float("inf"), -float("inf"), 1e3, -1e3, "0", None, [], True):
        yield f"log_scale_offset-{value!r}", with_header(a, header | {"log_scale_offset": value})
    noise = header["noise_shape"]
    for value in ([], [0] + noise[1:], [-v for v in noise], noise[:-1] + [float(noise[-1])], [10**5, 10**5],
                  "x".join(map(str, noise)), [1, 1, 1] + noise, noise[:-1] + [noise[-1] + 1], None):
        yield f"noise_shape-{value!r}", with_header(a, header | {"noise_shape": value})
    wls = header["wavelengths_nm"]
    for value in ([], wls + [wls[0] + 0.5], [5.0] * len(wls), wls + wls[:1], [1e9] + wls[1:],
                  [float("nan")] + wls[1:], [str(w) for w in wls], wls[0], [w + 7 for w in wls], list(range(300, 1900, 100))):
        yield f"wavelengths-{value!r}", with_header(a, header | {"wavelengths_nm": value})
    for value in ("", 7, None, "line\nbreak", "\x1b[2J", "x" * 500, ["name"]):
        yield f"name-{value!r}"[:40], with_header(a, header | {"name": value})
    for value in (0, 3, 99, -1, "2", 2.0, None, True, [2]):
        yield f"format_version-{value!r}", with_header(a, header | {"format_version": value})
    for value in ("int4", 5, None if header.get("weights") else "int4",
                  "float16" if header.get("weights") != "float16" else "float32"):
        if value is not None:
            yield f"weights-{value!r}", with_header(a, header | {"weights": value})
    for value in ([], "trained", 5):
        yield f"info-{value!r}", with_header(a, header | {"info": value})
    raw = json.dumps(header).encode()
    cut = int(rng.integers(1, len(raw) - 1))
    for label, value in (("not-utf8", b"\xff\xfe" + raw), (f"json-cut-{cut}", raw[:cut]), ("nested", b"[" * 200_000),
                         ("empty", b""), ("nan", b"NaN"), ("json-junk", raw + b"}}")):
        yield f"header-{label}", with_header(a, value)
    yield "header-float32", a | {"header": a["header"].astype(np.float32)}
    yield "header-2d", a | {"header": a["header"][None]}
    yield "header-int16", a | {"header": a["header"].astype(np.int16)}
    g = header["geometry"]
    for field in ("seed_superpixels", "decoder_px", "output_pixels"):
        if field != "output_pixels" or "teacher_samples" in a:
            yield f"geometry-{field}+1", with_header(a, header | {"geometry": g | {field: g[field] + 1}})


LEGIT_DTYPES = {"w": ("float32", "float16", "int8"), "b": ("float16", "float32", "float64"),
                "decoder": ("float16", "float32", "float64"), "teacher": ("float16", "float32", "float64")}
DTYPES = ("float64", "float16", "float32", "complex64", "int32", "int16", "uint8", "bool", "object", "<U3")


def _legit(key: str, dtype: str, a: dict) -> bool:
    if key == "header":
        return dtype == "uint8"
    if key.endswith("_scale"):
        return dtype == "float32"
    if key.startswith("w"):
        return dtype in ("float32", "float16") and f"{key}_scale" not in a and header_of(a).get("weights") in (None, dtype)
    kind = "b" if key.startswith("b") else "decoder" if key.startswith("decoder") else "teacher"
    return dtype in LEGIT_DTYPES[kind]


def _astype(value: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "object":
        return value.astype(object)
    if dtype == "<U3":
        return value.astype("<U3")
    with np.errstate(all="ignore"):
        return value.astype(dtype)


def array_cases(a: dict, rng: np.random.Generator, limit: int | None = None) -> Iterator[Case]:
    keys = [k for k in a if k != "header"]
    if limit is not None:
        keys = list(rng.choice(keys, min(limit, len(keys)), replace=False))
    for key in keys:
        value = a[key]
        if key != "teacher_noise":     # a model without teacher noise is a good model
            yield f"drop-{key}", without(a, key)
        bad = [d for d in DTYPES if not _legit(key, d, a) and d != str(value.dtype)]
        for dtype in rng.choice(bad, 2, replace=False):
            yield f"dtype-{key}-{dtype}", a | {key: _astype(value, str(dtype))}
        shapes = [("row", value[:-1]), ("axis", value[None]), ("empty", value[:0])]
        if value.ndim >= 2:
            shapes += [("col", value[..., :-1]), ("flat", value.ravel())]
            if value.shape[-1] != value.shape[-2]:
                shapes.append(("transposed", np.swapaxes(value, -1, -2)))
        if value.ndim == 2 and value.shape[0] == 1:      # a scale: dropping its row leaves (0, n): same as "empty"
            shapes = [s for s in shapes if s[0] != "row"]
        for i in rng.choice(len(shapes), min(3, len(shapes)), replace=False):
            label, changed = shapes[i]
            yield f"shape-{key}-{label}", a | {key: np.ascontiguousarray(changed)}
        if value.dtype.kind == "f" and value.size:
            flat = value.copy().ravel()
            at = int(rng.integers(flat.size))
            for poison in (np.nan, np.inf, -np.inf):
                flat[at] = poison
                yield f"value-{key}-{poison}", a | {key: flat.reshape(value.shape)}
            with np.errstate(all="ignore"):
                huge = value * value.dtype.type(1e30) if np.abs(value).max() > 0 else np.full_like(value, 1e30)
            yield f"value-{key}-x1e30", a | {key: huge}
        if key.endswith("_scale"):
            for label, changed in (("zero", value * 0), ("negative", -value)):
                yield f"value-{key}-{label}", a | {key: changed}


def encoder_cases(a: dict) -> Iterator[Case]:
    """Finite weights of sane size that make an encoder whose seeds are garbage."""
    last = header_of(a)["layers"] - 1
    w, b = f"w{last}", f"b{last}"
    flat = a | {w: np.zeros_like(a[w]), b: np.full_like(a[b], 0.25)}
    if f"{w}_scale" in a:
        flat = flat | {f"{w}_scale": np.full_like(a[f"{w}_scale"], 1e-3)}
    yield "encoder-constant", flat
    if a["w0"].dtype != np.int8:
        with np.errstate(all="ignore"):
            tiny = a | {"w0": (a["w0"] * 1e-12).astype(a["w0"].dtype)}
        if a["w0"].dtype == np.float32:
            yield "encoder-vanishing", tiny


def raw_cases(data: bytes, rng: np.random.Generator, cuts: int = 8) -> Iterator[Case]:
    for at in sorted(set(rng.integers(1, len(data) - 1, cuts).tolist())):
        yield f"truncated-{at}", data[:at]
    yield "truncated-end-record", data[:-1]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
    for info in [infos[int(i)] for i in rng.choice(len(infos), min(6, len(infos)), replace=False)]:
        start = data_start(data, info)
        if info.compress_size < 1:
            continue
        at = start + int(rng.integers(info.compress_size))
        flipped = bytearray(data)
        flipped[at] ^= int(rng.integers(1, 256))
        yield f"flipped-{info.filename}-{at}", bytes(flipped)
    # the last member's central directory entry: its sizes and flags
    at = data.rfind(b"PK\x01\x02")
    for label, offset, value in (("encrypted", 8, 1), ("method-lzma", 10, 14), ("size-down", 24, None)):
        changed = bytearray(data)
        if label == "encrypted":
            changed[at + offset] |= value
        elif label == "method-lzma":
            changed[at + offset:at + offset + 2] = (14).to_bytes(2, "little")
        elif int.from_bytes(changed[at + 24:at + 28], "little") != 0xFFFFFFFF:
            size = int.from_bytes(changed[at + 24:at + 28], "little")
            changed[at + 24:at + 28] = max(size - 64, 0).to_bytes(4, "little")
        else:
            continue
        yield f"directory-{label}", bytes(changed)


def member_cases(a: dict, rng: np.random.Generator) -> Iterator[Case]:
    """Archives made member by member: declared-huge arrays, corrupt .npy headers, odd archives."""
    members = members_of(a)
    keys = [k for k in a if k != "header"]
    for key in rng.choice(keys, 4, replace=False):
        shape = (10**12,) if rng.uniform() < 0.5 else (10**6,) * max(a[key].ndim, 1)
        members_huge = members | {f"{key}.npy": npy_bytes(shape, a[key].dtype.str, data=bytes(16))}
        yield f"huge-{key}", members_huge
    yield "huge-header", members | {"header.npy": npy_bytes((10**12,), "|u1", data=bytes(16))}
    key = str(rng.choice(keys))
    value = a[key]
    body = value.tobytes()
    for label, text in (
            ("negative", f"{{'descr': {value.dtype.str!r}, 'fortran_order': False, 'shape': (-1, {value.size}), }}"),
            ("unclosed", f"{{'descr': {value.dtype.str!r}, 'fortran_order': False, 'shape': {value.shape}"),
            ("descr", f"{{'descr': 'nonsense', 'fortran_order': False, 'shape': {value.shape}, }}"),
            ("keys", f"{{'descr': {value.dtype.str!r}, 'shape': {value.shape}, }}"),
            ("call", "__import__('os').system('true')"),
            ("nested", "(" * 3000 + ")" * 3000),
            ("object", f"{{'descr': '|O', 'fortran_order': False, 'shape': {value.shape}, }}"),
            ("bigger", f"{{'descr': {value.dtype.str!r}, 'fortran_order': False, 'shape': ({value.size + 1},), }}")):
        yield f"npy-{label}-{key}", members | {f"{key}.npy": npy_bytes((), header_text=text, data=body)}
    yield f"npy-version-{key}", members | {f"{key}.npy": b"\x93NUMPY\x03\x00" + members[f"{key}.npy"][8:]}
    yield f"npy-magic-{key}", members | {f"{key}.npy": b"\x89PNG" + members[f"{key}.npy"][4:]}
    yield f"npy-long-{key}", members | {f"{key}.npy": npy_bytes((3,), header_text=" " * 70_000, version=(2, 0))}
    yield f"npy-short-{key}", members | {f"{key}.npy": members[f"{key}.npy"][:-1]}
    yield f"npy-longer-{key}", members | {f"{key}.npy": members[f"{key}.npy"] + b"\0" * 4}
    yield "members-300", members | {f"x{i}.npy": b"" for i in range(300)}
    yield "members-spread-bomb", ("deflated", members | {f"x{i}.npy": bytes(2**19) for i in range(200)})
    yield "members-bzip2", ("bzip2", members)
    yield "members-lzma", ("lzma", members)
    yield "members-duplicate", ("duplicate", members)
    yield "members-header-without-npy", {k: v for k, v in members.items() if k != "header.npy"} | {
        "header": members["header.npy"], "header.npy": members["header.npy"]}


def not_archives(rng: np.random.Generator) -> Iterator[Case]:
    import gzip

    yield "empty", b""
    yield "text", b"this is not a model\n"
    yield "json", json.dumps({"format_version": 2}).encode()
    yield "npy", npy_of(np.zeros((4, 4), np.float32))
    for i in range(4):
        yield f"random-{i}", rng.bytes(int(rng.integers(10, 20_000)))
    yield "zip-prefix", b"PK\x03\x04" + rng.bytes(200)
    yield "end-record-only", b"PK\x05\x06" + bytes(18)
    yield "gzip", gzip.compress(b"x" * 1000)
    yield "empty-zip", write_members_bytes({})


def write_members_bytes(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _write_case(path: Path, payload, rng: np.random.Generator) -> None:
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    elif isinstance(payload, tuple):              # (how, members)
        how, members = payload
        if how == "duplicate":
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                write_members(path, members)
                with zipfile.ZipFile(path, "a") as zf:
                    zf.writestr("b0.npy", members["b0.npy"])
        else:
            write_members(path, members, {"deflated": zipfile.ZIP_DEFLATED, "bzip2": zipfile.ZIP_BZIP2,
                                          "lzma": zipfile.ZIP_LZMA}[how])
    elif all(isinstance(v, bytes) for v in payload.values()):
        write_members(path, payload, zipfile.ZIP_DEFLATED if rng.uniform() < 0.5 else zipfile.ZIP_STORED)
    else:
        write(path, payload, compressed=bool(rng.uniform() < 0.3))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[list[Path], list[Path]]:
    return make_corpus(tmp_path_factory.mktemp("model_fuzz"))


def make_corpus(folder: Path) -> tuple[list[Path], list[Path]]:
    """(bad files, the good files they were made from), written into ``folder``."""
    rng = np.random.default_rng(SEED)
    geom = small_geometry()
    model = good_model(geom)
    bases = {
        "tiny32": save_model(folder / "base-tiny32.npz", model),
        "tiny8": save_model(folder / "base-tiny8.npz", model, weights="int8"),
        "tiny16": save_model(folder / "base-tiny16.npz", model, weights="float16"),
        "rgb": save_model(folder / "base-rgb.npz", rgb_model(geom), weights="int8"),
    }
    cases: list[tuple[str, object]] = []
    for name, path in bases.items():
        a = arrays_of(path)
        cases += [(f"{name}-{label}", payload) for label, payload in header_cases(a, rng)]
        cases += [(f"{name}-{label}", payload) for label, payload in array_cases(a, rng)]
        cases += [(f"{name}-{label}", payload) for label, payload in encoder_cases(a)]
        cases += [(f"{name}-{label}", payload) for label, payload in member_cases(a, rng)]
        cases += [(f"{name}-{label}", payload) for label, payload in raw_cases(path.read_bytes(), rng)]
    for name in ("digits-v7", "digits-rgb-v3"):    # fewer: each file is 7 to 11 MB
        path = SHIPPED_DIR / f"{name}.npz"
        a = arrays_of(path)
        header = header_of(a)
        picked = list(header_cases(a, rng))
        cases += [(f"{name}-{picked[int(i)][0]}", picked[int(i)][1]) for i in rng.choice(len(picked), 8, replace=False)]
        cases += [(f"{name}-header-list", with_header(a, [header])), (f"{name}-no-name", with_header(
            a, {k: v for k, v in header.items() if k != "name"})), (f"{name}-layers-0", with_header(a, header | {"layers": 0}))]
        cases += [(f"{name}-{label}", payload) for label, payload in array_cases(a, rng, limit=2)]
        cases += [(f"{name}-{label}", payload) for label, payload in encoder_cases(a)]
        scaled = a | {f"w{i}_scale": a[f"w{i}_scale"] * np.float32(1e30) for i in range(header["layers"])}
        cases.append((f"{name}-weights-x1e30", scaled))
        cases += [(f"{name}-{label}", payload) for label, payload in raw_cases(path.read_bytes(), rng, cuts=3)]
        cases.append((f"{name}-decoder-complex", a | {k: v.astype(np.complex64) for k, v in a.items()
                                                      if k.startswith("decoder_")}))
    cases += [(f"file-{label}", payload) for label, payload in not_archives(rng)]
    cases.append(("zip-bomb", lambda path: write_zip_bomb(path, arrays_of(bases["tiny32"]))))
    bad, seen = [], set()
    for i, (label, payload) in enumerate(cases):
        path = folder / f"{i:04d}-{re.sub(r'[^A-Za-z0-9._+-]+', '_', label)[:60]}.npz"
        if callable(payload):
            payload(path)
        else:
            _write_case(path, payload, rng)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            path.unlink()
            continue
        seen.add(digest)
        bad.append(path)
    return bad, list(bases.values())


def test_the_corpus_is_made_of_good_models_that_load(corpus):
    _, good = corpus
    for path in good:
        load_model(path)


def test_every_bad_model_file_is_refused_with_a_model_file_error_naming_it(corpus):
    bad, _ = corpus
    assert len(bad) >= 200
    accepted, tracebacks, unnamed = [], [], []
    for path in bad:
        try:
            load_model(path)
        except ModelFileError as exc:
            if path.name not in str(exc) or "\n" in str(exc):
                unnamed.append(f"{path.name}: {exc}")
        except BaseException as exc:   # noqa: BLE001 - anything else is a failure to report
            tracebacks.append(f"{path.name}: {type(exc).__name__}: {exc}"[:300])
        else:
            accepted.append(path.name)
    assert tracebacks == [], f"{len(tracebacks)} files raised something other than ModelFileError"
    assert accepted == [], f"{len(accepted)} bad files accepted: {accepted}"
    assert unnamed == []


def test_the_zip_bomb_is_refused_in_little_memory(corpus):
    bad, _ = corpus
    bomb = next(p for p in bad if "zip-bomb" in p.name)
    with zipfile.ZipFile(bomb) as zf:
        assert sum(i.file_size for i in zf.infolist()) > 200e6 > 100 * bomb.stat().st_size
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="zip bomb"):
            load_model(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20
    assert peak < 20 * 2**20       # in fact: nothing was decompressed


# -- through the command line -------------------------------------------------------------------------


@pytest.mark.parametrize("colours", [False, True])
def test_optgen_run_on_a_bench_naming_a_bad_model_exits_2_before_any_device_opens(tmp_path, capsys, mocker, colours):
    from optgen.lab.bench.examples import rgb_bench_text
    from optgen.lab.cli import main

    changes = {("run", "seed_source"): '"model"', ("run", "decoder_phase"): '"model"', ("run", "model"): '"bad.npz"'}
    text = rgb_bench_text(changes, small=True) if colours else small_bench_text(changes)
    (tmp_path / "bench.toml").write_text(text)
    a = arrays_of(save_model(tmp_path / "good.npz", good_model()))
    write(tmp_path / "bad.npz", with_header(a, [header_of(a)]))
    build = mocker.patch("optgen.lab.bench.assemble.build_bench")
    build_colours = mocker.patch("optgen.lab.run.colour_run.build_bench")
    out = tmp_path / "run"
    argv = ["run", "--count", "2", "--out", str(out), "--bench", str(tmp_path / "bench.toml"), "--no-progress"]
    assert main(argv + (["--colours"] if colours else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("optgen run: error: ") and "Traceback" not in err
    assert "bad.npz: header: a JSON array; expected a JSON object" in err
    build.assert_not_called()
    build_colours.assert_not_called()
    assert not out.exists()
