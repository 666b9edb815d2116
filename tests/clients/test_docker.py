"""What the docker client says when docker refuses a command."""

from aiship.clients.docker import docker_says, subcommand


def test_a_refusal_is_explained_by_dockers_reason_not_by_its_help_hint():
    said = (
        "docker: Cannot connect to the Docker daemon at tcp://127.0.0.1:9. Is the docker daemon "
        "running?\n\nRun 'docker run --help' for more information\n"
    )

    assert docker_says(said).startswith("docker: Cannot connect to the Docker daemon")
    assert docker_says("Error response from daemon: No such image: x\n") == (
        "Error response from daemon: No such image: x"
    )


def test_the_command_is_named_after_a_config_folder():
    assert subcommand(["--config", "/tmp/c", "run", "--detach", "img"]) == ["run"]
    assert subcommand(["image", "inspect", "img"]) == ["image", "inspect"]
