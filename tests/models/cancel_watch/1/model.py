import json
import os
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Tells, through a file, whether its client went away meanwhile."""

    def execute(self, requests):
        responses = []
        for r in requests:
            params = json.loads(r.parameters() or "{}")
            until = time.monotonic() + params.get("wait_ms", 3000) / 1000.0
            cancelled = r.is_cancelled()
            while not cancelled and time.monotonic() < until:
                time.sleep(0.01)
                cancelled = r.is_cancelled()
            out = params.get("out")
            if out:
                # whole or not at all: the test polls for the file
                with open(out + ".tmp", "w") as f:
                    f.write("%s %s\n" % ("cancelled" if cancelled
                                         else "not cancelled",
                                         params.get("tag", "")))
                os.rename(out + ".tmp", out)
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("OUTPUT0", x)]))
        return responses
