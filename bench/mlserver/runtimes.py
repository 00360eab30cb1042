"""MLServer custom runtimes equivalent to bench/models/*/1/model.py.

bench/bench.py writes one model-settings.json per model naming these
classes ("implementation": "runtimes.<Class>") next to a copy of this file.
Tensors go through MLServer's NumpyCodec, as a user's runtime would.
"""

import time

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


def _inputs(payload: InferenceRequest):
    return {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}


class Identity(MLModel):
    """identity_fp32: OUTPUT0 = INPUT0."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = _inputs(payload)["INPUT0"]
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("OUTPUT0", x)])


class Simple(MLModel):
    """simple: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (INT32)."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = _inputs(payload)
        in0, in1 = x["INPUT0"], x["INPUT1"]
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("OUTPUT0", in0 + in1),
                     NumpyCodec.encode_output("OUTPUT1", in0 - in1)])


class Fixed2ms(MLModel):
    """fixed_2ms: 2 ms per predict() (one adaptive batch), then identity.

    time.sleep, not asyncio.sleep: like a Triton instance, the model is
    busy for those 2 ms and cannot start another batch meanwhile."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        deadline = time.perf_counter() + 0.002
        x = _inputs(payload)["INPUT0"]
        out = NumpyCodec.encode_output("OUTPUT0", x)
        time.sleep(max(0.0, deadline - time.perf_counter()))
        return InferenceResponse(model_name=self.name, outputs=[out])
