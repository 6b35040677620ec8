"""The progress display of ``slim push`` and ``slim analyze``: on a terminal, a row per stage
and a row per layer in flight, each with bytes, speed and time left (drawn by rich, cleared
at the end); nothing at all when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, TextIO

from slimmer.units import format_duration, format_size

if TYPE_CHECKING:
    from rich.progress import Progress as Bars
    from rich.progress import TaskID

STAGES = {"scan": "scan", "build": "build"}


def _columns() -> list[Any]:
    """Bytes, speed and time left in the project's units (``slimmer.units``)."""
    from rich.progress import BarColumn, ProgressColumn, Task, TextColumn
    from rich.table import Column
    from rich.text import Text

    class BytesColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{format_size(int(task.completed))} / {format_size(int(task.total or 0))}")

    class SpeedColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{format_size(int(speed))}/s")

    class LeftColumn(ProgressColumn):
        max_refresh = 0.5

        def render(self, task: Task) -> Text:
            left = task.time_remaining
            return Text("" if left is None or task.finished else f"{format_duration(left)} left")

    def fixed() -> Column:
        return Column(no_wrap=True)

    return [TextColumn("{task.description}", table_column=fixed()), BarColumn(bar_width=20),
            BytesColumn(table_column=fixed()), SpeedColumn(table_column=fixed()),
            LeftColumn(table_column=fixed())]


class Progress:
    """A ``slimmer.api.LayerProgress`` for the terminal. Stage rows add up their layers'
    bytes; a layer's row shows while it is in flight. ``stream`` defaults to stderr;
    ``force`` draws even when it is not a terminal and ``clock`` replaces the monotonic
    clock speeds are measured with (tests)."""

    def __init__(self, stream: TextIO | None = None, force: bool = False,
                 clock: Callable[[], float] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = force or self._stream.isatty()
        self._force = force
        self._clock = clock
        self._bars: Bars | None = None
        self._stages: dict[str, TaskID] = {}
        self._layers: dict[tuple[str, str], TaskID] = {}
        self._done: dict[tuple[str, str], int] = {}
        self._finished: set[tuple[str, str]] = set()
        self._totals: dict[str, int] = {}
        self._counts: dict[str, str] = {}

    def _start(self) -> Bars:
        if self._bars is None:
            from rich.console import Console
            from rich.progress import Progress as Bars
            console = Console(file=self._stream, force_terminal=True if self._force else None,
                              stderr=self._stream is sys.stderr)
            self._bars = Bars(*_columns(), console=console, transient=True,
                              refresh_per_second=5, get_time=self._clock)
            self._bars.start()
        return self._bars

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Whole-stage counts: the scan's layers done show in its row's name."""
        if not self.enabled or stage != "scan":
            return
        self._counts[stage] = f"{done} of {total} layers"
        if stage in self._stages:
            self._start().update(self._stages[stage], description=self._title(stage))

    def _title(self, stage: str) -> str:
        count = self._counts.get(stage)
        return STAGES.get(stage, stage) + (f" ({count})" if count else "")

    def layer(self, stage: str, name: str, done: int, total: int) -> None:
        """One layer's bytes: a row while it is in flight, added to its stage's row."""
        if not self.enabled:
            return
        bars = self._start()
        if stage not in self._stages:
            self._stages[stage] = bars.add_task(self._title(stage), total=0)
        stage_task = self._stages[stage]
        key = (stage, name)
        task = self._layers.get(key)
        if task is None:
            task = self._layers[key] = bars.add_task(f"  {name}", total=total, visible=False)
            self._done[key] = 0
            self._totals[stage] = self._totals.get(stage, 0) + total
            bars.update(stage_task, total=self._totals[stage])
        elif key in self._finished:
            return
        bars.update(stage_task, advance=done - self._done[key])
        self._done[key] = done
        if done >= total:
            bars.remove_task(task)
            self._finished.add(key)
        else:
            bars.update(task, completed=done, visible=done > 0)

    def close(self) -> None:
        """Stop drawing and clear the rows (also after an error or Ctrl-C)."""
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
