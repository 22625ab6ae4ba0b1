"""SIGTERM and SIGHUP handled like Ctrl-C, for the process that runs a training.

Schedulers and clusters stop jobs with SIGTERM, and a closed terminal sends SIGHUP;
by default either kills Python on the spot and the epoch in flight is lost with
nothing saved. Inside ``stop_signals_as_interrupt()`` the first such signal raises
``KeyboardInterrupt`` where the program is, exactly like Ctrl-C: the trainer stops,
keeps the best parameters and the run is saved. Further signals while that saving
goes on are only counted, so the save is not cut short. ``received`` tells which
signal arrived, for the exit code 128 + signal number (130 Ctrl-C, 129 SIGHUP,
143 SIGTERM).

Once training has ended, ``run`` writes the run's last files inside ``finishing()``:
a signal that arrives then is only recorded, so the run finishes saving (a second or
so) with the status its training had, instead of being cut short half-scored.

Only the main thread may install handlers; elsewhere (e.g. a sweep worker) the
context manager does nothing and the host's own handling applies.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None),
                                 getattr(signal, "SIGHUP", None)) if s is not None)


_finishing = False  # set by finishing(): stop signals are recorded, not raised


@contextlib.contextmanager
def finishing():
    """Inside the block, stop signals under ``stop_signals_as_interrupt`` raise nothing (they are recorded)."""
    global _finishing
    previous, _finishing = _finishing, True
    try:
        yield
    finally:
        _finishing = previous


class SignalRecord:
    """The stop signals received inside the context, first one first."""

    def __init__(self):
        self.signals: list[int] = []

    @property
    def received(self) -> int | None:
        return self.signals[0] if self.signals else None

    def exit_code(self, default: int = 130) -> int:
        """128 + the first signal's number (the shell's convention), else ``default``."""
        return 128 + int(self.received) if self.received is not None else default


@contextlib.contextmanager
def stop_signals_as_interrupt():
    """Within the block, SIGINT/SIGTERM/SIGHUP raise KeyboardInterrupt once; yields a SignalRecord."""
    record = SignalRecord()
    if threading.current_thread() is not threading.main_thread():
        yield record
        return

    def handler(signum, frame):
        record.signals.append(signum)
        if len(record.signals) == 1 and not _finishing:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {}
    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield record
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
