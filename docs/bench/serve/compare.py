#!/usr/bin/env python3
"""Measure the `tlsflow` command as a server, side by side with stunnel, socat and plain TCP.

    python3 docs/bench/serve/compare.py --tlsflow PATH/TO/tlsflow [--json out.json]
    python3 docs/bench/serve/compare.py --tlsflow PATH --quick        # smoke test, ~2 minutes

Python 3.9+ standard library only. It also needs, on Debian: `apt-get install -y stunnel4 socat
gcc libssl-dev openssl` (gcc and libssl-dev build the two C helpers below at run time, into
the working directory; the `openssl` CLI makes the certificates). The tlsflow binary must be
a release build with the `openssl` feature for the `--engine openssl` rows (otherwise those
rows report the error). Everything runs on 127.0.0.1; each server is started as a process,
measured, and stopped; the runs are interleaved (run 1 of every server, then run 2, ...), so
that a change in the machine's load spreads over all servers rather than hitting one.

Servers under test (the measured process tree, and what is behind it, not counted):

  tcp              tcp_echo.c: the plain-TCP baseline. One process, one thread, epoll,
                   non-blocking sockets, echo per read, no buffer held by an idle connection
                   (24 bytes of a per-descriptor table). Why C and not socat or Python:
                   `socat ... fork EXEC:cat` forks two processes per connection and an
                   asyncio echo would charge Python's own objects (~1 KB and more) to every
                   connection; the baseline must be what the kernel and a lean native event
                   loop cost, so that "above plain TCP" is what TLS and the server add.
  tlsflow-rustls   `tlsflow serve --echo` (rustls engine), --max-connections above N.
  tlsflow-openssl  the same with `--engine openssl`.
  tlsflow-forward  `tlsflow serve --forward` to a tcp_echo backend (A, B), to a tcp_echo sink
                   (C); tlsflow-forward-openssl is the same with `--engine openssl` (C only).
  stunnel          stunnel4 server mode (accept TLS, connect to the same backend), one process
                   with a thread per connection, `debug = 4` so that it logs no line per
                   connection (tlsflow logs none by default). Measured: stunnel's process.
  socat            `socat OPENSSL-LISTEN:...,fork,nodelay TCP:backend,nodelay`: one process
                   forked per connection, so its memory and CPU are summed over the parent and
                   every child (CPU of children that exited is in the parent's cutime/cstime
                   once reaped). Summed VmRSS counts the pages the children share (libssl,
                   libc, the parent's heap) once per process; the PSS sum (proportional set
                   size, /proc/PID/smaps_rollup) is what they really cost and is reported too.
                   `nodelay` is set because without it every handshake waits 40 ms (Nagle and
                   delayed ACK); socat 1.7.4 has no option for the ECDHE group, so it
                   negotiates P-256 where the others pick X25519. Its count of connections in
                   A is --socat-connections (default 1,000): each is a process of ~1 MB PSS.
  tlsflow-tunnel   `tlsflow tunnel` (plain TCP in, TLS out) in front of `tlsflow serve --echo`
                   (A, B) or `tlsflow serve --sink` (C); the client speaks plain TCP to it.
  stunnel-client   stunnel in client mode (`client = yes`, verifying the chain and host) in
                   front of the same backend: the comparison for tlsflow-tunnel. Both tunnels
                   resume TLS sessions with their backend by default (checked against
                   `openssl s_server -www`: "Reused"), and tlsflow tunnel has no switch to
                   turn that off, so the tunnel rows of B are resumed handshakes, on both.

Every server gets the same certificate: an ECDSA P-256 leaf for localhost/127.0.0.1 issued by
a test CA, made here with the `openssl` CLI. The process running this program raises its soft
RLIMIT_NOFILE to the hard limit before starting anything, so every server inherits it. A server
that needs two descriptors per connection (forwarders, tunnels) is measured in A at the largest
multiple of 500 connections that fits in 95% of that limit when N does not fit (the hard limit
is 20,000 on some machines and cannot be raised there).

Clients: tls_client.c, in C on OpenSSL (Python's ssl spends ~1.8 ms of CPU per handshake, four
times the server's, on a machine with two cores shared by both). TLS 1.3 only, the server name
verified against the test CA, a new SSL object and no session cache for each connection (full
handshakes, no resumption), clean closes (close_notify both ways). --clients processes (default:
the number of CPUs) run at once.

Measures:

  A  memory per idle connection: RSS (VmRSS, summed over the server's process tree) after one
     warm-up connection came and went and --settle seconds passed ("before"); with N
     connections open, each after a full handshake and one 1 KiB message echoed, all idle
     ("idle", 1 s after the last one opened); and --settle seconds after all were closed and
     the server's descriptors are back ("after"; again 3 s later, "after+3s"). Per connection:
     (idle - before) / N; reported above the plain-TCP server's figure, with after/before.
  B  full handshakes per second: for --duration seconds, each client process loops: connect,
     TLS 1.3 handshake (ECDHE, no resumption), 1 byte echoed, clean close. Reported with the
     server's CPU seconds (utime+stime from /proc/PID/stat, over its tree) per 1,000 handshakes.
  C  throughput through a forwarder: --size bytes of random data (a file in /dev/shm) pushed one
     way through the server to a sink, timed from starting the client to the sink's end of
     stream. The TLS client is `tlsflow connect --cipher-suite TLS_AES_128_GCM_SHA256` reading
     the file on stdin (`openssl s_client` cannot half-close: with -quiet it never sends
     close_notify at the end of stdin); its CPU per GiB and how busy it was are reported, to
     show whether it was the bottleneck. For the tunnels the client is a plain-TCP sender
     (sendfile) and the sink is `tlsflow serve --sink`, whose SHA-256 is checked.

Output: one Markdown table per measure (median and min-max over --runs), the machine and
versions, the load average, and what each server wrote on stderr that looks like a warning or
error; --json PATH writes every raw figure. Every wait is bounded, and every process started here
is stopped (its process group, SIGTERM then SIGKILL) at the end, on error and on Ctrl-C.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = 1024  # VmRSS and Pss are in kB (KiB)
LOG = print

# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A process in its own process group, with its output read by threads, line by line,
    each line timestamped (time.monotonic) and copied to a log file."""

    registry = []

    def __init__(self, name, argv, workdir, stdin=subprocess.DEVNULL, stdout=True, env=None):
        self.name = name
        self.argv = argv
        self.lines = []  # (monotonic time, stream, text)
        self.cond = threading.Condition()
        self.log = open(os.path.join(workdir, f"{name}.log"), "a", buffering=1)
        self.log.write(f"$ {' '.join(map(str, argv))}\n")
        self.p = subprocess.Popen(
            [str(a) for a in argv],
            stdin=stdin,
            stdout=subprocess.PIPE if stdout is True else stdout,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
        self.pid = self.p.pid
        self.rusage = None
        Proc.registry.append(self)
        self.threads = []
        for stream, pipe in (("out", self.p.stdout), ("err", self.p.stderr)):
            if pipe is not None:
                t = threading.Thread(target=self._read, args=(stream, pipe), daemon=True)
                t.start()
                self.threads.append(t)

    def _read(self, stream, pipe):
        for raw in iter(pipe.readline, b""):
            text = raw.decode(errors="replace").rstrip("\n")
            with self.cond:
                self.lines.append((time.monotonic(), stream, text))
                self.cond.notify_all()
            try:
                self.log.write(f"[{stream}] {text}\n")
            except ValueError:
                pass
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pattern, timeout, stream=None, start=0):
        """The first line (index >= start) matching pattern: (index, time, match)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    t, s, text = self.lines[i]
                    if stream in (None, s):
                        m = rx.search(text)
                        if m:
                            return i, t, m
                left = deadline - time.monotonic()
                if left <= 0 or (not self.alive() and all(not t.is_alive() for t in self.threads)):
                    tail = " | ".join(x[2] for x in self.lines[-5:])
                    state = "running" if self.alive() else "exited"
                    raise RuntimeError(f"{self.name}: no line matching {pattern!r} within {timeout:.0f} s ({state}; last output: {tail})")
                self.cond.wait(min(left, 0.2))

    def alive(self):
        """Whether the process runs, without reaping it (its rusage is read when reaped)."""
        if self.p.returncode is not None:
            return False
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def send(self, text):
        try:
            self.p.stdin.write(text.encode())
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def wait_exit(self, timeout):
        """Waits (bounded) for the process to exit and keeps its rusage; returns the status."""
        deadline = time.monotonic() + timeout
        while True:
            if self.p.returncode is not None:
                return self.p.returncode
            try:
                pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.p.poll()
                return self.p.returncode
            if pid == self.pid:
                self.rusage = ru
                self.p.returncode = os.waitstatus_to_exitcode(status)
                return self.p.returncode
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: still running after {timeout:.0f} s")
            time.sleep(0.01)

    def cpu_of_exited(self):
        return self.rusage.ru_utime + self.rusage.ru_stime if self.rusage else float("nan")

    def stop(self, grace=5.0):
        """SIGTERM to the process group, then SIGKILL after `grace` seconds."""
        if self.p.returncode is None and self.p.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.wait_exit(grace)
            except RuntimeError:
                pass
        # The group may outlive its leader (socat's children): kill what is left.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.p.returncode is None:
            try:
                self.wait_exit(2)
            except RuntimeError:
                pass
        for t in self.threads:
            t.join(timeout=2)
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            if f:
                try:
                    f.close()
                except OSError:
                    pass
        self.log.close()
        if self in Proc.registry:
            Proc.registry.remove(self)

    def complaints(self):
        """stderr lines that look like warnings or errors."""
        rx = re.compile(r"WARN|ERROR|[Ee]rror|panick|LOG[0-3]\[| E |fail", re.I)
        with self.cond:
            return [text for _, s, text in self.lines if s == "err" and rx.search(text)]


def stop_all():
    for p in list(Proc.registry):
        try:
            p.stop(grace=3)
        except Exception as e:  # keep stopping the others
            print(f"warning: stopping {p.name}: {e}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# /proc: process trees, memory, CPU


def proc_table():
    """pid -> (ppid, utime+stime+cutime+cstime ticks) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        # fields[0] is state (field 3); utime is field 14 -> index 11
        table[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return table


def tree(root, table=None):
    table = table or proc_table()
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(kids.get(pid, []))
    return out


def cpu_seconds(root):
    """CPU of the tree: live processes' utime+stime, plus cutime+cstime of reaped children."""
    table = proc_table()
    return sum(table[p][1] for p in tree(root, table)) / CLK_TCK


def status_kib(pid, key, fname="status"):
    try:
        with open(f"/proc/{pid}/{fname}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(root):
    """VmRSS and PSS summed over the tree (bytes), the number of processes and descriptors."""
    pids = tree(root)
    rss = sum(status_kib(p, "VmRSS:") for p in pids) * PAGE_KIB
    pss = sum(status_kib(p, "Pss:", "smaps_rollup") for p in pids) * PAGE_KIB
    fds = 0
    for p in pids:
        try:
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return {"rss": rss, "pss": pss, "processes": len(pids), "fds": fds}


def listening(port):
    """Whether something listens on 127.0.0.1:port (from /proc/net/tcp, without connecting)."""
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            return any(l.split()[1] == want and l.split()[3] == "0A" for l in list(f)[1:])
    except OSError:
        return False


def wait_listening(proc, port, timeout=15):
    deadline = time.monotonic() + timeout
    while not listening(port):
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: " + " | ".join(x[2] for x in proc.lines[-5:]))
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name}: not listening on {port} after {timeout} s")
        time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_busy():
    """CPU seconds the whole machine has been busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def our_cpu():
    """CPU seconds of this program and every child it has reaped (and theirs)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def others_busy(seconds):
    """How many CPUs other processes kept busy over the next `seconds`."""
    m0, o0, t0 = machine_busy(), our_cpu(), time.monotonic()
    time.sleep(seconds)
    return max(0.0, (machine_busy() - m0) - (our_cpu() - o0)) / (time.monotonic() - t0)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# ---------------------------------------------------------------------------------------------
# Setup: helpers, certificates, data


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=120, **kw)


def build_helpers(work):
    if not shutil.which("gcc"):
        sys.exit("gcc is needed to build tcp_echo.c and tls_client.c: apt-get install -y gcc libssl-dev")
    echo = os.path.join(work, "tcp_echo")
    client = os.path.join(work, "tls_client")
    try:
        run(["gcc", "-O2", "-o", echo, os.path.join(HERE, "tcp_echo.c")])
        run(["gcc", "-O2", "-o", client, os.path.join(HERE, "tls_client.c"), "-lssl", "-lcrypto"])
    except subprocess.CalledProcessError as e:
        sys.exit(f"building the C helpers failed (apt-get install -y gcc libssl-dev?):\n{e.stderr.decode()}")
    return echo, client


def make_certs(work):
    d = os.path.join(work, "certs")
    os.makedirs(d, exist_ok=True)
    p = lambda n: os.path.join(d, n)
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p("ca.key")])
    run(["openssl", "req", "-x509", "-new", "-key", p("ca.key"), "-subj", "/CN=tlsflow bench CA", "-days", "7", "-out", p("ca.pem")])
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p("key.pem")])
    run(["openssl", "req", "-new", "-key", p("key.pem"), "-subj", "/CN=localhost", "-out", p("leaf.csr")])
    run(["openssl", "x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
         "-CAcreateserial", "-days", "7", "-extfile", p("ext.cnf"), "-out", p("cert.pem")])
    return {"ca": p("ca.pem"), "cert": p("cert.pem"), "key": p("key.pem")}


def make_data(size):
    path = f"/dev/shm/tlsflow-serve-bench-{os.getpid()}.bin"
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 16 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return path, h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def machine(args):
    def out(argv):
        try:
            r = subprocess.run(argv, capture_output=True, timeout=20)
            return (r.stdout + r.stderr).decode(errors="replace")
        except (OSError, subprocess.TimeoutExpired) as e:
            return str(e)

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = " ".join(x for x in ("aes", "vaes", "avx2", "avx512f", "sha_ni") if x in have)
                break
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    stunnel_v = out(["stunnel", "-version"])
    return {
        "cpu": cpu,
        "cpu_flags": flags,
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem) / 2**20, 1),
        "kernel": platform.release(),
        "os": out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]).strip(),
        "glibc": platform.libc_ver()[1],
        "python": platform.python_version(),
        "openssl": out(["openssl", "version"]).strip(),
        "stunnel": " / ".join(l.strip() for l in stunnel_v.splitlines() if l.startswith(("stunnel", "Compiled", "Running", "Threading"))),
        "socat": " ".join(l.strip() for l in out(["socat", "-V"]).splitlines() if "version" in l)[:120],
        "tlsflow": out([args.tlsflow, "--version"]).strip(),
        "tlsflow_binary": os.path.abspath(args.tlsflow),
        "tlsflow_sha256": sha256_file(args.tlsflow)[:16],
        "tlsflow_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(args.tlsflow))),
        "variants": {k: {"binary": p, "sha256": sha256_file(p)[:16],
                         "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(p)))}
                     for k, p in VARIANTS.items()},
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# ---------------------------------------------------------------------------------------------
# Servers


SERVERS = {
    # key: (label, measures, descriptors per connection, client speaks TLS)
    "tcp": ("plain TCP echo (C, epoll)", "AB", 1, False),
    "tlsflow-rustls": ("tlsflow serve --echo (rustls)", "AB", 1, True),
    "tlsflow-openssl": ("tlsflow serve --echo --engine openssl", "AB", 1, True),
    "tlsflow-forward": ("tlsflow serve --forward (rustls)", "ABC", 2, True),
    "tlsflow-forward-openssl": ("tlsflow serve --forward --engine openssl", "C", 2, True),
    "stunnel": ("stunnel (server mode)", "ABC", 2, True),
    "socat": ("socat OPENSSL-LISTEN,fork", "ABC", 2, True),
    "tlsflow-tunnel": ("tlsflow tunnel (plain in, TLS out)", "ABC", 2, False),
    "stunnel-client": ("stunnel client mode (plain in, TLS out)", "ABC", 2, False),
}
TUNNELS = ("tlsflow-tunnel", "stunnel-client")
VARIANTS = {}  # "tlsflow-rustls/NAME" -> another tlsflow binary (--variant NAME=PATH)


class Running:
    """A started server (measured) and its backends (not counted)."""

    def __init__(self, key, server, port, backends):
        self.key, self.server, self.port, self.backends = key, server, port, backends

    def stop(self):
        for p in [self.server] + self.backends:
            p.stop()


class Lab:
    def __init__(self, args, work, certs, echo_bin, client_bin):
        self.args, self.work, self.certs = args, work, certs
        self.echo_bin, self.client_bin = echo_bin, client_bin
        self.seq = 0
        self.complaints = {}  # server key -> list of stderr lines

    def name(self, what):
        self.seq += 1
        return f"{self.seq:03d}-{what}"

    def tcp_backend(self, mode):
        p = Proc(self.name(f"tcp-{mode}"), [self.echo_bin, mode, 0], self.work)
        _, _, m = p.wait_line(r"listening on 127\.0\.0\.1:(\d+)", 10, "out")
        return p, int(m.group(1))

    def tlsflow(self, what, argv, max_conn, binary=None):
        cmd = [binary or self.args.tlsflow] + argv[:1] + ["--listen", "127.0.0.1:0"] + argv[1:] + [
            "--max-connections", max_conn]
        if argv[0] == "serve":
            cmd += ["--shutdown-timeout", "2s"]
        p = Proc(self.name(what), cmd, self.work)
        _, _, m = p.wait_line(r"listening on 127\.0\.0\.1:(\d+)", 15, "err")
        return p, int(m.group(1))

    def stunnel(self, what, service):
        port = free_port()
        conf = os.path.join(self.work, f"{what}-{self.seq + 1:03d}.conf")
        with open(conf, "w") as f:
            f.write("foreground = yes\npid =\nsyslog = no\ndebug = 4\n[svc]\n"
                    f"accept = 127.0.0.1:{port}\n" + service)
        p = Proc(self.name(what), ["stunnel", conf], self.work)
        wait_listening(p, port)
        return p, port

    def start(self, key, measure, max_conn):
        """Starts server `key` for `measure` ('A', 'B' or 'C')."""
        c = self.certs
        tls_serve = ["--cert", c["cert"], "--key", c["key"]]
        backends = []
        try:
            if key == "tcp":
                p, port = self.tcp_backend("echo")
                return Running(key, p, port, [])
            if key in ("tlsflow-rustls", "tlsflow-openssl") or key in VARIANTS:
                engine = "openssl" if key == "tlsflow-openssl" else "rustls"
                p, port = self.tlsflow(key.replace("/", "-"), ["serve", "--echo", "--engine", engine] + tls_serve, max_conn,
                                       VARIANTS.get(key))
                return Running(key, p, port, [])
            if key in TUNNELS:
                mode = "--sink" if measure == "C" else "--echo"
                b, bport = self.tlsflow("backend-serve" + mode[1:], ["serve", mode] + tls_serve, max_conn)
                backends.append(b)
                if key == "tlsflow-tunnel":
                    argv = ["tunnel", "--to", f"127.0.0.1:{bport}", "--ca", c["ca"], "--sni", "localhost",
                            "--tls-version", "1.3"]
                    if measure == "C":
                        argv += ["--cipher-suite", "TLS_AES_128_GCM_SHA256"]
                    p, port = self.tlsflow(key, argv, max_conn)
                else:
                    service = (f"client = yes\nconnect = 127.0.0.1:{bport}\nverifyChain = yes\n"
                               f"CAfile = {c['ca']}\ncheckHost = localhost\nsni = localhost\nsslVersionMin = TLSv1.3\n")
                    if measure == "C":
                        service += "ciphersuites = TLS_AES_128_GCM_SHA256\n"
                    p, port = self.stunnel(key, service)
                return Running(key, p, port, backends)
            # Forwarders: a C backend, echo for A and B, sink for C.
            b, bport = self.tcp_backend("sink" if measure == "C" else "echo")
            backends.append(b)
            if key.startswith("tlsflow-forward"):
                engine = "openssl" if key.endswith("openssl") else "rustls"
                p, port = self.tlsflow(key, ["serve", "--forward", f"127.0.0.1:{bport}", "--engine", engine] + tls_serve, max_conn)
            elif key == "stunnel":
                p, port = self.stunnel(key, f"connect = 127.0.0.1:{bport}\ncert = {c['cert']}\nkey = {c['key']}\n")
            elif key == "socat":
                port = free_port()
                p = Proc(self.name(key), [
                    "socat", f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay,backlog=4096,"
                    f"cert={c['cert']},key={c['key']},verify=0", f"TCP:127.0.0.1:{bport},nodelay"], self.work)
                wait_listening(p, port)
            else:
                raise ValueError(key)
            return Running(key, p, port, backends)
        except BaseException:
            for b in backends:
                b.stop()
            raise

    def stop(self, running):
        self.complaints.setdefault(running.key, []).extend(running.server.complaints())
        for b in running.backends:
            self.complaints.setdefault(running.key + " (backend)", []).extend(b.complaints())
        running.stop()

    def client(self, mode, port, amount, msg, tls):
        ca = self.certs["ca"] if tls else "-"
        return Proc(self.name(f"client-{mode}"), [self.client_bin, mode, port, amount, msg, ca], self.work,
                    stdin=subprocess.PIPE)

    def warm_up(self, running):
        c = self.client("hold", running.port, 1, 1024, SERVERS[running.key][3])
        _, _, m = c.wait_line(r"^ready (\d+) (\d+)", 30, "out")
        c.send("\n")
        c.wait_line(r"^closed", 30, "out")
        c.wait_exit(10)
        c.stop()
        if m.group(1) != "1":
            raise RuntimeError(f"{running.key}: the warm-up connection failed: " + " | ".join(x[2] for x in c.lines[-3:]))


# ---------------------------------------------------------------------------------------------
# Measures


def settle_fds(root, fds_before, timeout=15):
    """Waits until the server's descriptors (and socat's children) are back to the warm state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = memory(root)
        if m["fds"] <= fds_before["fds"] + 2 and m["processes"] <= fds_before["processes"]:
            return True
        time.sleep(0.1)
    return False


def measure_a(lab, key, n):
    args = lab.args
    r = lab.start(key, "A", n + 100)
    try:
        lab.warm_up(r)
        time.sleep(args.settle)
        root = r.server.pid
        before = memory(root)
        load = loadavg()
        w = max(args.clients, -(-n // 15000))
        counts = [n // w + (1 if i < n % w else 0) for i in range(w)]
        t0 = time.monotonic()
        clients = [lab.client("hold", r.port, k, 1024, SERVERS[key][3]) for k in counts]
        ok = errs = 0
        try:
            for c, k in zip(clients, counts):
                _, _, m = c.wait_line(r"^ready (\d+) (\d+)", min(900, 60 + k * 0.05), "out")
                ok += int(m.group(1))
                errs += int(m.group(2))
            open_s = time.monotonic() - t0
            time.sleep(1)
            idle = memory(root)
            backend_idle = [memory(b.pid) for b in r.backends]
            for c in clients:
                c.send("\n")
            closed = cerrs = 0
            for c in clients:
                _, _, m = c.wait_line(r"^closed (\d+) (\d+)", min(600, 60 + n * 0.01), "out")
                closed += int(m.group(1))
                cerrs += int(m.group(2))
            for c in clients:
                c.wait_exit(30)
        finally:
            for c in clients:
                c.stop()
        back = settle_fds(root, before)
        time.sleep(args.settle)
        after = memory(root)
        time.sleep(3)
        after3 = memory(root)
        per = (idle["rss"] - before["rss"]) / max(ok, 1)
        return {
            "connections": n, "opened": ok, "open_errors": errs, "closed": closed, "close_errors": cerrs,
            "open_seconds": round(open_s, 2), "before": before, "idle": idle, "after": after,
            "after_3s_more": after3, "fds_back": back, "backends_idle": backend_idle,
            "per_conn_rss": per, "per_conn_pss": (idle["pss"] - before["pss"]) / max(ok, 1),
            "after_over_before": after["rss"] / before["rss"],
            "after3_over_before": after3["rss"] / before["rss"], "loadavg": load,
        }
    finally:
        lab.stop(r)


def measure_b(lab, key):
    args = lab.args
    r = lab.start(key, "B", 4096)
    try:
        lab.warm_up(r)
        time.sleep(0.5)
        root = r.server.pid
        load = loadavg()
        cpu0 = cpu_seconds(root)
        clients = [lab.client("loop", r.port, args.duration, 1, SERVERS[key][3]) for _ in range(args.clients)]
        total = errs = 0
        elapsed = 0.0
        negotiated = None
        try:
            for c in clients:
                _, _, m = c.wait_line(r"^done (\d+) (\d+) ([\d.]+) (\S+) (\S+) (\S+)", args.duration + 60, "out")
                total += int(m.group(1))
                errs += int(m.group(2))
                elapsed = max(elapsed, float(m.group(3)))
                negotiated = " ".join(m.group(4, 5, 6))
                c.wait_exit(10)
            client_cpu = sum(c.cpu_of_exited() for c in clients)
            client_msgs = [x[2] for c in clients for x in c.lines if x[1] == "err"][:3]
        finally:
            for c in clients:
                c.stop()
        # socat's children must be reaped for their CPU to count.
        deadline = time.monotonic() + 10
        while memory(root)["processes"] > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu1 = cpu_seconds(root)
        return {
            "handshakes": total, "errors": errs, "seconds": elapsed, "per_second": total / elapsed,
            "server_cpu": cpu1 - cpu0, "cpu_per_1000": (cpu1 - cpu0) / max(total, 1) * 1000,
            "client_cpu_per_1000": client_cpu / max(total, 1) * 1000,
            "negotiated": negotiated, "client_errors": client_msgs, "loadavg": load,
        }
    finally:
        lab.stop(r)


def measure_c(lab, key, data, digest):
    args = lab.args
    size = args.size
    r = lab.start(key, "C", 64)
    try:
        root = r.server.pid
        sink = r.backends[0]
        mark = len(sink.lines)
        load = loadavg()
        cpu0 = cpu_seconds(root)
        t0 = time.monotonic()
        with open(data, "rb") as f:
            if key in TUNNELS:
                client = Proc(lab.name("pusher"), [sys.executable, os.path.abspath(__file__), "_push", r.port, data],
                              lab.work, stdout=subprocess.DEVNULL)
            else:
                client = Proc(lab.name("connect"), [
                    args.tlsflow, "connect", f"127.0.0.1:{r.port}", "--ca", lab.certs["ca"], "--sni", "localhost",
                    "--tls-version", "1.3", "--cipher-suite", "TLS_AES_128_GCM_SHA256"], lab.work,
                    stdin=f, stdout=subprocess.DEVNULL)
        timeout = 60 + size / 20e6
        try:
            if key in TUNNELS:
                _, t_end, m = sink.wait_line(r"received (\d+) bytes, sha256 ([0-9a-f]+)", timeout, "err", mark)
                got, ok = int(m.group(1)), m.group(2) == digest
            else:
                _, _, m = sink.wait_line(r"^received (\d+) ([\d.]+)", timeout, "out", mark)
                got, t_end = int(m.group(1)), float(m.group(2))
                ok = got == size
            status = client.wait_exit(30)
        finally:
            client.stop()
        client_msgs = [x[2] for x in client.lines if x[1] == "err"][:3]
        time.sleep(0.3)
        deadline = time.monotonic() + 10
        while memory(root)["processes"] > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu1 = cpu_seconds(root)
        secs = t_end - t0
        gib = size / 2**30
        ccpu = client.cpu_of_exited()
        return {
            "bytes": got, "intact": ok and got == size, "seconds": secs, "mb_per_s": got / secs / 1e6,
            "server_cpu": cpu1 - cpu0, "server_cpu_per_gib": (cpu1 - cpu0) / gib,
            "client_cpu_per_gib": ccpu / gib, "client_busy": ccpu / secs, "client_status": status,
            "client_stderr": client_msgs, "loadavg": load,
        }
    finally:
        lab.stop(r)


def push(port, path):
    """`compare.py _push PORT FILE`: plain-TCP sender for the tunnels (sendfile, half-close)."""
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=60)
    with open(path, "rb") as f:
        s.sendfile(f)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    s.close()


# ---------------------------------------------------------------------------------------------
# Reporting


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def spread(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "failed"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def ratio(a, b):
    return f"{a / b:.2f}×" if b and a == a and b == b else "-"


def others(good):
    """Median (max) CPUs kept busy by other processes during the row's runs."""
    xs = [x["others_busy"] for x in good if "others_busy" in x]
    return f"{med(xs):.2f} (max {max(xs):.2f})" if xs else "-"


OTHERS_NOTE = ("Others' load: CPUs kept busy by processes not started by this program during "
               "each measurement (machine busy time from /proc/stat minus this program's and its "
               "children's), median (max) of the runs.")


def references(rows, *fields):
    """Per stunnel mode (server, client), the medians of `fields` over its good runs."""
    ref = {}
    for k in ("stunnel", "stunnel-client"):
        good = [x for x in rows.get(k, []) if "error" not in x]
        ref[k] = tuple(med([x[f] for x in good]) for f in fields)
    return ref


def load_line(rows):
    loads = [x["loadavg"] for runs in rows.values() for x in runs if "loadavg" in x]
    return f"Load average (1 min) when each measurement began: {min(loads):.2f}-{max(loads):.2f}" if loads else ""


def table_a(results, n_default):
    rows = results.get("A", {})
    if not rows:
        return ""
    tcp = med([x["per_conn_rss"] for x in rows.get("tcp", []) if "error" not in x])
    stun = {"server": med([x["per_conn_rss"] for x in rows.get("stunnel", []) if "error" not in x]),
            "tunnel": med([x["per_conn_rss"] for x in rows.get("stunnel-client", []) if "error" not in x])}
    out = ["### A. Memory per idle connection (server RSS, summed over its processes)", "",
           "| server | connections | RSS before | RSS with all idle | per connection | above plain TCP | "
           "× stunnel | after close (2 s) | after / before | after +3 s / before | PSS per connection | others' load |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, runs in rows.items():
        good = [x for x in runs if "error" not in x]
        if not good:
            out.append(f"| {SERVERS[key][0]} | failed: {runs[0]['error'][:80]} |" + " |" * 10)
            continue
        mib = lambda k: spread([x[k]["rss"] / 2**20 for x in good], "{:.1f}") + " MiB"
        kib = lambda xs: spread([v / 1024 for v in xs], "{:.2f}") + " KiB"
        per = [x["per_conn_rss"] for x in good]
        ref = stun["tunnel"] if key in TUNNELS else stun["server"]
        conns = good[0]["opened"] if all(x["opened"] == good[0]["opened"] for x in good) else "/".join(str(x["opened"]) for x in good)
        out.append(" | ".join([
            f"| {SERVERS[key][0]}", f"{conns:,}" if isinstance(conns, int) else conns, mib("before"), mib("idle"), kib(per),
            "(baseline)" if key == "tcp" else kib([p - tcp for p in per]),
            "-" if key == "tcp" else ratio(med(per), ref), mib("after"),
            spread([x["after_over_before"] for x in good], "{:.2f}"),
            spread([x["after3_over_before"] for x in good], "{:.2f}"),
            kib([x["per_conn_pss"] for x in good]), others(good) + " |"]))
    out.append("")
    notes = []
    for key in ("tlsflow-rustls", "tlsflow-openssl", *VARIANTS):
        good = [x for x in rows.get(key, []) if "error" not in x]
        if good:
            above = med([x["per_conn_rss"] for x in good]) - tcp
            ab = med([x["after_over_before"] for x in good])
            notes.append(f"- {SERVERS[key][0]}: {above / 1024:.2f} KiB above plain TCP "
                         f"({'meets' if above <= 8192 else 'misses'} the 8 KiB target); after/before {ab:.2f} "
                         f"({'meets' if ab <= 1.5 else 'misses'} the 1.5× target).")
    errs = [f"{SERVERS[k][0]} run {i + 1}: {x['open_errors']} failed to open, {x['close_errors']} unclean closes"
            for k, runs in rows.items() for i, x in enumerate(runs) if "error" not in x and (x["open_errors"] or x["close_errors"])]
    if errs:
        notes.append("- client errors: " + "; ".join(errs))
    loads = [x["loadavg"] for runs in rows.values() for x in runs if "loadavg" in x]
    if loads:
        notes.append(f"- load average (1 min) when each measurement began: {min(loads):.2f}-{max(loads):.2f}")
    notes.append("- " + OTHERS_NOTE)
    return "\n".join(out + notes) + "\n"


def table_b(results):
    rows = results.get("B", {})
    if not rows:
        return ""
    ref = references(rows, "per_second", "cpu_per_1000")
    out = ["### B. Full handshakes per second (TLS 1.3, each connection: handshake, 1-byte echo, clean close)", "",
           "| server | handshakes/s | × stunnel | server CPU s per 1,000 | × stunnel | client CPU s per 1,000 | errors | negotiated | others' load |",
           "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for key, runs in rows.items():
        good = [x for x in runs if "error" not in x]
        if not good:
            out.append(f"| {SERVERS[key][0]} | failed: {runs[0]['error'][:80]} |" + " |" * 7)
            continue
        rk = "stunnel-client" if key in TUNNELS else "stunnel"
        rate = [x["per_second"] for x in good]
        cpu = [x["cpu_per_1000"] for x in good]
        label = SERVERS[key][0] + (" (connections/s, no TLS)" if key == "tcp" else "")
        out.append(" | ".join([
            f"| {label}", spread(rate, "{:,.0f}"), "-" if key == "tcp" else ratio(med(rate), ref[rk][0]),
            spread(cpu, "{:.3f}"), "-" if key == "tcp" else ratio(med(cpu), ref[rk][1]),
            spread([x["client_cpu_per_1000"] for x in good], "{:.3f}"),
            str(sum(x["errors"] for x in good)),
            "-" if SERVERS[key][3] is False else (good[0]["negotiated"] or "-").replace(" ", ", "), others(good) + " |"]))
    out += ["", "Tunnel rows are ratios to stunnel's client mode, and their handshakes are resumed (both "
            "tunnels resume sessions with the backend by default); the negotiated column is what the "
            "harness's client got from the server it spoke to (none for the plain-TCP tunnels' clients).",
            load_line(rows),
            OTHERS_NOTE]
    return "\n".join(out) + "\n"


def table_c(results, size):
    rows = results.get("C", {})
    if not rows:
        return ""
    ref = references(rows, "mb_per_s", "server_cpu_per_gib")
    out = [f"### C. Throughput through a forwarder, {size / 2**30:g} GiB one way (TLS 1.3, AES-128-GCM)", "",
           "| path | MB/s | × stunnel | server CPU s per GiB | × stunnel | client CPU s per GiB | client busy | intact | others' load |",
           "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for key, runs in rows.items():
        good = [x for x in runs if "error" not in x]
        if not good:
            out.append(f"| {SERVERS[key][0]} | failed: {runs[0]['error'][:80]} |" + " |" * 7)
            continue
        rk = "stunnel-client" if key in TUNNELS else "stunnel"
        mbs = [x["mb_per_s"] for x in good]
        cpu = [x["server_cpu_per_gib"] for x in good]
        path = ("plain TCP → " + SERVERS[key][0].split(" (")[0] + " → TLS → tlsflow serve --sink") if key in TUNNELS else \
            ("tlsflow connect → " + SERVERS[key][0] + " → TCP sink")
        intact = all(x["intact"] and x["client_status"] == 0 for x in good)
        detail = "yes" if intact else "; ".join(
            f"run {i + 1}: {x['bytes']} bytes, client exit {x['client_status']} {' '.join(x['client_stderr'])[:100]}"
            for i, x in enumerate(good) if not (x["intact"] and x["client_status"] == 0))
        out.append(" | ".join([
            f"| {path}", spread(mbs, "{:,.0f}"), ratio(med(mbs), ref[rk][0]), spread(cpu, "{:.2f}"),
            ratio(med(cpu), ref[rk][1]), spread([x["client_cpu_per_gib"] for x in good], "{:.2f}"),
            spread([x["client_busy"] * 100 for x in good], "{:.0f}") + "%", detail, others(good) + " |"]))
    out += ["", "Client busy = the client's CPU time over the transfer's wall time (100% = one core: "
            "the client would be the bottleneck).",
            load_line(rows),
            OTHERS_NOTE]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------


def parse_size(text):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*", text, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text}")
    unit = (m.group(2) or "B").upper().rstrip("B")
    mult = {"": 1, "K": 1000, "M": 10**6, "G": 10**9, "KI": 1024, "MI": 2**20, "GI": 2**30}[unit]
    return int(float(m.group(1)) * mult)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "_push":
        push(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="See the module docstring (or results.md next to this file) for the method.")
    default_bin = "/tmp/tlsflow-bin/tlsflow-release"
    ap.add_argument("--tlsflow", default=default_bin if os.path.exists(default_bin) else shutil.which("tlsflow"),
                    help="the tlsflow binary (a release build with the openssl feature)")
    ap.add_argument("--connections", type=int, default=10000, help="N for measure A (default 10,000)")
    ap.add_argument("--socat-connections", type=int, default=1000,
                    help="N for socat in A: a process per connection (default 1,000)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10, help="seconds of handshakes per run in B")
    ap.add_argument("--size", type=parse_size, default=2**30, help="bytes per run in C (default 1GiB)")
    ap.add_argument("--clients", type=int, default=os.cpu_count(), help="client processes (default: CPUs)")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds before reading RSS before/after in A")
    ap.add_argument("--measures", default="ABC", help="which measures, e.g. A or BC")
    ap.add_argument("--only", help="comma-separated server keys: " + ", ".join(SERVERS))
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="before each measurement, wait up to SECONDS for other processes to use "
                         "less than a quarter of a CPU (a shared machine); default 0: do not wait")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=PATH",
                    help="also measure `serve --echo` (rustls) of another tlsflow binary in A and B, "
                         "e.g. a build with another allocator (repeatable)")
    ap.add_argument("--json", help="write every raw figure here")
    ap.add_argument("--workdir", help="keep certificates, helpers and logs here (default: a temporary directory)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 500 connections (socat 100), 1 run, 2 s of handshakes, 64 MiB")
    args = ap.parse_args()
    if args.quick:
        args.connections, args.socat_connections, args.runs, args.duration, args.size = 500, 100, 1, 2, 64 * 2**20
    if not args.tlsflow or not os.access(args.tlsflow, os.X_OK):
        sys.exit("no tlsflow binary: pass --tlsflow PATH")
    for tool in ("stunnel", "socat", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y stunnel4 socat openssl")
    for v in args.variant:
        name, _, path = v.partition("=")
        if not path or not os.access(path, os.X_OK):
            sys.exit(f"--variant {v}: expected NAME=PATH to an executable")
        key = f"tlsflow-rustls/{name}"
        VARIANTS[key] = os.path.abspath(path)
        SERVERS[key] = (f"tlsflow serve --echo (rustls) [{name}]", "AB", 1, True)
    keys = args.only.split(",") if args.only else [k for k in SERVERS if k not in VARIANTS]
    # The variants go right after the binary they are compared with.
    keys = keys[:keys.index("tlsflow-rustls") + 1] + list(VARIANTS) + keys[keys.index("tlsflow-rustls") + 1:] \
        if "tlsflow-rustls" in keys else keys + [k for k in VARIANTS if k not in keys]
    for k in keys:
        if k not in SERVERS:
            sys.exit(f"unknown server {k!r}; known: {', '.join(SERVERS)}")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except ValueError:
        pass
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    work = args.workdir or tempfile.mkdtemp(prefix="tlsflow-serve-bench-", dir="/tmp")
    os.makedirs(work, exist_ok=True)
    data = None
    started = time.monotonic()
    results = {}
    try:
        echo_bin, client_bin = build_helpers(work)
        certs = make_certs(work)
        info = machine(args)
        info["loadavg_start"] = open("/proc/loadavg").read().strip()
        LOG(f"# tlsflow serve compared ({info['date']}); logs in {work}", file=sys.stderr)
        lab = Lab(args, work, certs, echo_bin, client_bin)

        def n_for(key):
            n = args.socat_connections if key == "socat" else args.connections
            fit = int(hard * 0.95 / SERVERS[key][2]) // 500 * 500
            return max(1, min(n, fit))

        plan = [(m, k) for m in "ABC" if m in args.measures.upper() for k in keys if m in SERVERS[k][1]]
        if any(m == "C" for m, _ in plan):
            LOG(f"writing {args.size:,} random bytes to /dev/shm ...", file=sys.stderr)
            data, digest = make_data(args.size)
        for measure in "ABC":
            for run_no in range(args.runs):
                for m, key in plan:
                    if m != measure:
                        continue
                    LOG(f"[{time.monotonic() - started:6.0f} s] {measure} run {run_no + 1}/{args.runs}: {key}", file=sys.stderr)
                    waited = 0.0
                    if args.wait_quiet > 0:
                        t_wait = time.monotonic()
                        while time.monotonic() - t_wait < args.wait_quiet and others_busy(1.0) > 0.25:
                            pass
                        waited = time.monotonic() - t_wait
                    m0, o0, t0 = machine_busy(), our_cpu(), time.monotonic()
                    try:
                        if measure == "A":
                            res = measure_a(lab, key, n_for(key))
                            LOG(f"    {res['opened']} open in {res['open_seconds']} s, "
                                f"{res['per_conn_rss'] / 1024:.2f} KiB/conn, after/before {res['after_over_before']:.2f}",
                                file=sys.stderr)
                        elif measure == "B":
                            res = measure_b(lab, key)
                            LOG(f"    {res['per_second']:.0f}/s, {res['cpu_per_1000']:.3f} CPU-s per 1000, {res['errors']} errors",
                                file=sys.stderr)
                        else:
                            res = measure_c(lab, key, data, digest)
                            LOG(f"    {res['mb_per_s']:.0f} MB/s, {res['server_cpu_per_gib']:.2f} CPU-s/GiB, "
                                f"client {res['client_busy'] * 100:.0f}% busy, intact {res['intact']}", file=sys.stderr)
                    except KeyboardInterrupt:
                        raise
                    except Exception as e:
                        res = {"error": str(e)}
                        LOG(f"    failed: {e}", file=sys.stderr)
                    res["run"] = run_no + 1
                    # Every process of the measurement has been stopped and reaped by now.
                    res["others_busy"] = max(0.0, (machine_busy() - m0) - (our_cpu() - o0)) / (time.monotonic() - t0)
                    res["waited_for_quiet"] = round(waited, 1)
                    results.setdefault(measure, {}).setdefault(key, []).append(res)
        info["loadavg_end"] = open("/proc/loadavg").read().strip()
        info["seconds"] = round(time.monotonic() - started)
        report = [
            f"Machine: {info['cpu']} ({info['cpus']} CPUs; {info['cpu_flags']}), {info['memory_gib']} GiB, "
            f"Linux {info['kernel']}, {info['os']}, glibc {info['glibc']}",
            f"Versions: {info['tlsflow']} ({info['tlsflow_binary']}, sha256 {info['tlsflow_sha256']}…, built "
            f"{info['tlsflow_mtime']}); {info['openssl']}; {info['stunnel']}; {info['socat']}",
            *[f"Variant {k.split('/', 1)[1]}: {v['binary']} (sha256 {v['sha256']}…, built {v['mtime']})"
              for k, v in info["variants"].items()],
            f"Load average at start: {info['loadavg_start']}; at end: {info['loadavg_end']}; "
            f"RLIMIT_NOFILE {info['nofile_limit'][0]}; took {info['seconds']} s",
            f"Settings: --connections {args.connections} --socat-connections {args.socat_connections} "
            f"--runs {args.runs} --duration {args.duration:g} --size {args.size} --clients {args.clients}; "
            "median (min-max) of the runs",
            "",
            table_a(results, args.connections),
            table_b(results),
            table_c(results, args.size),
        ]
        stderr_lines = ["### What the servers wrote on stderr (warnings and errors)", ""]
        for k, lines in lab.complaints.items():
            if lines:
                uniq = {}
                for l in lines:
                    key = re.sub(r"^\S+Z\s+|\d+\.\d+\.\d+\.\d+:\d+|\d{4}\.\d\d\.\d\d \S+|\d+", "#", l)
                    uniq.setdefault(key, [0, l])[0] += 1
                for _, (count, sample) in sorted(uniq.items(), key=lambda x: -x[1][0])[:5]:
                    stderr_lines.append(f"- {k}: {count}× `{sample[:200]}`")
        if len(stderr_lines) == 2:
            stderr_lines.append("- nothing")
        report += stderr_lines
        print("\n".join(report))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": info, "settings": {k: v for k, v in vars(args).items()},
                           "results": results, "stderr": lab.complaints}, f, indent=1)
    except KeyboardInterrupt:
        print("interrupted: stopping every process started here", file=sys.stderr)
        sys.exit(130)
    finally:
        stop_all()
        if data:
            try:
                os.unlink(data)
            except OSError:
                pass


if __name__ == "__main__":
    main()
