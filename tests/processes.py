"""Waiting for processes in tests (sweeps stop their trials; the tests check that they are gone)."""

import os
import time


def wait_gone(pid, timeout=60.0):
    """Return once process `pid` has ended; AssertionError if it is still there after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} is still there after {timeout} s")
