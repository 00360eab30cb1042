import json

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Logs its request's marker once per level, then echoes INPUT0."""

    def execute(self, requests):
        responses = []
        logger = pb_utils.Logger
        for r in requests:
            marker = json.loads(r.parameters()).get("marker", "-")
            logger.log_info("log_echo info %s" % marker)
            logger.log_warn("log_echo warning %s" % marker)
            logger.log_error("log_echo error %s" % marker)
            logger.log_verbose("log_echo verbose %s" % marker)
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0")
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", x.as_numpy())]))
        return responses
