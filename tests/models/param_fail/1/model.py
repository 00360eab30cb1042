import json

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """FP32 passthrough; the request parameter "fail": true raises."""

    def execute(self, requests):
        for r in requests:
            if json.loads(r.parameters() or "{}").get("fail") is True:
                raise ValueError("param_fail: asked to fail")
        return [pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("OUTPUT0",
                        pb_utils.get_input_tensor_by_name(r, "INPUT0")
                        .as_numpy())])
                for r in requests]
