"""Drive the service with an official V2 client, as its users would, and print what it saw.

Runs in the clients' venv, not ours: `python drive.py triton|kserve` reads a JSON job on stdin
(url, model, input, outputs, rows, cases) and prints one JSON object: health, metadata where the
client has a call for it, each case's outputs, and the message of a request for a missing model.
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np


def triton(job: dict) -> dict:
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    client = http.InferenceServerClient(job["url"].removeprefix("http://"))
    seen = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(job["model"]),
        "server": client.get_server_metadata(),
        "model": client.get_model_metadata(job["model"]),
        "cases": [],
    }
    for case, rows in _cases(job):
        tensor = http.InferInput(job["input"], list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=case["binary_inputs"])
        # tritonclient's default, no outputs named, asks for every output as binary data
        outputs = None
        if not case["binary_outputs"]:
            outputs = [http.InferRequestedOutput(n, binary_data=False) for n in job["outputs"]]
        result = client.infer(job["model"], [tensor], outputs=outputs)
        parameters = [result.get_output(n).get("parameters", {}) for n in job["outputs"]]
        seen["cases"].append(
            {
                **case,
                "outputs": {n: result.as_numpy(n).tolist() for n in job["outputs"]},
                "binary_response": any("binary_data_size" in p for p in parameters),
            }
        )
    try:
        client.infer("no-such-model", [tensor])
    except InferenceServerException as exc:
        seen["missing_model"] = str(exc)
    client.close()
    return seen


async def kserve(job: dict) -> dict:
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    url, model = job["url"], job["model"]
    async with InferenceRESTClient(RESTConfig(protocol="v2")) as client:
        seen = {
            "live": await client.is_server_live(url),
            "ready": await client.is_server_ready(url),
            "model_ready": await client.is_model_ready(url, model),
            "cases": [],
        }
        for case, rows in _cases(job):
            tensor = InferInput(job["input"], list(rows.shape), "FP32")
            tensor.set_data_from_numpy(rows, binary_data=case["binary_inputs"])
            binary = {"binary_data": case["binary_outputs"]}
            outputs = [RequestedOutput(n, binary) for n in job["outputs"]]
            headers: dict[str, str] = {}
            response = await client.infer(
                url,
                InferRequest(model, [tensor], request_outputs=outputs),
                model_name=model,
                response_headers=headers,
            )
            seen["cases"].append(
                {
                    **case,
                    "outputs": {o.name: o.as_numpy().tolist() for o in response.outputs},
                    "binary_response": headers["content-type"] == "application/octet-stream",
                }
            )
        try:
            await client.infer(url, InferRequest("no-such-model", [tensor]), "no-such-model")
        except httpx.HTTPStatusError as exc:
            seen["missing_model"] = str(exc)
    return seen


def _cases(job: dict):
    for case in job["cases"]:
        yield case, np.asarray(job["rows"][: case["batch"]], dtype=np.float32)


def main() -> None:
    job = json.load(sys.stdin)
    client = sys.argv[1]
    seen = triton(job) if client == "triton" else asyncio.run(kserve(job))
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main()
