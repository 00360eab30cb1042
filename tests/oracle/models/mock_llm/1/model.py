"""Decoupled echo model for /generate and /generate_stream."""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    def execute(self, requests):
        for request in requests:
            params = json.loads(request.parameters() or "{}")
            reps = int(params.get("REPETITION", 1))
            delay = params.get("DELAY")
            fail_last = bool(params.get("FAIL_LAST", False))
            prompt = pb_utils.get_input_tensor_by_name(
                request, "PROMPT").as_numpy()
            stream = bool(pb_utils.get_input_tensor_by_name(
                request, "STREAM").as_numpy().reshape(-1)[0])
            text = (np.array([], dtype=object)
                    if params.get("OUTPUT_0_DIM", False) else prompt)
            reply = pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("TEXT", text)])
            sender = request.get_response_sender()
            final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
            if not stream:
                sender.send(reply, flags=final)
                continue
            for _ in range(reps):
                if delay is not None:
                    time.sleep(float(delay))
                if sender.is_cancelled():
                    break
                sender.send(reply)
            last = None
            if fail_last:
                last = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("An Error Occurred"))
            sender.send(last, flags=final)
        return None
