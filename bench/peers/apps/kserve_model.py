"""KServe custom model: the ONNX model run by onnxruntime, on the v1 and the V2 protocol, its V2
outputs as binary data when the request asks for them (`binary_data_output`).

python kserve_model.py --model_file PATH [KServe's ModelServer options]
"""

import argparse

import numpy
import onnxruntime
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.numpy_codec import from_np_dtype
from kserve.utils.utils import generate_uuid


class OnnxDigits(Model):
    def __init__(self, name: str, model_file: str):
        super().__init__(name)
        self.model_file = model_file
        self.load()

    def load(self) -> bool:
        self.session = onnxruntime.InferenceSession(self.model_file)
        self.input = self.session.get_inputs()[0].name
        self.outputs = [output.name for output in self.session.get_outputs()]
        self.ready = True
        return self.ready

    # With more than one worker KServe pickles the model into spawned processes: each loads its
    # own session (a session cannot be pickled).
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "session"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.load()

    def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):
            results = self.session.run(None, {self.input: payload.inputs[0].as_numpy()})
            binary = payload.use_binary_outputs
            return InferResponse(
                model_name=self.name,
                infer_outputs=[
                    self._output(n, v, binary) for n, v in zip(self.outputs, results, strict=True)
                ],
                response_id=payload.id or generate_uuid(),
                use_binary_outputs=binary,
            )
        tensor = numpy.asarray(payload["instances"], dtype=numpy.float32)
        labels, probabilities = self.session.run(None, {self.input: tensor})
        return {"predictions": labels.tolist(), "probabilities": probabilities.tolist()}

    @staticmethod
    def _output(name: str, value: numpy.ndarray, binary: bool) -> InferOutput:
        output = InferOutput(name, list(value.shape), from_np_dtype(value.dtype))
        output.set_data_from_numpy(value, binary_data=binary)
        return output


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_file", required=True)
    args, _ = parser.parse_known_args()
    ModelServer().start([OnnxDigits("digits", args.model_file)])
