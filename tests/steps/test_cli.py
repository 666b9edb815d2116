"""The command line every step shares: --json, exit codes, the CI output bridge, the list of
commands."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from app.card import read_card
from steps.cli import build_parser
from steps.commands import all_commands
from steps.support.paths import REPO_ROOT
from tests.stepscli import run_steps


def test_command_line_outputs(model_dir, tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    github_output, steps_output = tmp_path / "github_output", tmp_path / "outputs.json"
    env = {"GITHUB_OUTPUT": str(github_output), "STEPS_OUTPUT_FILE": str(steps_output)}
    card = read_card(model_dir)

    published = run_steps(
        "publish-model", "--json", "--store", f"file://{store_dir}", "--model-dir", str(model_dir),
        env=env,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout) == {
        "name": "digits",
        "version": "1.0.0",
        "sha256": card.sha256,
    }

    github_output.unlink()
    dest = tmp_path / "dest"
    fetched = run_steps(
        "fetch-model", "--json", "--dest", str(dest),
        env={**env, "MODEL_STORE": str(store_dir), "MODEL_NAME": "digits"},
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    expected = {"name": "digits", "version": "1.0.0", "sha256": card.sha256, "dest": str(dest)}
    assert json.loads(fetched.stdout) == expected
    assert github_output.read_text().splitlines() == [f"{k}={v}" for k, v in expected.items()]
    assert json.loads(steps_output.read_text()) == expected
    assert "fetched digits 1.0.0" in fetched.stderr


def full_names(commands) -> list[str]:
    return [name for command in commands for name in command.names()]


def test_every_command_has_a_help_page_and_the_common_flags(capsys):
    names = full_names(all_commands())
    assert len(names) == len(set(names))
    some = {"publish-model", "deploy", "setup github", "local run", "local cluster up"}
    assert some <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*name.split(), "--help"])
        assert done.value.code == 0, name
        assert "--json" in capsys.readouterr().out, name


def test_help_loads_no_cloud_sdk_and_no_model_runtime():
    """`python -m steps --help` and a command's help import only what the parser needs."""
    probe = (
        "import runpy, sys\n"
        "for argv in (['--help'], ['deploy', '--help'], ['publish-model', '--help']):\n"
        "    sys.argv = ['steps', *argv]\n"
        "    try:\n"
        "        runpy.run_module('steps', run_name='__main__')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in HEAVY), file=sys.stderr)\n"
    )
    heavy = {"azure", "boto3", "botocore", "s3transfer", "msrest", "onnxruntime", "numpy", "flask"}
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {sorted(heavy)!r}\n{probe}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr.strip().splitlines()[-1] == "[]"


def import_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """module -> the modules of PACKAGES it imports, at any depth of its code (lazy ones too)."""
    files = {
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for package in packages
        for path in (REPO_ROOT / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    found.add(
                        f"{target}.{alias.name}" if f"{target}.{alias.name}" in files else target
                    )
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[module] = {name for name in found if name in files and name != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """For each module on a circle, one path of imports that leads back to it."""

    def circle_from(start: str) -> list[str] | None:
        path, seen = [start], set()

        def visit(module: str) -> list[str] | None:
            for dependency in sorted(graph[module]):
                if dependency == start:
                    return [*path, start]
                if dependency not in seen:
                    seen.add(dependency)
                    path.append(dependency)
                    if found := visit(dependency):
                        return found
                    path.pop()
            return None

        return visit(start)

    return [circle for module in sorted(graph) if (circle := circle_from(module))]


def test_no_import_circle_in_the_steps_or_the_app():
    graph = import_graph(("steps", "app"))

    assert "steps.cli" in graph["steps.__main__"]  # the graph sees relative imports
    assert "steps.commands.build_image" in graph["steps.local.pipeline"]  # and lazy ones
    assert circles(graph) == []


def test_a_circle_would_be_found(tmp_path, monkeypatch):
    """The check above can fail: two modules that import each other, one lazily, are a circle."""
    package = tmp_path / "loop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .b import g\n")
    (package / "b.py").write_text("from .a import f\n\ndef g():\n    pass\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path)

    assert circles(import_graph(("loop",))) == [
        ["loop.a", "loop.b", "loop.a"],
        ["loop.b", "loop.a", "loop.b"],
    ]


def test_dry_run_checks_and_says_what_it_would_do_but_touches_nothing(model_dir, tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    github_output = tmp_path / "github_output"

    done = run_steps(
        "publish-model", "--dry-run", "--json", "--store", str(store_dir),
        "--model-dir", str(model_dir), env={"GITHUB_OUTPUT": str(github_output)},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["dry_run"] is True
    assert result["plan"].startswith("publish digits 1.0.0 (sha256 ")
    assert done.stderr.startswith("dry run: would publish digits 1.0.0")
    assert list(store_dir.iterdir()) == [] and not github_output.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["resolve-image", "--image", "r.example/app:main", "--digest", "main; curl x"],
            "--digest",
        ),
        (["build-image", "--model-dir", "m", "--image", "app:1"], "give the repository only"),
        (["push-image", "--image", "app:1", "--acr", "my-acr"], "is not a registry name"),
        (["deploy", "--target", "kubernetes", "--image", "r.example/app:v1"], "not pinned"),
        (["deploy", "--target", "swarm", "--image", f"r.example/a@sha256:{'a' * 64}"], "--port"),
        (["smoke-test", "--url", "localhost:8080"], "--url"),
    ],
)
def test_dry_run_stops_a_bad_setting_in_one_line(args, words):
    done = run_steps(*args, "--dry-run", drop=("AZURE_", "REGISTRY_"))

    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
