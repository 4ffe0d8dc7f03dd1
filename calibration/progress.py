"""How far a long command got: the stage, the count within it, and the time left.

:class:`StageProgress` serves every long command (``optgen train``, ``optgen evaluate``): the
command says when each stage starts (with how many items it will take, when known) and ends, and
counts the items done; ``show`` gets a :class:`ProgressLine` each time there is news. The time left
is this stage's rate so far times what is left of it, or what is left of a time budget when that
comes first.

:class:`CalibrationProgress` is its calibration form: ``calibrate`` tells it when each step starts
and ends, and the session tells it of every pattern shown. How many patterns a step shows depends
on the bench (bit depth, rounds, retakes), so the estimate of what is left comes from the last
calibration of the same store: each successful step's patterns and seconds are kept in
``progress.json`` there. The first calibration of a store shows counts and elapsed time only.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["CalibrationProgress", "ProgressLine", "StageProgress", "StepHistory"]

HISTORY_FILE = "progress.json"


class ProgressLine(str):
    """A line of progress. ``kind`` says what it is: ``"start"`` (a stage began), ``"count"`` (how
    far the stage got: a console redraws these in place), ``"end"`` (a stage finished) or ``"note"``."""

    kind: str = "note"

    def __new__(cls, text: str, kind: str = "note") -> "ProgressLine":
        line = super().__new__(cls, text)
        line.kind = kind
        return line


class StageProgress:
    """Receives the stages of a long command and the items each one has done; ``line()`` says
    where it stands, e.g. ``train student (stage 3 of 3): step 1200 of 15000, 4.1 min, about 47 min left``.

    ``command``: the first word of every line. ``stages``: the stages in order (``plan`` may set
    them later), for the "stage k of n". ``show``: called with a :class:`ProgressLine` each time
    there is news (a count at most every ``interval_s``; each stage's start and end always); None
    keeps quiet, so a command can always be given one. ``clock``: seconds, monotonic."""

    word = "stage"

    def __init__(self, command: str, stages: tuple[str, ...] = (), show: Callable[[str], None] | None = None,
                 interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.command = command
        self.stages = tuple(stages)
        self.show = show
        self.interval_s = interval_s
        self.clock = clock
        self.stage: str | None = None
        self.index = 0
        self.unit = "item"
        self.done = 0                    # items done in this stage (counting any done before a resume)
        self.total: int | None = None    # items the stage takes, when known
        self._first = 0                  # items done when this stage started (a resumed stage)
        self._open = False
        self._budget: tuple[float, float] | None = None      # (seconds, from when)
        self._stage_started = self._last_shown = clock()

    def plan(self, stages: tuple[str, ...]) -> None:
        """The stages this run of the command will go through (for "stage k of n")."""
        self.stages = tuple(stages)

    def budget(self, seconds: float) -> None:
        """The command stops after ``seconds`` from now: the time left never says more than that."""
        self._budget = (float(seconds), self.clock())

    def start(self, stage: str, total: int | None = None, unit: str = "item", done: int = 0) -> None:
        """Stage ``stage`` begins: ``total`` items of ``unit`` (None: not known), ``done`` of them already."""
        self.stage, self.total, self.unit = stage, total, unit
        self.done = self._first = int(done)
        self.index = self.stages.index(stage) + 1 if stage in self.stages else self.index + 1
        self._stage_started = self.clock()
        self._open = True
        self._say("start", force=True)

    def advance(self, count: int = 1) -> None:
        """``count`` more items done."""
        self.done += count
        self._say("count")

    def end(self, ok: bool = True) -> None:
        """The stage finished (``ok``) or stopped; said once, however often called."""
        if not self._open:
            return
        self._open = False
        if self.show is not None and self.stage is not None:
            units = self.unit if self.done == 1 else self.unit + "s"
            self.show(ProgressLine(f"{self.command} {self.stage}: {'done' if ok else 'stopped'} after "
                                   f"{self.done} {units}, {_duration(self.clock() - self._stage_started)}", "end"))

    @contextmanager
    def stage_of(self, stage: str, total: int | None = None, unit: str = "item", done: int = 0) -> Iterator["StageProgress"]:
        """``start`` now, ``end`` on leaving: done, or stopped when an exception leaves (and goes on)."""
        self.start(stage, total, unit, done)
        try:
            yield self
        except BaseException:
            self.end(False)
            raise
        self.end(True)

    def expected(self) -> tuple[int, bool] | None:
        """(items this stage takes, whether that is an estimate), or None when not known."""
        return (self.total, False) if self.total is not None else None

    def seconds_left(self) -> float | None:
        """This stage's rate so far times the items left of it (None before the first item, or
        without a total)."""
        expected = self.expected()
        counted = self.done - self._first
        if self.stage is None or expected is None or counted <= 0:
            return None
        return (self.clock() - self._stage_started) / counted * max(expected[0] - self.done, 0)

    def line(self) -> str:
        elapsed = self.clock() - self._stage_started
        expected = self.expected()
        of = f" of {'~' if expected[1] else ''}{expected[0]}" if expected else ""
        where = f" ({self.word} {self.index} of {len(self.stages)})" if self.stages else ""
        return (f"{self.command} {self.stage}{where}: {self.unit} {self.done}{of}, {_duration(elapsed)}"
                f"{self._time_left()}")

    def _time_left(self) -> str:
        left = self.seconds_left()
        if self._budget is not None:
            budget, since = self._budget
            budget_left = max(budget - (self.clock() - since), 0.0)
            if left is None or budget_left < left:
                return f", {_duration(budget_left)} left of the {_duration(budget)} budget"
        return f", about {_duration(left)} left" if left is not None else ""

    def _say(self, kind: str, force: bool = False) -> None:
        if self.show is None:
            return
        now = self.clock()
        if force or now - self._last_shown >= self.interval_s:
            self._last_shown = now
            self.show(ProgressLine(self.line(), kind))


class StepHistory:
    """Per step, the patterns and seconds of the last successful run (``progress.json`` of a store)."""

    def __init__(self, folder: Path | None):
        self.path = Path(folder) / HISTORY_FILE if folder is not None else None
        self.steps: dict[str, dict] = {}
        if self.path is not None and self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = {}                       # an estimate only: a damaged file is started afresh
            if isinstance(loaded, dict):
                self.steps = {k: v for k, v in loaded.items() if isinstance(v, dict)
                              and isinstance(v.get("patterns"), int) and isinstance(v.get("seconds"), (int, float))}

    def expected(self, step: str) -> tuple[int, float] | None:
        entry = self.steps.get(step)
        return (int(entry["patterns"]), float(entry["seconds"])) if entry else None

    def record(self, step: str, patterns: int, seconds: float) -> None:
        self.steps[step] = {"patterns": int(patterns), "seconds": round(float(seconds), 3)}
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.steps, indent=1) + "\n", encoding="utf-8")
        except OSError:
            pass                                  # the estimate is a convenience; the calibration is stored


class CalibrationProgress(StageProgress):
    """Receives the steps and patterns of a calibration; ``line()`` says where it stands.

    ``show``: called with a line each time there is news (at most every ``interval_s``, and at each
    step's start and end); None to keep quiet. Subclass or pass ``show`` for a console, a log or a GUI.
    The patterns a step takes, and the time left, come from ``history`` (the last calibration's)."""

    word = "step"

    def __init__(self, steps: tuple[str, ...], history: StepHistory | None = None, show=None,
                 interval_s: float = 1.0, clock=time.monotonic):
        super().__init__("calibrate", steps, show, interval_s, clock)
        self.history = history or StepHistory(None)

    @property
    def steps(self) -> tuple[str, ...]:
        return self.stages

    @property
    def step(self) -> str | None:
        return self.stage

    @property
    def patterns(self) -> int:
        """Patterns shown in this step."""
        return self.done

    def start_step(self, step: str) -> None:
        self.start(step, unit="pattern")

    def pattern(self, count: int = 1) -> None:
        self.advance(count)

    def end_step(self, ok: bool) -> None:
        if ok and self._open and self.step is not None:
            self.history.record(self.step, self.patterns, self.clock() - self._stage_started)
        self.end(ok)

    def expected(self) -> tuple[int, bool] | None:
        entry = self.history.expected(self.step) if self.step else None
        return (entry[0], True) if entry else None

    def seconds_left(self) -> float | None:
        """The estimate for the rest of this step and the steps after it (None without history)."""
        if self.step is None:
            return None
        elapsed = self.clock() - self._stage_started
        expected = self.history.expected(self.step)
        if expected is None:
            return None
        patterns, seconds = expected
        if patterns > 0 and self.patterns > 0:
            rate = elapsed / self.patterns                       # this bench today
            left = max(patterns - self.patterns, 0) * rate
        else:
            left = max(seconds - elapsed, 0.0)
        later = self.steps[self.index:] if self.step in self.steps else ()
        for step in later:
            after = self.history.expected(step)
            if after is None:
                return None
            left += after[1]
        return left


def _duration(seconds: float) -> str:
    """Seconds in words: "42 s", "3.5 min", "2.1 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"
