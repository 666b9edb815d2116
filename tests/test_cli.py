"""The command line every step shares: --json, exit codes, the CI output bridge, the list of
commands."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from aiship.app.card import read_card
from aiship.cli import build_parser, drop_empty
from aiship.commands import all_commands
from aiship.support.paths import PROJECT_DIR_VARIABLE
from aiship.support.ports import free_port
from tests.clirun import run_steps
from tests.invocations import DIGEST, INHERITED, invocations
from tests.pipelines.ci_systems import job_checkout
from tests.repo import REPO_ROOT

SOURCE = REPO_ROOT / "src"


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
    """`python -m aiship --help` and a command's help import only what the parser needs."""
    probe = (
        "import runpy, sys\n"
        "for argv in (['--help'], ['deploy', '--help'], ['publish-model', '--help']):\n"
        "    sys.argv = ['aiship', *argv]\n"
        "    try:\n"
        "        runpy.run_module('aiship', run_name='__main__')\n"
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


def import_graph(packages: tuple[str, ...], root: Path = SOURCE) -> dict[str, set[str]]:
    """module -> the modules of PACKAGES (folders of ROOT) it imports, at any depth of its code
    (lazy ones too)."""
    files = {
        ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): path
        for package in packages
        for path in (root / package).rglob("*.py")
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


def test_no_import_circle_in_the_package():
    graph = import_graph(("aiship",))

    assert "aiship.cli" in graph["aiship.__main__"]  # the graph sees relative imports
    assert "aiship.commands.build_image" in graph["aiship.local.pipeline"]  # and lazy ones
    assert "aiship.app.card" in graph["aiship.commands.build_image"]  # and absolute ones
    assert circles(graph) == []


def test_the_service_imports_nothing_of_the_steps():
    """The image carries aiship/__init__.py and aiship/app/ only: the service must run with them."""
    graph = import_graph(("aiship",))
    service = {module for module in graph if module.startswith("aiship.app")}

    outside = {
        f"{module} -> {target}"
        for module in service
        for target in graph[module] - service
        if target != "aiship"
    }
    assert service and outside == set()


# The house: which folder of aiship may import which (README, "How it fits together"). `local`
# runs the commands' step functions, and only the `local` command drives it.
ALLOWED = {
    "cli": {"commands", "support"},
    "commands": {"clients", "support", "app", "local"},
    "clients": {"support", "app"},
    "local": {"commands", "clients", "support", "app"},
    "support": set(),
    "app": set(),
}


def folder_of(module: str) -> str:
    return [*module.split("."), "__init__"][1]


def test_each_folder_imports_only_the_folders_below_it():
    graph = import_graph(("aiship",))
    arrows = {
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if folder_of(module) != folder_of(target) and folder_of(target) != "__init__"
    }

    wrong = {
        f"{module} -> {target}"
        for module, target in arrows
        if folder_of(module) in ALLOWED and folder_of(target) not in ALLOWED[folder_of(module)]
    }
    assert wrong == set()
    into_local = {module for module, target in arrows if folder_of(target) == "local"}
    assert into_local == {"aiship.commands.local"}  # the one command that drives the stand-ins
    assert ("aiship.clients.notation", "aiship.clients.go") in {
        (m, t) for m, targets in graph.items() for t in targets
    }  # the graph sees a client's imports (the one this test once caught going to local/)


def test_a_circle_would_be_found(tmp_path):
    """The check above can fail: two modules that import each other, one lazily, are a circle."""
    package = tmp_path / "loop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .b import g\n")
    (package / "b.py").write_text("from .a import f\n\ndef g():\n    pass\n")

    assert circles(import_graph(("loop",), tmp_path)) == [
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
    done = run_steps(*args, "--dry-run", drop=INHERITED)

    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""


@pytest.fixture(scope="module")
def project(tmp_path_factory, trained_model_dir) -> Path:
    """This repository as a set-up job checks it out (tests/pipelines/ci_systems.py)."""
    return job_checkout(tmp_path_factory.mktemp("project"), trained_model_dir)


def step_commands() -> list[str]:
    """Every command a pipeline runs (`local ...` drives this machine's stand-ins)."""
    names = [name for command in all_commands() for name in command.names()]
    return [name for name in names if name.split()[0] != "local"]


def test_every_step_command_has_an_invocation(tmp_path, trained_model_dir, project):
    assert sorted(invocations(tmp_path, trained_model_dir, project, 1)) == sorted(step_commands())


@pytest.mark.parametrize("name", step_commands())
def test_what_a_plan_accepts_its_run_never_refuses_for_a_flag(
    name, tmp_path, trained_model_dir, project, closed_port
):
    """The dry run and the run read the same plan: a run whose plan passed fails, if it fails,
    for what the outside world did (here: nothing answers), never with exit 2 and never with a
    traceback. Every path is given relative to a folder that is neither the project nor the
    paths' own, as a user in another folder would type them."""
    invocation = invocations(tmp_path, trained_model_dir, project, closed_port)[name]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = relative_paths(invocation.args, elsewhere)
    env = {PROJECT_DIR_VARIABLE: str(project), **invocation.env}
    planned = run_steps(
        *name.split(), *args, "--dry-run", "--json", env=env, drop=INHERITED, cwd=elsewhere
    )
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["dry_run"] is True
    if not invocation.runs_here:
        return

    ran = run_steps(*name.split(), *args, env=env, drop=INHERITED, cwd=elsewhere, timeout=300)

    assert ran.returncode != 2, ran.stderr
    assert ran.stderr.strip(), "a run that fails says why"
    assert "Traceback" not in ran.stderr, ran.stderr
    assert "for more information" not in ran.stderr, "a tool's hint is no reason"
    assert sorted(p.name for p in elsewhere.iterdir()) == [], "nothing written beside the user"


def relative_paths(args: tuple[str, ...], start: Path) -> list[str]:
    """ARGS with every absolute path in them (a file, or a folder to be made) relative to
    START."""
    return [
        os.path.relpath(arg, start) if arg.startswith("/") and Path(arg).parent.is_dir() else arg
        for arg in args
    ]


# Flags that name a file or folder, by their names.
PATH_FLAG = re.compile(r"(^|_)(dir|home|file|out|dest|certificate|kubeconfig|analysis|thresholds)$")


def test_every_flag_of_every_command_says_what_it_is_for():
    parser = build_parser()
    silent = [
        (name, action.option_strings)
        for name in (n for command in all_commands() for n in command.names())
        for action in subparser(parser, name.split())._actions
        if action.option_strings and not (action.help or "").strip()
    ]
    assert silent == []


def test_a_path_flag_is_read_against_the_folder_the_command_started_in():
    """Every flag that names a file or folder is made absolute while parsing, so no step can
    read it against another folder later (Notation's trust store, a tool run elsewhere)."""
    parser = build_parser()
    found = []
    for name in (n for command in all_commands() for n in command.names()):
        for action in subparser(parser, name.split())._actions:
            if action.option_strings and PATH_FLAG.search(action.dest):
                found.append((name, action.dest))
                assert callable(action.type), (name, action.option_strings)
                assert action.type("some/where") == Path.cwd() / "some/where", (name, action.dest)
    assert ("verify-image", "notation_home") in found and len(found) >= 20


def subparser(parser, words: list[str]):
    for word in words:
        choices = next(a for a in parser._actions if a.choices and word in a.choices)
        parser = choices.choices[word]
    return parser


def test_an_empty_optional_flag_is_a_flag_left_out():
    """As a pipeline passes an unset input: `--digest ""` plans what no --digest plans; a
    required flag stays required, and a value still has to be valid."""
    image = ("resolve-image", "--image", "r.example/app:main")

    empty = run_steps(*image, "--digest", "", "--dry-run", "--json", drop=INHERITED)
    left_out = run_steps(*image, "--dry-run", "--json", drop=INHERITED)
    refused = run_steps("smoke-test", "--url", "", "--dry-run", drop=INHERITED)
    bad = run_steps("smoke-test", "--url", "http://x", "--timeout", "soon", "--dry-run")

    assert empty.returncode == left_out.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) == json.loads(left_out.stdout)
    assert refused.returncode == 2 and "--url" in refused.stderr
    assert bad.returncode == 2 and "invalid float value: 'soon'" in bad.stderr


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (["--digest", "", "--image", "x"], ["--image", "x"]),
        (["--digest=", "--image=x"], ["--image=x"]),
        (["--image", "", "--digest", "d"], ["--image", "", "--digest", "d"]),  # not optional
        (["--digest"], ["--digest"]),  # argparse says what is missing
        (["--", "--digest", ""], ["--", "--digest", ""]),
    ],
)
def test_only_an_optional_flags_empty_value_is_dropped(args, kept):
    assert drop_empty(args, {"--digest"}) == kept


def test_the_registry_flags_default_from_the_pipelines_settings():
    """ACR_NAME, ACR_RESOURCE_GROUP and AZURE_SUBSCRIPTION_ID stand in for --acr,
    --resource-group and --subscription; a flag given wins."""
    settings = {
        "ACR_NAME": "aishipacr",
        "ACR_RESOURCE_GROUP": "rg-images",
        "AZURE_SUBSCRIPTION_ID": "sub-1",
    }
    image = ("promote-image", "--image", f"acme/app@{DIGEST}", "--tag", "main", "--dry-run")

    from_settings = run_steps(*image, "--json", env=settings, drop=INHERITED)
    given = run_steps(*image, "--acr", "otheracr", "--json", env=settings, drop=INHERITED)

    assert from_settings.returncode == 0, from_settings.stderr
    assert "aishipacr.azurecr.io/acme/app:main" in json.loads(from_settings.stdout)["plan"]
    assert "otheracr.azurecr.io/acme/app:main" in json.loads(given.stdout)["plan"]


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("--digest", "$(DIGEST)"), {}, "in --digest"),
        (("--digest=$(stage.DIGEST)",), {}, "in --digest"),
        ((), {"ACR_RESOURCE_GROUP": "$(ACR_RESOURCE_GROUP)"}, "in ACR_RESOURCE_GROUP"),
    ],
)
def test_a_pipeline_variable_left_unexpanded_stops_the_step_by_name(args, env, named):
    done = run_steps(
        "resolve-image",
        "--image",
        "r.example/app:main",
        *args,
        "--dry-run",
        env=env,
        drop=INHERITED,
    )
    assert done.returncode == 2
    assert named in done.stderr and "is not set" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_value_that_only_looks_like_shell_is_not_a_macro():
    done = run_steps(
        "resolve-image",
        "--image",
        "r.example/app:main",
        "--digest",
        "$(touch x)",
        "--dry-run",
        drop=INHERITED,
    )
    assert "unexpanded" not in done.stderr and "--digest" in done.stderr


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (
            ("resolve-image", "--image", "r.example/app:main", "--digest", "sha256:zz"),
            2,
            "--digest",
        ),
        (("setup", "github", "--repo", "acme/shop"), 2, "required: --reviewers"),
        (("smoke-test", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "0.5"), 7, ""),
    ],
    ids=["plan", "usage", "run"],
)
def test_a_failed_step_is_an_annotation_in_ci_and_json_with_json(args, code, said):
    """In CI the error line is also the run page's annotation of that step; with --json, stdout
    is JSON whatever happens: the error and the exit code."""
    github = run_steps(*args, "--json", env={"GITHUB_ACTIONS": "true"}, drop=INHERITED)
    azure = run_steps(*args, env={"TF_BUILD": "True"}, drop=INHERITED)

    assert github.returncode == azure.returncode == code, github.stderr
    annotation, answer = github.stdout.splitlines()
    error = json.loads(answer)
    assert error["exit_code"] == code and said in error["error"]
    assert f"error: {error['error']}" in github.stderr
    assert annotation.startswith(f"::error title=aiship {args[0]}")
    assert azure.stdout.startswith("##vso[task.logissue type=error]")


def complete_in_bash(script: str, *words: str) -> list[str]:
    """What bash offers after `aiship WORDS...` (the last word being typed) with SCRIPT loaded."""
    driver = (
        f"source {shlex.quote(script)}\n"
        f"COMP_WORDS=(aiship {' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words)}\n"
        "_shtab_aiship\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", driver], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.split()


def test_the_bash_completion_script_offers_every_command_and_flag(tmp_path):
    done = run_steps("--print-completion", "bash")
    script = tmp_path / "aiship.bash"
    script.write_text(done.stdout)

    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith(" aiship")  # for the installed command's name
    top = [command.name for command in all_commands()]
    assert complete_in_bash(str(script), "") == top
    assert complete_in_bash(str(script), "--p") == ["--print-completion"]
    assert complete_in_bash(str(script), "pub") == ["publish-model", "publish-release"]
    assert complete_in_bash(str(script), "local", "cluster", "") == ["up", "down", "status"]
    assert complete_in_bash(str(script), "deploy", "--str") == ["--strategy"]


def test_completion_for_an_unknown_shell_is_a_usage_error():
    done = run_steps("--print-completion", "cmd.exe")
    assert done.returncode == 2 and "--print-completion" in done.stderr
