"""Bad requests over raw HTTP: each gets a 4xx with {"error": ...} and
the gateway keeps serving."""

import json

import pytest

SIMPLE = "/v2/models/simple/infer"
ONES = [1] * 16


def simple_input(name="INPUT0", shape=(1, 16), datatype="INT32", data=None):
    return {"name": name, "shape": list(shape), "datatype": datatype,
            "data": ONES if data is None else data}


def body(*inputs, **extra):
    doc = {"inputs": list(inputs)}
    doc.update(extra)
    return json.dumps(doc)


GOOD_PAIR = (simple_input("INPUT0"), simple_input("INPUT1"))

# (id, method, path, body, status, words expected in the error)
CASES = [
    ("not-json", "POST", SIMPLE, "{not json", 400, ""),
    ("empty-body", "POST", SIMPLE, "", 400, ""),
    ("json-array", "POST", SIMPLE, "[1,2,3]", 400, ""),
    ("inputs-not-array", "POST", SIMPLE, '{"inputs": {}}', 400, "inputs"),
    ("no-inputs", "POST", SIMPLE, '{"id": "x"}', 400, "inputs"),
    ("input-not-object", "POST", SIMPLE, '{"inputs": [1]}', 400, ""),
    ("missing-name", "POST", SIMPLE,
     body({"shape": [1, 16], "datatype": "INT32", "data": ONES},
          simple_input("INPUT1")), 400, "name"),
    ("missing-shape", "POST", SIMPLE,
     body({"name": "INPUT0", "datatype": "INT32", "data": ONES},
          simple_input("INPUT1")), 400, "shape"),
    ("missing-datatype", "POST", SIMPLE,
     body({"name": "INPUT0", "shape": [1, 16], "data": ONES},
          simple_input("INPUT1")), 400, "datatype"),
    ("missing-data", "POST", SIMPLE,
     body({"name": "INPUT0", "shape": [1, 16], "datatype": "INT32"},
          simple_input("INPUT1")), 400, ""),
    ("unknown-datatype", "POST", SIMPLE,
     body(simple_input(datatype="INT33"), simple_input("INPUT1")), 400, ""),
    ("wrong-datatype", "POST", SIMPLE,
     body(simple_input(datatype="FP32"), simple_input("INPUT1")), 400,
     "INT32"),
    ("fp16-in-json", "POST", "/v2/models/all_types/infer",
     body({"name": "IN_FP16", "shape": [1, 1], "datatype": "FP16",
           "data": [1.0]}), 400, "FP16"),
    ("missing-required-input", "POST", SIMPLE,
     body(simple_input("INPUT0")), 400, "input"),
    ("unknown-input", "POST", SIMPLE,
     body(*GOOD_PAIR, simple_input("INPUT9")), 400, "INPUT9"),
    ("duplicate-input", "POST", SIMPLE,
     body(simple_input("INPUT0"), simple_input("INPUT0")), 400, ""),
    ("too-few-elements", "POST", SIMPLE,
     body(simple_input(data=[1] * 15), simple_input("INPUT1")), 400, ""),
    ("too-many-elements", "POST", SIMPLE,
     body(simple_input(data=[1] * 17), simple_input("INPUT1")), 400, ""),
    ("wrong-dims", "POST", SIMPLE,
     body(simple_input(shape=(1, 8), data=[1] * 8),
          simple_input("INPUT1")), 400, ""),
    ("wrong-rank", "POST", SIMPLE,
     body(simple_input(shape=(16,)), simple_input("INPUT1")), 400, ""),
    ("batch-too-big", "POST", SIMPLE,
     body(simple_input(shape=(9, 16), data=[1] * 144),
          simple_input("INPUT1", shape=(9, 16), data=[1] * 144)), 400, ""),
    ("negative-dim", "POST", SIMPLE,
     body(simple_input(shape=(-1, 16)), simple_input("INPUT1")), 400, ""),
    ("overflowing-shape", "POST", "/v2/models/identity_fp32/infer",
     body({"name": "INPUT0", "shape": [4294967296, 4294967296],
           "datatype": "FP32", "data": [1.0]}), 400, ""),
    ("shape-not-ints", "POST", SIMPLE,
     body(simple_input(shape=("1", "16")), simple_input("INPUT1")), 400, ""),
    ("float-for-int", "POST", SIMPLE,
     body(simple_input(data=[1.5] * 16), simple_input("INPUT1")), 400, ""),
    ("string-for-int", "POST", SIMPLE,
     body(simple_input(data=["1"] * 16), simple_input("INPUT1")), 400, ""),
    ("int-out-of-range", "POST", SIMPLE,
     body(simple_input(data=[2 ** 31] * 16), simple_input("INPUT1")), 400,
     ""),
    ("bool-not-bool", "POST", "/v2/models/all_types/infer",
     body({"name": "IN_BOOL", "shape": [1, 1], "datatype": "BOOL",
           "data": [1]}), 400, ""),
    ("bytes-not-string", "POST", "/v2/models/text_upper/infer",
     body({"name": "INPUT0", "shape": [1, 1], "datatype": "BYTES",
           "data": [5]}), 400, ""),
    ("unknown-output", "POST", SIMPLE,
     body(*GOOD_PAIR, outputs=[{"name": "OUTPUT9"}]), 400, "OUTPUT9"),
    ("outputs-not-array", "POST", SIMPLE,
     body(*GOOD_PAIR, outputs="OUTPUT0"), 400, ""),
    ("parameters-not-object", "POST", SIMPLE,
     body(*GOOD_PAIR, parameters=[1]), 400, ""),
    ("id-not-string", "POST", SIMPLE, body(*GOOD_PAIR, id=5), 400, ""),
    ("deep-nesting", "POST", SIMPLE,
     '{"inputs": ' + "[" * 200 + "]" * 200 + "}", 400, ""),
    ("unknown-model", "POST", "/v2/models/nope/infer", body(*GOOD_PAIR),
     404, "Request for unknown model: 'nope' is not found"),
    ("unknown-version", "POST", "/v2/models/simple/versions/9/infer",
     body(*GOOD_PAIR), 404, ""),
    ("bad-version", "POST", "/v2/models/simple/versions/x1/infer",
     body(*GOOD_PAIR), 400, ""),
    ("path-trick", "GET", "/v2/models/..%2fsimple/config", None, 404, ""),
    ("get-infer", "GET", SIMPLE, None, 405, ""),
    ("post-metadata", "POST", "/v2/models/simple", "{}", 405, ""),
    ("unknown-endpoint", "GET", "/v2/models/simple/bogus", None, 404, ""),
    ("unknown-root", "GET", "/v2/nothing", None, 404, ""),
    ("body-too-large", "POST", "/v2/models/identity_fp32/infer",
     "x" * (5 * 1024 * 1024), 400, "exceeds the maximum allowed value"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed(gateway, case):
    _, method, path, data, status, words = case
    if method == "POST":
        r = gateway.post(path, data=data,
                         headers={"Content-Type": "application/json"})
    else:
        r = gateway.get(path)
    assert r.status_code == status, r.text
    doc = r.json()
    assert isinstance(doc.get("error"), str) and doc["error"], r.text
    assert words in doc["error"]
    # and it still serves
    assert gateway.get("/v2/health/live").status_code == 200


def test_still_infers_after_abuse(gateway):
    for case in CASES:
        _, method, path, data, _, _ = case
        if method == "POST":
            gateway.post(path, data=data)
    r = gateway.post(SIMPLE, data=body(*GOOD_PAIR))
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["OUTPUT0"]["data"] == [2] * 16
    assert out["OUTPUT0"]["shape"] == [1, 16]
