import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Answers every request with the shape of the batch it ran in."""

    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.sleep_ms = int(params.get("sleep_ms", {})
                            .get("string_value", "5"))
        self.executions = 0

    def execute(self, requests):
        self.executions += 1
        inputs = [pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
                  for r in requests]
        rows = sum(int(x.shape[0]) for x in inputs)
        asked = [json.loads(r.parameters()).get("sleep_ms") for r in requests]
        asked = [int(a) for a in asked if a is not None]
        time.sleep((max(asked) if asked else self.sleep_ms) / 1000.0)

        responses = []
        for x in inputs:
            n = x.shape[0]

            def col(v):
                return np.full((n, 1), v, dtype=np.int64)

            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", x),
                pb_utils.Tensor("BATCH_ROWS", col(rows)),
                pb_utils.Tensor("BATCH_REQUESTS", col(len(requests))),
                pb_utils.Tensor("EXECUTION", col(self.executions))]))
        return responses
