#!/usr/bin/env python3
"""Run the tlsfuzzer conformance scripts against `tlsflow serve --http` (or `openssl s_server
-www`, the reference) and compare the failing cases with conformance/expected-failures.txt.

Standard library only. Typical use, from the repository root:

    python3 conformance/run.py --tlsflow target/release/tlsflow --engine rustls --engine openssl
    python3 conformance/run.py --reference-openssl --table /tmp/reference.md
    python3 conformance/run.py --tlsflow PATH --engine openssl --write-expectations

Exit status: 0 when every failure is listed and every listed failure still fails; 1 on an
unexpected failure, an unexpected pass (or a stale expectation), or a script that crashed,
timed out or killed the server; 2 on a usage or set-up error (no server, no tlsfuzzer).
See conformance/README.md for the expectations format and the bounded scripts.
"""

import argparse
import ast
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
DEFAULT_TLSFUZZER = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "tlsfuzzer"))
DEFAULT_PYTHON = "/var/tmp/tlsfuzzer-venv/bin/python"
DEFAULT_EXPECTATIONS = os.path.join(HERE, "expected-failures.txt")
ENGINES = ("rustls", "openssl")
REFERENCE = "reference"  # the target name of `openssl s_server -www` in tables and expectations
ALL_TARGETS = ENGINES + (REFERENCE,)

# TLS 1.2 scripts default to RSA key exchange and CBC suites, which tlsflow does not offer.
# ECDHE_RSA with AES-128-GCM is the suite both engines and the reference share (the test
# certificate is RSA, because the TLS 1.3 scripts only offer RSA signature schemes).
TLS12_SUITE = ["-C", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]

# The one table of scripts: (script name as in tlsfuzzer's scripts/, arguments, timeout in
# seconds, note). `-n 0` runs every case (several scripts otherwise run a random sample,
# which would make the expectations flaky). Every case set below is deterministic.
SCRIPTS = [
    ("test-tls13-record-padding", ["-n", "0"], 60, ""),
    ("test-tls13-zero-length-data", ["-n", "0"], 60, ""),
    ("test-tls13-zero-content-type", ["-n", "0"], 60, ""),
    ("test-tls13-record-layer-limits", ["-n", "0"], 120, ""),
    ("test-tls13-keyupdate", ["-n", "0"], 180,
     "`multiple KeyUpdate messages` takes ~60 s against openssl s_server"),
    ("test-tls13-empty-alert", ["-n", "0"], 60, ""),
    ("test-tls13-unencrypted-alert", ["-n", "0"], 60, ""),
    ("test-tls13-ccs", ["-n", "0"], 60, ""),
    ("test-tls13-symetric-ciphers", ["-n", "0"], 120, ""),
    ("test-tls13-0rtt-garbage", ["-n", "0"], 60, "--num-bytes left at 16384 (default)"),
    ("test-tls13-connection-abort", ["-n", "0"], 120, "each case 10 times (--repeat default)"),
    ("test-tls13-finished", ["-n", "0"], 120, ""),
    ("test-tls13-invalid-ciphers", ["-n", "0"], 120, ""),
    ("test-tls13-hrr", ["-n", "0"], 60, ""),
    ("test-tls13-conversation", ["-n", "0"], 60, ""),
    ("test-conversation", ["-n", "0"] + TLS12_SUITE, 60, "TLS 1.2, ECDHE-RSA-AES128-GCM"),
    ("test-fuzzed-ciphertext", ["-n", "0"] + TLS12_SUITE, 120, "TLS 1.2, ECDHE-RSA-AES128-GCM"),
    ("test-record-layer-fragmentation", ["-n", "0"] + TLS12_SUITE, 60,
     "TLS 1.2, ECDHE-RSA-AES128-GCM"),
    ("test-invalid-content-type", ["-n", "0"] + TLS12_SUITE, 60, "TLS 1.2, ECDHE-RSA-AES128-GCM"),
    ("test-truncating-of-client-hello", ["-n", "0"] + TLS12_SUITE, 120,
     "TLS 1.2, ECDHE-RSA-AES128-GCM"),
]

SERVER_START_TIMEOUT = 20.0
SERVER_STOP_GRACE = 3.0


class SetupError(Exception):
    """A problem that stops the run before any result means anything (exit status 2)."""


class Interrupted(BaseException):
    """SIGTERM/SIGHUP, turned into an exception so that `finally` blocks clean up."""


def log(msg=""):
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# Test certificates


def make_certificates(openssl, directory):
    """A test CA and an RSA-2048 server certificate signed by it (rustls refuses a CA
    certificate as a server's own, and the TLS 1.3 scripts only offer RSA signatures)."""

    def run(*args):
        res = subprocess.run([openssl] + list(args), cwd=directory, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if res.returncode != 0:
            raise SetupError("openssl {0} failed: {1}".format(
                args[0], res.stdout.decode(errors="replace").strip()))

    with open(os.path.join(directory, "server-ext.cnf"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem",
        "-out", "ca.pem", "-days", "30", "-subj", "/CN=tlsflow conformance test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-key.pem",
        "-out", "server.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
        "-set_serial", "2", "-days", "30", "-extfile", "server-ext.cnf", "-out",
        "server.pem")
    return os.path.join(directory, "server.pem"), os.path.join(directory, "server-key.pem")


# --------------------------------------------------------------------------------------------
# The server under test


class Server(object):
    """`tlsflow serve --http` or `openssl s_server -www` on a free loopback port."""

    def __init__(self, target, args, cert, key, log_dir):
        self.target = target
        self.args = args
        self.cert = cert
        self.key = key
        self.log_dir = log_dir
        self.proc = None
        self.port = None
        self.starts = 0
        self.log_path = None
        self._log_file = None

    def command(self):
        if self.target == REFERENCE:
            # -accept with port 0 picks a free port and prints `ACCEPT 127.0.0.1:PORT`.
            # TLS 1.2 and 1.3 are both on by default.
            return [self.args.openssl, "s_server", "-accept", "127.0.0.1:0", "-cert", self.cert,
                    "-key", self.key, "-www"]
        return [self.args.tlsflow, "serve", "--listen", "127.0.0.1:0", "--http", "--cert",
                self.cert, "--key", self.key, "--engine", self.target, "--shutdown-timeout",
                "1s"] + self.args.server_arg

    def start(self):
        self.starts += 1
        self.log_path = os.path.join(self.log_dir, "server-{0}-{1}.log".format(
            self.target, self.starts))
        self._log_file = open(self.log_path, "wb")
        cmd = self.command()
        with open(os.path.join(self.log_dir, "server-{0}.cmd".format(self.target)), "w") as f:
            f.write(" ".join(cmd) + "\n")
        # s_server reads its stdin and stops at EOF: give it a pipe we hold open (and never
        # write to) until the end. tlsflow gets no stdin at all. A session of its own keeps
        # a terminal's Ctrl-C away from the server: we stop it ourselves.
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE if self.target == REFERENCE else subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)
        pattern = re.compile(rb"(?:listening on|ACCEPT) 127\.0\.0\.1:(\d+)")
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                m = pattern.search(f.read())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        status = self.proc.poll()
        self.stop()
        with open(self.log_path, "rb") as f:
            tail = f.read()[-2000:].decode(errors="replace")
        raise SetupError("{0} did not start ({1}): {2}\n{3}".format(
            self.target, "exit status {0}".format(status) if status is not None else
            "no port printed in {0:.0f} s".format(SERVER_START_TIMEOUT), " ".join(cmd), tail))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL after a grace period; only the process (group) we started."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                for sig, wait in ((signal.SIGTERM, SERVER_STOP_GRACE), (signal.SIGKILL, 5.0)):
                    try:
                        os.killpg(proc.pid, sig)
                    except (ProcessLookupError, PermissionError):
                        pass
                    try:
                        proc.wait(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            if proc.stdin:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return proc.returncode if proc is not None else None


# --------------------------------------------------------------------------------------------
# Running one script and reading its output

# How tlsfuzzer reports a case (same code in every script's main()): it prints
# `NAME ...` (test-tls13-connection-abort: `"NAME" repeat N...`) before running it, then
# `OK` (pass), `OK-expected failure` / `XPASS-...` (only with -x, which we never pass), or
# `Error while processing` followed by the traceback (fail); runner.py prints
# `Error encountered while processing node ...` with the expectation that failed, and the
# traceback ends with the exception (e.g. `AssertionError: Unexpected message from peer:
# Alert(fatal, decode_error)`). At the end: TOTAL/SKIP/PASS/XFAIL/FAIL/XPASS counts and
# `FAILED:` with one repr()'d name per line, tab-indented. `sanity` runs first and last.
START_RE = re.compile(r'^(?:"(?P<q>.*)" repeat \d+\.\.\.|(?P<n>.*) \.\.\.)$')
SUMMARY_RE = re.compile(r"^(TOTAL|SKIP|PASS|XFAIL|FAIL|XPASS): (\d+)$")


def parse_output(text):
    """Returns (cases, summary): cases maps name -> dict(runs, fails, detail), in order of
    first appearance; summary has the TOTAL/PASS/FAIL counts and the FAILED list, or is None
    when the script did not get that far."""
    cases = {}
    current = None  # [name, state, lines]
    summary = None
    in_failed = False

    def finish(cur, state):
        name, _, lines = cur
        c = cases.setdefault(name, {"runs": 0, "fails": 0, "detail": None, "incomplete": False})
        c["runs"] += 1
        if state != "pass":
            c["fails"] += 1
            if c["detail"] is None:
                c["detail"] = failure_detail(lines, state)
            if state == "incomplete":
                c["incomplete"] = True

    for line in text.splitlines():
        if summary is not None:
            if line == "FAILED:" or line == "XPASSED:":
                in_failed = line == "FAILED:"
                continue
            m = SUMMARY_RE.match(line)
            if m:
                summary[m.group(1)] = int(m.group(2))
                continue
            if in_failed and line.startswith("\t"):
                summary["FAILED"].append(parse_repr(line[1:]))
            continue
        if line == "Test end" and (current is None or current[1] is not None):
            if current is not None:
                finish(current, current[1])
                current = None
            summary = {"FAILED": []}
            continue
        m = START_RE.match(line)
        if m and (current is None or current[1] is not None):
            if current is not None:
                finish(current, current[1])
            current = [m.group("q") if m.group("q") is not None else m.group("n"), None, []]
            continue
        if current is None:
            continue
        if current[1] is None:
            if line == "OK" or line.startswith("XPASS-"):
                current[1] = "pass"
                continue
            if line == "Error while processing" or line.startswith("Expected error message:"):
                current[1] = "fail"
            elif line == "OK-expected failure":
                current[1] = "fail"
        current[2].append(line)
    if current is not None:
        finish(current, current[1] or "incomplete")
    return cases, summary


def parse_repr(text):
    try:
        value = ast.literal_eval(text)
        if isinstance(value, str):
            return value
    except (ValueError, SyntaxError):
        pass
    return text


def failure_detail(lines, state):
    """The node that failed and the exception, e.g. `ExpectAlert(level=2, description=(50,))
    : AssertionError: Expected alert description "decode_error" does not match received
    "illegal_parameter"`."""
    node = None
    exc = None
    for line in lines:
        if line.startswith("Error encountered while processing node "):
            node = line[len("Error encountered while processing node "):]
            node = re.sub(r" with last message being: .*$", "", node)
            node = re.sub(r" object at 0x[0-9a-f]+>", ">", node)
            node = re.sub(r"<tlsfuzzer\.\w+\.(\w+)>", r"\1()", node)
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout|Exit)\b.*", line):
            exc = line.strip()
    parts = []
    if exc:
        parts.append(exc)
    if node:
        # Generators print every field of the message they build: keep the class name.
        node = re.sub(r"\b(\w+Generator)\(.*", r"\1(...)", node)
        if len(node) > 160:
            node = node[:157] + "..."
        parts.append("at " + node)
    if state == "incomplete":
        parts.append("case did not finish (script stopped)")
    return "; ".join(parts) if parts else "failed (no detail in output)"


def script_command(args, script, extra):
    """The vendored scripts/*.py are flattened symlinks to scripts/_stub.py (a file holding
    the text `_stub.py`), so run the entry point that stub would: tlsfuzzer._apps.<name>."""
    module = script.replace("-", "_")
    if os.path.isfile(os.path.join(args.tlsfuzzer, "tlsfuzzer", "_apps", module + ".py")):
        return [args.python, "-u", "-m", "tlsfuzzer._apps." + module] + extra
    return [args.python, "-u", os.path.join("scripts", script + ".py")] + extra


def run_script(args, server, script, extra, timeout, log_dir):
    port = server.port
    cmd = script_command(args, script, ["-h", "127.0.0.1", "-p", str(port)] + extra)
    out_path = os.path.join(log_dir, "{0}-{1}.out".format(server.target, script))
    env = dict(os.environ)
    env["PYTHONPATH"] = args.tlsfuzzer + (os.pathsep + env["PYTHONPATH"]
                                          if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the vendored tree is read-only
    start = time.monotonic()
    timed_out = False
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=args.tlsfuzzer, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env)
        try:
            status = proc.wait(timeout=timeout * args.timeout_scale)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            status = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - start
    with open(out_path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    cases, summary = parse_output(text)
    problems = []
    if timed_out:
        problems.append("timed out after {0:.0f} s".format(timeout * args.timeout_scale))
    elif summary is None:
        tail = [l for l in text.splitlines() if l.strip()][-1:] or ["(no output)"]
        problems.append("script exited with status {0} before its summary: {1}".format(
            status, tail[0]))
    else:
        failed_here = {n for n, c in cases.items() if c["fails"]}
        if set(summary["FAILED"]) != failed_here or (status != 0) != bool(summary["FAILED"]):
            problems.append("could not reconcile the output with the summary (exit {0}, "
                            "FAILED {1}, parsed {2})".format(status, len(summary["FAILED"]),
                                                            len(failed_here)))
    if not cases and not problems:
        problems.append("no case ran")
    return {
        "script": script,
        "command": cmd,
        "output": out_path,
        "seconds": elapsed,
        "cases": cases,
        "summary": summary,
        "problems": problems,
        "port": port,
    }


# --------------------------------------------------------------------------------------------
# Expectations
#
# One expected failure per line, four fields separated by " | ":
#     ENGINE | SCRIPT | CASE | REASON
# ENGINE is rustls, openssl or reference (openssl s_server), a comma list, or *; SCRIPT is the
# script name without .py; CASE is the case name exactly as tlsfuzzer prints it, where * matches
# any text (the only wildcard); REASON is free text. Every case a line matches must fail,
# unless REASON starts with "flaky:" (then a matching case may pass or fail).


class Expectation(object):
    def __init__(self, engines, script, case, reason, lineno, raw):
        self.engines = engines  # tuple of targets
        self.script = script
        self.case = case
        self.reason = reason
        self.lineno = lineno
        self.raw = raw
        self.flaky = reason.lower().startswith("flaky:")
        parts = [re.escape(p) for p in case.split("*")]
        self.regex = re.compile("^" + ".*".join(parts) + "$", re.S)

    def covers(self, target, script):
        return target in self.engines and script == self.script

    def matches(self, case):
        return self.regex.match(case) is not None

    def line(self, engines=None):
        engines = self.engines if engines is None else engines
        eng = "*" if set(engines) == set(ALL_TARGETS) else ",".join(engines)
        return "{0} | {1} | {2} | {3}".format(eng, self.script, self.case, self.reason)


def parse_engines(text, path, lineno):
    text = text.strip()
    if text == "*":
        return ALL_TARGETS
    engines = tuple(e.strip() for e in text.split(","))
    for e in engines:
        if e not in ALL_TARGETS:
            raise SetupError("{0}:{1}: unknown engine {2!r} (expected {3} or *)".format(
                path, lineno, e, ", ".join(ALL_TARGETS)))
    return engines


def load_expectations(path):
    """Returns (lines, expectations): the file's lines (kept for rewriting) and the parsed
    entries."""
    if not os.path.exists(path):
        return [], []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    entries = []
    known_scripts = {s[0] for s in SCRIPTS}
    for i, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.split(" | ", 3)
        if len(fields) != 4 or not all(f.strip() for f in fields):
            raise SetupError("{0}:{1}: expected `ENGINE | SCRIPT | CASE | REASON`, got {2!r}"
                             .format(path, i, raw))
        engines = parse_engines(fields[0], path, i)
        script = fields[1].strip()
        if script.endswith(".py"):
            script = script[:-3]
        if script not in known_scripts:
            raise SetupError("{0}:{1}: script {2!r} is not in the runner's table".format(
                path, i, script))
        entries.append(Expectation(engines, script, fields[2].strip(), fields[3].strip(), i,
                                   raw))
    return lines, entries


def compare(target, results, expectations):
    """Returns (unexpected_failures, unexpected_passes, stale) for one target."""
    unexpected_failures = []
    unexpected_passes = []
    stale = []
    for res in results:
        script = res["script"]
        relevant = [e for e in expectations if e.covers(target, script)]
        used = set()
        for name, c in res["cases"].items():
            matching = [e for e in relevant if e.matches(name)]
            for e in matching:
                used.add(id(e))
            if c["fails"] and not matching:
                unexpected_failures.append((script, name, c["detail"]))
            elif not c["fails"] and matching and not any(e.flaky for e in matching):
                unexpected_passes.append((script, name, matching[0]))
        if not res["problems"]:
            for e in relevant:
                if id(e) not in used and not e.flaky:
                    stale.append(e)
    return unexpected_failures, unexpected_passes, stale


def write_expectations(path, lines, expectations, target, results):
    """Rewrites the expectations of `target` for the scripts that ran to completion: lines
    whose every matching case still fails stay as they are (with their reasons); a line that
    now matches a passing case, or none, is narrowed to the exact failing names it covered
    (keeping its reason) or dropped; failures no line covers are added with a TODO reason.
    Lines of other engines, comments and scripts that did not complete are left alone."""
    complete = {r["script"]: r for r in results if not r["problems"]}
    replace = {}  # lineno -> list of new lines (possibly empty)
    added = []
    for script, res in complete.items():
        failing = sorted(n for n, c in res["cases"].items() if c["fails"])
        passing = [n for n, c in res["cases"].items() if not c["fails"]]
        for n in failing:
            if " | " in n or "*" in n:
                log("warning: {0}: case name {1!r} contains ' | ' or '*': check its "
                    "expectation line by hand".format(script, n))
        relevant = [e for e in expectations if e.covers(target, script)]
        covered = set()
        for e in relevant:
            fails = [n for n in failing if e.matches(n)]
            passes = [n for n in passing if e.matches(n)]
            if e.flaky or (fails and not passes):
                covered.update(fails)
                continue
            # This line is wrong for `target`: keep it for the other engines, narrow it here.
            others = tuple(x for x in e.engines if x != target)
            new = [e.line(others)] if others else []
            for n in fails:
                if n not in covered:
                    covered.add(n)
                    new.append("{0} | {1} | {2} | {3}".format(target, script, n, e.reason))
            replace.setdefault(e.lineno, []).extend(new)
        for n in failing:
            if n not in covered:
                covered.add(n)
                detail = res["cases"][n]["detail"] or ""
                added.append("{0} | {1} | {2} | TODO classify: {3}".format(
                    target, script, n, detail.replace("\n", " ")))
    out = []
    for i, raw in enumerate(lines, 1):
        if i in replace:
            out.extend(replace[i])
        else:
            out.append(raw)
    if not lines:
        out.extend(HEADER.rstrip("\n").split("\n"))
    if added:
        out.append("")
        out.append("# added by run.py --write-expectations for {0} on {1}".format(
            target, datetime.date.today().isoformat()))
        out.extend(added)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(out).rstrip("\n") + "\n")
    os.replace(tmp, path)
    return len(added), sum(1 for v in replace.values()), len(replace)


HEADER = """\
# Expected tlsfuzzer failures, read by conformance/run.py.
# One line per expected failure:  ENGINE | SCRIPT | CASE | REASON
#   ENGINE  rustls, openssl, reference (openssl s_server -www), a comma list, or *
#   SCRIPT  the tlsfuzzer script name, without .py
#   CASE    the case name exactly as tlsfuzzer prints it; * matches any text
#   REASON  free text; start it with (a) for "unsupported by design", (b) for "tlsflow bug"
# Every case a line matches must fail, and every failing case must be matched: otherwise
# run.py exits 1. A REASON starting with "flaky:" lets the matching cases pass or fail.
# Blank lines and lines starting with # are ignored.
"""


# --------------------------------------------------------------------------------------------
# Reporting


def print_table(targets, table):
    names = [s[0] for s in SCRIPTS if s[0] in table]
    width = max([len(n) for n in names] + [6])
    head = "{0:<{w}}".format("script", w=width) + "".join(
        "  {0:>22}".format(t + " pass/fail (s)") for t in targets)
    log(head)
    log("-" * len(head))
    for name in names:
        row = "{0:<{w}}".format(name, w=width)
        for t in targets:
            r = table[name].get(t)
            row += "  {0:>22}".format(cell(r) if r else "-")
        log(row)
    totals = "{0:<{w}}".format("total", w=width)
    for t in targets:
        rs = [table[n][t] for n in names if t in table[n]]
        p = sum(count(r)[0] for r in rs)
        f = sum(count(r)[1] for r in rs)
        s = sum(r["seconds"] for r in rs)
        totals += "  {0:>22}".format("{0}/{1} ({2:.0f})".format(p, f, s))
    log(totals)


def shown_args(extra):
    """The script's arguments, with a long run of `-e NAME` summarised."""
    shown = list(extra)
    n_e = extra.count("-e")
    if n_e:
        shown = extra[:extra.index("-e")] + ["+ {0} x -e".format(n_e)]
    return shown


def count(r):
    """Passed and failed runs as tlsfuzzer itself counts them (its PASS and FAIL lines:
    `sanity` runs twice, and a repeated case counts once), or by case when the script did not
    reach its summary."""
    summary = r.get("summary")
    if summary and "PASS" in summary and "FAIL" in summary:
        return summary["PASS"], summary["FAIL"]
    passed = sum(1 for c in r["cases"].values() if not c["fails"])
    failed = sum(1 for c in r["cases"].values() if c["fails"])
    return passed, failed


def cell(r):
    p, f = count(r)
    text = "{0}/{1} ({2:.0f})".format(p, f, r["seconds"])
    if r["problems"]:
        text = "!" + text
    return text


def markdown_table(targets, table, commands):
    names = [s[0] for s in SCRIPTS if s[0] in table]
    notes = {s[0]: s for s in SCRIPTS}
    out = ["| script | options | " + " | ".join(
        "{0}: passed / failed (s)".format(t) for t in targets) + " |",
           "|---|---|" + "---:|" * len(targets)]
    for name in names:
        opt = "`{0}`".format(" ".join(shown_args(notes[name][1])))
        if notes[name][3]:
            opt += "; " + notes[name][3]
        row = "| {0} | {1} | ".format(name, opt.replace("|", "\\|"))
        cells = []
        for t in targets:
            r = table[name].get(t)
            if not r:
                cells.append("-")
                continue
            p, f = count(r)
            c = "{0} / {1} ({2:.0f})".format(p, f, r["seconds"])
            if r["problems"]:
                c += " **" + "; ".join(r["problems"]).replace("|", "\\|") + "**"
            cells.append(c)
        out.append(row + " | ".join(cells) + " |")
    tot = []
    for t in targets:
        rs = [table[n][t] for n in names if t in table[n]]
        tot.append("{0} / {1} ({2:.0f})".format(sum(count(r)[0] for r in rs),
                                               sum(count(r)[1] for r in rs),
                                               sum(r["seconds"] for r in rs)))
    out.append("| **total** | | " + " | ".join(tot) + " |")
    out.append("")
    out.append("Counts are tlsfuzzer's own (its PASS and FAIL lines: `sanity` runs first and "
               "last and counts twice). Servers:")
    out.append("")
    for t, cmd in commands.items():
        out.append("- {0}: `{1}`".format(t, cmd))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run tlsfuzzer against `tlsflow serve --http` or `openssl s_server -www` "
                    "and compare failures with the expectations file.",
        epilog="Example: python3 conformance/run.py --tlsflow target/release/tlsflow "
               "--engine rustls --engine openssl --table /tmp/conformance.md")
    p.add_argument("--tlsflow", metavar="PATH", help="the tlsflow binary to test")
    p.add_argument("--engine", action="append", choices=ENGINES,
                   help="engine for tlsflow serve (repeatable; default rustls)")
    p.add_argument("--reference-openssl", action="store_true",
                   help="also (or only) run against `openssl s_server -www`, target 'reference'")
    p.add_argument("--tlsfuzzer", metavar="DIR", default=DEFAULT_TLSFUZZER,
                   help="tlsfuzzer checkout (default: %(default)s)")
    p.add_argument("--python", metavar="PATH", default=DEFAULT_PYTHON,
                   help="python with tlslite-ng and ecdsa (default: %(default)s)")
    p.add_argument("--openssl", metavar="PATH", default="openssl",
                   help="openssl CLI, for certificates and the reference (default: %(default)s)")
    p.add_argument("--expectations", metavar="FILE", default=DEFAULT_EXPECTATIONS,
                   help="expected failures (default: %(default)s)")
    p.add_argument("--write-expectations", action="store_true",
                   help="rewrite the expectations of the engines run from this run's results, "
                        "keeping the reasons of lines that remain")
    p.add_argument("--table", metavar="FILE", help="write the results table as Markdown")
    p.add_argument("--json", metavar="FILE", help="write every case's result as JSON")
    p.add_argument("--log-dir", metavar="DIR",
                   help="where to keep server logs and script outputs (default: a new "
                        "directory under $TMPDIR, kept and printed at the end)")
    p.add_argument("--only", action="append", metavar="SCRIPT",
                   help="run only this script (repeatable)")
    p.add_argument("--timeout-scale", type=float, default=1.0, metavar="F",
                   help="multiply every per-script timeout (slow machines)")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `tlsflow serve` (repeatable), e.g. --server-arg=-q")
    p.add_argument("--list", action="store_true", help="print the script table and exit")
    args = p.parse_args(argv)
    if args.list:
        return args
    if not args.tlsflow and not args.reference_openssl:
        p.error("give --tlsflow PATH or --reference-openssl (or both)")
    if args.engine and not args.tlsflow:
        p.error("--engine needs --tlsflow")
    args.targets = []
    if args.reference_openssl:
        args.targets.append(REFERENCE)
    if args.tlsflow:
        for e in args.engine or ["rustls"]:
            if e not in args.targets:
                args.targets.append(e)
        args.tlsflow = os.path.abspath(args.tlsflow)
    args.tlsfuzzer = os.path.abspath(args.tlsfuzzer)
    if args.only:
        known = {s[0] for s in SCRIPTS}
        for s in args.only:
            if s.endswith(".py"):
                s = s[:-3]
            if s not in known:
                p.error("--only {0}: not in the script table (see --list)".format(s))
        args.only = {s[:-3] if s.endswith(".py") else s for s in args.only}
    return args


def check_setup(args):
    if not os.path.isdir(os.path.join(args.tlsfuzzer, "tlsfuzzer")):
        raise SetupError("no tlsfuzzer package under {0} (--tlsfuzzer)".format(args.tlsfuzzer))
    if not os.access(args.python, os.X_OK):
        raise SetupError("{0} not found (--python); set it up with: python3 -m venv "
                         "/var/tmp/tlsfuzzer-venv && /var/tmp/tlsfuzzer-venv/bin/pip install "
                         "tlslite-ng==0.9.0b2 ecdsa".format(args.python))
    res = subprocess.run([args.python, "-c", "import tlslite, ecdsa"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if res.returncode != 0:
        raise SetupError("{0} cannot import tlslite and ecdsa: {1}".format(
            args.python, res.stdout.decode(errors="replace").strip()))
    if shutil.which(args.openssl) is None:
        raise SetupError("openssl CLI {0!r} not found (--openssl)".format(args.openssl))
    if args.tlsflow and not os.access(args.tlsflow, os.X_OK):
        raise SetupError("{0} is not an executable (--tlsflow)".format(args.tlsflow))


SHOW_AT_MOST = 100


def show_list(lines, path):
    """Prints the lines (at most SHOW_AT_MOST) and writes all of them to `path`."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    for line in lines[:SHOW_AT_MOST]:
        log("  " + line)
    if len(lines) > SHOW_AT_MOST:
        log("  ... and {0} more: all {1} in {2}".format(len(lines) - SHOW_AT_MOST, len(lines),
                                                       path))


def on_signal(signum, frame):
    raise Interrupted("signal {0}".format(signum))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name, extra, timeout, note in SCRIPTS:
            shown = shown_args(extra)
            log("{0:<34} {1:>4}s  {2}  {3}".format(name, timeout, " ".join(shown), note))
        return 0
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    server = None
    try:
        check_setup(args)
        lines, expectations = load_expectations(args.expectations)
        log_dir = args.log_dir or tempfile.mkdtemp(prefix="tlsflow-conformance-")
        os.makedirs(log_dir, exist_ok=True)
        log_dir = os.path.abspath(log_dir)
        cert, key = make_certificates(args.openssl, log_dir)
        scripts = [s for s in SCRIPTS if not args.only or s[0] in args.only]

        table = {}
        commands = {}
        all_results = {}
        status = 0
        for target in args.targets:
            log("== {0}".format(target if target != REFERENCE else "reference: openssl "
                                "s_server -www"))
            server = Server(target, args, cert, key, log_dir)
            server.start()
            commands[target] = " ".join(server.command()).replace(log_dir, "$LOGDIR")
            results = []
            t0 = time.monotonic()
            for name, extra, timeout, note in scripts:
                if not server.alive():
                    log("   server was not running before {0}: restarting".format(name))
                    server.stop()
                    server.start()
                res = run_script(args, server, name, extra, timeout, log_dir)
                if not server.alive():
                    code = server.proc.returncode
                    res["problems"].append("server exited (status {0}); log {1}".format(
                        code, server.log_path))
                    server.stop()
                    server.start()
                p, f = count(res)
                log("   {0:<34} {1:>5} passed {2:>5} failed  {3:6.1f} s{4}".format(
                    name, p, f, res["seconds"],
                    "  !! " + "; ".join(res["problems"]) if res["problems"] else ""))
                results.append(res)
                table.setdefault(name, {})[target] = res
            elapsed = time.monotonic() - t0
            server.stop()
            server = None
            log("   {0}: {1:.0f} s in all".format(target, elapsed))
            all_results[target] = (results, elapsed)

        log("")
        print_table(args.targets, table)

        for target in args.targets:
            results, _ = all_results[target]
            unexpected, xpass, stale = compare(target, results, expectations)
            problems = [(r["script"], pr) for r in results for pr in r["problems"]]
            log("")
            if not (unexpected or xpass or stale or problems):
                log("{0}: all failures as expected ({1} expected failures)".format(
                    target, sum(count(r)[1] for r in results)))
                continue
            status = 1
            if problems:
                log("{0}: SCRIPT PROBLEMS ({1}):".format(target, len(problems)))
                for script, pr in problems:
                    log("  {0}: {1}".format(script, pr))
            if unexpected:
                log("{0}: UNEXPECTED FAILURES ({1}), not in {2}:".format(
                    target, len(unexpected), args.expectations))
                show_list(["{0} | {1} | {2} | {3}".format(target, script, name, detail)
                           for script, name, detail in unexpected],
                          os.path.join(log_dir, "unexpected-failures-{0}.txt".format(target)))
            if xpass:
                log("{0}: UNEXPECTED PASSES ({1}), listed as failures but passed:".format(
                    target, len(xpass)))
                show_list(["{0} | {1}   (line {2}: {3})".format(script, name, e.lineno, e.case)
                           for script, name, e in xpass],
                          os.path.join(log_dir, "unexpected-passes-{0}.txt".format(target)))
            if stale:
                log("{0}: STALE EXPECTATIONS ({1}), matching no case that ran:".format(
                    target, len(stale)))
                for e in stale:
                    log("  line {0}: {1}".format(e.lineno, e.raw.strip()))

        if args.write_expectations:
            for target in args.targets:
                results, _ = all_results[target]
                lines, expectations = load_expectations(args.expectations)
                added, _, changed = write_expectations(args.expectations, lines, expectations,
                                                       target, results)
                log("wrote {0}: {1}: {2} lines added, {3} lines narrowed or removed".format(
                    args.expectations, target, added, changed))
        if args.table:
            with open(args.table, "w", encoding="utf-8") as f:
                f.write(markdown_table(args.targets, table, commands))
            log("table written to {0}".format(args.table))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({t: {"seconds": all_results[t][1], "commands": commands.get(t),
                               "results": all_results[t][0]} for t in args.targets}, f,
                          indent=1)
        log("logs and script outputs: {0}".format(log_dir))
        return status
    except SetupError as e:
        log("error: {0}".format(e))
        return 2
    except (KeyboardInterrupt, Interrupted) as e:
        log("interrupted ({0}): stopping the server".format(str(e) or "Ctrl-C"))
        return 130
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
