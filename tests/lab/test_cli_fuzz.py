"""The command line refuses every bad invocation in one line that names the option, file or key,
with exit code 2, and never shows a traceback: bad options and values, missing and unwritable
paths, bad files, a broken pipe, Ctrl-C while starting."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optgen.lab.cli import main

from ..conftest import small_bench_text

ROOT = Path(__file__).resolve().parents[2]


def files(folder: Path) -> dict[str, Path]:
    """Bad and good files the invocations name (made fresh in each test's folder)."""
    made = {
        "bench": ("bench.toml", small_bench_text()),
        "empty": ("empty.toml", ""),
        "garbage": ("garbage.toml", "\x00\x01\x02 not toml [[["),
        "not_toml": ("not_toml.toml", "this is = = not toml\n"),
        "unknown_key": ("unknown.toml", small_bench_text() + "\n[laser2]\npower_mw = 1\n"),
        "bad_value": ("bad_value.toml", small_bench_text({("laser", "power_mw"): '"lots"'})),
        "negative": ("negative.toml", small_bench_text({("geometry", "d1_mm"): "-5"})),
        "model_garbage": ("model.npz", "not a zip file"),
        "plain_file": ("plain.txt", "a file, not a folder"),
        "not_a_run": ("not_a_run/notes.txt", "no run.h5 here"),
    }
    out = {}
    for key, (name, text) in made.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        out[key] = path
    out["binary"] = folder / "binary.toml"
    out["binary"].write_bytes(bytes(range(256)) * 4)
    out["folder"] = folder / "a_folder"
    out["folder"].mkdir()
    return out


def invocations(f: dict[str, Path]) -> list[tuple[list[str], str]]:
    """(argv, a word the one-line error must contain)."""
    missing = "/nonexistent/optgen-fuzz"
    under_file = str(f["plain_file"] / "child")                     # a path under a file: unwritable
    bench = str(f["bench"])
    cases: list[tuple[list[str], str]] = [
        ([], "COMMAND"),
        (["nonsense"], "nonsense"),
        (["--frobnicate", "run"], "frobnicate"),
    ]
    for cmd in (["run"], ["status", "x"], ["calibrate", "lut"], ["train", "--out", "t"], ["refine", "--out", "r"],
                ["devices"], ["evaluate", "x"], ["config"]):
        cases.append(([*cmd, "--no-such-option"], "--no-such-option"))
    # run: values
    for args, word in (
            (["--count", "abc"], "--count"), (["--count", "0"], "--count"), (["--count", "-3"], "--count"),
            (["--count", "1.5"], "--count"), (["--count", "5"], "--out"), (["--out", "x"], "--count"),
            (["--count", "2", "--out", "o", "--seed", "-1"], "--seed"),
            (["--count", "2", "--out", "o", "--seed", str(2**70)], "--seed"),
            (["--count", "2", "--out", "o", "--seed", "x"], "--seed"),
            (["--count", "2", "--out", "o", "--retries", "-1"], "--retries"),
            (["--count", "2", "--out", "o", "--sync", "sometimes"], "--sync"),
            (["--resume", missing], "optgen-fuzz"),
            (["--resume", str(f["not_a_run"].parent)], "not_a_run"),
            (["--resume", str(f["plain_file"])], "plain.txt"),
            (["--resume", str(f["folder"]), "--count", "3"], "--count"),
            (["--count", "2", "--out", under_file], "plain.txt"),
            (["--count", "2", "--out", str(f["plain_file"])], "plain.txt"),
            (["--count", "2", "--out", str(f["not_a_run"].parent)], "not_a_run"),
            (["--count", "2", "--out", "o", "--calibrations", str(f["plain_file"])], "plain.txt"),
            (["--count", "2", "--out", "o", "--bench", missing], "optgen-fuzz"),
            (["--count", "10000000", "--out", "o", "--bench", bench], "disk"),
    ):
        cases.append((["run", *args], word))
    # every command that reads a bench file, with each bad bench file
    for key in ("empty", "garbage", "not_toml", "unknown_key", "bad_value", "negative", "binary", "folder"):
        path = str(f[key])
        name = Path(path).name
        cases += [
            (["run", "--count", "2", "--out", "o", "--bench", path], name),
            (["calibrate", "all", "--bench", path], name),
            (["devices", "--bench", path], name),
            (["config", "--check", path], name),
            (["refine", "--out", "r", "--bench", path], name),
        ]
    # status and evaluate
    for cmd in ("status", "evaluate"):
        cases += [([cmd, missing], "optgen-fuzz"), ([cmd, str(f["plain_file"])], "plain.txt"),
                  ([cmd, str(f["not_a_run"].parent)], "not_a_run"), ([cmd], "run")]
    # calibrate
    cases += [
        (["calibrate"], "what"), (["calibrate", "everything"], "everything"),
        (["calibrate", "lut", "--rounds", "0", "--bench", bench], "--rounds"),
        (["calibrate", "lut", "--rounds", "x"], "--rounds"),
        (["calibrate", "lut", "--bench", missing], "optgen-fuzz"),
        (["calibrate", "lut", "--bench", bench, "--colour", "450"], "450"),
        (["calibrate", "camera", "--bench", bench, "--store", under_file], "plain.txt"),
        (["calibrate", "camera", "--bench", bench, "--store", str(f["plain_file"])], "plain.txt"),
        (["calibrate", "check", "--bench", bench, "--json", under_file], "plain.txt"),
    ]
    # train
    cases += [
        (["train", "--out", "t", "--steps", "-5"], "--steps"),
        (["train", "--out", "t", "--steps", "x"], "--steps"),
        (["train", "--out", "t", "--minutes", "-1"], "--minutes"),
        (["train", "--out", "t", "--batch", "0"], "--batch"),
        (["train", "--out", "t", "--from", str(f["model_garbage"]), "--measured-optics"], "model.npz"),
        (["train", "--out", "t", "--from", missing, "--measured-optics"], "optgen-fuzz"),
        (["train", "--out", "t", "--from", "digits-v7"], "--measured-optics"),
        (["train", "--out", under_file, "--steps", "1"], "plain.txt"),
    ]
    # refine
    cases += [
        (["refine"], "--out"),
        (["refine", "--out", "r", "--frames", "0", "--bench", bench], "--frames"),
        (["refine", "--out", "r", "--frames", "x"], "--frames"),
        (["refine", "--out", "r", "--batch", "-2", "--bench", bench], "--batch"),
        (["refine", "--out", "r", "--minutes", "-1", "--bench", bench], "--minutes"),
        (["refine", "--out", "r", "--model", missing, "--bench", bench], "optgen-fuzz"),
        (["refine", "--out", "r", "--model", str(f["model_garbage"]), "--bench", bench], "model.npz"),
        (["refine", "--out", "r", "--name", "../escape", "--bench", bench], "name"),
        (["refine", "--out", under_file, "--bench", bench], "plain.txt"),
    ]
    # config
    cases += [
        (["config", "--dump", under_file], "plain.txt"),
        (["config", "--dump", f"{missing}/bench.toml"], "optgen-fuzz"),
        (["config", "--dump", str(f["bench"])], "bench.toml"),                # never overwrites
        (["config", "--dump", str(f["folder"])], "a_folder"),
        (["config", "--check", missing], "optgen-fuzz"),
        (["config", "--check"], "--check"),
        (["config", "--check", str(f["model_garbage"])], "model.npz"),
        (["config", "--dump", "x.toml", "--colours", "--realistic"], "--colours"),
        (["config"], "--dump"),
    ]
    # live and show
    cases += [
        (["live", "--port", "-1"], "--port"),
        (["live", "--port", "x"], "--port"),
        (["live", "--port", "70000"], "--port"),
        (["live", "--lease", "0"], "--lease"),
        (["live", "--minutes", "-1"], "--minutes"),
        (["live", "--bench", missing], "optgen-fuzz"),
        (["live", "--bench", str(f["garbage"])], "garbage.toml"),
        (["live", "--bench", str(f["bad_value"])], "power_mw"),
        (["live", "--bench", bench, "--calibrations", str(f["plain_file"])], "plain.txt"),
        (["show"], "run"),
        (["show", missing], "optgen-fuzz"),
        (["show", str(f["plain_file"])], "plain.txt"),
        (["show", str(f["not_a_run"].parent)], "not_a_run"),
        (["show", str(f["folder"]), "--port", "65536"], "--port"),
    ]
    # queue-server (checked before the manager starts)
    cases += [
        (["queue-server", "--bench", missing], "optgen-fuzz"),
        (["queue-server", "--bench", str(f["garbage"])], "garbage.toml"),
        (["queue-server", "--bench", bench, "--redis", "localhost"], "--redis"),
        (["queue-server", "--bench", bench, "--control-port", "6000", "--info-port", "6000"], "--info-port"),
        (["queue-server", "--bench", bench, "--control-port", "99999"], "--control-port"),
    ]
    # devices
    cases += [
        (["devices", "--bench", missing], "optgen-fuzz"),
        (["devices", "--probe", "--cti", missing], "optgen-fuzz"),
        (["devices", "--probe", "--cti", str(f["plain_file"])], "plain.txt"),
    ]
    return cases


def test_over_a_hundred_bad_invocations_each_end_in_one_line_without_a_traceback(tmp_path, capsys):
    cases = invocations(files(tmp_path))
    assert len(cases) >= 100
    problems = []
    for argv, word in cases:
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exc:                       # argparse's own refusals
            code = exc.code
        except BaseException as exc:  # noqa: BLE001 - what the user would have seen as a traceback
            problems.append(f"{argv}: raised {type(exc).__name__}: {exc}")
            continue
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("usage:")
                 and not line.startswith(" ")]
        if code != 2:
            problems.append(f"{argv}: exit {code}, expected 2; stderr {err!r}")
        elif "Traceback" in err:
            problems.append(f"{argv}: a traceback: {err!r}")
        elif not lines or word.lower() not in lines[-1].lower():
            problems.append(f"{argv}: the error does not name {word!r}: {err!r}")
        elif len([line for line in lines if "error" in line.lower()]) != 1:
            problems.append(f"{argv}: more than one error line: {err!r}")
    assert not problems, "\n".join(problems)


def optgen_process(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": ""}
    return subprocess.Popen([sys.executable, "-m", "optgen.lab.cli", *args], env=env, **kwargs)


def test_a_process_started_with_ctrl_c_ignored_never_ignores_it_between_start_and_the_command(tmp_path):
    """A background job of a script starts with SIGINT ignored; the start-up must not hand that back
    for the moment before the command's own handlers are in (a Ctrl-C there was lost: the run went on)."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    seen = []
    try:
        import optgen.lab.cli.command_line as command_line

        real = command_line.main

        def spy(argv=None):
            seen.append(signal.getsignal(signal.SIGINT))
            return real(argv)

        command_line.main = spy
        try:
            assert main(["config", "--dump", str(tmp_path / "bench.toml")]) == 0
        finally:
            command_line.main = real
    finally:
        signal.signal(signal.SIGINT, before)
    assert seen == [signal.default_int_handler]


def test_a_broken_pipe_ends_quietly(tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    assert main(["run", "--count", "2", "--out", str(tmp_path / "run"), "--bench", str(bench), "--no-progress"]) == 0
    for args in (["status", str(tmp_path / "run")], ["config", "--dump"], ["--help"]):
        reader = subprocess.Popen(["head", "-c", "5"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        writer = optgen_process(*args, stdout=reader.stdin, stderr=subprocess.PIPE, cwd=tmp_path)
        reader.stdin.close()
        _, err = writer.communicate(timeout=120)
        reader.wait(timeout=30)
        assert b"Traceback" not in err and b"BrokenPipe" not in err, (args, err)
        assert writer.returncode in (0, 1), (args, writer.returncode, err)


@pytest.mark.parametrize("delay_s", [0.05, 0.15, 0.3, 0.6])
def test_ctrl_c_while_starting_exits_130_without_a_traceback(tmp_path, delay_s):
    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    delay = delay_s
    for _ in range(4):
        proc = optgen_process("run", "--count", "400", "--out", "run", "--bench", str(bench), "--no-progress",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        time.sleep(delay)                               # importing, parsing, opening the bench, or running
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        # on a loaded machine 50 ms may still be Python's own start-up, before optgen's first line
        # could act (the traceback then has no frame of the command line): that trial says nothing,
        # and the next waits twice as long (a CI run with other work beside it hit start-up 3 times)
        if not (b"Traceback" in err and b"command_line.py" not in err):
            break
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        delay *= 2
    assert b"Traceback" not in err, err
    # 130, or ended by SIGINT itself (a shell shows 130 for both): in about 1 of 80 trials at 0.1-0.4 s
    # optgen prints its message and returns 130 with nothing escaping (checked), and the interpreter
    # still ends the process by SIGINT as it exits; the cause inside CPython is not pinned down
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err)
    assert b"interrupted" in err
