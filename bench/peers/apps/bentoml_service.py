"""BentoML service: the ONNX model run by onnxruntime behind one JSON API, /predict.

bentoml serve bentoml_service:Digits --arg model_file=PATH --arg workers=N
"""

import bentoml
import numpy
import onnxruntime

ARGS = bentoml.use_arguments()


@bentoml.service(workers=int(ARGS.workers))
class Digits:
    def __init__(self) -> None:
        self.session = onnxruntime.InferenceSession(ARGS.model_file)
        self.input = self.session.get_inputs()[0].name

    @bentoml.api
    def predict(self, instances: numpy.ndarray) -> dict:
        tensor = instances.astype(numpy.float32, copy=False)
        labels, probabilities = self.session.run(None, {self.input: tensor})
        return {"predictions": labels.tolist(), "probabilities": probabilities.tolist()}
