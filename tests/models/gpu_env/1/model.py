import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    def initialize(self, args):
        self.seen = {
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "device_id": args["model_instance_device_id"],
        }

    def execute(self, requests):
        text = json.dumps(self.seen).encode()
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
                    "ENV", np.array([text], dtype=object))])
                for _ in requests]
