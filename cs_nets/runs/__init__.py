"""Run directories: a run's files (layout.py), written safely (writer.py), read back
(reader.py); running and resuming a task into one (task.py); stop signals (signals.py);
the saved model (checkpoint.py)."""
