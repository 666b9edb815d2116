"""The one bridge that hands step outputs on: GitHub Actions, Azure Pipelines, or a JSON file.

GitHub: appended to $GITHUB_OUTPUT. Azure Pipelines (TF_BUILD set): `##vso[task.setvariable
variable=NAME;isOutput=true]VALUE` on stdout. Anywhere: merged into $STEPS_OUTPUT_FILE when set.
A step's Markdown summary takes the same ways: `summarize`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def publish(outputs: Mapping[str, object], env: Mapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    values = {name: _text(value) for name, value in outputs.items()}
    for name in values:
        if not NAME.match(name):
            raise ValueError(f"output name {name!r} is not a valid identifier")
    if env.get("GITHUB_OUTPUT"):
        with open(env["GITHUB_OUTPUT"], "a", encoding="utf-8") as f:
            for name, value in values.items():
                f.write(_github_entry(name, value))
    if env.get("TF_BUILD"):
        for name, value in values.items():
            # Azure reads logging commands from stdout; a newline would end the command early.
            sys.stdout.write(
                f"##vso[task.setvariable variable={name};isOutput=true]"
                f"{value.replace(chr(10), ' ')}\n"
            )
        sys.stdout.flush()
    if env.get("STEPS_OUTPUT_FILE"):
        _merge_json(Path(env["STEPS_OUTPUT_FILE"]), values)


def annotate_error(message: str, title: str, env: Mapping[str, str] | None = None) -> None:
    """Show MESSAGE as an error annotation on the run's page, beside the log line: GitHub's
    `::error title=...::` workflow command, Azure's `##vso[task.logissue type=error]`; each
    escaped as that system unescapes it (actions/toolkit's escapeData and escapeProperty; the
    Azure agent's CommandStringConvertor, `%` as `%AZP25`)."""
    env = os.environ if env is None else env
    if env.get("GITHUB_ACTIONS"):
        sys.stdout.write(f"::error title={_github_property(title)}::{_github_data(message)}\n")
    if env.get("TF_BUILD"):
        sys.stdout.write(f"##vso[task.logissue type=error]{_azure_data(message)}\n")
    sys.stdout.flush()


def _github_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(text: str) -> str:
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


def _azure_data(text: str) -> str:
    text = text.replace("%", "%AZP25")
    for token, code in ((";", "%3B"), ("\r", "%0D"), ("\n", "%0A"), ("]", "%5D")):
        text = text.replace(token, code)
    return text


def mask(secret: str, env: Mapping[str, str] | None = None) -> None:
    """Ask the CI system to hide this value wherever it would appear in the log."""
    env = os.environ if env is None else env
    if not secret:
        return
    if env.get("GITHUB_ACTIONS"):
        sys.stdout.write(f"::add-mask::{secret}\n")
    if env.get("TF_BUILD"):
        sys.stdout.write(f"##vso[task.setsecret]{secret}\n")
    sys.stdout.flush()


def summarize(markdown: str, env: Mapping[str, str] | None = None) -> None:
    """Show MARKDOWN on the run's summary page: GitHub's job summary, Azure's Extensions tab, or
    $STEPS_SUMMARY_FILE outside CI; nowhere when none of them is there."""
    env = os.environ if env is None else env
    if not markdown.strip():
        return
    text = markdown.rstrip("\n") + "\n\n"  # a blank line: the next summary starts a new block
    if env.get("GITHUB_STEP_SUMMARY"):
        _append(Path(env["GITHUB_STEP_SUMMARY"]), text)
    elif env.get("TF_BUILD"):
        # `##vso[task.uploadsummary]local file path` attaches a UTF-8 Markdown file to the step
        # (learn.microsoft.com/azure/devops/pipelines/scripts/logging-commands, UploadSummary).
        # A file of its own each time: the agent uploads it later, so it must not change.
        folder = env.get("AGENT_TEMPDIRECTORY") or tempfile.gettempdir()
        handle, name = tempfile.mkstemp(prefix="summary-", suffix=".md", dir=folder)
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
        sys.stdout.write(f"##vso[task.uploadsummary]{name}\n")
        sys.stdout.flush()
    elif env.get("STEPS_SUMMARY_FILE"):
        _append(Path(env["STEPS_SUMMARY_FILE"]), text)


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _github_entry(name: str, value: str) -> str:
    if "\n" not in value:
        return f"{name}={value}\n"
    delimiter = f"EOF_{uuid.uuid4().hex}"
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def _merge_json(path: Path, values: Mapping[str, str]) -> None:
    current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    current.update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
