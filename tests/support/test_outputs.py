"""The output bridge: each CI system's own format, the masking of secrets, the run summary."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest

from aiship.support.outputs import annotate_error, mask, publish, summarize


def test_github_outputs_are_appended_and_a_multiline_value_gets_a_delimiter(tmp_path):
    output = tmp_path / "github_output"
    output.write_text("earlier=1\n")

    publish(
        {"digest": "sha256:ab", "tags": "a\nb", "healthy": True}, {"GITHUB_OUTPUT": str(output)}
    )

    lines = output.read_text().splitlines()
    assert lines[:2] == ["earlier=1", "digest=sha256:ab"]
    start, delimiter = lines[2].split("<<")
    assert (start, lines[3:5], lines[5]) == ("tags", ["a", "b"], delimiter)
    assert lines[6] == "healthy=true"  # not a str: JSON, as every bridge writes it


def test_azure_pipelines_outputs_are_logging_commands_on_one_line(capsys):
    publish({"image": "r@sha256:ab", "note": "two\nlines"}, {"TF_BUILD": "True"})

    assert capsys.readouterr().out.splitlines() == [
        "##vso[task.setvariable variable=image;isOutput=true]r@sha256:ab",
        "##vso[task.setvariable variable=note;isOutput=true]two lines",
    ]


def test_the_output_file_merges_with_what_earlier_steps_wrote(tmp_path, capsys):
    path = tmp_path / "run" / "outputs.json"

    publish({"a": "1", "b": "2"}, {"STEPS_OUTPUT_FILE": str(path)})
    publish({"b": "3", "c": ["x"]}, {"STEPS_OUTPUT_FILE": str(path)})

    assert json.loads(path.read_text()) == {"a": "1", "b": "3", "c": '["x"]'}
    assert capsys.readouterr().out == ""  # no CI system: nothing on stdout


def test_an_output_name_must_be_an_identifier(tmp_path):
    output = tmp_path / "github_output"
    with pytest.raises(ValueError, match="not a valid identifier"):
        publish({"model-version": "1"}, {"GITHUB_OUTPUT": str(output)})
    assert not output.exists()  # checked before anything is written


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"GITHUB_ACTIONS": "true"}, "::add-mask::s3cr3t"),
        ({"TF_BUILD": "True"}, "##vso[task.setsecret]s3cr3t"),
    ],
)
def test_a_secret_is_masked_in_the_ci_system_that_runs_the_step(env, line, capsys):
    mask("s3cr3t", env)
    mask("", env)  # nothing to hide: no command at all

    assert capsys.readouterr().out.splitlines() == [line]


@pytest.mark.parametrize(
    ("env", "line"),
    [
        # actions/toolkit's escapeData (% CR LF) and escapeProperty (also : and ,)
        (
            {"GITHUB_ACTIONS": "true"},
            "::error title=aiship setup%3A github%2C x::50%25 of; a]%0Ab",
        ),
        # the Azure agent's CommandStringConvertor: % first (as %AZP25), then ; CR LF ]
        ({"TF_BUILD": "True"}, "##vso[task.logissue type=error]50%AZP25 of%3B a%5D%0Ab"),
        ({}, None),
    ],
)
def test_an_error_is_an_annotation_in_the_ci_system_that_runs_the_step(env, line, capsys):
    annotate_error("50% of; a]\nb", "aiship setup: github, x", env)

    assert capsys.readouterr().out.splitlines() == ([line] if line else [])


UPLOAD_SUMMARY = re.compile(r"^##vso\[task\.uploadsummary\](/.+\.md)$")


def test_a_github_summary_is_appended_to_the_job_summary_as_a_block_of_its_own(tmp_path):
    summary = tmp_path / "step_summary"
    summary.write_text("### Earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary), "STEPS_SUMMARY_FILE": str(tmp_path / "local.md")}

    summarize("### Release\n| a | b |\n|---|---|\n| 1 | 2 |", env)
    summarize("rolled back\n\n\n", env)

    assert summary.read_text() == (
        "### Earlier step\n### Release\n| a | b |\n|---|---|\n| 1 | 2 |\n\nrolled back\n\n"
    )
    assert not (tmp_path / "local.md").exists()  # in CI, only the CI system's summary


def test_an_azure_summary_is_a_new_file_uploaded_by_a_logging_command(tmp_path, capsys):
    env = {"TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(tmp_path)}

    summarize("### Release\n`r@sha256:ab` — deployed", env)
    summarize("### Canary\nstep 1 of 3 passed", env)

    lines = capsys.readouterr().out.splitlines()
    paths = [Path(UPLOAD_SUMMARY.match(line).group(1)) for line in lines]
    assert len(set(paths)) == 2 and all(path.parent == tmp_path for path in paths)
    assert paths[0].read_text(encoding="utf-8") == "### Release\n`r@sha256:ab` — deployed\n\n"
    assert paths[1].read_text(encoding="utf-8") == "### Canary\nstep 1 of 3 passed\n\n"


def test_an_azure_agent_without_its_temp_folder_gets_the_systems(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    summarize("### Release", {"TF_BUILD": "True"})

    path = Path(UPLOAD_SUMMARY.match(capsys.readouterr().out.strip()).group(1))
    assert path.parent == tmp_path and path.read_text() == "### Release\n\n"


def test_outside_ci_the_summary_goes_to_the_summary_file_when_one_is_set(tmp_path, capsys):
    path = tmp_path / "run" / "summary.md"

    summarize("### Release", {"STEPS_SUMMARY_FILE": str(path)})
    summarize("### Rollback", {"STEPS_SUMMARY_FILE": str(path)})

    assert path.read_text() == "### Release\n\n### Rollback\n\n"
    assert capsys.readouterr().out == ""


def test_without_a_summary_file_or_an_empty_summary_nothing_is_written(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    summary = tmp_path / "step_summary"

    summarize("### Release", {})
    summarize("  \n", {"GITHUB_STEP_SUMMARY": str(summary), "TF_BUILD": "True"})

    assert capsys.readouterr().out == ""
    assert not summary.exists() and list(tmp_path.iterdir()) == []
