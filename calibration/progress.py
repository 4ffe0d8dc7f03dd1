"""How far a calibration got: the step, the patterns shown, and the time left.

``calibrate`` tells a :class:`CalibrationProgress` when each step starts and ends, and the
session tells it of every pattern shown. How many patterns a step shows depends on the bench (bit
depth, rounds, retakes), so the estimate of what is left comes from the last calibration of the
same store: each successful step's patterns and seconds are kept in ``progress.json`` there. The
first calibration of a store shows counts and elapsed time only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["CalibrationProgress", "StepHistory"]

HISTORY_FILE = "progress.json"


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


class CalibrationProgress:
    """Receives the steps and patterns of a calibration; ``line()`` says where it stands.

    ``show``: called with a line each time there is news (at most every ``interval_s``, and at each
    step's start and end); None to keep quiet. Subclass or pass ``show`` for a console, a log or a GUI."""

    def __init__(self, steps: tuple[str, ...], history: StepHistory | None = None, show=None,
                 interval_s: float = 1.0, clock=time.monotonic):
        self.steps = steps
        self.history = history or StepHistory(None)
        self.show = show
        self.interval_s = interval_s
        self.clock = clock
        self.step: str | None = None
        self.index = 0
        self.patterns = 0                # in this step
        self._step_started = self._last_shown = clock()

    def start_step(self, step: str) -> None:
        self.step, self.patterns = step, 0
        self.index = self.steps.index(step) + 1 if step in self.steps else self.index + 1
        self._step_started = self.clock()
        self._say(force=True)

    def pattern(self, count: int = 1) -> None:
        self.patterns += count
        self._say()

    def end_step(self, ok: bool) -> None:
        if ok and self.step is not None:
            self.history.record(self.step, self.patterns, self.clock() - self._step_started)
        if self.show is not None and self.step is not None:
            self.show(f"calibrate {self.step}: {'done' if ok else 'stopped'} after {self.patterns} patterns, "
                      f"{self.clock() - self._step_started:.0f} s")

    def seconds_left(self) -> float | None:
        """The estimate for the rest of this step and the steps after it (None without history)."""
        if self.step is None:
            return None
        elapsed = self.clock() - self._step_started
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

    def line(self) -> str:
        elapsed = self.clock() - self._step_started
        expected = self.history.expected(self.step) if self.step else None
        of = f" of ~{expected[0]}" if expected else ""
        left = self.seconds_left()
        time_left = f", about {_duration(left)} left" if left is not None else ""
        return (f"calibrate {self.step} (step {self.index} of {len(self.steps)}): pattern {self.patterns}{of}, "
                f"{elapsed:.0f} s{time_left}")

    def _say(self, force: bool = False) -> None:
        if self.show is None:
            return
        now = self.clock()
        if force or now - self._last_shown >= self.interval_s:
            self._last_shown = now
            self.show(self.line())


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
