"""digits_mlp on the Python backend: softmax(relu(x W1 + b1) W2 + b2).

The weights are the .npy files next to this file, written by
conf/models/digits_mlp/train.py (`make models`).  The requests of a
batch are stacked and run as one matrix product, as the CUDA model
does.
"""

import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    def initialize(self, args):
        here = os.path.join(args["model_repository"], args["model_version"])
        try:
            self.w1, self.b1, self.w2, self.b2 = (
                np.load(os.path.join(here, name + ".npy"))
                for name in ("W1", "b1", "W2", "b2"))
        except FileNotFoundError as e:
            raise pb_utils.TritonModelException(
                "%s (run `make models`)" % e) from None

    def execute(self, requests):
        xs = [pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
              for r in requests]
        x = np.concatenate(xs).astype(np.float32, copy=False)
        h = np.maximum(x @ self.w1 + self.b1, np.float32(0))
        z = h @ self.w2 + self.b2
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        y = e / e.sum(axis=1, keepdims=True)

        responses, at = [], 0
        for part in xs:
            n = part.shape[0]
            out = pb_utils.Tensor("OUTPUT0", y[at:at + n])
            responses.append(pb_utils.InferenceResponse([out]))
            at += n
        return responses
