"""triton_python_backend_utils for ngx_kserve's Python backend.

Unmodified Triton Python-backend models do

    import triton_python_backend_utils as pb_utils

and find here the same names and behaviour as in Triton's python_backend
(Tensor, InferenceRequest, InferenceResponse, TritonError, Logger, the
datatype helpers).  The instance process (kserve-python-instance) builds
requests through the private helpers at the bottom (_tensor, _request):
one call per tensor and per request, no validation on that fast path
because the C side has already checked shapes and sizes.

Not supported here (they raise TritonModelException when used):
decoupled response senders, BLS (InferenceRequest.exec), model
load/unload from a model, custom metrics.
"""

import json
import mmap
import os
import struct
import sys
import time

import numpy as np


# TRITONSERVER_DataType values; the same numbers as ksv_datatype_t.
TRITONSERVER_TYPE_INVALID = 0
TRITONSERVER_TYPE_BOOL = 1
TRITONSERVER_TYPE_UINT8 = 2
TRITONSERVER_TYPE_UINT16 = 3
TRITONSERVER_TYPE_UINT32 = 4
TRITONSERVER_TYPE_UINT64 = 5
TRITONSERVER_TYPE_INT8 = 6
TRITONSERVER_TYPE_INT16 = 7
TRITONSERVER_TYPE_INT32 = 8
TRITONSERVER_TYPE_INT64 = 9
TRITONSERVER_TYPE_FP16 = 10
TRITONSERVER_TYPE_FP32 = 11
TRITONSERVER_TYPE_FP64 = 12
TRITONSERVER_TYPE_BYTES = 13
TRITONSERVER_TYPE_BF16 = 14

TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = 2
TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
TRITONSERVER_REQUEST_RELEASE_ALL = 1
TRITONSERVER_REQUEST_RELEASE_RESCHEDULE = 2

TRITONSERVER_MEMORY_CPU = 0
TRITONSERVER_MEMORY_CPU_PINNED = 1
TRITONSERVER_MEMORY_GPU = 2

TRITON_STRING_TO_NUMPY = {
    "TYPE_BOOL": bool,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}

_TRITON_TO_NUMPY = {
    TRITONSERVER_TYPE_BOOL: np.bool_,
    TRITONSERVER_TYPE_UINT8: np.uint8,
    TRITONSERVER_TYPE_UINT16: np.uint16,
    TRITONSERVER_TYPE_UINT32: np.uint32,
    TRITONSERVER_TYPE_UINT64: np.uint64,
    TRITONSERVER_TYPE_INT8: np.int8,
    TRITONSERVER_TYPE_INT16: np.int16,
    TRITONSERVER_TYPE_INT32: np.int32,
    TRITONSERVER_TYPE_INT64: np.int64,
    TRITONSERVER_TYPE_FP16: np.float16,
    TRITONSERVER_TYPE_FP32: np.float32,
    TRITONSERVER_TYPE_FP64: np.float64,
    TRITONSERVER_TYPE_BYTES: np.object_,
}

_NUMPY_TO_TRITON = {
    np.bool_: TRITONSERVER_TYPE_BOOL,
    np.uint8: TRITONSERVER_TYPE_UINT8,
    np.uint16: TRITONSERVER_TYPE_UINT16,
    np.uint32: TRITONSERVER_TYPE_UINT32,
    np.uint64: TRITONSERVER_TYPE_UINT64,
    np.int8: TRITONSERVER_TYPE_INT8,
    np.int16: TRITONSERVER_TYPE_INT16,
    np.int32: TRITONSERVER_TYPE_INT32,
    np.int64: TRITONSERVER_TYPE_INT64,
    np.float16: TRITONSERVER_TYPE_FP16,
    np.float32: TRITONSERVER_TYPE_FP32,
    np.float64: TRITONSERVER_TYPE_FP64,
    np.object_: TRITONSERVER_TYPE_BYTES,
    np.bytes_: TRITONSERVER_TYPE_BYTES,
}


# ---- datatype helpers -------------------------------------------------------

def triton_to_numpy_type(data_type):
    """TRITONSERVER_TYPE_* -> numpy type (None when unknown)."""
    return _TRITON_TO_NUMPY.get(data_type)


def numpy_to_triton_type(data_type):
    """numpy type or dtype -> TRITONSERVER_TYPE_* (None when unknown)."""
    try:
        return _NUMPY_TO_TRITON.get(np.dtype(data_type).type)
    except TypeError:
        return None


def triton_string_to_numpy(triton_type_string):
    """'TYPE_FP32' (config.pbtxt spelling) -> numpy type."""
    return TRITON_STRING_TO_NUMPY[triton_type_string]


def serialize_byte_tensor(input_tensor):
    """Serializes a BYTES tensor (numpy object or bytes_ array) as Triton
    does: per element, in C order, a 4-byte little-endian length followed
    by the bytes.  Non-bytes objects are written as str(obj) in UTF-8.
    Returns a 1-D uint8 array; () for an empty tensor, None for other
    dtypes."""
    if input_tensor.size == 0:
        return ()
    if input_tensor.dtype != np.object_ and input_tensor.dtype.type != np.bytes_:
        return None
    parts = []
    for obj in input_tensor.ravel(order="C").tolist():
        if not isinstance(obj, bytes):
            obj = str(obj).encode("utf-8")
        parts.append(struct.pack("<I", len(obj)))
        parts.append(obj)
    return np.frombuffer(b"".join(parts), dtype=np.uint8)


def deserialize_bytes_tensor(encoded_tensor):
    """The inverse of serialize_byte_tensor: a 1-D numpy object array of
    bytes."""
    buf = memoryview(encoded_tensor).cast("B")
    strs = []
    offset = 0
    while offset < len(buf):
        (length,) = struct.unpack_from("<I", buf, offset)
        offset += 4
        strs.append(bytes(buf[offset:offset + length]))
        offset += length
    out = np.empty(len(strs), dtype=np.object_)
    out[:] = strs
    return out


# ---- model configuration helpers --------------------------------------------

def get_input_tensor_by_name(inference_request, name):
    """The input Tensor called `name`, or None."""
    for tensor in inference_request.inputs():
        if tensor.name() == name:
            return tensor
    return None


def get_output_tensor_by_name(inference_response, name):
    """The output Tensor called `name`, or None."""
    for tensor in inference_response.output_tensors():
        if tensor.name() == name:
            return tensor
    return None


def get_input_config_by_name(model_config, name):
    """The config entry (dict) of input `name`, or None."""
    for props in model_config.get("input", []):
        if props["name"] == name:
            return props
    return None


def get_output_config_by_name(model_config, name):
    """The config entry (dict) of output `name`, or None."""
    for props in model_config.get("output", []):
        if props["name"] == name:
            return props
    return None


def using_decoupled_model_transaction_policy(model_config):
    """Decoupled models are not supported by this backend; reported as in
    the config so a model can refuse to load."""
    policy = model_config.get("model_transaction_policy", {})
    return bool(policy.get("decoupled", False))


# ---- errors -----------------------------------------------------------------

class ModelConfig:
    """The configuration handed to TritonPythonModel.auto_complete_config
    (a static method, called when the model loads, before initialize).

    As in Triton, only max_batch_size, the inputs and outputs, the
    scheduler (dynamic batching) and the transaction policy can be
    completed; each setter refuses to contradict what the configuration
    already says, with Triton's words.  The completed configuration is
    what the instance batches by, what initialize() gets as
    args["model_config"] and what clients read from the model's
    metadata and config.
    """

    def __init__(self, model_config):
        self._model_config = json.loads(model_config)
        self._model_config.setdefault("input", [])
        self._model_config.setdefault("output", [])
        self._model_config.setdefault("max_batch_size", 0)

    def as_dict(self):
        return self._model_config

    def _name(self):
        return self._model_config.get("name", "")

    def set_max_batch_size(self, max_batch_size):
        current = int(self._model_config.get("max_batch_size", 0))
        if current > max_batch_size:
            raise ValueError(
                "configuration specified max_batch_size %d, but in "
                "auto-complete-config function for model '%s' specified "
                "max_batch_size %d" % (current, self._name(), max_batch_size))
        self._model_config["max_batch_size"] = max_batch_size

    def set_dynamic_batching(self):
        for other in ("sequence_batching", "ensemble_scheduling"):
            if other in self._model_config:
                raise ValueError(
                    "Configuration specified scheduling_choice as '%s', but "
                    "auto-complete-config function for model '%s' tries to "
                    "set scheduling_choice as 'dynamic_batching'"
                    % (other, self._name()))
        self._model_config.setdefault("dynamic_batching", {})

    def _add_tensor(self, kind, tensor, valid):
        name = tensor.get("name")
        for prop in tensor:
            if prop not in valid:
                raise ValueError(
                    "%s '%s' in auto-complete-config function for model '%s' "
                    "contains property other than %s." % (
                        kind, name, self._name(),
                        ", ".join("'%s'" % v for v in valid[:-1])
                        + " and '%s'" % valid[-1]))
        if name is None:
            raise ValueError("%s in auto-complete-config function for model "
                             "'%s' is missing 'name' property."
                             % (kind, self._name()))
        for prop in ("data_type", "dims"):
            if prop not in tensor:
                raise ValueError(
                    "%s '%s' in auto-complete-config function for model '%s' "
                    "is missing '%s' property." % (kind, name, self._name(),
                                                   prop))
        for current in self._model_config[kind]:
            if current.get("name") != name:
                continue
            dtype = current.get("data_type", "TYPE_INVALID")
            dims = [int(d) for d in current.get("dims", [])]
            if dtype != "TYPE_INVALID" and dtype != tensor["data_type"]:
                raise ValueError(
                    "unable to load model '%s', configuration expects "
                    "datatype %s for %s '%s', model provides %s" % (
                        self._name(), dtype, kind, name, tensor["data_type"]))
            if dims and dims != [int(d) for d in tensor["dims"]]:
                raise ValueError(
                    "model '%s', tensor '%s': the model expects dims %s but "
                    "the model configuration specifies dims %s" % (
                        self._name(), name, tensor["dims"], dims))
            if ("optional" in current and "optional" in tensor
                    and current["optional"] != tensor["optional"]):
                raise ValueError(
                    "model '%s', tensor '%s': the model expects optional %s "
                    "but the model configuration specifies optional %s" % (
                        self._name(), name, tensor["optional"],
                        current["optional"]))
            current.update(tensor)
            return
        self._model_config[kind].append(dict(tensor))

    def add_input(self, input):
        self._add_tensor("input", input,
                         ["name", "data_type", "dims", "optional"])

    def add_output(self, output):
        self._add_tensor("output", output, ["name", "data_type", "dims"])

    def set_model_transaction_policy(self, transaction_policy_dict):
        for prop in transaction_policy_dict:
            if prop != "decoupled":
                raise ValueError(
                    "model transaction property in auto-complete-config "
                    "function for model '%s' contains property other than "
                    "'decoupled'." % self._name())
        policy = self._model_config.setdefault("model_transaction_policy", {})
        if "decoupled" in transaction_policy_dict:
            want = transaction_policy_dict["decoupled"]
            if "decoupled" in policy and policy["decoupled"] != want:
                raise ValueError(
                    "trying to change decoupled property in "
                    "auto-complete-config for model '%s', which is already "
                    "set to '%s'." % (self._name(), policy["decoupled"]))
            policy["decoupled"] = want


def _auto_complete(model_class, model_config):
    """Runs model_class.auto_complete_config on the JSON configuration;
    returns the completed configuration as JSON."""
    config = ModelConfig(model_config)
    result = model_class.auto_complete_config(config)
    if result is None:
        result = config
    if not isinstance(result, ModelConfig):
        raise TypeError("auto_complete_config() must return the "
                        "ModelConfig it was given")
    return json.dumps(result.as_dict())


class TritonError(Exception):
    """An error a model returns in InferenceResponse(error=...).

    Codes are TRITONSERVER_Error_Code values; the gateway maps them to HTTP
    statuses as Triton does (INVALID_ARG 400, NOT_FOUND 404, INTERNAL 500,
    ...).  In Triton this is not an exception class; deriving from
    Exception here only adds the ability to raise it.
    """

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7

    def __init__(self, message, code=INTERNAL):
        if message is None:
            raise TypeError("TritonError message must not be None")
        super().__init__(message)
        self._message = str(message)
        self._code = int(code)

    def __str__(self):
        return self._message

    def message(self):
        return self._message

    def code(self):
        return self._code


class TritonModelException(Exception):
    """An exception a model may raise; fails the whole batch (HTTP 500)."""

    def __init__(self, msg):
        super().__init__(msg)
        self._msg = msg

    def __str__(self):
        return "" if self._msg is None else str(self._msg)

    def message(self):
        return self._msg


# ---- tensors ----------------------------------------------------------------

class Tensor:
    """A named tensor backed by a numpy array.

    Tensor(name, numpy_array) infers the Triton datatype from the array;
    Tensor(name, numpy_array, triton_dtype) reinterprets the array's
    bytes as that datatype (as Triton does).
    """

    __slots__ = ("_name", "_numpy_array", "_triton_dtype")

    def __init__(self, name, numpy_array, triton_dtype=None):
        if not name:
            raise TritonModelException("Tensor name cannot be an empty string.")
        if not isinstance(numpy_array, np.ndarray):
            numpy_array = np.asarray(numpy_array)
        if numpy_array.dtype.type == np.str_ or numpy_array.dtype.type == np.void:
            raise TritonModelException(
                "Tensor dtype used for numpy_array is not supported by "
                "Python backend. Please use np.object_ instead.")
        if triton_dtype is None:
            triton_dtype = numpy_to_triton_type(numpy_array.dtype)
            if triton_dtype is None:
                raise TritonModelException(
                    "Tensor '%s': numpy dtype %s has no Triton datatype"
                    % (name, numpy_array.dtype))
        else:
            triton_dtype = int(triton_dtype)
            target = _TRITON_TO_NUMPY.get(triton_dtype)
            if triton_dtype == TRITONSERVER_TYPE_BF16:
                target = np.uint16
            if target is None:
                raise TritonModelException(
                    "Tensor '%s': unknown Triton datatype %r"
                    % (name, triton_dtype))
            if numpy_array.dtype != target:
                numpy_array = numpy_array.view(target)
        self._name = name
        self._numpy_array = numpy_array
        self._triton_dtype = triton_dtype

    def name(self):
        return self._name

    def as_numpy(self):
        return self._numpy_array

    def triton_dtype(self):
        """TRITONSERVER_TYPE_* (an int), as Triton's Tensor returns."""
        return self._triton_dtype

    def shape(self):
        return list(self._numpy_array.shape)

    def is_cpu(self):
        return True

    def to_dlpack(self):
        return self._numpy_array.__dlpack__()

    def __dlpack__(self, stream=None):
        return self._numpy_array.__dlpack__()

    def __dlpack_device__(self):
        return self._numpy_array.__dlpack_device__()

    @staticmethod
    def from_dlpack(name, tensor):
        return Tensor(name, np.from_dlpack(tensor))

    def __repr__(self):
        return "Tensor(%r, dtype=%d, shape=%r)" % (
            self._name, self._triton_dtype, self.shape())


# ---- requests and responses -------------------------------------------------

class InferenceRequest:
    """One inference request handed to TritonPythonModel.execute().

    Requests built by models (BLS) can be constructed but not executed.
    """

    def __init__(self, request_id="", correlation_id=0, inputs=None,
                 requested_output_names=None, model_name="",
                 model_version=-1, flags=0, timeout=0,
                 preferred_memory=None, trace=None, parameters=None):
        self._inputs = list(inputs or [])
        self._request_id = request_id
        self._correlation_id = correlation_id
        self._requested_output_names = list(requested_output_names or [])
        self._model_name = model_name
        self._model_version = model_version
        self._flags = flags
        self._timeout = timeout
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, str):
            parameters = json.dumps(parameters)
        self._parameters = parameters

    def inputs(self):
        return self._inputs

    def request_id(self):
        return self._request_id

    def correlation_id(self):
        return self._correlation_id

    def requested_output_names(self):
        return self._requested_output_names

    def flags(self):
        return self._flags

    def set_flags(self, flags):
        self._flags = flags

    def timeout(self):
        """The request's remaining timeout in microseconds, 0 for none."""
        return self._timeout

    def parameters(self):
        """The request's parameters as a JSON object string (as Triton)."""
        return self._parameters

    def model_name(self):
        return self._model_name

    def model_version(self):
        return self._model_version

    def trace(self):
        return None

    def is_cancelled(self):
        """True once the client went away (Triton 23.10+): the instance
        looks for its nginx worker's CANCEL right now."""
        kid = getattr(self, "_kserve_id", None)
        if kid is None:
            return False
        try:
            import _kserve_instance
        except ImportError:
            return False
        return _kserve_instance.is_cancelled(kid)

    def set_release_flags(self, flags):
        pass

    def get_response_sender(self):
        raise TritonModelException(
            "decoupled models (response senders) are not supported by "
            "ngx_kserve's Python backend")

    def exec(self, decoupled=False):
        raise TritonModelException(
            "BLS (InferenceRequest.exec) is not supported by ngx_kserve's "
            "Python backend")

    def async_exec(self, decoupled=False):
        raise TritonModelException(
            "BLS (InferenceRequest.async_exec) is not supported by "
            "ngx_kserve's Python backend")


class InferenceResponse:
    """The answer to one request: output tensors, or an error."""

    def __init__(self, output_tensors=None, error=None, parameters=None):
        if output_tensors is None:
            output_tensors = []
        if not isinstance(output_tensors, (list, tuple)):
            raise TritonModelException('"output_tensors" must be a list.')
        if error is not None and not isinstance(error, TritonError):
            error = TritonError(str(error))
        self._output_tensors = list(output_tensors)
        self._error = error
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, str):
            parameters = json.dumps(parameters)
        self._parameters = parameters

    def output_tensors(self):
        return self._output_tensors

    def has_error(self):
        return self._error is not None

    def error(self):
        return self._error

    def parameters(self):
        return self._parameters


# ---- logging ----------------------------------------------------------------

class _LogSettings:
    """The worker's log settings page (common/ksv_logset.h), mapped
    read-only: POST /v2/logging changes what the next log() call does.
    Without a page (an instance started by hand) everything but verbose
    is logged, as Triton's defaults say."""

    _page = None
    _tried = False

    @classmethod
    def get(cls):
        """(info, warning, error, verbose, iso8601)"""
        if not cls._tried:
            cls._tried = True
            path = os.environ.get("KSV_LOG_SETTINGS")
            if path:
                try:
                    with open(path, "rb") as f:
                        page = mmap.mmap(f.fileno(), 32,
                                         access=mmap.ACCESS_READ)
                    if struct.unpack_from("<I", page, 0)[0] == 0x474c534b:
                        cls._page = page
                except (OSError, ValueError):
                    cls._page = None
        if cls._page is None:
            return (1, 1, 1, 0, 0)
        info, warning, error, verbose, fmt = \
            struct.unpack_from("<5I", cls._page, 12)
        return (info, warning, error, verbose, fmt)


class Logger:
    """Model logging to the instance's stderr (collected by the worker),
    by the log settings of Triton's logging extension (POST /v2/logging):
    each level on or off, log_verbose() when log_verbose_level >= 1,
    log_format "default" or "ISO8601"."""

    INFO = 0
    WARNING = 1
    ERROR = 2
    VERBOSE = 3

    _LEVELS = {0: "I", 1: "W", 2: "E", 3: "V"}

    @staticmethod
    def log(message, level=0):
        info, warning, error, verbose, iso = _LogSettings.get()
        if not (info, warning, error, verbose > 0)[level
                                                  if level in (0, 1, 2, 3)
                                                  else 0]:
            return
        caller = sys._getframe(1)
        if caller.f_code.co_name.startswith("log_"):
            caller = caller.f_back
        t = time.time()
        where = "%s:%d" % (caller.f_code.co_filename.rsplit("/", 1)[-1],
                           caller.f_lineno)
        letter = Logger._LEVELS.get(level, "I")
        if iso:
            line = "%s %s %s] %s\n" % (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)), letter,
                where, message)
        else:
            line = "%s%s.%06d %s] %s\n" % (
                letter, time.strftime("%m%d %H:%M:%S", time.localtime(t)),
                int(t % 1 * 1e6), where, message)
        sys.stderr.write(line)
        sys.stderr.flush()

    @staticmethod
    def log_info(message):
        Logger.log(message, Logger.INFO)

    @staticmethod
    def log_warn(message):
        Logger.log(message, Logger.WARNING)

    @staticmethod
    def log_error(message):
        Logger.log(message, Logger.ERROR)

    @staticmethod
    def log_verbose(message):
        Logger.log(message, Logger.VERBOSE)


# ---- not supported ----------------------------------------------------------

def _unsupported(what):
    def fail(*args, **kwargs):
        raise TritonModelException(
            "%s is not supported by ngx_kserve's Python backend" % what)
    return fail


load_model = _unsupported("load_model")
unload_model = _unsupported("unload_model")
is_model_ready = _unsupported("is_model_ready")
MetricFamily = _unsupported("MetricFamily")


# ---- fast constructors for the instance process (not public API) ------------

def _tensor(name, array, triton_dtype):
    t = Tensor.__new__(Tensor)
    t._name = name
    t._numpy_array = array
    t._triton_dtype = triton_dtype
    return t


def _request(inputs, request_id, requested_output_names, parameters,
             timeout_us, model_name, model_version):
    r = InferenceRequest.__new__(InferenceRequest)
    r._inputs = inputs
    r._request_id = request_id
    r._correlation_id = 0
    r._requested_output_names = requested_output_names
    r._model_name = model_name
    r._model_version = model_version
    r._flags = 0
    r._timeout = timeout_us
    r._parameters = parameters
    return r
