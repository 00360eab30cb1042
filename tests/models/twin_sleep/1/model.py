import json
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Sleeps the request's sleep_ms (default 20); answers its pid."""

    def execute(self, requests):
        pid = np.array([os.getpid()], dtype=np.int64)
        responses = []
        for r in requests:
            ms = json.loads(r.parameters() or "{}").get("sleep_ms", 20)
            time.sleep(ms / 1000.0)
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("OUTPUT0", pid)]))
        return responses
