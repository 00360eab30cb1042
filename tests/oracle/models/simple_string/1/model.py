"""Sum and difference of two tensors of integers written as strings."""

import numpy as np
import triton_python_backend_utils as pb_utils


def _ints(t):
    a = t.as_numpy()
    return np.vectorize(lambda s: int(s.decode() if isinstance(s, bytes)
                                      else s), otypes=[np.int64])(a)


def _strs(a):
    return np.vectorize(lambda v: str(v).encode(), otypes=[object])(a)


class TritonPythonModel:

    def execute(self, requests):
        responses = []
        for request in requests:
            a = _ints(pb_utils.get_input_tensor_by_name(request, "INPUT0"))
            b = _ints(pb_utils.get_input_tensor_by_name(request, "INPUT1"))
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", _strs(a + b)),
                pb_utils.Tensor("OUTPUT1", _strs(a - b))]))
        return responses
