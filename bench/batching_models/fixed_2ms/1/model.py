import time

import triton_python_backend_utils as pb_utils

COST_S = 0.002


class TritonPythonModel:
    """Echoes INPUT0; every execute() takes 2 ms in all, however many
    requests it is given (the work below, then a sleep for the rest)."""

    def execute(self, requests):
        start = time.perf_counter()
        responses = [pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(
                r, "INPUT0").as_numpy())]) for r in requests]
        left = COST_S - (time.perf_counter() - start)
        if left > 0:
            time.sleep(left)
        return responses
