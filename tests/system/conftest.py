"""Fixtures for the end-to-end tests: the built image in a container, the whole local stack."""

from tests.system.containers import container  # noqa: F401
from tests.system.localstack import local_stack  # noqa: F401
