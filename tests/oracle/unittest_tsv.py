#!/usr/bin/env python3
"""Runs one unittest file as it is and writes one line per test to a TSV.

    unittest_tsv.py TSV PREFIX FILE.py [Class.test_name ...]

The file is imported from its own directory (the tests append "../common"
to sys.path and write test_results.txt there).  Each test gets
PASS / FAIL / SKIP; a test whose subtests fail is FAIL.  The third
column is the first line of the failure (the assertion's message), the
full tracebacks go to stdout.
"""

import importlib.util
import os
import sys
import traceback
import unittest


class Result(unittest.TextTestResult):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcome = {}

    def _note(self, test, status, err=None):
        name = test.id().split(".", 1)[-1]
        if name in self.outcome and self.outcome[name][0] == "FAIL":
            return
        why = ""
        if err is not None:
            lines = traceback.format_exception_only(err[0], err[1])
            why = " ".join(" ".join(lines).split())[:400]
        self.outcome[name] = (status, why)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcome.setdefault(test.id().split(".", 1)[-1], ("PASS", ""))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._note(test, "FAIL", err)

    def addError(self, test, err):
        super().addError(test, err)
        self._note(test, "FAIL", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._note(test, "SKIP")
        self.outcome[test.id().split(".", 1)[-1]] = ("SKIP", reason)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            status = "FAIL"
            e = err[1]
            lines = traceback.format_exception_only(err[0], e)
            why = subtest._subDescription() + " " + " ".join(
                " ".join(lines).split())
            name = test.id().split(".", 1)[-1]
            if name not in self.outcome or self.outcome[name][0] != "FAIL":
                self.outcome[name] = (status, why[:400])

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._note(test, "PASS")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._note(test, "FAIL")


def main():
    tsv, prefix, path = sys.argv[1], sys.argv[2], sys.argv[3]
    names = sys.argv[4:]
    path = os.path.abspath(path)
    os.chdir(os.path.dirname(path))
    sys.path.insert(0, os.path.dirname(path))
    sys.argv = [path]
    modname = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(names, mod)
    else:
        suite = loader.loadTestsFromModule(mod)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                     resultclass=Result)
    result = runner.run(suite)
    with open(tsv, "a") as f:
        for name, (status, why) in sorted(result.outcome.items()):
            why = why.replace("\t", " ").replace("\n", " ")
            f.write("%s%s\t%s\t%s\n" % (prefix, name, status, why))
    return 0


if __name__ == "__main__":
    sys.exit(main())
