"""Stateful stand-ins for Triton's sequence examples, written against the
sequence batcher's control inputs (START, END, READY, CORRID) as a Triton
Python-backend model receives them.

parameters "mode":
  "start_plus"   OUTPUT = INPUT + START, and at END + CORRID when the config
                 has a CORRID control (simple_sequence, simple_dyna_sequence)
  "accumulate"   OUTPUT = sum of INPUT since START, and at END + int(CORRID)
                 (simple_string_dyna_sequence)
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


def _control(request, name):
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        raise pb_utils.TritonModelException(
            "sequence control input '%s' was not provided" % name)
    return t.as_numpy()


def _scalar(a):
    v = a.reshape(-1)[0]
    if isinstance(v, bytes):
        v = v.decode()
    return v


class TritonPythonModel:

    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        self.mode = params.get("mode", {}).get("string_value", "start_plus")
        kinds = set()
        for ci in config.get("sequence_batching", {}).get("control_input", []):
            kinds.add(ci["name"])
        self.has_end = "END" in kinds
        self.has_corrid = "CORRID" in kinds
        self.acc = {}

    def _one(self, request):
        x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
        start = int(_scalar(_control(request, "START")))
        _control(request, "READY")
        end = int(_scalar(_control(request, "END"))) if self.has_end else 0
        corrid = _scalar(_control(request, "CORRID")) if self.has_corrid else 0
        if self.mode == "accumulate":
            acc = (0 if start else self.acc.get(corrid, 0)) + int(x.sum())
            self.acc[corrid] = acc
            out = np.full(x.shape, acc, dtype=np.int32)
            if end:
                self.acc.pop(corrid, None)
        else:
            out = (x + start).astype(np.int32)
        if end and self.has_corrid:
            out = (out + int(corrid)).astype(np.int32)
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor("OUTPUT", out)])

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except Exception as e:
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(str(e))))
        return responses
