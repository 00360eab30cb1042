"""Component fixtures: one built binary at a time, its peers played in Python.

test_worker.py runs build/kserve-worker (the control plane) against fake
instances (tests/tools/fake_instance.py); test_python_instance.py runs
build/kserve-python-instance (the data plane) against a worker's control
socket played by the test.  Both play the nginx module's sockets with
peers.py, in the wire format of tests/tools/ksv_wire.py.  Binaries come
from $KSV_BUILD (default build/); processes.py starts and stops them.
When a test fails, the logs of the processes running at the time are
attached to its report.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tools"))

from processes import LOGS  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for path, name in list(LOGS.items()):
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            report.sections.append(("%s log (%s)" % (name, path),
                                    text[-6000:]))
