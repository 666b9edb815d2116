"""schemathesis against aiship's own /openapi.json: every generated request, no 5xx, no schema lie.

positive_data_acceptance is left out: /openapi.json describes any model, so it cannot say that
this model wants rows of 64 values, and a schema-valid [[]] is rightly refused with a 400.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from . import harness

SKIPPED_CHECKS = "positive_data_acceptance"


def run(
    workers: int = 2,
    examples: int = 150,
    max_seconds: int = 300,
    seed: int = 1,
    min_cases: int = 1000,
) -> tuple[bool, str]:
    """Fuzz every operation; pass with MIN_CASES cases or more and no failed check."""
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        model_dir = harness.train_model(Path(tmp) / "model")
        report = Path(tmp) / "report.json"
        with harness.our_server(model_dir, workers, harness.free_port()) as server:
            command = [
                str(Path(sys.executable).with_name("schemathesis")),  # same venv as us
                "run",
                server.url("/openapi.json"),
                "--checks=all",
                f"--exclude-checks={SKIPPED_CHECKS}",
                f"--max-examples={examples}",
                f"--max-time={max_seconds}",
                f"--seed={seed}",
                "--workers=2",
                "--request-timeout=5",
                "--generation-database=none",
                "--no-color",
                "--report=json",
                f"--report-json-path={report}",
            ]
            done = subprocess.run(
                command, cwd=tmp, capture_output=True, text=True, timeout=max_seconds + 120
            )
        if not report.exists():
            raise RuntimeError(f"schemathesis wrote no report: {done.stderr or done.stdout}")
        summary = json.loads(report.read_text())
    return summarize(summary, done.stdout, min_cases)


def summarize(summary: dict, output: str, min_cases: int) -> tuple[bool, str]:
    cases = summary["test_cases"]["generated"]
    failures = summary["failures"]
    errors = summary["errors"]
    passed = cases >= min_cases and not failures
    lines = [
        f"schemathesis {summary['schemathesis_version']}, seed {summary['seed']}, "
        f"{summary['running_time']:.0f} s: {cases} test cases over "
        f"{summary['operations']['tested']} operations; checks: all but {SKIPPED_CHECKS}.",
        "",
        f"- {'PASS' if cases >= min_cases else 'FAIL'}: {cases} cases (at least {min_cases})",
        f"- {'PASS' if not failures else 'FAIL'}: {len(failures)} kinds of failure",
    ]
    for failure in failures:
        where = ", ".join(failure["operations"])
        lines.append(f"  - {failure['code']} {failure['title']} x{failure['count']}: {where}")
    for error in errors:
        lines.append(f"- schemathesis error (not a server answer): {error['title']}")
    if failures:
        lines += ["", "Failures as schemathesis printed them:", "", "```", _failures(output), "```"]
    return passed, "\n".join(lines) + "\n"


def _failures(output: str, limit: int = 8000) -> str:
    start = output.find("= FAILURES =")
    text = output[output.rfind("\n", 0, start) + 1 :] if start >= 0 else output
    return text[:limit]
