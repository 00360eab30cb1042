"""Triton's classification extension: an output asked with
parameters {"classification": k} answers the k best classes per batch
entry as BYTES "value:index[:label]" (labels from label_filename), with
the official tritonclient and with plain JSON."""

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


SCORES = np.array([[0.1, 0.6, 0.2, 0.1],
                   [0.7, 0.05, 0.05, 0.2]], dtype=np.float32)


@pytest.fixture(scope="module")
def ready(gateway):
    assert gateway.wait_model_ready("classifier")
    return gateway


def texts(array):
    """BYTES as str, whether they came as JSON (str) or binary (bytes)."""
    return [[v.decode() if isinstance(v, bytes) else v for v in row]
            for row in array.tolist()]


def infer(client, output, class_count, binary):
    inp = httpclient.InferInput("INPUT0", list(SCORES.shape), "FP32")
    inp.set_data_from_numpy(SCORES, binary_data=binary)
    out = httpclient.InferRequestedOutput(output, binary_data=binary,
                                          class_count=class_count)
    return client.infer("classifier", [inp], outputs=[out])


@pytest.mark.parametrize("binary", [False, True])
def test_top_two_with_labels_per_batch_entry(ready, client, binary):
    r = infer(client, "PROBS", 2, binary)
    out = r.get_output("PROBS")
    assert out["datatype"] == "BYTES"
    assert out["shape"] == [2, 2]
    assert texts(r.as_numpy("PROBS")) == [
        ["0.600000:1:dog", "0.200000:2:bird"],
        ["0.700000:0:cat", "0.200000:3:fish"]]


def test_without_labels_and_more_classes_than_exist(ready, client):
    r = infer(client, "RAW", 9, False)
    assert r.get_output("RAW")["shape"] == [2, 4]
    assert texts(r.as_numpy("RAW"))[1] == ["7:0", "2:3", "0:1", "0:2"]


def test_other_outputs_keep_their_values(ready, gateway):
    body = {"inputs": [{"name": "INPUT0", "shape": [1, 4],
                        "datatype": "FP32", "data": SCORES[0].tolist()}],
            "outputs": [{"name": "PROBS",
                         "parameters": {"classification": 1}},
                        {"name": "RAW"}]}
    r = gateway.post("/v2/models/classifier/infer", json=body)
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    assert outs["PROBS"]["data"] == ["0.600000:1:dog"]
    assert outs["PROBS"]["shape"] == [1, 1]
    assert outs["RAW"]["datatype"] == "INT32"
    assert outs["RAW"]["data"] == [1, 6, 2, 1]


def test_bytes_output_cannot_be_ranked(ready, client):
    with pytest.raises(InferenceServerException) as e:
        infer(client, "TEXT", 1, False)
    assert "unsupported type 'BYTES'" in str(e.value)
    assert e.value.status() == "400"


@pytest.mark.parametrize("value", ["2", -1, 1.5])
def test_bad_class_count_is_triton_400(ready, gateway, value):
    body = {"inputs": [{"name": "INPUT0", "shape": [1, 4],
                        "datatype": "FP32", "data": [1, 2, 3, 4]}],
            "outputs": [{"name": "PROBS",
                         "parameters": {"classification": value}}]}
    r = gateway.post("/v2/models/classifier/infer", json=body)
    assert r.status_code == 400
    assert r.json()["error"] == "Unable to set 'classification'"


def test_config_names_format_and_label_filename(ready, client):
    c = client.get_model_config("classifier")
    assert c["input"][0]["format"] == "FORMAT_NCHW"
    assert c["output"][0]["label_filename"] == "labels.txt"
    assert c["output"][1]["label_filename"] == ""
    simple = client.get_model_config("simple")
    assert simple["input"][0]["format"] == "FORMAT_NONE"
