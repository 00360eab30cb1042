import json
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Sleeps sleep_ms per execute(); answers with its process id."""

    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.sleep_ms = int(params.get("sleep_ms", {})
                            .get("string_value", "100"))

    def execute(self, requests):
        time.sleep(self.sleep_ms / 1000.0)
        pid = np.array([os.getpid()], dtype=np.int64)
        return [pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("OUTPUT0", pid)])
                for _ in requests]
