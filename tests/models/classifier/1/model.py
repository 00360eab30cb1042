import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """PROBS = INPUT0, RAW = INPUT0 * 10 as INT32, TEXT = "x" per row."""

    def execute(self, requests):
        responses = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            text = np.array([[b"x"]] * x.shape[0], dtype=np.object_)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("PROBS", x),
                pb_utils.Tensor("RAW", (x * 10).astype(np.int32)),
                pb_utils.Tensor("TEXT", text)]))
        return responses
