"""Stand-in for densenet_onnx: scores[k] = mean of the image rolled by k
pixels times a fixed ramp.  Deterministic, cheap, and meaningless as a
classification (the oracle reports image_client's label check as skipped).
"""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    def initialize(self, args):
        self.ramp = np.linspace(0.0, 1.0, 1000, dtype=np.float32)

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "data_0").as_numpy()
            m = np.float32(x.mean())
            scores = (self.ramp * m).astype(np.float32).reshape(
                [1000] if x.ndim == 3 else [x.shape[0], 1000])
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("fc6_1", scores)]))
        return responses
