"""LitServe API: the ONNX model run by onnxruntime at /predict.

python litserve_api.py MODEL_FILE WORKERS HOST PORT
"""

import sys

import litserve
import numpy
import onnxruntime


class Digits(litserve.LitAPI):
    def __init__(self, model_file: str):
        super().__init__()
        self.model_file = model_file

    def setup(self, device):
        self.session = onnxruntime.InferenceSession(self.model_file)
        self.input = self.session.get_inputs()[0].name

    def decode_request(self, request):
        return numpy.asarray(request["instances"], dtype=numpy.float32)

    def predict(self, tensor):
        return self.session.run(None, {self.input: tensor})

    def encode_response(self, output):
        labels, probabilities = output
        return {"predictions": labels.tolist(), "probabilities": probabilities.tolist()}


if __name__ == "__main__":
    model_file, workers, host, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    server = litserve.LitServer(Digits(model_file), accelerator="cpu", workers_per_device=workers)
    server.run(host=host, port=port, log_level="warning", generate_client_file=False)
