"""Upper-cases each string of INPUT0 (BYTES); options in "parameters"."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    def execute(self, requests):
        responses = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            options = {}
            params = pb_utils.get_input_tensor_by_name(request, "parameters")
            if params is not None and params.as_numpy().size > 0:
                try:
                    options = json.loads(params.as_numpy().ravel()[0])
                except ValueError as e:
                    responses.append(pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(
                            "input 'parameters' is not valid JSON: %s" % e,
                            pb_utils.TritonError.INVALID_ARG)))
                    continue
            reverse = bool(options.get("reverse", False))

            def convert(b):
                s = b.decode("utf-8", errors="replace").upper()
                return (s[::-1] if reverse else s).encode("utf-8")

            out = np.frompyfunc(convert, 1, 1)(text).astype(np.object_)
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("OUTPUT0", out)]))
        return responses
