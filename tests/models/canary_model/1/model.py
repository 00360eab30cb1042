import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """FP32 passthrough with faults on request.

    The rollout tests send the same requests to a routed name whose
    baseline ignores parameters; only this canary acts on them:
    `canary_fail` (true: this request fails with INTERNAL, a 500),
    `canary_fail_every` (N: every Nth request this instance sees fails)
    and `canary_sleep_ms` (the batch sleeps for the largest asked).
    """

    def initialize(self, args):
        self.seen = 0

    def execute(self, requests):
        params = [json.loads(r.parameters() or "{}") for r in requests]
        sleep_ms = max([int(p.get("canary_sleep_ms", 0)) for p in params])
        if sleep_ms:
            time.sleep(sleep_ms / 1000.0)
        responses = []
        for r, p in zip(requests, params):
            self.seen += 1
            every = int(p.get("canary_fail_every", 0))
            if p.get("canary_fail") or (every and self.seen % every == 0):
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("canary_fail asked")))
                continue
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("OUTPUT0", x)]))
        return responses
