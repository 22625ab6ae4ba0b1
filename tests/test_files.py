"""cs_nets.files.atomic: a file appears whole under its name, or not at all, whenever a stop lands."""

import os
import stat
import sys

import pytest

from cs_nets.files.atomic import write_text


def write_stopped_right_after_the_temp_file_exists(folder, target, text):
    """write_text(target, text), with KeyboardInterrupt (what Ctrl-C raises) at the first
    Python event after a temporary file appeared in `folder`: a signal landing right after
    the file was created, wherever in the code that is. Returns where it landed."""
    fired = []

    def tracer(frame, event, arg):
        if not fired and any(p.name.endswith(".tmp") for p in folder.iterdir()):
            fired.append(f"{frame.f_code.co_name}:{event}")
            raise KeyboardInterrupt
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            write_text(target, text)
    finally:
        sys.settrace(previous)
    return fired


def test_a_stop_right_after_the_temp_file_is_created_leaves_nothing_behind(tmp_path):
    fired = write_stopped_right_after_the_temp_file_exists(tmp_path, tmp_path / "metrics.jsonl", "{}\n")
    assert fired  # the stop did land after the temporary file existed
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_stop_keeps_the_previous_content(tmp_path):
    target = tmp_path / "summary.json"
    write_text(target, "old\n")
    fired = write_stopped_right_after_the_temp_file_exists(tmp_path, target, "new\n")
    assert fired and target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_written_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
