"""The Open Inference Protocol (V2) request and response, as typed objects, and their HTTP bodies.

`InferenceRequest.parse` checks the shape of the JSON a client sent, knowing nothing of the model;
the data plane then checks it against the model's card. Field names follow the protocol. The
classes are slotted and not frozen: they are built on every request, and a frozen dataclass's
__init__ costs several times more.

A body is JSON, or follows the protocol's binary tensor data extension: a JSON header of
HEADER_LENGTH bytes, then the raw bytes of each input that gives a `binary_data_size`, in the
header's order (little-endian, row-major; a BYTES element is a 4-byte length and its bytes). The
official clients (tritonclient, KServe's) send and ask for binary data by default. Responses
follow the same form as soon as one output is asked for as binary data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from . import jsonio
from .errors import BadRequest, UnsupportedMediaType

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON = "application/json"
BINARY = "application/octet-stream"


@dataclass(slots=True)
class RequestInput:
    """One named input tensor: its data is the client's JSON list (flat or nested), or the
    bytes it sent as binary data (a view into the body, not a copy)."""

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
    binary_data_output: bool = False  # every output as binary data...
    binary_data: dict[str, bool] = field(default_factory=dict)  # ...unless its own flag says

    @classmethod
    def decode(cls, body: bytes, mimetype: str, header_length: str | None) -> InferenceRequest:
        """The request in an HTTP body of type MIMETYPE ("" when the client sent none, as
        tritonclient does), with HEADER_LENGTH's value when the client sent that header."""
        if header_length is None:
            if mimetype not in ("", JSON):
                raise UnsupportedMediaType(
                    f"Content-Type must be {JSON}, or {BINARY} with an {HEADER_LENGTH} header, "
                    f"not {mimetype!r}"
                )
            return cls.parse(jsonio.parse_body(body))
        if mimetype not in ("", BINARY):
            raise UnsupportedMediaType(
                f"a body with an {HEADER_LENGTH} header is {BINARY}, not {mimetype!r}"
            )
        if not header_length.isdecimal() or int(header_length) > len(body):
            raise BadRequest(
                f"{HEADER_LENGTH} must be the JSON header's length in bytes, at most the body's "
                f"{len(body)}, not {header_length[:20]!r}"
            )
        size = int(header_length)
        return cls.parse(jsonio.parse_body(body[:size]), _BinaryData(memoryview(body)[size:]))

    @classmethod
    def parse(cls, body: object, tensors: _BinaryData | None = None) -> InferenceRequest:
        """The request, or BadRequest naming the first thing wrong with it. TENSORS holds the
        bytes after the JSON header, when there are any."""
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object with 'inputs'")
        if "id" in body and not isinstance(body["id"], str):
            raise BadRequest("'id' must be a string")
        parameters = _parameters(body, "the request")
        binary_data_output = _flag(parameters, "binary_data_output", "the request") or False
        raw_inputs = body.get("inputs")
        if not isinstance(raw_inputs, list) or not raw_inputs:
            raise BadRequest("'inputs' must be a non-empty list of tensors")
        tensors = tensors or _BinaryData(memoryview(b""))
        inputs = tuple(_input(i, raw, tensors) for i, raw in enumerate(raw_inputs))
        tensors.check_all_taken()
        names = [item.name for item in inputs]
        if twice := next((n for i, n in enumerate(names) if n in names[:i]), None):
            raise BadRequest(f"input {twice!r} is given twice")
        outputs, binary_data = _outputs(body.get("outputs"))
        return cls(inputs, outputs, body.get("id"), binary_data_output, binary_data)

    def wants_binary(self, output: str) -> bool:
        return self.binary_data.get(output, self.binary_data_output)


@dataclass(slots=True)
class ResponseOutput:
    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray  # flat, C-contiguous
    binary: bool = False

    def header(self, binary_size: int | None) -> dict[str, object]:
        """The output in the response's JSON: its data inline, or the size of its binary data."""
        output: dict[str, object] = {
            "name": self.name,
            "datatype": self.datatype,
            "shape": self.shape,
        }
        if binary_size is None:
            # orjson writes a numeric array as it is; strings need Python's list
            output["data"] = self.data.tolist() if self.datatype == "BYTES" else self.data
        else:
            output["parameters"] = {"binary_data_size": binary_size}
        return output

    def binary_data(self) -> memoryview:
        """The protocol's binary form of the data, as bytes: the array's own memory when it is
        already little-endian, which it is on every platform this service runs on."""
        if self.datatype == "BYTES":
            elements = (e.encode() if isinstance(e, str) else bytes(e) for e in self.data)
            return memoryview(b"".join(struct.pack("<I", len(e)) + e for e in elements))
        little_endian = self.data.astype(self.data.dtype.newbyteorder("<"), copy=False)
        # .data is memoryview(little_endian), and typed so before Python 3.12 (no __buffer__)
        return little_endian.data.cast("B")


@dataclass(slots=True)
class InferenceResponse:
    model_name: str
    model_version: str
    outputs: tuple[ResponseOutput, ...]
    id: str | None = None

    def encode(self) -> tuple[bytes, dict[str, str]]:
        """The HTTP body and its headers: JSON, or the JSON header followed by the binary data
        of the outputs asked for as binary."""
        chunks = [output.binary_data() if output.binary else None for output in self.outputs]
        response: dict[str, object] = {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "outputs": [
                output.header(None if chunk is None else len(chunk))
                for output, chunk in zip(self.outputs, chunks, strict=True)
            ],
        }
        if self.id is not None:
            response["id"] = self.id
        header = jsonio.dumps(response)
        if all(chunk is None for chunk in chunks):
            return header, {"Content-Type": JSON}
        body = b"".join([header, *(chunk for chunk in chunks if chunk is not None)])
        return body, {"Content-Type": BINARY, HEADER_LENGTH: str(len(header))}


class _BinaryData:
    """The bytes after a request's JSON header, handed to the inputs in the header's order."""

    __slots__ = ("_taken", "_view")

    def __init__(self, view: memoryview):
        self._view = view
        self._taken = 0

    def take(self, size: int, what: str) -> memoryview:
        left = len(self._view) - self._taken
        if size > left:
            raise BadRequest(
                f"{what}: binary_data_size {size} is more than the {left} bytes left after the "
                f"JSON header and the inputs before it ({HEADER_LENGTH} gives the header's size)"
            )
        self._taken += size
        return self._view[self._taken - size : self._taken]

    def check_all_taken(self) -> None:
        if left := len(self._view) - self._taken:
            raise BadRequest(
                f"{left} bytes follow the JSON header that no input's binary_data_size accounts "
                f"for: the binary data must be exactly the inputs' binary_data_size in sum"
            )


def _input(index: int, raw: object, tensors: _BinaryData) -> RequestInput:
    if not isinstance(raw, dict):
        raise BadRequest(f"inputs[{index}] must be an object with name, shape, datatype, data")
    name = raw.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"inputs[{index}].name must be a string naming an input")
    what = f"input {name!r}"
    parameters = _parameters(raw, what)
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise BadRequest(f"{what}: datatype must be a string such as FP32")
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRequest(f"{what}: shape must be a list of integers >= 0")
    size = parameters.get("binary_data_size")
    if size is None:
        return RequestInput(index, name, datatype, tuple(shape), raw.get("data"))
    if type(size) is not int or size < 0:
        raise BadRequest(f"{what}: binary_data_size must be an integer >= 0 (bytes)")
    if "data" in raw:
        raise BadRequest(f"{what}: give data or binary_data_size, not both")
    return RequestInput(index, name, datatype, tuple(shape), tensors.take(size, what))


def _outputs(raw: object) -> tuple[tuple[str, ...] | None, dict[str, bool]]:
    """The names of the outputs asked for, and the binary_data flag of those that give one."""
    if raw is None:
        return None, {}
    if not isinstance(raw, list) or not all(isinstance(o, dict) for o in raw):
        raise BadRequest("'outputs' must be a list of objects with a name")
    names = tuple(o.get("name") for o in raw)
    if not all(isinstance(name, str) for name in names):
        raise BadRequest("outputs: each name must be a string")
    flags: dict[str, bool] = {}
    for name, output in zip(names, raw, strict=True):
        what = f"output {name!r}"
        if (flag := _flag(_parameters(output, what), "binary_data", what)) is not None:
            flags[name] = flag
    return names, flags


def _parameters(raw: dict[str, object], what: str) -> dict[str, object]:
    parameters = raw.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest(f"{what}: parameters must be an object")
    return parameters


def _flag(parameters: dict[str, object], name: str, what: str) -> bool | None:
    """A true/false parameter, or None when it is not given."""
    value = parameters.get(name)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"{what}: parameter {name} must be true or false")
    return value
