"""The ONNX model behind the service: verified, loaded, warmed up, run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .card import MODEL_FILE, ModelCard, TensorSpec, verify_model_dir

NUMPY_DTYPES = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


class OnnxModel:
    """An onnxruntime session plus the model card that describes it."""

    def __init__(self, card: ModelCard, session: ort.InferenceSession):
        self.card = card
        self._session = session
        self.output_names = [o.name for o in card.outputs]

    @classmethod
    def load(cls, model_dir: Path, threads: int = 1) -> OnnxModel:
        """Verify model.onnx against model.json, load it and run one warm-up inference."""
        card = verify_model_dir(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(
            str(Path(model_dir) / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        model = cls(card, session)
        model.predict({spec.name: warmup_tensor(spec) for spec in card.inputs})
        return model

    def predict(
        self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        names = outputs or self.output_names
        return dict(zip(names, self._session.run(names, inputs), strict=True))


def warmup_tensor(spec: TensorSpec) -> np.ndarray:
    shape = [1 if d == -1 else d for d in spec.shape]
    return np.zeros(shape, dtype=NUMPY_DTYPES[spec.datatype])
