"""The tests' traffic is the local main job's: aiship.local.traffic. INFER is one request with
DIGIT, for tests that post it themselves."""

from aiship.local.traffic import DIGIT, Traffic, infer_request

INFER = infer_request([DIGIT])

__all__ = ["DIGIT", "INFER", "Traffic"]
