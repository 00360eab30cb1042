"""OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, integers as
strings (Triton's simple_string)."""

import numpy as np
import triton_python_backend_utils as pb_utils


def as_ints(tensor):
    return np.array([int(b) for b in tensor.as_numpy().ravel()],
                    dtype=np.int64).reshape(tensor.as_numpy().shape)


def as_strings(values):
    return np.array([str(v).encode() for v in values.ravel()],
                    dtype=np.object_).reshape(values.shape)


class TritonPythonModel:

    def execute(self, requests):
        responses = []
        for request in requests:
            a = as_ints(pb_utils.get_input_tensor_by_name(request, "INPUT0"))
            b = as_ints(pb_utils.get_input_tensor_by_name(request, "INPUT1"))
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", as_strings(a + b)),
                pb_utils.Tensor("OUTPUT1", as_strings(a - b))]))
        return responses
