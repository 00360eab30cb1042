import json
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Sleeps the largest "sleep_ms" request parameter of the batch."""

    def initialize(self, args):
        self.kind = args["model_instance_kind"]

    def execute(self, requests):
        asked = [json.loads(r.parameters()).get("sleep_ms", 0)
                 for r in requests]
        time.sleep(max(asked) / 1000.0)
        pid = np.array([os.getpid()], dtype=np.int64)
        return [pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("OUTPUT0", pid)])
                for _ in requests]
