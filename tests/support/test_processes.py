"""The one runner of external commands: output captured, time bounded, one-line errors."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from aiship.support.errors import ConfigError, Unavailable
from aiship.support.processes import gone, last_line, run, stop, stream

PYTHON = sys.executable


def test_run_returns_the_finished_command_whatever_its_exit_code():
    done = run(
        [PYTHON, "-c", "import sys; print(sys.stdin.read().upper()); sys.exit(3)"],
        what="the probe",
        timeout=30,
        stdin="hello",
    )

    assert (done.returncode, done.stdout) == (3, "HELLO\n")


def test_a_command_that_outlives_its_time_is_a_one_line_error():
    started = time.monotonic()
    with pytest.raises(Unavailable) as raised:
        run([PYTHON, "-c", "import time; time.sleep(30)"], what="`sleep`", timeout=0.5, hint="x")

    assert str(raised.value) == "`sleep` did not finish within 0.5 s: x"
    assert time.monotonic() - started < 20  # killed, not waited for


def test_a_tool_that_is_not_installed_is_named():
    with pytest.raises(ConfigError, match="no-such-tool-aiship is not installed"):
        run(["no-such-tool-aiship", "--version"], what="the tool", timeout=5)


def test_stream_hands_on_each_line_as_it_comes():
    seen: list[str] = []
    code, output = stream(
        [PYTHON, "-c", "import sys; print('one'); print('two', file=sys.stderr); sys.exit(1)"],
        what="the probe",
        timeout=30,
        on_line=seen.append,
    )

    assert (code, sorted(seen)) == (1, ["one", "two"])  # stderr is merged into the lines
    assert sorted(output.splitlines()) == ["one", "two"]


def test_stream_kills_a_command_that_outlives_its_time():
    with pytest.raises(Unavailable, match=r"did not finish within 0\.5 s"):
        stream(
            [PYTHON, "-c", "import time; print('started', flush=True); time.sleep(30)"],
            what="the probe",
            timeout=0.5,
            on_line=lambda line: None,
        )


def test_last_line_is_the_last_non_blank_one():
    assert last_line("first\nError: the cause\n\n  \n") == "Error: the cause"
    assert last_line("") == "(no output)"


def test_stop_ends_a_process_that_ignores_sigterm():
    stubborn = subprocess.Popen(
        [PYTHON, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert stubborn.stdout.readline() == "ready\n"

    stop(stubborn.pid, "the stubborn one", timeout=0.5)

    assert gone(stubborn.pid)  # stop() reaped it: SIGTERM was ignored, SIGKILL was not


def test_stopping_a_process_that_is_gone_is_no_error():
    done = subprocess.Popen([PYTHON, "-c", "pass"])
    done.wait(10)

    stop(done.pid, "the finished one", timeout=1)

    assert gone(done.pid)
