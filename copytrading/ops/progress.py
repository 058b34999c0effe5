"""Progress of a long management command, on stderr (stdout stays the
command's result, safe to pipe):

- on a terminal, a live bar (tqdm: rate, ETA, resizing);
- otherwise (a log file, CI, cron), a plain line every few seconds and one
  at the end, so a log shows that the command is moving without drowning in
  carriage returns;
- nothing with ``--quiet`` or ``--verbosity 0``.

A service never prints: it takes a ``progress(done, total)`` callback and a
command passes ``Progress.update``."""

import time
from typing import IO, Any

from tqdm import tqdm

# How often a non-terminal stream gets a line.
LINE_EVERY_SECONDS = 5.0


def add_quiet_argument(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress output (as --verbosity 0)")


class Progress:
    """``label``: what is counted, e.g. "seed_demo followers"; ``unit``, if
    given, follows the count ("1,000 rows")."""

    def __init__(
        self,
        label: str,
        *,
        stream: IO[str],
        total: int | None = None,
        unit: str = "",
        quiet: bool = False,
        tty: bool | None = None,
        every_seconds: float = LINE_EVERY_SECONDS,
    ) -> None:
        self.label = label
        self.stream = stream
        self.total = total
        self.unit = unit
        self.quiet = quiet
        self.every_seconds = every_seconds
        self.done = 0
        self.started = time.monotonic()
        self._last_line = self.started
        self._closed = False
        if tty is None:
            isatty = getattr(stream, "isatty", None)
            tty = bool(isatty and isatty())
        self._bar: Any = None
        if tty and not quiet:
            self._bar = tqdm(
                total=total, desc=label, unit=f" {unit}" if unit else "it", file=stream, dynamic_ncols=True, leave=True
            )

    @classmethod
    def for_command(cls, command, options: dict, label: str, *, total: int | None = None, unit: str = "") -> "Progress":
        """The command's stderr, quiet with ``--quiet`` or ``--verbosity 0``."""
        # Django's OutputWrapper appends a newline to every write, which would
        # break a bar's carriage returns: write to the stream it wraps.
        stream = getattr(command.stderr, "_out", command.stderr)
        quiet = bool(options.get("quiet")) or options.get("verbosity", 1) == 0
        return cls(label, stream=stream, total=total, unit=unit, quiet=quiet)

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` of ``total`` so far (absolute, not an increment)."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()
        if self._bar is not None:
            self._bar.update(done - self.done)
        self.done = done
        now = time.monotonic()
        if self._bar is None and not self.quiet and now - self._last_line >= self.every_seconds:
            self._last_line = now
            self._line(now)

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def close(self, *, stopped: bool = False) -> None:
        """The final line (a finished bar on a terminal); ``stopped``: the
        work ended early (an error, Ctrl-C), so the line does not say done."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif not self.quiet:
            self._line(time.monotonic(), final=True, stopped=stopped)

    def _line(self, now: float, *, final: bool = False, stopped: bool = False) -> None:
        elapsed = now - self.started
        of = f"/{self.total:,}" if self.total is not None else ""
        of += f" {self.unit}" if self.unit else ""
        pct = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        per_second = self.done / elapsed if elapsed > 0 else 0
        rate = f", {per_second:,.0f}/s" if per_second >= 10 else (f", {per_second:.1f}/s" if self.done else "")
        end = (", stopped" if stopped else ", done") if final else ""
        self.stream.write(f"{self.label}: {self.done:,}{of}{pct} in {elapsed:.1f} s{rate}{end}\n")
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(stopped=exc_type is not None)
