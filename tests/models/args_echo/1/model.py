import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    def initialize(self, args):
        self.args = json.dumps(args).encode("utf-8")

    def execute(self, requests):
        out = np.array([self.args], dtype=np.object_)
        return [pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("ARGS", out)])
                for _ in requests]
