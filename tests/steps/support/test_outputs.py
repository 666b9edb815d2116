"""The output bridge: each CI system's own format, and the masking of secrets."""

from __future__ import annotations

import json

import pytest

from steps.support.outputs import mask, publish


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
