"""A progress display for the demos: tqdm's bar when tqdm is installed (the
`demo` extra) and wanted, otherwise a plain line every tenth of the run."""
import sys
import time

from cyrnn._closing import ClosedOnExit

try:                                   # optional: part of the `demo` extra
    from tqdm.auto import tqdm as _tqdm
except ImportError:                    # pragma: no cover - depends on the environment
    _tqdm = None


def have_tqdm():
    return _tqdm is not None


class Progress(ClosedOnExit):
    """progress = Progress(total, desc); progress.update(n, **stats) after
    each step (stats shown beside the bar, e.g. loss=..., chars_s=...);
    progress.close() at the end. bar=False, or tqdm missing, prints a plain
    line about every total/10 steps instead (to `file`, stdout by default);
    bar=None shows nothing."""

    def __init__(self, total, desc="", *, bar=True, file=None, lines=10):
        self._silent = bar is None
        self.total = total
        self.desc = desc
        self.file = file if file is not None else sys.stdout
        self.done = 0
        self._every = max(1, total // max(1, lines))
        self._bar = None
        if bar and _tqdm is not None:
            tty = getattr(self.file, "isatty", lambda: False)()
            self._bar = _tqdm(total=total, desc=desc, unit="step", file=self.file,
                              dynamic_ncols=True, leave=True, mininterval=0.2 if tty else 10)
        self._start = time.perf_counter()

    def update(self, n=1, **stats):
        self.done += n
        if self._silent:
            return
        if self._bar is not None:
            self._bar.set_postfix({k: _format(v) for k, v in stats.items()}, refresh=False)
            self._bar.update(n)
        elif self.done % self._every == 0 or self.done == self.total:
            shown = "  ".join(f"{k} {_format(v)}" for k, v in stats.items())
            elapsed = time.perf_counter() - self._start
            print(f"{self.desc} step {self.done}/{self.total}  {shown}  ({elapsed:.1f} s)",
                  file=self.file, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None



def _format(value):
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"
    return str(value)
