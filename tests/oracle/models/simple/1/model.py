"""Sum and difference of two INT32 vectors of 16."""

import numpy as np
import triton_python_backend_utils as pb_utils

_INPUTS = [
    {"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [16]},
    {"name": "INPUT1", "data_type": "TYPE_INT32", "dims": [16]},
]
_OUTPUTS = [
    {"name": "OUTPUT0", "data_type": "TYPE_INT32", "dims": [16]},
    {"name": "OUTPUT1", "data_type": "TYPE_INT32", "dims": [16]},
]


class TritonPythonModel:

    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        config = auto_complete_model_config.as_dict()
        have_in = {i["name"] for i in config.get("input", [])}
        have_out = {o["name"] for o in config.get("output", [])}
        for i in _INPUTS:
            if i["name"] not in have_in:
                auto_complete_model_config.add_input(i)
        for o in _OUTPUTS:
            if o["name"] not in have_out:
                auto_complete_model_config.add_output(o)
        return auto_complete_model_config

    def execute(self, requests):
        responses = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", (a + b).astype(np.int32)),
                pb_utils.Tensor("OUTPUT1", (a - b).astype(np.int32))]))
        return responses
