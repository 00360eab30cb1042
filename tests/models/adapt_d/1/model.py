import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """FP32 passthrough whose speed and failures the request chooses.

    The adaptive routing tests send the same parameters to every variant
    of a route and let each variant find out whether they concern it:

      sleep_ms     the time one execute() takes (default 30), the
                   largest asked in the batch;
      slow         "NAME[,NAME]": these models take slow_factor (default
                   3) times as long;
      fail         "NAME[,NAME]": these models fail fail_pct (default 20)
                   percent of their requests (500), exactly: one in five
                   by a counter of the instance, not by chance.

    adapt_b, adapt_c and adapt_d are copies under other names, so that
    each route of the tests has variants of its own.
    """

    def initialize(self, args):
        self.name = args["model_name"]
        self.served = 0

    def execute(self, requests):
        sleep_ms = 0.0
        params = []
        for r in requests:
            p = json.loads(r.parameters() or "{}")
            params.append(p)
            ms = float(p.get("sleep_ms", 30))
            if self.name in str(p.get("slow", "")).split(","):
                ms *= float(p.get("slow_factor", 3))
            sleep_ms = max(sleep_ms, ms)
        time.sleep(sleep_ms / 1000.0)

        responses = []
        for r, p in zip(requests, params):
            self.served += 1
            pct = float(p.get("fail_pct", 20))
            failing = self.name in str(p.get("fail", "")).split(",")
            # one in 100/pct, spread evenly: 20 % fails every 5th
            if failing and pct > 0 and \
                    int(self.served * pct / 100) != \
                    int((self.served - 1) * pct / 100):
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("%s told to fail"
                                               % self.name)))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0",
                                pb_utils.get_input_tensor_by_name(
                                    r, "INPUT0").as_numpy())]))
        return responses
