"""aiship: ship an AI application (code plus an ONNX model) through CI and release.

`aiship.cli` and its `commands`, `clients`, `support` and `local` are the pipeline steps;
`aiship.app` is the inference service inside the image, which imports nothing of the steps.
Importing this package loads nothing: the image carries this file and `app/` only.
"""
