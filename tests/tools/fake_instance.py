#!/usr/bin/python3
"""A stand-in for kserve-python-instance, for testing kserve-worker alone.

Takes the real instance's command line, connects to the daemon as a
DEALER with routing id i<pid>, sends READY and answers EXECUTE batches:
every input comes back as an output named with IN -> OUT (INPUT0 ->
OUTPUT0), same datatype, shape and bytes.  EXECUTE_REPLY carries the
batch's decoding time as compute_input and the rest as compute_infer.

Behaviour is steered per model by <repository>/<model>/fake.json:
  {"init_error": "msg"}   READY ok=0 with msg, then exit 1
  {"sleep_ms": N}         sleep before answering each batch
  {"init_sleep_ms": N}    sleep before READY
and per request by its request_id: "error" -> ERROR INTERNAL, "crash" ->
the instance kills itself with SIGKILL, "garble" -> the batch is answered
with an EXECUTE_REPLY header cut short (unreadable), "hang" -> the batch
is never answered (a model stuck in execute()).
"""

import argparse
import ctypes
import json
import os
import signal
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ksv_wire as w  # noqa: E402


PR_SET_PDEATHSIG = 1


def die_with_parent():
    """SIGTERM when the daemon dies, as the real instance arranges, so a
    worker killed mid-test leaves no fake instance behind."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:           # it died before prctl took effect
        sys.exit(0)


def main():
    ap = argparse.ArgumentParser()
    for opt in ("connect", "repository", "model", "version", "instance",
                "kind", "device-id", "utils-dir"):
        ap.add_argument("--" + opt, required=True)
    a = ap.parse_args()

    try:
        with open(os.path.join(a.repository, a.model, "fake.json")) as f:
            fake = json.load(f)
    except FileNotFoundError:
        fake = {}

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # "finalize()"
    die_with_parent()

    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.ROUTING_ID, b"i%d" % os.getpid())
    s.setsockopt(zmq.LINGER, 1000)
    s.connect(a.connect)

    time.sleep(fake.get("init_sleep_ms", 0) / 1000)
    version, index = int(a.version), int(a.instance)

    if "init_error" in fake:
        s.send(w.ready(a.model, version, index, 0, fake["init_error"]))
        s.close()
        ctx.term()
        sys.exit(1)

    s.send(w.ready(a.model, version, index, 1))

    while True:
        frames = s.recv_multipart(copy=False)
        t0 = time.monotonic_ns()
        head, requests = w.split_batch([f.buffer for f in frames])
        t1 = time.monotonic_ns()
        time.sleep(fake.get("sleep_ms", 0) / 1000)

        if any(m["request_id"] == "hang" for m in requests):
            while True:
                time.sleep(3600)

        if any(m["request_id"] == "garble" for m in requests):
            s.send(w.execute_reply(head["id"], head["count"], None)[:-2])
            continue

        out = []
        for m in requests:
            if m["request_id"] == "crash":
                os.kill(os.getpid(), signal.SIGKILL)
            if m["request_id"] == "error":
                out.append(w.error(m["id"], w.INTERNAL, "model error"))
                continue

            outputs = [(name.replace("IN", "OUT"), dt, dims, size)
                       for name, dt, dims, size in m["inputs"]]
            out.append(w.infer_reply(m["id"], a.model, a.version,
                                     m["request_id"], outputs))
            out.extend(m["frames"])

        # compute_input: decoding; compute_infer: the "model"; no output
        t2 = time.monotonic_ns()
        s.send_multipart([w.execute_reply(head["id"], head["count"],
                                          (t1 - t0, t2 - t1, 0))] + out,
                         copy=False)


if __name__ == "__main__":
    main()
