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
one signal that arrives then is only recorded, so the run finishes saving (a second or
so) with the status its training had, instead of being cut short half-scored. A
second stop signal (counting the one that ended the training) means the user will not
wait: ``StoppedAgain`` is raised at once (on entering ``finishing()`` if two have come
already), and the run ends as ``interrupted`` with its training state kept for
``--resume``. Scoring works in chunks of a few thousand rows, so a stop is acted on
within a chunk's time.

Only the main thread may install handlers; elsewhere (e.g. a sweep worker) the
context manager does nothing and the host's own handling applies.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None),
                                 getattr(signal, "SIGHUP", None)) if s is not None)


_finishing = False  # set by finishing(): one stop signal is recorded, a second raises StoppedAgain
_record = None  # the SignalRecord of the innermost stop_signals_as_interrupt, if any


class StoppedAgain(KeyboardInterrupt):
    """A second stop signal while a run scores and saves its results: stop now, keep the training state."""


@contextlib.contextmanager
def finishing():
    """Inside the block, a first stop signal raises nothing (it is recorded); a second raises StoppedAgain.

    Raises StoppedAgain on entry when two stop signals have come already.
    """
    global _finishing
    if _record is not None and len(_record.signals) >= 2:
        raise StoppedAgain(signal.Signals(_record.signals[-1]).name)
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
    global _record
    record = SignalRecord()
    if threading.current_thread() is not threading.main_thread():
        yield record
        return

    def handler(signum, frame):
        record.signals.append(signum)
        if _finishing:
            if len(record.signals) >= 2:
                raise StoppedAgain(signal.Signals(signum).name)
        elif len(record.signals) == 1:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {}
    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    outer, _record = _record, record
    try:
        yield record
    finally:
        _record = outer
        for sig, old in previous.items():
            signal.signal(sig, old)
