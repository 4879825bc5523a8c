"""A Rich progress bar on stderr, in bytes read from the inputs (compressed bytes for
compressed input), with throughput and time left; only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class ProgressBar:
    """``progress(read, total)`` callable for ``scan`` and ``run_scan``; a context manager."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("scanning"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=stream or sys.stderr),
            transient=True,
            refresh_per_second=5,
            # Hits stream to stdout during the scan: never into the bar's console (stderr).
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._progress.add_task("scan", total=None)
        self._last = 0.0

    def __call__(self, read: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and (total is None or read < total):
            return
        self._last = now
        self._progress.update(self._task, completed=read, total=total)

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()
