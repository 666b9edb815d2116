"""Progress of a long transfer: log lines in CI, a bar on a terminal."""

from __future__ import annotations

from aiship.support.progress import Progress


def test_progress_lines_when_not_on_a_terminal(caplog):
    with caplog.at_level("INFO", logger="aiship.support.progress"):
        bar = Progress("download", tty=False, interval=0)
        bar.set_total(4 << 20)
        bar.advance(1 << 20)
        bar.update_to(3 << 20)
        bar.advance(-(1 << 20))  # an SDK retrying a part takes bytes back
    assert [r.getMessage() for r in caplog.records] == [
        "download: 1.00MB of 4.00MB (25%)",
        "download: 3.00MB of 4.00MB (75%)",
        "download: 2.00MB of 4.00MB (50%)",
    ]
    assert bar.done == 2 << 20


def test_progress_bar_on_a_terminal(tmp_path):
    with (
        open(tmp_path / "tty", "w") as stream,
        Progress("upload", 2048, stream=stream, tty=True) as bar,
    ):
        bar.advance(1024)
        bar.update_to(2048)
    assert "upload: 100%" in (tmp_path / "tty").read_text()
