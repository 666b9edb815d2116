"""The service's error types; one handler in rest.py turns each into {"error": ...}."""


class ServiceError(Exception):
    """An error a client can act on; the message is one line naming the problem."""

    status = 500


class BadRequest(ServiceError):
    status = 400


class ModelNotFound(ServiceError):
    status = 404


class UnsupportedMediaType(ServiceError):
    status = 415
