"""Stop signals: raised once as KeyboardInterrupt, only recorded while a run finishes saving."""

import os
import signal
import time

import pytest

from cs_nets.runs.signals import finishing, stop_signals_as_interrupt

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")


def deliver(sig):
    """Send `sig` to this process and give Python a few bytecodes to run its handler."""
    os.kill(os.getpid(), sig)
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        time.sleep(0.001)


def test_the_first_stop_signal_raises_and_later_ones_are_counted():
    with stop_signals_as_interrupt() as record:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            deliver(signal.SIGTERM)
        deliver(signal.SIGHUP)  # while the interrupted run saves: counted, not raised
    assert record.signals == [signal.SIGTERM, signal.SIGHUP] and record.exit_code() == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the previous handler is back


def test_a_signal_while_finishing_is_recorded_and_the_block_completes():
    steps = []
    with stop_signals_as_interrupt() as record:
        with finishing():
            deliver(signal.SIGTERM)
            steps.append("saved")  # the save goes on
        steps.append("after")
    assert steps == ["saved", "after"]
    assert record.received == signal.SIGTERM and record.exit_code() == 143
