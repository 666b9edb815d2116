"""The protocol-independent data plane: health, metadata and inference.

It speaks Python dicts and raises ServiceError subclasses; rest.py only translates HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from math import prod

import numpy as np

from .card import ModelCard, TensorSpec
from .errors import BadRequest, ModelNotFound
from .model import NUMPY_DTYPES, OnnxModel
from .settings import Settings
from .v2 import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput

# numpy dtype kinds accepted for each V2 datatype: ints are fine for a float input, bools are not.
ACCEPTED_KINDS = {
    "BOOL": "b",
    "FP16": "fiu",
    "FP32": "fiu",
    "FP64": "fiu",
    "INT8": "iu",
    "INT16": "iu",
    "INT32": "iu",
    "INT64": "iu",
    "UINT8": "iu",
}
V2_DATATYPES = {np.dtype(t): name for name, t in NUMPY_DTYPES.items()}
# The binary tensor data extension's byte order, whatever the machine's.
LITTLE_ENDIAN = {name: np.dtype(t).newbyteorder("<") for name, t in NUMPY_DTYPES.items()}


class DataPlane:
    """One loaded, warmed-up model. Built only after warm-up, so being built means being ready."""

    def __init__(
        self,
        model: OnnxModel,
        settings: Settings,
        observe_inference: Callable[[float, int], None] = lambda seconds, rows: None,
        observe_predictions: Callable[[Mapping[str, np.ndarray]], None] = lambda outputs: None,
    ):
        self.model = model
        self.settings = settings
        self._observe_inference = observe_inference
        self._observe_predictions = observe_predictions

    def live(self) -> dict[str, bool]:
        return {"live": True}

    def ready(self) -> dict[str, bool]:
        """Always true: a worker answers only once create_app has verified, loaded and warmed
        the model (the worker opens its listener after that), so an answer is the proof."""
        return {"ready": True}

    def server_metadata(self, server_name: str, server_version: str) -> dict[str, object]:
        return {
            "name": server_name,
            "version": server_version,
            "extensions": ["binary_tensor_data"],
        }

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, object]:
        card = self._card(name, version)
        return {
            "name": card.name,
            "versions": [card.version],
            "platform": "onnxruntime_onnx",
            "inputs": [s.to_dict() for s in card.inputs],
            "outputs": [s.to_dict() for s in card.outputs],
        }

    def model_ready(self, name: str, version: str | None = None) -> dict[str, object]:
        card = self._card(name, version)
        return {"name": card.name, "ready": True}

    def version(self) -> dict[str, dict[str, str]]:
        card = self.model.card
        return {
            "app": {"revision": self.settings.revision},
            "model": {"name": card.name, "version": card.version, "sha256": card.sha256},
        }

    def infer(
        self, name: str, request: InferenceRequest, version: str | None = None
    ) -> InferenceResponse:
        """V2 inference: named input tensors with shape, datatype and flat or nested data."""
        card = self._card(name, version)
        specs = {s.name: s for s in card.inputs}
        tensors: dict[str, np.ndarray] = {}
        for item in request.inputs:
            spec = specs.get(item.name)
            if spec is None:
                raise BadRequest(
                    f"inputs[{item.index}].name {item.name!r} is not an input of model "
                    f"{card.name!r}; its inputs are {sorted(specs)}"
                )
            if item.datatype != spec.datatype:
                raise BadRequest(
                    f"input {spec.name!r} has datatype {item.datatype!r}; "
                    f"the model expects {spec.datatype}"
                )
            tensors[spec.name] = self._v2_tensor(item, spec)
        if missing := sorted(specs.keys() - tensors.keys()):
            raise BadRequest(f"inputs {missing} are missing")
        outputs = self._run(tensors, self._requested_outputs(request.outputs))
        return InferenceResponse(
            model_name=card.name,
            model_version=card.version,
            outputs=tuple(
                ResponseOutput(
                    name=out_name,
                    datatype=V2_DATATYPES.get(array.dtype, "BYTES"),
                    shape=list(array.shape),
                    data=array.ravel(),
                    binary=request.wants_binary(out_name),
                )
                for out_name, array in outputs.items()
            ),
            id=request.id,
        )

    def predict(self, request: object) -> dict[str, object]:
        """The simple form for people: {"instances": [[...], ...]} for a single-input model."""
        card = self.model.card
        if not isinstance(request, dict) or "instances" not in request:
            raise BadRequest('the request body must be a JSON object {"instances": [[...], ...]}')
        if len(card.inputs) != 1:
            raise BadRequest(f"model {card.name!r} has several inputs: use the V2 infer endpoint")
        tensor = self._instances_tensor(request["instances"], card.inputs[0])
        outputs = list(self._run({card.inputs[0].name: tensor}).values())
        response: dict[str, object] = {
            "predictions": outputs[0].tolist(),
            "model": {"name": card.name, "version": card.version},
        }
        if len(outputs) > 1:
            response["probabilities"] = outputs[1].tolist()
        return response

    def _card(self, name: str, version: str | None) -> ModelCard:
        card = self.model.card
        if name != card.name:
            raise ModelNotFound(f"model {name!r} not found: this server serves {card.name!r}")
        if version is not None and version != card.version:
            raise ModelNotFound(
                f"version {version!r} of model {name!r} not found: this server serves "
                f"version {card.version!r}"
            )
        return card

    def _requested_outputs(self, names: tuple[str, ...] | None) -> list[str] | None:
        if names is None:
            return None
        known = self.model.output_names
        if unknown := [n for n in names if n not in known]:
            raise BadRequest(f"outputs {unknown} are not outputs of the model; it has {known}")
        return list(names)

    def _instances_tensor(self, data: object, spec: TensorSpec) -> np.ndarray:
        """/predict's rows (the batch in the leading dimension), checked against the model."""
        return self._checked(_array(data, spec, "instances"), spec, "instances")

    def _v2_tensor(self, item: RequestInput, spec: TensorSpec) -> np.ndarray:
        """A V2 input's data, reshaped to the shape the client gave, checked against the model."""
        what = f"input {spec.name!r}"
        if isinstance(item.data, memoryview):
            return self._checked(_binary_array(item.data, item.shape, spec, what), spec, what)
        array = _array(item.data, spec, what)
        if array.size != prod(item.shape):
            raise BadRequest(
                f"{what}: data has {array.size} values but shape {list(item.shape)} needs "
                f"{prod(item.shape)}"
            )
        return self._checked(array.reshape(item.shape), spec, what)

    def _checked(self, array: np.ndarray, spec: TensorSpec, what: str) -> np.ndarray:
        """The model's tensor: batch not empty nor over the limit, shape and dtype as the card
        says, values finite."""
        if array.shape[0] == 0:
            raise BadRequest(f"{what}: the batch is empty")
        expected = list(spec.shape)
        if array.ndim != len(expected) or any(
            want not in (-1, got) for want, got in zip(expected, array.shape, strict=True)
        ):
            raise BadRequest(
                f"{what}: shape {list(array.shape)} does not match the model's {expected} "
                "(-1 is the batch)"
            )
        rows = array.shape[0]
        if rows > self.settings.max_batch_size:
            raise BadRequest(
                f"{what}: a batch of {rows} rows is over the limit of "
                f"{self.settings.max_batch_size} (MAX_BATCH_SIZE)"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            array = array.astype(NUMPY_DTYPES[spec.datatype], copy=False)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise BadRequest(
                f"{what}: values must be finite numbers (no NaN, no Infinity, "
                f"nothing beyond the range of {spec.datatype})"
            )
        return array

    def _run(
        self, tensors: dict[str, np.ndarray], outputs: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        result = self.model.predict(tensors, outputs)
        self._observe_inference(
            time.perf_counter() - started, next(iter(tensors.values())).shape[0]
        )
        self._observe_predictions(result)
        return result


def _array(data: object, spec: TensorSpec, what: str) -> np.ndarray:
    """JSON data as an array of numbers the model's datatype accepts, or what is wrong with it."""
    if not isinstance(data, list):
        raise BadRequest(f"{what}: data must be a list of numbers")
    if _nested_deeper(data, len(spec.shape)):
        raise BadRequest(
            f"{what}: data is nested deeper than the model's {len(spec.shape)} dimensions"
        )
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"{what}: data must be a rectangular list of numbers") from None
    if array.dtype.kind not in ACCEPTED_KINDS[spec.datatype]:
        kind = "booleans" if array.dtype.kind == "b" else "non-numeric values"
        if spec.datatype == "BOOL":
            kind = "values other than true/false"
        raise BadRequest(f"{what}: data holds {kind}; the model expects {spec.datatype}")
    return array


def _nested_deeper(data: list[object], dimensions: int) -> bool:
    """Whether the chain of first elements holds lists deeper than DIMENSIONS (it looks no
    further, so a body nested thousands deep costs no more than a right one)."""
    level = data
    for _ in range(dimensions):
        first = level[0] if level else None
        if not isinstance(first, list):
            return False
        level = first
    return True


def _binary_array(
    data: memoryview, shape: tuple[int, ...], spec: TensorSpec, what: str
) -> np.ndarray:
    """An input's binary data as an array over the request body's own bytes, in its shape."""
    dtype = LITTLE_ENDIAN[spec.datatype]
    needed = prod(shape) * dtype.itemsize
    if len(data) != needed:
        raise BadRequest(
            f"{what}: binary_data_size is {len(data)} bytes but shape {list(shape)} "
            f"of {spec.datatype} needs {needed}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)
