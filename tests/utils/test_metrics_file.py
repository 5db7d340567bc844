"""metrics.json: the one reader (bad lines skipped and counted, later lines win, binary files refused)
and the JSONWriter's resume, which keeps the lines before the resumed iteration even after a torn line."""

import json

import pytest

from ssl_lab.utils.events import JSONWriter
from ssl_lab.utils.metrics_file import MetricsFileError, read_metrics


def test_read_metrics_skips_and_counts_bad_lines_and_merges_an_iteration_logged_again(tmp_path):
    lines = [
        '{"iteration": NaN, "total_loss": 9.0}',
        "[1, 2]",
        '{"iteration": 1, "total_loss": 2.0}',
        "not json",
        '{"iteration": 2, "total_loss": 1.0, "lr": 0.1}',
        '{"iteration": 1.5}',
        "",
        '{"iteration": 1, "total_loss": 3.0, "knn/top1": 50.0}',
        '{"iteration": 0.0, "knn/top1": 10.0}',
    ]
    (tmp_path / "metrics.json").write_text("\n".join(lines) + "\n")
    records, skipped = read_metrics(str(tmp_path / "metrics.json"))
    assert records == [
        {"iteration": 0.0, "knn/top1": 10.0},
        {"iteration": 1, "total_loss": 3.0, "knn/top1": 50.0},
        {"iteration": 2, "total_loss": 1.0, "lr": 0.1},
    ]
    assert skipped == [
        'line 1: its "iteration" is nan, not a whole number',
        "line 2: a JSON list, not an object",
        "line 4: not JSON (Expecting value)",
        'line 6: its "iteration" is 1.5, not a whole number',
    ]


def test_read_metrics_refuses_a_binary_file_by_name(tmp_path):
    (tmp_path / "metrics.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(MetricsFileError, match=r"metrics.json' is not a text file"):
        read_metrics(str(tmp_path / "metrics.json"))


def test_a_resume_keeps_the_lines_before_its_start_when_the_last_line_was_torn_by_a_kill(tmp_path):
    path = tmp_path / "metrics.json"
    kept = [json.dumps({"iteration": i, "total_loss": 1.0 / (i + 1)}, sort_keys=True) + "\n" for i in range(3)]
    path.write_text("".join(kept) + '{"iteration": 3, "total_loss": 0.25}\n{"iteration": 4, "total_lo')
    JSONWriter(str(path)).before_train(3)
    assert path.read_text() == "".join(kept)  # byte for byte what the killed run wrote before iteration 3
