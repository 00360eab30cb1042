"""Starting, watching and stopping the binaries under test.

Binaries come from $KSV_BUILD (default build/).  Every process a test
starts is stopped by its pid when the test (or the module, for a
module-scoped fixture) ends, and so is anything it left behind among its
descendants (or, for processes that outlive their parent on purpose,
among the processes started with its run directory: with_argument()).
Everything listens on ipc:// sockets in a per-test temporary directory.
"""

import os
import re
import signal
import subprocess
import time

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(TOP, os.environ.get("KSV_BUILD", "build"))
TOOLS = os.path.join(TOP, "tests", "tools")

# the first line of an ASan/LSan/UBSan report
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|"
                              r"runtime error: |"
                              r"SUMMARY: UndefinedBehaviorSanitizer")


def built(name):
    """The path of a binary in the build directory; fails when absent."""
    path = os.path.join(BUILD, name)
    if not os.access(path, os.X_OK):
        pytest.fail("%s is not built (run make)" % path, pytrace=False)
    return path


def wait_until(predicate, timeout=10.0, interval=0.02):
    """Polls predicate until it returns a true value; returns that or None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(interval)


# ---- processes --------------------------------------------------------------

def children(pid):
    """[(pid, argv)] of pid's live children, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        # a zombie is already gone as far as a test is concerned
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append((int(entry), [a.decode() for a in argv]))
    return found


def descendants(pid):
    """Pids under pid, children before grandchildren."""
    out, todo = [], [pid]
    while todo:
        kids = [c for c, _ in children(todo.pop(0))]
        out.extend(kids)
        todo.extend(kids)
    return out


def with_argument(value):
    """[(pid, argv)] of live processes with value among their arguments:
    how a test finds what it started when it is nobody's child any more
    (instances outlive a killed worker)."""
    found = []
    want = value.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        if want in argv and alive(int(entry)):
            found.append((int(entry), [a.decode() for a in argv]))
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# Logs of the processes now running, attached to a failing test's report.
LOGS = {}


class Process:
    """A started binary with its log; stop() ends it and its descendants."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        LOGS[log_path] = name

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signals the process, waits, then SIGKILLs it and whatever of
        its descendants outlived it.  Returns its exit status."""
        rest = descendants(self.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        for pid in rest:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        LOGS.pop(self.log_path, None)
        reports = self.sanitizer_reports()
        assert not reports, "%s: sanitizer report in %s:\n%s" % (
            self.name, self.log_path, "".join(reports[:20]))
        return self.proc.returncode

    def sanitizer_reports(self):
        """Lines that open an ASan/LSan/UBSan report (SANITIZE=1 builds;
        the process and its children write to this log)."""
        with open(self.log_path, errors="replace") as f:
            return [line for line in f if SANITIZER_REPORT.search(line)]
