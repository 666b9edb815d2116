"""SIGINT and SIGTERM become exceptions a step's clean-up sees, in a real process, and the command
line ends with the shell's code for the signal and one line."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.repo import REPO_ROOT

PROGRAM = """
import os, signal, sys, time
from aiship.support.interrupts import Interrupted, deferred, raised_as_exceptions

with raised_as_exceptions():
    try:
        with deferred():
            os.kill(os.getpid(), signal.SIG{first})
            time.sleep(0.2)
            print("clean-up finished", flush=True)
        os.kill(os.getpid(), signal.SIG{second})
        time.sleep(5)
    except Interrupted as exc:
        print(exc.signal_name, exc.exit_code, flush=True)
os.kill(os.getpid(), signal.SIGTERM)  # the handler before (the default) is back: this ends it
print("not reached")
"""


@pytest.mark.parametrize(("first", "second", "code"), [("INT", "TERM", 143), ("TERM", "INT", 130)])
def test_a_signal_raises_interrupted_but_waits_while_deferred(first, second, code):
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(first=first, second=second)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.stdout.splitlines() == ["clean-up finished", f"SIG{second} {code}"]
    assert f"SIG{first} received: finishing the clean-up first" in done.stderr
    assert done.returncode == -signal.SIGTERM


def test_a_command_ended_by_sigterm_says_so_in_one_line_and_exits_143():
    # A server that takes the connection and never answers: the smoke test waits on it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        process = subprocess.Popen(
            [sys.executable, "-m", "aiship", "smoke-test", "--url", url, "--timeout", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        connection, _ = silent.accept()  # the step is under way
        with connection:
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert errors == ["error: interrupted by SIGTERM"], stderr
