"""MLServer custom runtime: the ONNX model at the model settings' `uri`, run by onnxruntime."""

import onnxruntime
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        self._session = onnxruntime.InferenceSession(await get_model_uri(self._settings))
        self._input = self._session.get_inputs()[0].name
        self._outputs = [output.name for output in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        tensor = self.decode(payload.inputs[0], default_codec=NumpyCodec)
        results = self._session.run(None, {self._input: tensor})
        outputs = [
            NumpyCodec.encode_output(name, value)
            for name, value in zip(self._outputs, results, strict=True)
        ]
        return InferenceResponse(model_name=self.name, outputs=outputs)
