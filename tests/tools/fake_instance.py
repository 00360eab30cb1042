#!/usr/bin/python3
"""A stand-in for kserve-python-instance, for testing kserve-worker alone.

Takes the real instance's command line and does what the worker sees of
an instance (backends/common/ksv_instance.h):

  - binds its data socket, a ROUTER at ipc://<run-dir>/<pid>.sock (or a
    free port of --bind tcp://IFACE:*), and answers every INFER sent
    there at once: each input comes back as an output named with
    IN -> OUT (INPUT0 -> OUTPUT0), same datatype, shape and bytes;
  - connects a DEALER with routing id i<pid> to --connect and sends one
    READY carrying that endpoint;
  - counts what it answers in its statistics page <run-dir>/<pid>.stats
    (tests/tools/ksv_stats_page.py), which the worker sums for STATS;
  - outlives the worker: once <run-dir>/worker.lock has been free for
    --orphan-grace seconds it exits.

Behaviour is steered per model by <repository>/<model>/fake.json:
  {"init_error": "msg"}    READY ok=0 with msg, then exit 1
  {"init_sleep_ms": N}     sleep before READY
  {"no_stats": true}       no statistics page at all
  {"ready": "no_endpoint"} READY ok=1 with an empty endpoint
  {"ready": "wrong_instance"}  READY for another instance index
  {"ready": "garbage"}     an unreadable message instead of READY
and per request by its request_id: "error" -> ERROR INTERNAL "model
error"; "last words: TEXT" -> TEXT written as the page's reason, then
the instance kills itself with SIGKILL (what the real watchdog does to
a hung model).
"""

import argparse
import fcntl
import json
import os
import signal
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ksv_stats_page  # noqa: E402
import ksv_wire as w  # noqa: E402

ORPHAN_CHECK_MS = 200


def options():
    ap = argparse.ArgumentParser()
    for opt in ("connect", "repository", "model", "version", "instance",
                "run-dir"):
        ap.add_argument("--" + opt, required=True)
    ap.add_argument("--kind", default="KIND_CPU")
    ap.add_argument("--device-id", default="0")
    ap.add_argument("--utils-dir")
    ap.add_argument("--bind", default="ipc")
    ap.add_argument("--advertise")
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--orphan-grace", type=int, default=30)
    ap.add_argument("--execute-timeout", type=int, default=60000)
    return ap.parse_args()


def bind(sock, a):
    """The data endpoint, bound: ipc, or any free port of tcp://IFACE:*."""
    if a.bind == "ipc":
        endpoint = "ipc://%s/%d.sock" % (a.run_dir, os.getpid())
        sock.bind(endpoint)
        return endpoint
    sock.bind(a.bind)
    port = sock.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1]
    host = a.advertise or a.bind[len("tcp://"):].rsplit(":", 1)[0]
    return "tcp://%s:%s" % (host, port)


class Orphan:
    """Whether the worker's lock has been free for --orphan-grace."""

    def __init__(self, a):
        self.grace = a.orphan_grace
        self.free_since = None
        try:
            self.fd = os.open(os.path.join(a.run_dir, "worker.lock"),
                              os.O_RDONLY)
        except OSError:
            self.fd = None

    def expired(self):
        if self.fd is None:
            return False
        try:
            # taken for an instant, as the real instance does, so a
            # starting worker can take it exclusively
            fcntl.flock(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except BlockingIOError:
            self.free_since = None
            return False
        now = time.monotonic()
        if self.free_since is None:
            self.free_since = now
        return now - self.free_since >= self.grace


def answer(m, a):
    """INFER (decoded, with "frames") -> (ok, reply frames)."""
    if m["request_id"] == "error":
        return False, [w.error(m["id"], w.INTERNAL, "model error")]
    outputs = [(name.replace("IN", "OUT"), dt, dims, size)
               for name, dt, dims, size in m["inputs"]]
    return True, [w.infer_reply(m["id"], a.model, a.version,
                                m["request_id"], outputs)] + m["frames"]


def serve(data, page, a):
    """One message from the data socket: [nginx id][header][frames...]."""
    parts = data.recv_multipart()
    t0 = time.monotonic_ns()
    peer, frames = parts[0], parts[1:]
    try:
        m = w.decode_message(frames, (w.INFER, w.CANCEL))
    except (w.WireError, IndexError) as e:
        data.send_multipart([peer, w.error(0, w.INVALID_ARG, str(e))])
        return
    if m["kind"] == w.CANCEL:
        return                      # every INFER is answered at once
    if m["request_id"].startswith("last words: "):
        if page is not None:
            page.set_reason(m["request_id"][len("last words: "):])
        os.kill(os.getpid(), signal.SIGKILL)
    ok, reply = answer(m, a)
    t1 = time.monotonic_ns()
    if page is not None:
        # compute_infer: the "model"; a batch of one request, one row
        page.batch(1, (0, t1 - t0, 0))
        page.request(ok, t1 - t0, 0, (0, t1 - t0, 0))
    data.send_multipart([peer] + reply)


def main():
    a = options()
    try:
        with open(os.path.join(a.repository, a.model, "fake.json")) as f:
            fake = json.load(f)
    except FileNotFoundError:
        fake = {}

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # "finalize()"

    ctx = zmq.Context()
    control = ctx.socket(zmq.DEALER)
    control.setsockopt(zmq.ROUTING_ID, b"i%d" % os.getpid())
    control.setsockopt(zmq.LINGER, 1000)
    control.connect(a.connect)
    data = ctx.socket(zmq.ROUTER)
    data.setsockopt(zmq.LINGER, 0)
    endpoint = bind(data, a)

    page = None
    if not fake.get("no_stats"):
        page = ksv_stats_page.Page(os.path.join(a.run_dir,
                                                "%d.stats" % os.getpid()))

    time.sleep(fake.get("init_sleep_ms", 0) / 1000)
    version, index = int(a.version), int(a.instance)

    if "init_error" in fake:
        control.send(w.ready(a.model, version, index, 0, fake["init_error"]))
        control.close()
        ctx.term()
        sys.exit(1)

    ready = fake.get("ready")
    if ready == "garbage":
        control.send(b"garbage")
    elif ready == "wrong_instance":
        control.send(w.ready(a.model, version, index + 100, 1,
                             endpoint=endpoint))
    else:
        control.send(w.ready(a.model, version, index, 1, endpoint=
                             "" if ready == "no_endpoint" else endpoint))

    orphan = Orphan(a)
    poller = zmq.Poller()
    poller.register(data, zmq.POLLIN)
    poller.register(control, zmq.POLLIN)
    try:
        while not orphan.expired():
            for sock, _ in poller.poll(ORPHAN_CHECK_MS):
                if sock is data:
                    serve(data, page, a)
                else:
                    control.recv_multipart()        # nothing is expected
    finally:
        if endpoint.startswith("ipc://"):
            try:
                os.unlink(endpoint[len("ipc://"):])
            except OSError:
                pass


if __name__ == "__main__":
    main()
