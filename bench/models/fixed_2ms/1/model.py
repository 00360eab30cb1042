"""Benchmark model: 2 ms per execute() (one batch), then echoes INPUT0."""

import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    def execute(self, requests):
        deadline = time.perf_counter() + 0.002
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("OUTPUT0", x)]))
        # sleep, not spin: the 2 ms stands for work elsewhere (a device),
        # and must not take a core from the load generator on 2 cores
        time.sleep(max(0.0, deadline - time.perf_counter()))
        return responses
