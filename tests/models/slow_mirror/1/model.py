import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """FP32 passthrough that sleeps before answering.

    The sleep is the config parameter `sleep_ms`, or the largest
    `sleep_ms` request parameter in the batch: fault tests use it to hold
    a request in flight for as long as they need.
    """

    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.sleep_ms = int(params.get("sleep_ms", {})
                            .get("string_value", "100"))

    def execute(self, requests):
        sleep_ms = self.sleep_ms
        asked = [json.loads(r.parameters()).get("sleep_ms") for r in requests]
        asked = [int(a) for a in asked if a is not None]
        if asked:
            sleep_ms = max(asked)
        time.sleep(sleep_ms / 1000.0)
        return [pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("OUTPUT0",
                        pb_utils.get_input_tensor_by_name(r, "INPUT0")
                        .as_numpy())])
                for r in requests]
