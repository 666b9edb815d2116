"""The Open Inference Protocol (V2) request and response, as typed objects.

`InferenceRequest.parse` checks the shape of the JSON a client sent, knowing nothing of the model;
the data plane then checks it against the model's card. Field names follow the protocol. The
classes are slotted and not frozen: they are built on every request, and a frozen dataclass's
__init__ costs several times more.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadRequest


@dataclass(slots=True)
class RequestInput:
    """One named input tensor: its data is still the client's JSON list (flat or nested)."""

    index: int  # its place in the request, for messages
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: object


@dataclass(slots=True)
class InferenceRequest:
    inputs: tuple[RequestInput, ...]
    outputs: tuple[str, ...] | None = None  # None: every output of the model
    id: str | None = None

    @classmethod
    def parse(cls, body: object) -> InferenceRequest:
        """The request, or BadRequest naming the first thing wrong with it."""
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object with 'inputs'")
        if "id" in body and not isinstance(body["id"], str):
            raise BadRequest("'id' must be a string")
        if not isinstance(body.get("parameters", {}), dict):
            raise BadRequest("'parameters' must be an object")
        raw_inputs = body.get("inputs")
        if not isinstance(raw_inputs, list) or not raw_inputs:
            raise BadRequest("'inputs' must be a non-empty list of tensors")
        inputs = tuple(_input(i, raw) for i, raw in enumerate(raw_inputs))
        names = [item.name for item in inputs]
        if twice := next((n for i, n in enumerate(names) if n in names[:i]), None):
            raise BadRequest(f"input {twice!r} is given twice")
        return cls(inputs, _outputs(body.get("outputs")), body.get("id"))


@dataclass(slots=True)
class ResponseOutput:
    name: str
    datatype: str
    shape: list[int]
    data: list

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": self.shape,
            "data": self.data,
        }


@dataclass(slots=True)
class InferenceResponse:
    model_name: str
    model_version: str
    outputs: tuple[ResponseOutput, ...]
    id: str | None = None

    def to_dict(self) -> dict:
        response = {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "outputs": [output.to_dict() for output in self.outputs],
        }
        if self.id is not None:
            response["id"] = self.id
        return response


def _input(index: int, raw: object) -> RequestInput:
    if not isinstance(raw, dict):
        raise BadRequest(f"inputs[{index}] must be an object with name, shape, datatype, data")
    name = raw.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"inputs[{index}].name {name!r} is not an input name: give a string")
    if not isinstance(raw.get("parameters", {}), dict):
        raise BadRequest(f"input {name!r}: parameters must be an object")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise BadRequest(f"input {name!r}: datatype must be a string such as FP32")
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRequest(f"input {name!r}: shape must be a list of integers >= 0")
    return RequestInput(index, name, datatype, tuple(shape), raw.get("data"))


def _outputs(raw: object) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(o, dict) for o in raw):
        raise BadRequest("'outputs' must be a list of objects with a name")
    if not all(isinstance(o.get("parameters", {}), dict) for o in raw):
        raise BadRequest("outputs: parameters must be an object")
    return tuple(o.get("name") for o in raw)
