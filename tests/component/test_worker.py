"""kserve-worker on its own: the control plane, with fake instances.

The worker runs on a throwaway repository with tests/tools/fake_instance.py
as its Python instance binary (each fake binds its data socket, sends
READY with that endpoint, answers every INFER at once with its inputs and
counts them in its statistics page), and each test plays an nginx
worker: the control DEALER and, to reach the instances the index lists,
the data ROUTER (tests/component/peers.py).  Covers the index and the
instances in it, pushes, STATS summed from the instances' pages, what
the worker refuses (INFER, malformed control messages, instances that
misbehave), instances that die, adoption after a worker restart, and a
clean shutdown.  Queueing, batching and deadlines are the instances'
(test_python_instance.py).
"""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import zmq

import ksv_wire as w
from peers import IDS, ControlClient, DataClient, models_of
from processes import (TOOLS, Process, alive, built, children, wait_until,
                       with_argument)

MODELS = {
    "echo": ('backend: "python"\n'
             'version_policy { all { } }\n'
             'instance_group [ { count: 2 kind: KIND_CPU } ]\n'
             'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
             'output [ { name: "OUTPUT0" data_type: TYPE_FP32\n'
             '           dims: [ 4 ] } ]\n'
             'optimization { cuda { graphs: true } }\n',
             [1, 2], {}),
    # one instance that takes a second to start: the tests that kill it
    # can see it listed as dead before its replacement is ready
    "single": ('backend: "python"\n', [1], {"init_sleep_ms": 1000}),
    # two instances whose pages the STATS test sums
    "counted": ('backend: "python"\n'
                'instance_group [ { count: 2 kind: KIND_CPU } ]\n',
                [1], {}),
    "nostats": ('backend: "python"\n', [1], {"no_stats": True}),
    "broken": ('backend: "python"\n', [1],
               {"init_error": "initialize failed: boom"}),
    "no_endpoint": ('backend: "python"\n', [1], {"ready": "no_endpoint"}),
    "wrong_instance": ('backend: "python"\n', [1],
                       {"ready": "wrong_instance"}),
    "garbage": ('backend: "python"\n', [1], {"ready": "garbage"}),
    "onnx": ('backend: "onnxruntime"\n', [1], {}),
    "badcfg": ('name: "badcfg"\ninput { dims: [ 1 2 ] }\n', [1], {}),
    "auto": ('', [3], {}),          # no backend, model.py present: python
    "gpu": ('backend: "python"\n'
            'instance_group { count: 2 kind: KIND_GPU gpus: [ 0, 3 ] }\n'
            'instance_group { count: 1 kind: KIND_GPU }\n', [1], {}),
}

# --execute-timeout and --orphan-grace of the module's worker, passed on
# to every instance
EXECUTE_TIMEOUT_MS = 1500
ORPHAN_GRACE_S = 10


def make_repository(root, names):
    for name in names:
        config, versions, fake = MODELS[name]
        d = os.path.join(root, name)
        os.makedirs(d)
        with open(os.path.join(d, "config.pbtxt"), "w") as f:
            f.write(config)
        if fake:
            with open(os.path.join(d, "fake.json"), "w") as f:
                json.dump(fake, f)
        for v in versions:
            os.makedirs(os.path.join(d, str(v)))
            open(os.path.join(d, str(v), "model.py"), "w").close()


class Worker(Process):
    """kserve-worker on tmp/models (made on first use, from `models`),
    run directory tmp/run, listening on ipc://tmp/front.sock.  A second
    Worker on the same tmp is a restarted worker on the same run dir."""

    def __init__(self, tmp, models=MODELS, log="worker.log"):
        self.repo = str(tmp / "models")
        self.run_dir = str(tmp / "run")
        self.endpoint = "ipc://%s/front.sock" % tmp
        if not os.path.isdir(self.repo):
            make_repository(self.repo, models)
        super().__init__("kserve-worker", [
            built("kserve-worker"), "--repository", self.repo,
            "--listen", self.endpoint, "--run-dir", self.run_dir,
            "--python-instance", os.path.join(TOOLS, "fake_instance.py"),
            "--execute-timeout", str(EXECUTE_TIMEOUT_MS),
            "--orphan-grace", str(ORPHAN_GRACE_S),
            "--log-level", "debug"], str(tmp / log))

    def instances(self, model):
        """[(pid, argv)] of the instance processes it spawned for model."""
        return [(pid, argv) for pid, argv in children(self.pid)
                if model in argv]

    def instance_pids(self, model):
        return [pid for pid, _ in self.instances(model)]

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stops the worker, then whatever instances of its run directory
        outlived it (adopted ones are not its children)."""
        rc = super().stop(sig, timeout)
        for pid, _ in with_argument(self.run_dir):
            os.kill(pid, signal.SIGKILL)
        return rc


def versions(client, model):
    """{version: VersionStatus} of model in a fresh index."""
    return dict((v[0], v) for v in client.index()[2].get(model, (0, []))[1])


def wait_state(client, model, version, state, timeout=10.0):
    """The reason once model's version is in state, None if it never is."""
    def reason():
        v = versions(client, model).get(version)
        return (v[2],) if v is not None and v[1] == state else None
    found = wait_until(reason, timeout, 0.05)
    return found[0] if found else None


def wait_instances(client, model, version, count, timeout=10.0):
    """The instances of model's version once exactly `count` are listed,
    every one READY; None if that never happens."""
    def ready():
        v = versions(client, model).get(version)
        if v is None or len(v.instances) != count or \
                any(i.state != w.READY_STATE for i in v.instances):
            return None
        return v.instances
    return wait_until(ready, timeout, 0.05)


def wait_push(client, found, timeout=5.0):
    """found(pushed INDEX_REPLY) for the first push to client for which it
    is true (pushes before it are skipped); None if none came in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = client.push(int((deadline - time.monotonic()) * 1000) + 1)
        if m is None:
            return None
        value = found(m)
        if value:
            return value
    return None


def pushed_instance(client, pid, timeout=5.0):
    """The first INDEX_REPLY pushed to client that lists the instance of
    pid not READY: (that instance, the reply); (None, None) if none came."""
    def dead(m):
        for _, vs in m["models"]:
            for v in vs:
                for i in v.instances:
                    if i.pid == pid and i.state != w.READY_STATE:
                        return i, m
        return None
    return wait_push(client, dead, timeout) or (None, None)


def echo_input():
    return [("INPUT0", "FP32", np.arange(4, dtype=np.float32))]


@pytest.fixture(scope="module")
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture(scope="module")
def worker(tmp_path_factory, zctx):
    """One worker for the module; tests that end it start their own."""
    proc = Worker(tmp_path_factory.mktemp("worker"))
    yield proc
    proc.stop()


@pytest.fixture
def client(worker, zctx):
    """A fresh control DEALER per test, so no test reads another's
    replies or pushes."""
    c = ControlClient(zctx, worker.endpoint)
    yield c
    c.close()


@pytest.fixture
def data(zctx):
    """A fresh data ROUTER per test: an nginx worker's side of instances."""
    d = DataClient(zctx)
    yield d
    d.close()


# ---- the index --------------------------------------------------------------

def test_index_shows_every_model_and_its_state(client):
    c = client
    assert wait_state(c, "echo", 2, w.READY_STATE) == "", "echo v2 ready"
    assert wait_state(c, "echo", 1, w.READY_STATE) == "", "echo v1 ready"
    assert wait_state(c, "auto", 3, w.READY_STATE) == "", "auto ready"
    reason = wait_state(c, "broken", 1, w.UNAVAILABLE_STATE)
    assert reason is not None and "initialize failed: boom" in reason, \
        "broken unavailable with initialize() message: %r" % reason
    reason = wait_state(c, "onnx", 1, w.UNAVAILABLE_STATE)
    assert reason == "backend 'onnxruntime' is not supported", reason
    reason = wait_state(c, "badcfg", 1, w.UNAVAILABLE_STATE)
    assert reason is not None and \
        "config.pbtxt:2:19: expected ','" in reason, \
        "badcfg reason: %r" % reason


def have_gpu():
    """The worker's own test (kserve_supervisor.c): the driver's nodes."""
    return (os.path.exists("/dev/nvidia0") or
            os.path.exists("/proc/driver/nvidia/gpus"))


def test_instance_group_count_per_listed_gpu(client, worker):
    """count per listed GPU, device 0 without a list; KIND_GPU runs as
    KIND_CPU (same device ids) on a machine without a GPU; every instance
    gets the run directory, its version's instance count and the
    worker's timeouts"""
    assert wait_state(client, "gpu", 1, w.READY_STATE) == "", "gpu ready"
    argvs = [argv for _, argv in worker.instances("gpu")]
    got = sorted((a[a.index("--instance") + 1], a[a.index("--kind") + 1],
                  a[a.index("--device-id") + 1]) for a in argvs)
    kind = "KIND_GPU" if have_gpu() else "KIND_CPU"
    assert got == [("0", kind, "0"), ("1", kind, "0"), ("2", kind, "3"),
                   ("3", kind, "3"), ("4", kind, "0")], got
    if not have_gpu():
        assert "KIND_GPU but this machine has no GPU" in worker.log()
    a = argvs[0]

    def arg(name):
        return a[a.index(name) + 1]
    assert arg("--connect") == \
        "ipc://%s/instances.sock" % worker.run_dir, a
    assert arg("--version") == "1", a
    assert arg("--run-dir") == worker.run_dir and arg("--bind") == "ipc", a
    assert arg("--instances") == "5", a
    assert arg("--execute-timeout") == str(EXECUTE_TIMEOUT_MS), a
    assert arg("--orphan-grace") == str(ORPHAN_GRACE_S), a


def test_index_carries_configs_and_generation(client):
    c = client
    assert wait_state(c, "gpu", 1, w.READY_STATE) == ""
    gen, full, models = c.index()
    assert full == 1 and set(models) == set(MODELS), sorted(models)
    cfg = models["echo"][0]
    assert cfg["backend"] == "python" and \
        cfg["inputs"][0]["name"] == "INPUT0", cfg
    assert len(cfg["groups"]) == 1 and cfg["groups"][0]["count"] == 2, cfg
    assert models["auto"][0]["backend"] == "python", models["auto"][0]
    # instances that keep failing move the generation now and then
    for _ in range(20):
        gen, _, _ = c.index()
        gen2, full2, models2 = c.index(gen)
        if gen2 != gen:
            assert full2 == 1 and set(models2) == set(MODELS), \
                "a generation behind: the whole index"
            continue
        assert full2 == 0 and models2 == {}, "same generation: short answer"
        break
    else:
        pytest.fail("the generation never held still for two INDEX")


def test_index_lists_each_ready_instance_with_its_endpoint_and_pid(
        client, worker):
    c = client
    for version in (1, 2):
        got = wait_instances(c, "echo", version, 2)
        assert got is not None, versions(c, "echo")
        assert sorted(i.name for i in got) == ["echo_0", "echo_1"], got
        for i in got:
            # the fake binds where the real instance does
            assert i.endpoint == "ipc://%s/%d.sock" % (worker.run_dir, i.pid)
            assert i.state == w.READY_STATE and i.reason == "", i
    spawned = set(worker.instance_pids("echo"))
    listed = {i.pid for v in versions(c, "echo").values()
              for i in v.instances}
    assert listed == spawned and len(listed) == 4, (listed, spawned)
    # a version that never became ready has no instance to list
    assert versions(c, "broken")[1].instances == []


def test_index_endpoints_are_where_the_instances_answer(client, data):
    """what nginx does with the index: send INFER to a listed endpoint"""
    listed = wait_instances(client, "echo", 2, 2)
    assert listed is not None
    for i in listed:
        id_ = data.infer(i.endpoint, "echo", echo_input(), version="2",
                         request_id="r1")
        m = data.answer()
        assert m and m["kind"] == w.INFER_REPLY and m["id"] == id_, m
        assert m["endpoint"] == i.endpoint and m["request_id"] == "r1", m
        assert m["outputs"] == [("OUTPUT0", "FP32", [4], 16)], m


def test_infer_sent_to_the_worker_is_refused_as_unavailable(client):
    """the worker is never on the infer path"""
    id_ = next(IDS)
    client.send(w.infer_arrays(id_, "echo", echo_input()))
    m = w.decode_message(client.recv(), w.ERROR)
    assert m["id"] == id_ and m["code"] == w.UNAVAILABLE, m
    assert "send INFER to an instance endpoint" in m["message"], m


# ---- instances that die -----------------------------------------------------

def test_killed_instance_stays_listed_unavailable_until_its_replacement(
        client, worker):
    """kill -9: listed UNAVAILABLE with the reason while its replacement
    starts (a second), then the replacement with another pid and
    endpoint; the generation moves each time"""
    c = client
    listed = wait_instances(c, "single", 1, 1)
    assert listed is not None, versions(c, "single")
    victim = listed[0]
    gen = c.index()[0]
    os.kill(victim.pid, signal.SIGKILL)

    def dead():
        """(generation, version 1) of one index that lists it dead"""
        m = c.index_reply()
        v = [v for v in models_of(m)["single"][1] if v[0] == 1][0]
        return (m["generation"], v) if v.instances and \
            v.instances[0].state != w.READY_STATE else None
    down = wait_until(dead, 5, 0.02)
    assert down is not None, "never listed as dead: %r" % (
        versions(c, "single"),)
    gen_down, v = down
    assert len(v.instances) == 1, v.instances
    d = v.instances[0]
    assert (d.name, d.pid, d.endpoint) == \
        (victim.name, victim.pid, victim.endpoint), (d, victim)
    assert d.state == w.UNAVAILABLE_STATE and "signal 9" in d.reason, d
    assert gen_down != gen, "generation moved when it died"
    assert v[1] == w.UNAVAILABLE_STATE and "signal 9" in v[2], \
        "its only instance is gone: the version is unavailable: %r" % (v,)

    back = wait_instances(c, "single", 1, 1)
    assert back is not None, "no replacement: %r" % (versions(c, "single"),)
    new = back[0]
    assert new.pid != victim.pid and new.endpoint != victim.endpoint, new
    assert new.pid in worker.instance_pids("single")
    assert c.index()[0] not in (gen, gen_down), "generation moved again"
    assert wait_state(c, "single", 1, w.READY_STATE) == ""


def test_index_is_pushed_unasked_to_clients_that_polled_when_one_dies(
        client, zctx, worker):
    """within milliseconds, so nginx stops sending there and fails what
    it had in flight; a DEALER that never asked for the index gets none"""
    listed = wait_instances(client, "single", 1, 1, timeout=15)
    assert listed is not None
    victim = listed[0]
    never = ControlClient(zctx, worker.endpoint)
    try:
        client.index()              # polled once: the worker remembers it
        client.pushed.clear()
        t0 = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        dead, m = pushed_instance(client, victim.pid)
        took = time.monotonic() - t0
        assert dead is not None, "no push listing pid %d as dead" % victim.pid
        assert dead.state == w.UNAVAILABLE_STATE and \
            "signal 9" in dead.reason, dead
        assert took < 1.5, "pushed %.3f s after the death" % took
        assert m["full"] == 1 and m["id"] == 0, m
        assert never._recv(300) is None, "pushed to a DEALER that never asked"
    finally:
        never.close()
    assert wait_instances(client, "single", 1, 1, timeout=15) is not None


def test_last_words_in_its_statistics_page_are_the_reason(client, data):
    """an instance that kills itself (the watchdog of a hung model)
    leaves why in its page; the index and the version say it"""
    words = ("did not finish a batch of 1 request(s) within 2500 ms "
             "(its deadline + 1000 ms grace): killed as hung")
    listed = wait_instances(client, "single", 1, 1, timeout=15)
    assert listed is not None
    victim = listed[0]
    client.index()
    client.pushed.clear()
    data.infer(victim.endpoint, "single", echo_input(),
               request_id="last words: " + words)
    dead, m = pushed_instance(client, victim.pid)
    assert dead is not None and dead.reason == words, dead
    v = [v for v in models_of(m)["single"][1] if v[0] == 1][0]
    assert v[1] == w.UNAVAILABLE_STATE and \
        v[2] == "instance single_0 %s (signal 9)" % words, v
    assert wait_instances(client, "single", 1, 1, timeout=15) is not None


# ---- statistics -------------------------------------------------------------

def test_stats_sum_every_instance_page_and_keep_those_of_dead_ones(
        client, data):
    c = client
    listed = wait_instances(c, "counted", 1, 2)
    assert listed is not None, versions(c, "counted")
    ids = [data.infer(i.endpoint, "counted", echo_input())
           for i in listed for _ in range(3)]
    ids.append(data.infer(listed[0].endpoint, "counted", echo_input(),
                          request_id="error"))
    got = data.answers(ids)
    assert sum(m["kind"] == w.INFER_REPLY for m in got.values()) == 6, got

    m = c.stats("counted")
    assert [(s["name"], s["version"]) for s in m["models"]] == \
        [("counted", "1")], m
    s = m["models"][0]
    assert s["success"][0] == 6 and s["fail"][0] == 1, s
    assert s["execution_count"] == 7 and s["inference_count"] == 7, s
    assert s["compute_infer"][0] == 6 and s["last_inference"] > 0, s
    assert [b["batch_size"] for b in s["batch"]] == [1] and \
        s["batch"][0]["compute_infer"][0] == 7, s

    # the dead instance's counts stay with the version
    os.kill(listed[0].pid, signal.SIGKILL)

    def replaced():
        ready = wait_instances(c, "counted", 1, 2, timeout=0)
        return ready if ready and listed[0].pid not in \
            [i.pid for i in ready] else None
    after = wait_until(replaced, 10, 0.05)
    assert after is not None, versions(c, "counted")
    s = c.stats("counted", "1")["models"][0]
    assert s["success"][0] == 6 and s["fail"][0] == 1, s
    fresh = [i for i in after if i.pid != listed[1].pid][0]
    data.answers([data.infer(fresh.endpoint, "counted", echo_input())])
    s = c.stats("counted", "1")["models"][0]
    assert s["success"][0] == 7 and s["execution_count"] == 8, s


def test_stats_of_unknown_models_and_of_every_ready_version(client):
    c = client
    assert wait_state(c, "echo", 2, w.READY_STATE) == ""
    assert wait_state(c, "broken", 1, w.UNAVAILABLE_STATE) is not None
    m = c.stats("nope")
    assert m["kind"] == w.ERROR and m["code"] == w.NOT_FOUND and \
        m["message"] == "Request for unknown model: 'nope' is not found", m
    m = c.stats("echo", "3")
    assert m["kind"] == w.ERROR and m["code"] == w.NOT_FOUND and \
        m["message"] == \
        "Request for unknown model: 'echo' version 3 is not found", m
    # a model named: every version whatever its state
    m = c.stats("broken")
    assert [s["version"] for s in m["models"]] == ["1"], m
    # none named: the ready versions only
    m = c.stats()
    names = {(s["name"], s["version"]) for s in m["models"]}
    assert ("echo", "1") in names and ("echo", "2") in names, names
    assert not any(n in ("broken", "onnx", "badcfg") for n, _ in names), \
        names


def test_instance_without_a_statistics_page_serves_and_counts_zero(
        client, data, worker):
    listed = wait_instances(client, "nostats", 1, 1)
    assert listed is not None, versions(client, "nostats")
    data.answers([data.infer(listed[0].endpoint, "nostats", echo_input())])
    s = client.stats("nostats")["models"][0]
    assert s["success"] == (0, 0) and s["execution_count"] == 0, s
    assert "no statistics page" in worker.log()


# ---- what the worker refuses ------------------------------------------------

@pytest.mark.parametrize("model,why", [
    ("no_endpoint", "READY without a usable endpoint"),
    ("wrong_instance", "mismatched READY"),
    ("garbage", "it sent an unreadable message"),
])
def test_instance_whose_ready_is_unusable_is_killed_and_never_listed(
        client, worker, model, why):
    reason = wait_state(client, model, 1, w.UNAVAILABLE_STATE)
    assert reason is not None and \
        reason.startswith("instance %s_0 was killed (signal 9): " % model) \
        and why in reason, reason
    assert versions(client, model)[1].instances == [], \
        "an instance that never was ready is not listed"
    assert worker.proc.poll() is None


def input0(size=16, dims=(4,), dt="FP32"):
    return [("INPUT0", dt, list(dims), size)]


def error(id_, *needles, code=w.INVALID_ARG):
    """The case is answered: ERROR code with id_, message holding needles."""
    return dict(id=id_, code=code, needles=needles)


DROPPED = None

# (name, frames sent to the control socket, what comes back)
MALFORMED = [
    ("short header", [b"\x01\x02"], DROPPED),
    ("empty header frame", [b""], DROPPED),
    ("delimiter frame first (a REQ peer)", [b"", w.index(70, 0)], DROPPED),
    ("bad magic", [w.prefix(w.INDEX, 71, magic=0x1234) + b"\0" * 8],
     DROPPED),
    ("prefix one byte short", [w.prefix(w.INDEX, 72)[:15]], DROPPED),
    ("wrong version", [w.prefix(w.INDEX, 77, version=9)],
     error(77, "protocol version 9")),
    ("unknown kind", [w.prefix(99, 78)], error(78, "unknown message kind 99")),
    ("kind 0", [w.prefix(0, 86)], error(86, "unknown message kind 0")),
    ("EXECUTE from a client", [w.prefix(w.EXECUTE, 79) + b"\0\0\0\0"],
     error(79, "not a request")),
    ("READY from a client", [w.ready("echo", 1, 0, 1)],
     error(0, "not a request")),
    ("INFER_REPLY from a client",
     [w.infer_reply(87, "echo", "1", "", [])], error(87, "not a request")),
    ("CANCEL sent to the worker", [w.cancel(103)],
     error(103, "not a request")),
    ("INFER with a truncated body",
     [w.prefix(w.INFER, 80) + b"\x05\x00ab"],
     error(80, "does not run models", code=w.UNAVAILABLE)),
    ("STATS cut inside its model name",
     [w.stats(102, "echo")[:-3]], error(102, "malformed STATS message")),
    ("STATS with an extra frame", [w.stats(104, "echo"), b"x"],
     error(104, "malformed STATS message")),
    ("STATS with a string longer than the frame",
     [w.prefix(w.STATS, 105) + b"\xff\xff" + b"echo"],
     error(105, "malformed STATS message")),
    ("INDEX with an extra frame", [w.index(84, 0), b"extra"],
     error(84, "malformed INDEX message")),
    ("INDEX cut short", [w.index(101, 0)[:20]],
     error(101, "malformed INDEX message")),
]


@pytest.mark.parametrize("frames,expect", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_control_message(client, worker, frames, expect):
    c = client
    c.send(frames)
    # a client's messages are handled in order and errors are answered at
    # once, so the INDEX sent next proves a message was dropped when its
    # reply is the first thing that comes back
    probe = next(IDS)
    c.send([w.index(probe, 0)])
    first = c.recv()
    assert first is not None, "nothing came back, not even the INDEX"
    m = w.decode(first[0], (w.ERROR, w.INDEX_REPLY))
    if expect is DROPPED:
        assert m["kind"] == w.INDEX_REPLY and m["id"] == probe, m
    else:
        assert m["kind"] == w.ERROR and m["id"] == expect["id"] and \
            m["code"] == expect["code"], m
        for needle in expect["needles"]:
            assert needle in m["message"], m
        assert len(first) == 1, "an ERROR is one frame"
        second = c.recv()
        assert second is not None and \
            w.decode(second[0], w.INDEX_REPLY)["id"] == probe
    assert c.stats("echo")["kind"] == w.STATS_REPLY, "STATS answered after"
    assert worker.proc.poll() is None, "worker alive after malformed input"


def test_too_many_frames_dropped(client, worker):
    c = client
    c.send([w.index(85, 0)] + [b""] * 70000)
    probe = next(IDS)
    c.send([w.index(probe, 0)])
    first = c.recv()
    assert first is not None and \
        w.decode(first[0], w.INDEX_REPLY)["id"] == probe, \
        "message with too many frames dropped"
    assert c.index()[1] == 1, "index still answered"
    assert worker.proc.poll() is None, "worker alive after malformed input"


def test_messages_from_unknown_instances_are_dropped(client, worker, zctx):
    """the instance socket takes READY from the processes it started only"""
    assert wait_state(client, "echo", 2, w.READY_STATE) == ""
    before = versions(client, "echo")[2].instances
    for routing_id, frames in [
            (b"zzz", [w.ready("echo", 2, 0, 1, endpoint="ipc:///x")]),
            (b"i1", [w.ready("echo", 2, 0, 1, endpoint="ipc:///x")]),
            (b"i", [b"garbage"]),
            (b"i99999999999999999999", [b""])]:
        s = zctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 500)
        s.setsockopt(zmq.ROUTING_ID, routing_id)
        s.connect("ipc://%s/instances.sock" % worker.run_dir)
        s.send_multipart(frames)
        s.close()
    assert wait_until(lambda: "message from unknown instance 'zzz' dropped"
                      in worker.log(), 5)
    assert sorted(versions(client, "echo")[2].instances) == sorted(before)
    assert worker.proc.poll() is None


# ---- a restarted worker; shutdown -------------------------------------------

def ready_by_name(client, models):
    """{(model, version, name): (pid, endpoint)} of the READY instances."""
    out = {}
    for model in models:
        for v in versions(client, model).values():
            for i in v.instances:
                if i.state == w.READY_STATE:
                    out[(model, v[0], i.name)] = (i.pid, i.endpoint)
    return out


def test_instances_outlive_a_killed_worker_and_its_restart_adopts_them(
        tmp_path, zctx):
    """kill -9 the worker: its instances serve on; a worker started on the
    same run directory lists them again (same pids and endpoints, from
    <run>/instances.tab) instead of starting new ones, replaces one that
    dies, and stops them all on SIGTERM"""
    first = Worker(tmp_path, ("echo", "single"))
    second = None
    c = ControlClient(zctx, first.endpoint)
    d = DataClient(zctx)
    try:
        assert wait_instances(c, "echo", 1, 2) is not None
        assert wait_instances(c, "echo", 2, 2) is not None
        assert wait_instances(c, "single", 1, 1) is not None
        before = ready_by_name(c, ("echo", "single"))
        assert len(before) == 5, before
        with open(os.path.join(first.run_dir, "instances.tab")) as f:
            listed = {int(line.split("\t")[0]) for line in f}
        assert listed == {pid for pid, _ in before.values()}, listed

        os.kill(first.pid, signal.SIGKILL)
        first.proc.wait()
        time.sleep(0.3)
        assert all(alive(pid) for pid, _ in before.values()), \
            "instances died with their worker"
        pid, endpoint = before[("echo", 2, "echo_0")]
        id_ = d.infer(endpoint, "echo", echo_input())
        m = d.answer()
        assert m and m["id"] == id_ and m["kind"] == w.INFER_REPLY, \
            "served without a worker: %r" % (m,)

        second = Worker(tmp_path, log="worker2.log")
        c.close()
        c = ControlClient(zctx, second.endpoint)
        assert wait_state(c, "single", 1, w.READY_STATE) == ""
        assert ready_by_name(c, ("echo", "single")) == before
        assert children(second.pid) == [], "adopted, none started"
        assert "adopted pid %d" % pid in second.log()

        # an adopted instance that dies is noticed and replaced
        c.index()
        c.pushed.clear()
        os.kill(pid, signal.SIGKILL)
        dead, _ = pushed_instance(c, pid)
        assert dead is not None and dead.state == w.UNAVAILABLE_STATE, dead
        assert wait_instances(c, "echo", 2, 2) is not None
        assert len(second.instance_pids("echo")) == 1, \
            "the replacement is the new worker's child"

        pids = [p for p, _ in ready_by_name(c, ("echo", "single")).values()]
        os.kill(second.pid, signal.SIGTERM)
        assert second.proc.wait(8) == 0
        assert wait_until(lambda: not any(alive(p) for p in pids), 3), \
            "SIGTERM stops adopted instances too"
    finally:
        c.close()
        d.close()
        first.stop()
        if second is not None:
            second.stop()


def test_sigterm_stops_instances_and_removes_run_dir(tmp_path, zctx):
    """SIGTERM: every version is pushed as unavailable first, so nginx
    stops sending; then instances stop, the run dir is removed and the
    worker exits 0 (its own worker)"""
    proc = Worker(tmp_path, ("echo", "single", "auto"))
    c = ControlClient(zctx, proc.endpoint)
    try:
        for model, version in (("echo", 2), ("echo", 1), ("single", 1),
                               ("auto", 3)):
            assert wait_state(c, model, version, w.READY_STATE) == ""
        all_pids = [p for model in ("echo", "single", "auto")
                    for p in proc.instance_pids(model)]
        assert len(all_pids) == 6, "instances before shutdown: %r" % all_pids
        c.pushed.clear()
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)

        def shutdown_states(m):
            states = {(cfg["name"], v[0]): tuple(v[1:3])
                      for cfg, vs in m["models"] for v in vs}
            return states if (w.UNAVAILABLE_STATE, "server is shutting "
                              "down") in states.values() else None
        states = wait_push(c, shutdown_states, 3)
        assert states is not None, "no push on shutdown"
        assert len(states) == 4 and set(states.values()) == \
            {(w.UNAVAILABLE_STATE, "server is shutting down")}, states
        try:
            rc = proc.proc.wait(8)
        except subprocess.TimeoutExpired:
            rc = None
        assert rc == 0, "exit status 0 on SIGTERM: %r" % rc
        assert time.monotonic() - t0 < 6, "stopped within the grace period"
        assert not os.path.exists(proc.run_dir), "run dir removed: %r" % (
            os.listdir(proc.run_dir),)
        left = [p for p in all_pids if alive(p)]
        assert left == [], "no instance left: %r" % left
    finally:
        c.close()
        proc.stop()


@pytest.mark.parametrize("args, why", [
    (["--load-model", "simple"],
     "--load-model needs --model-control-mode explicit"),
    (["--model-control-mode", "explicit", "--load-model", "*",
      "--load-model", "simple"],
     "--load-model * must be the only --load-model"),
    (["--model-control-mode", "sometimes"], "bad --model-control-mode"),
    (["--model-control-mode", "poll", "--repository-poll-secs", "0"],
     "bad --repository-poll-secs"),
])
def test_model_control_options_are_checked(tmp_path, args, why):
    r = subprocess.run([built("kserve-worker"), "--repository", str(tmp_path),
                        "--listen", "ipc://%s/w.sock" % tmp_path] + args,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert why in r.stderr
