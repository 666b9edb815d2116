"""Fixtures for the steps' tests: the model stores' and the registries' real local stand-ins."""

from tests.steps.registries import acr, auth_registry, local_image, registry  # noqa: F401
from tests.steps.stores import (  # noqa: F401
    aws_env,
    azure_env,
    azurite,
    big_model_dir,
    moto_server,
    store,
)
