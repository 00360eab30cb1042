"""The nginx module's two sockets, played in Python for component tests.

An nginx worker holds a DEALER to kserve-worker's --listen endpoint for
the control plane (INDEX, STATS), and a ROUTER connected to every
instance endpoint of the index for the data plane (INFER, CANCEL), one
hop each way (docs/protocol.md).  ControlClient and DataClient are those
two, speaking the frames of tests/tools/ksv_wire.py.
"""

import itertools
import os
import time

import zmq

import ksv_wire as w

# ids of requests, unique across every client of a test run
IDS = itertools.count(1000)


class ControlClient:
    """The DEALER to the worker (no delimiter frame).

    The worker pushes a full INDEX_REPLY with id 0 to every DEALER that
    asked for the index lately, whenever the index changes; recv() sets
    those aside (in .pushed) so a test reads the reply it asked for, and
    push() waits for them."""

    def __init__(self, ctx, endpoint):
        self.s = ctx.socket(zmq.DEALER)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.connect(endpoint)
        self.pushed = []

    def close(self):
        self.s.close()

    def send(self, frames):
        self.s.send_multipart(frames)

    def _recv(self, timeout_ms):
        if not self.s.poll(timeout_ms):
            return None
        return self.s.recv_multipart()

    @staticmethod
    def _is_push(frames):
        try:
            m = w.decode(frames[0])
        except w.WireError:
            return False
        return m["kind"] == w.INDEX_REPLY and m["id"] == 0 and \
            len(frames) == 1

    def recv(self, timeout_ms=3000):
        """The next message that is not a push (all its frames), or None."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            frames = self._recv(left)
            if frames is None or not self._is_push(frames):
                return frames
            self.pushed.append(w.decode(frames[0]))

    def push(self, timeout_ms=3000):
        """The next INDEX_REPLY the worker pushed unasked, or None."""
        if self.pushed:
            return self.pushed.pop(0)
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            frames = self._recv(left)
            if frames is None:
                return None
            assert self._is_push(frames), \
                "a reply nobody asked for: %r" % (frames,)
            return w.decode(frames[0])

    def index_reply(self, known=0):
        """-> the decoded INDEX_REPLY to an INDEX sent now."""
        id_ = next(IDS)
        self.send([w.index(id_, known)])
        frames = self.recv()
        assert frames is not None, "no INDEX_REPLY"
        m = w.decode_message(frames, w.INDEX_REPLY)
        assert m["id"] == id_, m
        return m

    def index(self, known=0):
        """-> (generation, full, {model: (config, versions)})"""
        m = self.index_reply(known)
        return m["generation"], m["full"], models_of(m)

    def stats(self, model="", version=""):
        """-> the decoded STATS_REPLY or ERROR to a STATS sent now."""
        id_ = next(IDS)
        self.send([w.stats(id_, model, version)])
        frames = self.recv()
        assert frames is not None, "no answer to STATS"
        m = w.decode_message(frames, (w.STATS_REPLY, w.ERROR))
        assert m["id"] == id_, m
        return m


def models_of(index_reply):
    """{model: (config, versions)} of a full INDEX_REPLY."""
    return {cfg["name"]: (cfg, versions)
            for cfg, versions in index_reply["models"]}


class DataClient:
    """An nginx worker's ROUTER for inference: connected to instance
    endpoints with ZMQ_CONNECT_ROUTING_ID = the endpoint, so it addresses
    an instance by its endpoint and sees by the first frame who answered.
    ROUTER_MANDATORY as in the module: a send to an endpoint it does not
    know raises instead of vanishing."""

    def __init__(self, ctx, name=None):
        self.s = ctx.socket(zmq.ROUTER)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.s.setsockopt(zmq.ROUTING_ID, name or b"n%d.%s" % (
            os.getpid(), os.urandom(4).hex().encode()))
        self.connected = set()

    def close(self):
        self.s.close()

    def connect(self, endpoint):
        if endpoint not in self.connected:
            self.s.setsockopt(zmq.CONNECT_ROUTING_ID, endpoint.encode())
            self.s.connect(endpoint)
            self.connected.add(endpoint)

    def send(self, endpoint, frames):
        self.connect(endpoint)
        self.s.send_multipart([endpoint.encode()] + list(frames))

    def infer(self, endpoint, model, inputs=(), id_=None, **kw):
        """INFER of arrays [(name, datatype, ndarray)] (kw: ksv_wire.infer's
        request_id, timeout_ms, outputs, params, ...).  Returns its id."""
        id_ = next(IDS) if id_ is None else id_
        self.send(endpoint, w.infer_arrays(id_, model, list(inputs), **kw))
        return id_

    def cancel(self, endpoint, id_):
        self.send(endpoint, [w.cancel(id_)])

    def recv(self, timeout_ms=5000):
        """(endpoint, [header, frames...]) of the next answer, or None."""
        if not self.s.poll(timeout_ms):
            return None
        frames = self.s.recv_multipart()
        return frames[0].decode(), frames[1:]

    def answer(self, timeout_ms=5000):
        """The next INFER_REPLY (with "frames") or ERROR, decoded, with
        "endpoint": who sent it; None when nothing came in time."""
        got = self.recv(timeout_ms)
        if got is None:
            return None
        m = w.decode_message(got[1], (w.INFER_REPLY, w.ERROR))
        m["endpoint"] = got[0]
        return m

    def answers(self, ids, timeout_ms=10000):
        """The answers to ids, whatever order they come in: {id: answer}.
        Fails on an answer to another id, or when one is missing."""
        want, got = set(ids), {}
        deadline = time.monotonic() + timeout_ms / 1000
        while want - set(got):
            left = max(0, int((deadline - time.monotonic()) * 1000))
            m = self.answer(left)
            assert m is not None, "no answer to %r within %d ms" % (
                sorted(want - set(got)), timeout_ms)
            assert m["id"] in want and m["id"] not in got, \
                "unexpected answer %r" % (m,)
            got[m["id"]] = m
        return got
