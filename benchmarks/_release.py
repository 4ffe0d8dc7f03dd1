"""Measure another commit of optgen (the last release, by default) in the same run as today's.

The commit's source is taken out of git with ``git archive`` into a temporary folder (nothing is
added to the repository: no worktree to prune, and a killed run leaves at most a temporary
folder), and an import tree is built for it without installing anything: the package layout of
that commit's pyproject.toml (``[tool.setuptools.package-dir]``: optgen -> lab/optgen,
optgen.drivers -> drivers, ...) is laid out as an ``optgen/`` package of symbolic links. A
benchmark script then runs there in a subprocess with PYTHONPATH set to the tree, in this same
Python environment (the dependencies are today's; the code measured is the commit's): once, its
figures one JSON object on its last line of stdout (:func:`run_json`), or kept running and asked
figure by figure (:class:`Worker`), in turn with one on the checkout.

    with materialised("1a94942") as tree, Worker(argv) as today, Worker(argv, tree) as then:
        a, b = today.ask({"figure": "propagation_ms"}), then.ask({"figure": "propagation_ms"})

The last release is named in benchmarks/last_release.toml (the project has no git tags yet).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import subprocess
import tarfile
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAST_RELEASE = Path(__file__).resolve().with_name("last_release.toml")


class ReleaseUnavailable(RuntimeError):
    """The commit cannot be measured here (no git, not a clone, a shallow clone without it, a
    layout this helper cannot lay out, or its benchmark run failed); the message says which."""


@dataclass(frozen=True)
class Release:
    version: str
    commit: str


def last_release(path: Path = LAST_RELEASE) -> Release:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return Release(str(data["version"]), str(data["commit"]))


def _git(*args: str, binary: bool = False) -> str | bytes:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False, timeout=120)
    except FileNotFoundError as exc:
        raise ReleaseUnavailable("git is not installed") from exc
    if done.returncode != 0:
        raise ReleaseUnavailable(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout if binary else done.stdout.decode().strip()


def resolve(rev: str) -> str:
    """The full hash of ``rev`` in this clone (ReleaseUnavailable if it has no such commit)."""
    return _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")


def extract(rev: str, dest: Path) -> Path:
    """Write the source of commit ``rev`` into ``dest`` (created); returns ``dest``."""
    commit = resolve(rev)
    data = _git("archive", "--format=tar", commit, binary=True)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        if hasattr(tarfile, "data_filter"):      # Python 3.11.4 on
            tar.extractall(dest, filter="data")
        else:                                   # pragma: no cover - git's own archive of this repository
            tar.extractall(dest)
    return dest


def build_import_tree(src: Path, dest: Path) -> Path:
    """An import tree at ``dest`` for the source at ``src``, laid out as its pyproject.toml maps
    packages onto folders: the top package a folder of links to its files, each sub-package a
    link to its folder. Put ``dest`` on PYTHONPATH. Returns ``dest``."""
    try:
        mapping = tomllib.loads((src / "pyproject.toml").read_text(encoding="utf-8"))[
            "tool"]["setuptools"]["package-dir"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseUnavailable(f"{src.name}: no [tool.setuptools.package-dir] in pyproject.toml ({exc})") from exc
    dest.mkdir(parents=True, exist_ok=True)
    for name, folder in sorted(mapping.items(), key=lambda item: item[0].count(".")):
        if not name:
            raise ReleaseUnavailable("a root package-dir ('' = ...) is not laid out by this helper")
        origin = src / folder
        target = dest.joinpath(*name.split("."))
        if "." not in name:                     # the top package: its own folder, its files linked
            target.mkdir(parents=True, exist_ok=True)
            for entry in origin.iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
            continue
        if not target.parent.is_dir():
            raise ReleaseUnavailable(f"package {name}: its parent package is not laid out")
        if target.is_symlink() or target.exists():
            target.unlink()                     # a same-named entry of the parent folder gives way
        target.symlink_to(origin, target_is_directory=True)
    return dest


@contextlib.contextmanager
def materialised(rev: str) -> Iterator[Path]:
    """The import tree of commit ``rev`` in a temporary folder, removed on leaving (also after an
    exception or Ctrl-C)."""
    with tempfile.TemporaryDirectory(prefix="optgen-release-") as tmp:
        src = extract(rev, Path(tmp) / "src")
        yield build_import_tree(src, Path(tmp) / "tree")


def run_json(tree: Path, argv: list[str], *, timeout: float | None = 1800, cwd: str | Path | None = None) -> dict:
    """Run ``argv`` with ``tree`` first on PYTHONPATH; returns the JSON object its stdout ends
    with. Its stderr (progress) passes through. A non-zero exit raises ReleaseUnavailable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ReleaseUnavailable(f"{Path(argv[min(1, len(argv) - 1)]).name} exited {done.returncode}:\n{tail}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise ReleaseUnavailable(f"no JSON figures on stdout: {done.stdout[-500:]!r}")
    result = json.loads(lines[-1])
    source = result.get("optgen") if isinstance(result, dict) else None
    if source is not None and not Path(source).is_relative_to(tree):
        raise ReleaseUnavailable(f"optgen came from {source}, not from the commit's tree {tree}")
    return result


class Worker:
    """A script kept running, on the import tree ``tree`` (None: on the checkout, as installed),
    that answers one JSON request per line of stdin with one JSON line on stdout. Two of them, one
    per commit, asked in turn (A B B A), see the same load on a shared machine: one commit measured
    after the other would not. Its stderr goes to a temporary file, quoted when it fails."""

    def __init__(self, argv: list[str], tree: Path | None = None, *, cwd: str | Path | None = None):
        self.tree = tree
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, text=True, bufsize=1)

    def ask(self, request: dict, timeout: float = 900) -> dict:
        """The reply to ``request`` (ReleaseUnavailable if the script died, did not answer within
        ``timeout`` seconds, or answered with figures from outside its tree)."""
        try:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ReleaseUnavailable(f"the benchmark process ended: {self._tail()}") from exc
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        if not ready:
            raise ReleaseUnavailable(f"no answer in {timeout:g} s to {request}")
        line = self._process.stdout.readline()
        if not line:
            raise ReleaseUnavailable(f"the benchmark process ended: {self._tail()}")
        reply = json.loads(line)
        source = reply.get("optgen")
        if self.tree is not None and source is not None and not Path(source).is_relative_to(self.tree):
            raise ReleaseUnavailable(f"optgen came from {source}, not from the commit's tree {self.tree}")
        return reply

    def _tail(self) -> str:
        self._stderr.seek(0)
        return "\n".join(self._stderr.read().strip().splitlines()[-5:])

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._stderr.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def measure(rev: str, argv: list[str], **kwargs) -> dict:
    """:func:`run_json` on the import tree of commit ``rev``, cleaned up afterwards."""
    with materialised(rev) as tree:
        return run_json(tree, argv, **kwargs)


def exit_cleanly_on_sigterm() -> None:
    """A SIGTERM ends the process as Ctrl-C does, so the temporary tree is removed."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
