"""Identity over every input: OUTPUT<k> = INPUT<k> (names from the config).

Shared by the oracle's stand-ins for Triton's qa identity models; each
model directory links 1/model.py here (run.sh copies with links resolved).
"""

import json

import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.pairs = []
        for inp, out in zip(config["input"], config["output"]):
            self.pairs.append((inp["name"], out["name"]))

    def execute(self, requests):
        responses = []
        for request in requests:
            outs = []
            for in_name, out_name in self.pairs:
                t = pb_utils.get_input_tensor_by_name(request, in_name)
                if t is not None:
                    outs.append(pb_utils.Tensor(out_name, t.as_numpy()))
            responses.append(pb_utils.InferenceResponse(output_tensors=outs))
        return responses
