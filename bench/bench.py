#!/usr/bin/env python3
"""StreamSpace proxy and session-start benchmark: targets P1, P2 and P3 of the design targets.

Run it through bench/run.sh, which installs the tools and builds the binaries first. Standard
library only. Everything it starts (control plane, agent, nginx, configurable-http-proxy, sessions
and their containers, temp dirs) is stopped and removed when it exits, also on Ctrl-C or SIGTERM.
Settings come from the environment: see bench/README.md.
"""

import datetime
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)


def env_int(name, default):
    return int(os.environ.get(name, default))


QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = env_int("BENCH_SECONDS", 3 if QUICK else 10)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 64)
ROUNDS = env_int("BENCH_ROUNDS", 1 if QUICK else 3)
TUNNELS = env_int("BENCH_TUNNELS", 200 if QUICK else 1000)
RTT_COUNT = env_int("BENCH_RTT_COUNT", 2000 if QUICK else 5000)
WS_SIZE = env_int("BENCH_WS_SIZE", 64 * 1024)
WS_WINDOW = env_int("BENCH_WS_WINDOW", 16)
SESSIONS = env_int("BENCH_SESSIONS", 5 if QUICK else 20)
PROXY_CPU = os.environ.get("BENCH_PROXY_CPU", "0")
LOAD_CPU = os.environ.get("BENCH_LOAD_CPU", "1")
NICE = os.environ.get("BENCH_NICE", "-10")
ONLY = set(os.environ.get("BENCH_ONLY", "p1,p2,p3").lower().split(","))
UPSTREAMS = [u for u in os.environ.get("BENCH_UPSTREAMS", "fixture,echo").split(",") if u]
SERVER_RUST_LOG = os.environ.get("BENCH_SERVER_RUST_LOG", "info")
# A request budget far above what one core can serve: the limiters run, and refuse nothing.
NO_BUDGET_BINDS = "100000000/s"
# A directory for profiles of the control plane during its P2 runs (unset: no profile).
PROFILE_DIR = os.environ.get("BENCH_PROFILE")
# P2's request counted in instructions rather than timed: every proxy runs under callgrind, which makes
# them too slow for the timed parts, so this part runs alone (`BENCH_ONLY=instructions`).
INSTRUCTIONS = "instructions" in ONLY
INSTRUCTION_REQUESTS = env_int("BENCH_INSTRUCTION_REQUESTS", 2000)
COUNTED_TARGETS = ["streamspace", "nginx", "hyper"]
# P2's load with every proxy's system calls counted by name (perf's syscall tracepoints, which slow each call:
# this part runs alone too, `BENCH_ONLY=syscalls`). The kernel's share of CPU per request follows the calls.
SYSCALLS = "syscalls" in ONLY
# How long a process may take to answer once started: minutes under callgrind.
STARTUP_TIMEOUT = 300 if INSTRUCTIONS else 60
# Outside the clone, as the Makefile has it.
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(REPO), "target"))
BIN = os.environ.get("STREAMSPACE_BIN", os.path.join(TARGET, "release", "streamspace"))
WSLOAD = os.environ.get("WSLOAD_BIN", os.path.join(TARGET, "bench", "release", "wsload"))
CHP = os.path.join(BENCH_DIR, "node_modules", ".bin", "configurable-http-proxy")
OUT = os.environ.get("BENCH_OUT", os.path.join(BENCH_DIR, "results", "latest.md"))
IMAGES = {
    "fixture": os.environ.get("BENCH_FIXTURE_IMAGE", "streamspace/fixture:latest"),
    "echo": os.environ.get("BENCH_ECHO_IMAGE", "streamspace/bench-echo:latest"),
}
UPSTREAM_LABELS = {
    "fixture": "the fixture (Python asyncio, `images/fixture/server.py`)",
    "echo": "a fast echo upstream (`wsload serve`, Rust, `bench/echo/`)",
}
ADMIN_PASSWORD = "bench-admin-" + secrets.token_hex(8)
MEMBER_PASSWORD = "bench-member-" + secrets.token_hex(8)
CLK_TCK = os.sysconf("SC_CLK_TCK")
P1_TARGETS = ["streamspace", "nginx", "nginx64k", "chp", "direct"]
# "hyper" is hyper alone passing requests through (`wsload proxy`): what any proxy on hyper costs before it
# checks anything, so the report separates the library's share of P2 from StreamSpace's own work.
P2_TARGETS = ["streamspace", "nginx", "hyper", "chp", "direct"]


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- small helpers --------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def loopback(url):
    """(URL to dial, Host header or None). Every session has its own host, `<id>.localhost:<port>`,
    which browsers resolve to loopback and glibc (wrk, http.client) does not."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname.endswith(".localhost"):
        return url, None
    return parts._replace(netloc=f"127.0.0.1:{parts.port}").geturl(), parts.netloc


def request(method, url, body=None, headers=None, timeout=30):
    """One HTTP request with http.client (no proxy from the environment, no redirects followed).
    Returns (status, headers, body bytes)."""
    url, host = loopback(url)
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = dict(headers or {}, **({"host": host} if host else {}))
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def http_ok(url, cookie):
    try:
        return request("GET", url, headers={"cookie": cookie}, timeout=2)[0] == 200
    except OSError:
        return False


class Api:
    def __init__(self, base, username, password):
        self.base, self.username, self.password = base, username, password
        self.token = self.sign_in()

    def sign_in(self):
        credentials = {"username": self.username, "password": self.password}
        status, _, body = request("POST", f"{self.base}/api/v1/auth/login", credentials)
        if status != 200:
            raise RuntimeError(f"login {self.username}: {status} {body[:300]!r}")
        return json.loads(body)["access_token"]

    def call(self, method, path, body=None, expect=(200, 201, 202, 204)):
        status, reply = self.send(method, path, body)
        if status == 401:  # the access token did not outlive a long run (cleaning up after one, say)
            self.token = self.sign_in()
            status, reply = self.send(method, path, body)
        if status not in expect:
            raise RuntimeError(f"{method} {path}: {status} {reply[:300]!r}")
        return json.loads(reply) if reply else None

    def send(self, method, path, body):
        status, _, reply = request(method, f"{self.base}{path}", body, {"authorization": f"Bearer {self.token}"})
        return status, reply


def wait_for(what, timeout, check, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def cpu_split(pids):
    """(utime, stime) of processes (all their threads), in seconds: user space and the kernel on their behalf."""
    user = system = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def busy_ticks(cpu=""):
    """(busy, total) jiffies of CPU `cpu` (of every CPU when none is named), from /proc/stat: busy is all but
    idle and I/O wait, every process and interrupt."""
    with open("/proc/stat") as f:
        fields = next([int(x) for x in line.split()[1:]] for line in f if line.startswith(f"cpu{cpu} "))
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def cpu_seconds(pids):
    """utime + stime of processes (all their threads), in seconds."""
    return sum(cpu_split(pids))


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    return total


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def docker(*args, check=True):
    result = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def pinned(cpu, argv, priority=False):
    """argv on one CPU; with `priority`, at the nice value of the proxies under test."""
    prefix = ["nice", "-n", NICE] if priority and NICE != "0" else []
    return [*prefix, "taskset", "-c", str(cpu), *map(str, argv)]


def rotated(targets, rnd):
    """`targets` in round `rnd`'s order, so that no target always runs first, or right after the same one
    (whatever a run leaves behind, in the kernel or the upstream): every other round runs the one before it
    backwards, so that each two targets run in both orders, and each pair of rounds starts one further on."""
    start = rnd // 2 % len(targets)
    order = targets[start:] + targets[:start]
    return order[::-1] if rnd % 2 else order


def percentile(values, p):
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-p * len(ordered) // 100)))
    return ordered[int(rank) - 1]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# --- the run ----------------------------------------------------------------------------------------

class Upstream:
    """One session whose container is the upstream of every target, and its reference proxies."""

    def __init__(self, kind):
        self.kind = kind
        # Started only for the parts that measure them: CHP not when instructions are counted, bare hyper for P2.
        self.chp_pid = self.chp_port = self.hyper_pid = self.hyper_port = None


class Bench:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="streamspace-bench-")
        self.processes = {}  # name -> Popen, in start order
        self.sessions = []  # session ids created and not yet stopped
        self.member = None
        self.notes = []
        self.results = {}
        self.upstreams = {}
        self.chp_token = secrets.token_hex(16)

    # Cleanup ------------------------------------------------------------------------------------
    def cleanup(self):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        log("cleaning up")
        if self.member and self.processes.get("streamspace") and self.processes["streamspace"].poll() is None:
            for sid in list(self.sessions):
                try:
                    self.member.call("DELETE", f"/api/v1/sessions/{sid}", expect=(202, 204, 404, 409))
                except Exception as err:  # noqa: BLE001 - keep cleaning
                    log(f"stopping session {sid}: {err}")
            deadline = time.monotonic() + 60
            for sid in list(self.sessions):
                while time.monotonic() < deadline:
                    try:
                        state = self.member.call("GET", f"/api/v1/sessions/{sid}", expect=(200, 404))
                    except Exception:  # noqa: BLE001
                        break
                    if not state or state.get("state") in ("stopped", "failed"):
                        break
                    time.sleep(0.2)
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT if name.startswith("nginx") else signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        # Whatever the API could not stop: remove it by its exact name (our sessions only).
        for sid in self.sessions:
            if docker("ps", "-aq", "--filter", f"name=^ss-{sid}$", check=False):
                docker("rm", "-f", f"ss-{sid}", check=False)
            if docker("network", "ls", "-q", "--filter", f"name=^ss-net-{sid}$", check=False):
                docker("network", "rm", f"ss-net-{sid}", check=False)
        if os.environ.get("BENCH_KEEP_TMP") == "1":
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn(self, name, argv, env=None):
        logfile = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        process = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                   stderr=logfile, stdin=subprocess.DEVNULL)
        self.processes[name] = process
        return process

    def check_alive(self, name):
        process = self.processes[name]
        if process.poll() is not None:
            tail = open(os.path.join(self.tmp, f"{name}.log"), errors="replace").read()[-2000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    # Control plane, agent, sessions --------------------------------------------------------------------
    def counted(self, name, argv):
        """`argv` under callgrind when instructions are counted: it then counts only between a zero and a dump."""
        if not INSTRUCTIONS:
            return argv
        out = os.path.join(self.tmp, f"callgrind-{name}.%p")
        return ["valgrind", "-q", "--tool=callgrind", f"--callgrind-out-file={out}", *argv]

    def start_control_plane(self):
        api_port, session_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{api_port}"
        self.session_port = session_port
        data = os.path.join(self.tmp, "data")
        os.makedirs(data)
        # The control plane is a proxy under test: pinned to the proxy core like nginx and CHP.
        self.spawn("streamspace", pinned(PROXY_CPU, priority=True, argv=self.counted("streamspace", [
            BIN, "serve", "--listen", f"127.0.0.1:{api_port}", "--session-listen", f"127.0.0.1:{session_port}",
            "--data-dir", data, "--idle-timeout", "0",
            # One bench user opens every tunnel: the per-user cap is not what P1 measures.
            "--max-tunnels-per-user", str(TUNNELS + 100),
            # Nor are the request budgets (one address and one user send every request): they are still
            # checked on every request, so their cost is measured, but set so that none of it is refused.
            *[arg for scope in ("address", "user", "org") for arg in (f"--rate-limit-{scope}", NO_BUDGET_BINDS)],
        ])), env={"STREAMSPACE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STREAMSPACE_LOG_FORMAT": "json",
                 "RUST_LOG": SERVER_RUST_LOG})

        def healthy():
            self.check_alive("streamspace")
            try:
                return request("GET", f"{self.api}/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_for("the control plane's /healthz", STARTUP_TIMEOUT, healthy)
        self.server_pid = self.processes["streamspace"].pid
        log(f"control plane up (pid {self.server_pid}, API {self.api}, sessions on :{self.session_port})")
        admin = Api(self.api, "admin", ADMIN_PASSWORD)
        name = f"bench-{secrets.token_hex(3)}"
        token = admin.call("POST", "/api/v1/agents", {"name": name, "platform": "docker"})["token"]
        self.spawn("agent", [BIN, "agent", "docker", "--server", self.api],
                   env={"STREAMSPACE_AGENT_TOKEN": token, "STREAMSPACE_LOG_FORMAT": "json", "RUST_LOG": "info"})

        def online():
            self.check_alive("agent")
            agents = admin.call("GET", "/api/v1/agents")["items"]
            return any(a["name"] == name and a["status"] == "online" for a in agents)

        wait_for(f"agent {name} online", 60, online)
        # Upstreams get a whole core (their container is pinned to the load core anyway); P3's sessions
        # are small, like the end-to-end tests'.
        for kind in UPSTREAMS:
            admin.call("POST", "/api/v1/templates", {
                "name": f"bench-{kind}", "display_name": f"Bench {kind}", "image": IMAGES[kind],
                "cpu_millis": 1000, "memory_mb": 512, "shm_mb": 16,
            })
        admin.call("POST", "/api/v1/templates", {
            "name": "bench-start", "display_name": "Bench start", "image": IMAGES["fixture"],
            "cpu_millis": 250, "memory_mb": 128, "shm_mb": 16,
        })
        admin.call("POST", "/api/v1/users", {"username": "bench", "password": MEMBER_PASSWORD, "role": "member"})
        # The bench measures the platform, not the default quotas: its org has none.
        org = admin.call("GET", "/api/v1/me")["org_id"]
        unlimited = {"max_sessions": None, "max_sessions_per_user": None, "max_cpu_millis": None, "max_memory_mb": None}
        admin.call("PATCH", f"/api/v1/orgs/{org}", unlimited)
        self.member = Api(self.api, "bench", MEMBER_PASSWORD)

    def create_session(self, kind):
        reply = self.member.call("POST", "/api/v1/sessions", {"template": f"bench-{kind}"}, expect=(202,))
        self.sessions.append(reply["id"])
        return reply["id"]

    def wait_state(self, sid, states, timeout=120):
        def check():
            session = self.member.call("GET", f"/api/v1/sessions/{sid}")
            if session["state"] == "failed" and "failed" not in states:
                raise RuntimeError(f"session {sid} failed: {session.get('failure_reason')}")
            return session if session["state"] in states else None

        return wait_for(f"session {sid} {states}", timeout, check)

    def session_cookie(self, sid):
        """Connect URL -> the ticket redeemed on the session origin -> the `ss_session=...` cookie."""
        url = self.member.call("POST", f"/api/v1/sessions/{sid}/connect", {})["url"]
        status, headers, body = request("GET", url)
        if status != 303 or not headers.get("set-cookie"):
            raise RuntimeError(f"redeeming the connect URL: {status} {body[:200]!r}")
        return headers["set-cookie"].split(";", 1)[0]

    def session_base(self, sid):
        """The session's own origin and path on it."""
        return f"http://{sid}.localhost:{self.session_port}/api/v1/http/{sid}"

    def stop_session(self, sid):
        self.member.call("DELETE", f"/api/v1/sessions/{sid}", expect=(202, 204))
        self.wait_state(sid, ("stopped",), timeout=60)
        self.sessions.remove(sid)

    def open_upstream(self, kind):
        up = Upstream(kind)
        up.sid = self.create_session(kind)
        self.wait_state(up.sid, ("running",))
        up.cookie = self.session_cookie(up.sid)
        container = f"ss-{up.sid}"
        inspected = json.loads(docker("inspect", container))[0]
        ips = [n["IPAddress"] for n in inspected["NetworkSettings"]["Networks"].values() if n.get("IPAddress")]
        up.addr = f"{ips[0]}:{inspected['Config']['Labels'].get('streamspace.port', '8080')}"
        # The container is the upstream of every target: on the load core, off the proxy core, and ahead
        # of other containers on this shared machine (a weight among Docker's containers only).
        docker("update", "--cpuset-cpus", LOAD_CPU, *(["--cpu-shares", "10240"] if NICE != "0" else []), container)
        up.pid = inspected["State"]["Pid"]
        with open(f"/proc/{up.pid}/limits") as f:
            up.nofile = next((line.split()[3] for line in f if line.startswith("Max open files")), "?")
        if not http_ok(f"{self.session_base(up.sid)}/api/health", up.cookie):
            raise RuntimeError("the session's /api/health does not answer 200 through the proxy")
        self.start_nginx(up)
        if not INSTRUCTIONS:  # a Node JIT under callgrind counts its compiler as much as its requests
            self.start_chp(up)
        if "p2" in ONLY or INSTRUCTIONS or SYSCALLS:  # a P2 reference only: it passes no WebSocket
            self.start_bare_hyper(up)
        self.upstreams[kind] = up
        log(f"{kind} upstream: session {up.sid}, container {container} at {up.addr} (open-file limit "
            f"{up.nofile}); nginx worker {up.nginx_worker} on {up.nginx_ports}, CHP {up.chp_pid} on {up.chp_port}")
        return up

    # Reference proxies ------------------------------------------------------------------------------
    def start_nginx(self, up):
        up.nginx_ports = {"stock": free_port(), "64k": free_port()}
        prefix = os.path.join(self.tmp, f"nginx-{up.kind}")
        os.makedirs(os.path.join(prefix, "logs"))
        with open(os.path.join(BENCH_DIR, "nginx.conf.in")) as f:
            conf = f.read()
        conf = (conf.replace("@PREFIX@", prefix).replace("@UPSTREAM@", up.addr)
                .replace("@PORT_STOCK@", str(up.nginx_ports["stock"]))
                .replace("@PORT_64K@", str(up.nginx_ports["64k"])))
        path = os.path.join(prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        errors = os.path.join(prefix, "logs", "error.log")
        subprocess.run(["nginx", "-t", "-q", "-e", errors, "-p", prefix, "-c", path], check=True)
        # Counted, the one process is the worker: callgrind cannot be told to dump by a worker of another user.
        single = ["-g", "master_process off;"] if INSTRUCTIONS else []
        nginx = self.counted(f"nginx-{up.kind}", ["nginx", "-e", errors, "-p", prefix, "-c", path, *single])
        master = self.spawn(f"nginx-{up.kind}", pinned(PROXY_CPU, nginx, priority=True))
        up.nginx_worker = master.pid if INSTRUCTIONS else wait_for(
            "nginx's worker", STARTUP_TIMEOUT, lambda: (children(master.pid) or [None])[0])
        for port in up.nginx_ports.values():
            wait_for("nginx", STARTUP_TIMEOUT, lambda p=port: http_ok(f"http://127.0.0.1:{p}/api/health", up.cookie))

    def start_chp(self, up):
        up.chp_port, api_port = free_port(), free_port()
        process = self.spawn(f"chp-{up.kind}", pinned(PROXY_CPU, priority=True, argv=[
            CHP, "--ip", "127.0.0.1", "--port", up.chp_port, "--api-ip", "127.0.0.1", "--api-port", api_port,
            "--log-level", "warn",
        ]), env={"CONFIGPROXY_AUTH_TOKEN": self.chp_token})
        wait_for("configurable-http-proxy", 30, lambda: port_open(api_port))
        # Route `/` to the session's container, the way JupyterHub adds a route per server.
        status, _, body = request("POST", f"http://127.0.0.1:{api_port}/api/routes/", {"target": f"http://{up.addr}"},
                                  {"authorization": f"token {self.chp_token}"})
        if status != 201:
            raise RuntimeError(f"adding the CHP route: {status} {body!r}")
        wait_for("the CHP route", 10, lambda: http_ok(f"http://127.0.0.1:{up.chp_port}/api/health", up.cookie))
        up.chp_pid = process.pid

    def start_bare_hyper(self, up):
        up.hyper_port = free_port()
        process = self.spawn(f"hyper-{up.kind}", pinned(PROXY_CPU, priority=True, argv=self.counted(f"hyper-{up.kind}", [
            WSLOAD, "proxy", up.hyper_port, up.addr])))
        wait_for("bare hyper", STARTUP_TIMEOUT, lambda: http_ok(f"http://127.0.0.1:{up.hyper_port}/api/health", up.cookie))
        up.hyper_pid = process.pid

    def targets(self, up):
        """name -> (HTTP base URL, pids whose CPU and memory count, label)."""
        return {
            "streamspace": (self.session_base(up.sid), [self.server_pid], "StreamSpace"),
            "nginx": (f"http://127.0.0.1:{up.nginx_ports['stock']}", [up.nginx_worker], "nginx, stock buffers"),
            "nginx64k": (f"http://127.0.0.1:{up.nginx_ports['64k']}", [up.nginx_worker], "nginx, 64 KiB buffers"),
            "chp": (f"http://127.0.0.1:{up.chp_port}", [up.chp_pid], "configurable-http-proxy"),
            "hyper": (f"http://127.0.0.1:{up.hyper_port}", [up.hyper_pid], "bare hyper (no checks)"),
            "direct": (f"http://{up.addr}", [], "direct to the container"),
        }

    # P2 --------------------------------------------------------------------------------------------
    def run_wrk(self, up, url, seconds):
        url, host = loopback(url)
        argv = pinned(LOAD_CPU, ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "5s",
                                 "-H", f"Cookie: {up.cookie}", *(["-H", f"Host: {host}"] if host else []), url])
        return parse_wrk(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)

    def p2(self, up):
        targets = self.targets(up)
        for name in P2_TARGETS:  # warm-up: JITs, connection pools, allocators
            self.run_wrk(up, f"{targets[name][0]}/api/health", 2)
        rounds = []
        for rnd in range(ROUNDS):
            results = {}
            for name in rotated(P2_TARGETS, rnd):
                base, pids, _ = targets[name]
                profiling = self.profile(up, rnd) if name == "streamspace" else None
                user0, system0 = cpu_split(pids)
                load0 = busy_ticks(LOAD_CPU)[0] / CLK_TCK
                result = self.run_wrk(up, f"{base}/api/health", SECONDS)
                load1 = busy_ticks(LOAD_CPU)[0] / CLK_TCK
                user1, system1 = cpu_split(pids)
                cpu = user1 - user0 + system1 - system0
                if profiling:
                    profiling.send_signal(signal.SIGINT)
                    profiling.wait(timeout=60)
                result["cpu_us_per_req"] = cpu / result["requests"] * 1e6 if pids and result["requests"] else None
                result["user_us_per_req"] = (user1 - user0) / result["requests"] * 1e6 if result["cpu_us_per_req"] else None
                result["busy"] = cpu / SECONDS if pids else None
                # The client and the upstream share the load core: when no proxy fills its own core, the work a
                # proxy's way of sending makes there (wake-ups, segments) is what sets requests/s.
                result["load_us_per_req"] = (load1 - load0) / result["requests"] * 1e6 if result["requests"] else None
                results[name] = result
                log(f"P2 {up.kind} round {rnd + 1} {name}: {result['rps']:.0f} req/s, p50 {result['p50_us']:.0f} us, "
                    f"p99 {result['p99_us']:.0f} us" + (f", {result['cpu_us_per_req']:.1f} us CPU/request "
                                                        f"({result['user_us_per_req']:.1f} in user space)" if pids
                                                        else "") + f", load core {fmt(result['load_us_per_req'], '.1f')} us/request"
                    + (f", {result['errors']} errors" if result["errors"] else ""))
            rounds.append(results)
        self.results.setdefault("p2", {})[up.kind] = rounds

    def counted_targets(self, up):
        """(name, P2's URL, pids) of each proxy whose work per request is counted rather than timed."""
        targets = self.targets(up)
        for name in COUNTED_TARGETS:
            base, pids, _ = targets[name]
            yield name, f"{base}/api/health", pids

    # P2 in instructions ----------------------------------------------------------------------------
    def instructions(self, up):
        """Instructions (user space) per P2 request of each proxy: callgrind's count between a zero and a dump."""
        counts = {}
        for name, url, pids in self.counted_targets(up):
            keep_alive_requests(url, up.cookie, 64)  # warm-up: connections, caches, allocators
            subprocess.run(["callgrind_control", "-z", str(pids[0])], check=True, capture_output=True)
            served = keep_alive_requests(url, up.cookie, INSTRUCTION_REQUESTS)
            counts[name] = callgrind_dump(pids[0], self.tmp) / served
            log(f"instructions {up.kind} {name}: {counts[name]:.0f} per request ({served} requests)")
        self.results.setdefault("instructions", {})[up.kind] = counts

    # P2 in system calls -----------------------------------------------------------------------------
    def syscalls(self, up):
        """System calls per P2 request of each proxy under wrk's load, by name, and its context switches."""
        counts = {}
        for name, url, pids in self.counted_targets(up):
            self.run_wrk(up, url, 2)  # warm-up: connections, caches, allocators
            out = os.path.join(self.tmp, f"syscalls-{up.kind}-{name}.csv")
            argv = ["perf", "stat", "-x", ",", "-o", out, "-e", "syscalls:sys_enter_*,context-switches",
                    "-p", ",".join(map(str, pids))]
            perf = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # perf attaches its hundreds of tracepoints to every thread before the load starts
            segments = tcp_segments_sent()
            result = self.run_wrk(up, url, SECONDS)
            segments = tcp_segments_sent() - segments
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
            events = perf_counts(out)
            calls = {event.removeprefix("syscalls:sys_enter_"): n / result["requests"] for event, n in events.items()
                     if event.startswith("syscalls:sys_enter_")}
            counts[name] = {"calls": calls, "switches": events.get("context-switches", 0) / result["requests"],
                            "segments": segments / result["requests"]}
            log(f"syscalls {up.kind} {name}: {sum(calls.values()):.2f} per request ("
                + ", ".join(f"{call} {n:.2f}" for call, n in sorted(calls.items(), key=lambda kv: -kv[1]) if n >= 0.01)
                + f"), {counts[name]['switches']:.3f} context switches, {counts[name]['segments']:.2f} TCP segments")
        self.results.setdefault("syscalls", {})[up.kind] = counts

    def profile(self, up, rnd):
        """`perf record` with call graphs on the control plane until stopped, when BENCH_PROFILE names a directory."""
        if not PROFILE_DIR:
            return None
        os.makedirs(PROFILE_DIR, exist_ok=True)
        out = os.path.join(PROFILE_DIR, f"p2-{up.kind}-round{rnd + 1}.perf.data")
        # DWARF call graphs: the release build keeps no frame pointers, but its unwind tables are enough.
        argv = ["perf", "record", "-q", "--call-graph", "dwarf,16384", "-F", "1999", "-p", str(self.server_pid)]
        process = subprocess.Popen([*argv, "-o", out],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)  # perf attaches before the load starts
        return process

    # P1 --------------------------------------------------------------------------------------------
    def ws_url(self, up, name):
        return self.targets(up)[name][0].replace("http://", "ws://") + "/ws"

    def wsload(self, *args, timeout=600):
        result = subprocess.run(pinned(LOAD_CPU, [WSLOAD, *args]), capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"wsload {args[0]} {args[1]}: {result.stderr.strip()}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def p1_tunnels(self, up, name):
        _, pids, _ = self.targets(up)[name]
        time.sleep(0.5)
        before = rss_kib(pids)
        process = subprocess.Popen(pinned(LOAD_CPU, [WSLOAD, "idle", self.ws_url(up, name), up.cookie, TUNNELS, 50]),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            opened = json.loads(process.stdout.readline() or "{}")
            time.sleep(1.0)
            idle = rss_kib(pids)
            process.stdin.write("big\n")
            process.stdin.flush()
            big = json.loads(process.stdout.readline() or "{}")
            time.sleep(1.0)
            loaded = rss_kib(pids)
            process.stdin.write("close\n")
            process.stdin.flush()
            process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        n = opened.get("ok", 0)
        result = {
            "opened": n, "error": opened.get("error", ""), "open_seconds": opened.get("seconds"),
            "big_ok": big.get("ok", 0), "big_error": big.get("error", ""),
            "rss_before_kib": before, "rss_idle_kib": idle, "rss_big_kib": loaded,
            "kib_idle": (idle - before) / n if pids and n else None,
            "kib_big": (loaded - before) / n if pids and n else None,
        }
        log(f"P1 {up.kind} tunnels {name}: {n}/{TUNNELS} open, {result['big_ok']} carried 64 KiB"
            + (f"; RSS {before} KiB -> {idle} KiB idle ({result['kib_idle']:.1f} KiB/tunnel) -> {loaded} KiB "
               f"({result['kib_big']:.1f} KiB/tunnel)" if pids and n else "")
            + (f"; first error: {result['error'] or result['big_error']}"
               if result["error"] or result["big_error"] else ""))
        return result

    def p1(self, up, tunnels):
        targets = self.targets(up)
        out = self.results.setdefault("p1", {}).setdefault(up.kind, {})
        if tunnels:
            # Memory first, before throughput runs leave big buffers in the allocators' free lists.
            out["tunnels"] = {name: self.p1_tunnels(up, name) for name in P1_TARGETS}
        rounds = []
        for rnd in range(ROUNDS):
            results = {}
            for name in rotated(P1_TARGETS, rnd):
                _, pids, _ = targets[name]
                cpu0 = cpu_seconds(pids)
                result = self.wsload("throughput", self.ws_url(up, name), up.cookie, SECONDS, WS_SIZE, WS_WINDOW)
                cpu = cpu_seconds(pids) - cpu0
                # Per MB crossing the proxy: every echoed byte crosses it once each way.
                moved_mb = 2 * result["total_bytes"] / 1e6
                result["cpu_ms_per_mb"] = cpu * 1e3 / moved_mb if pids and moved_mb else None
                result["busy"] = cpu / result["total_seconds"] if pids else None
                results[name] = result
                log(f"P1 {up.kind} round {rnd + 1} {name}: {result['mb_per_s']:.0f} MB/s echoed"
                    + (f", {result['cpu_ms_per_mb']:.3f} ms CPU/MB, proxy core {100 * result['busy']:.0f}% busy"
                       if pids else ""))
            for name in P1_TARGETS:
                rtt = self.wsload("rtt", self.ws_url(up, name), up.cookie, RTT_COUNT, 100)
                results[name].update(rtt_p50_us=rtt["p50_us"], rtt_p99_us=rtt["p99_us"])
                log(f"P1 {up.kind} round {rnd + 1} RTT {name}: p50 {rtt['p50_us']:.0f} us, p99 {rtt['p99_us']:.0f} us")
            rounds.append(results)
        out["throughput"] = rounds

    # P3 --------------------------------------------------------------------------------------------
    def metrics(self):
        status, _, body = request("GET", f"{self.api}/metrics")
        return parse_prometheus(body.decode()) if status == 200 else {}

    def p3(self):
        before = self.metrics()
        runs = []
        for i in range(SESSIONS):
            t0 = time.time()
            sid = self.create_session("start")
            t_posted = time.time()
            cookie = self.session_cookie(sid)
            url = f"{self.session_base(sid)}/api/health"

            def healthy():
                status, _, body = request("GET", url, headers={"cookie": cookie}, timeout=5)
                if status in (401, 404):  # 503 while starting; these mean it will never be healthy
                    raise RuntimeError(f"session {sid}: the proxy answered {status} {body[:200]!r}")
                return status == 200

            wait_for(f"session {sid} healthy behind the proxy", 120, healthy, interval=0.01)
            t_healthy = time.time()
            session = self.member.call("GET", f"/api/v1/sessions/{sid}")
            runs.append({"id": sid, "t0": t0, "post_s": t_posted - t0, "healthy_s": t_healthy - t0,
                         "running_s": parse_time(session["started_at"]) - parse_time(session["created_at"])
                         if session.get("started_at") else None})
            self.stop_session(sid)
            log(f"P3 session {i + 1}/{SESSIONS}: healthy behind the proxy {1e3 * (t_healthy - t0):.0f} ms after POST")
        after = self.metrics()
        # When did the agent begin executing each start command? Its JSON log says, to the microsecond.
        began = agent_start_times(os.path.join(self.tmp, "agent.log"))
        for run in runs:
            run["agent_s"] = began[run["id"]] - run["t0"] if run["id"] in began else None
        self.results["p3"] = {"runs": runs, "metrics": histogram_deltas(before, after)}


# --- parsing ----------------------------------------------------------------------------------------

def keep_alive_requests(url, cookie, count, connections=8):
    """`count` GETs of `url` with the session cookie over `connections` kept-alive connections, one request in
    flight on each; fails on any answer but 200. Returns the number sent."""
    url, host = loopback(url)
    parts = urllib.parse.urlsplit(url)
    head = (f"GET {parts.path} HTTP/1.1\r\nHost: {host or parts.netloc}\r\nCookie: {cookie}\r\n\r\n").encode()
    sockets = [socket.create_connection((parts.hostname, parts.port), timeout=60) for _ in range(connections)]
    sent = 0
    try:
        while sent < count:
            for s in sockets:
                s.sendall(head)
            for s in sockets:
                read_response(s)
            sent += len(sockets)
    finally:
        for s in sockets:
            s.close()
    return sent


def read_response(s):
    """Reads one HTTP/1.1 response with a Content-Length body; fails unless it is a 200."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("the connection closed before an answer")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"answered {head[:200]!r}")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.split(b":", 1)[0].strip().lower() == b"content-length"), 0)
    while len(body) < length:
        body += s.recv(65536)


def tcp_segments_sent():
    """TCP segments sent in this network namespace so far (the kernel's `TcpOutSegs`)."""
    out = subprocess.run(["nstat", "-az", "TcpOutSegs"], capture_output=True, text=True, check=True).stdout
    return int(out.split("TcpOutSegs")[1].split()[0])


def perf_counts(path):
    """Event name -> count, from `perf stat -x,` (events that were not counted are left out)."""
    counts = {}
    with open(path) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) > 2 and fields[0].isdigit():
                counts[fields[2]] = int(fields[0])
    return counts


def callgrind_dump(pid, directory):
    """Has callgrind write what process `pid` ran since its last zero; returns that many instructions."""
    before = set(os.listdir(directory))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    dump = wait_for("callgrind's dump", 30, lambda: next(
        (name for name in set(os.listdir(directory)) - before if f".{pid}." in name), None))
    path = os.path.join(directory, dump)

    def totals():
        with open(path) as f:
            found = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
        return found and int(found.group(1))

    return wait_for("callgrind's totals", 30, totals)


def duration_us(text):
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[unit]


def parse_wrk(out):
    dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_us": duration_us(dist["50"]), "p99_us": duration_us(dist["99"]),
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket_errors.groups()))
                                                             if socket_errors else 0),
    }


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def agent_start_times(path):
    """session id -> Unix time at which the agent began executing its start command."""
    times = {}
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return times
    for line in lines:
        if '"executing command"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        span = entry.get("span") or {}
        if span.get("kind") == "Start" and span.get("session_id"):
            times.setdefault(span["session_id"], parse_time(entry["timestamp"]))
    return times


def parse_prometheus(text):
    """(name, frozenset(labels)) -> value, for every sample."""
    samples = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not m or line.startswith("#"):
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        try:
            samples[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            continue
    return samples


def histogram_deltas(before, after):
    """For every histogram series that grew: count, mean and bucket-estimated p50/p99 of the new samples."""
    out = {}
    for (name, labels), value in after.items():
        if not name.endswith("_count"):
            continue
        base = name[: -len("_count")]
        count = value - before.get((name, labels), 0)
        if count <= 0:
            continue
        total = after.get((base + "_sum", labels), 0) - before.get((base + "_sum", labels), 0)
        buckets = sorted(
            (float("inf") if dict(lab)["le"] == "+Inf" else float(dict(lab)["le"]), v - before.get((n, lab), 0))
            for (n, lab), v in after.items()
            if n == base + "_bucket" and frozenset(x for x in lab if x[0] != "le") == labels
        )
        key = base + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels)) + "}" if labels else "")
        out[key] = {"count": int(count), "mean_s": total / count,
                    "p50_s": bucket_quantile(buckets, 0.5), "p99_s": bucket_quantile(buckets, 0.99)}
    return out


def bucket_quantile(buckets, q):
    """Prometheus' histogram_quantile() over cumulative (upper bound, count) pairs."""
    if not buckets:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower
            span = cumulative - below
            return lower + (upper - lower) * ((rank - below) / span if span else 1)
        lower, below = upper, cumulative
    return lower


# --- the report -------------------------------------------------------------------------------------

def fmt(value, spec=".0f", none="—"):
    return none if value is None else format(value, spec)


def pct(value):
    return "—" if value is None else f"{100 * value:.0f}%"


def tool_versions():
    def first_line(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    return (f"nginx {first_line(['nginx', '-v']).replace('nginx version: nginx/', '')}, "
            f"configurable-http-proxy {first_line([CHP, '--version'])} on Node {first_line(['node', '--version'])}, "
            f"wrk {first_line(['wrk', '-v']).split(' [')[0].replace('wrk ', '')}, "
            f"Docker {first_line(['docker', 'version', '--format', '{{.Server.Version}}'])}")


def git_describe():
    head = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no", "--", "crates"],
                           capture_output=True, text=True)
    return head.stdout.strip() + (" (plus uncommitted changes under crates/)" if dirty.stdout.strip() else "")


def per_round(rounds, name, key):
    return [r[name][key] for r in rounds if r[name].get(key) is not None]


def round_ratios(rounds, key, num="streamspace", den="nginx"):
    """StreamSpace/reference, measured within each round."""
    return [r[num][key] / r[den][key] for r in rounds if r[num].get(key) and r[den].get(key)]


def round_ratio(rounds, key, num="streamspace", den="nginx"):
    """Median over rounds of StreamSpace/reference measured in the same round."""
    return median(round_ratios(rounds, key, num, den))


def spread(rounds, key, den="nginx"):
    ratios = round_ratios(rounds, key, den=den)
    return f"{min(ratios):.2f}–{max(ratios):.2f}" if len(ratios) > 1 else ""


def binary_describe():
    built = datetime.datetime.fromtimestamp(os.path.getmtime(BIN)).strftime("%Y-%m-%d %H:%M")
    return f"`{BIN}` (built {built})"


def report(bench, started, load_before, commit):
    r = bench.results
    kinds = [k for k in UPSTREAMS if any(k in r.get(part, {}) for part in ("p1", "p2", "instructions", "syscalls"))]
    labels = {k: v[2] for k, v in bench.targets(next(iter(bench.upstreams.values()))).items()}
    lines = [
        f"# StreamSpace benchmark: P1, P2, P3 ({datetime.datetime.now().strftime('%Y-%m-%d %H:%M')})",
        "",
        f"- Commit at the start of the run: {commit}; binary {binary_describe()}.",
        f"- Machine: {os.cpu_count()} cores, Linux {os.uname().release}; load average {load_before} before, "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after (the machine is shared); the run took "
        f"{(time.monotonic() - started) / 60:.1f} min.",
        f"- Proxy under test pinned to CPU {PROXY_CPU} at nice {NICE}; load generator and the session container "
        f"pinned to CPU {LOAD_CPU}. {SECONDS} s per measurement, {ROUNDS} interleaved round(s): the tables show "
        "medians over rounds, ratios are the median of the per-round ratios.",
        f"- Tools: {tool_versions()}. StreamSpace: release build, `RUST_LOG={SERVER_RUST_LOG}`, JSON logs to a file.",
        "- Upstreams (each a real StreamSpace session started through the API and the Docker agent, reached at its "
        "container address): " + "; ".join(f"**{k}** = {UPSTREAM_LABELS[k]}" for k in kinds) + ".",
        "",
    ]
    checks = {}  # label -> {kind: (value, ok)}, plus target text

    def check(label, target, kind, value, ok, rng=""):
        checks.setdefault(label, {"target": target})[kind] = (value, ok, rng)

    if "p1" in r:
        lines += [
            "## P1: WebSocket tunnel",
            "",
            f"Throughput: one WebSocket, {WS_SIZE // 1024} KiB binary messages, {WS_WINDOW} in flight, echoed by the "
            "upstream; MB/s of payload echoed back. CPU/MB: the proxy process's utime+stime per MB crossing it "
            f"(each echoed byte crosses twice). RTT: {RTT_COUNT} sequential 100 B echoes. Tunnels: {TUNNELS} "
            "WebSockets held open at once (each checked with a 100 B echo): growth of the proxy's RSS per tunnel, "
            "then again after one 64 KiB echo on each.",
            "",
        ]
        for kind in kinds:
            p1 = r["p1"].get(kind)
            if not p1:
                continue
            rounds = p1["throughput"]
            tunnels = p1.get("tunnels", {})
            lines += [
                f"Upstream: **{kind}**",
                "",
                "| target | MB/s | proxy CPU ms/MB | proxy core busy | RTT p50 µs | RTT p99 µs"
                + (" | tunnels open | KiB/tunnel idle | KiB/tunnel after 64 KiB |" if tunnels else " |"),
                "|---|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if tunnels else ""),
            ]
            for name in P1_TARGETS:
                row = (f"| {labels[name]} | {median(per_round(rounds, name, 'mb_per_s')):.0f} | "
                       f"{fmt(median(per_round(rounds, name, 'cpu_ms_per_mb')), '.3f')} | "
                       f"{pct(median(per_round(rounds, name, 'busy')))} | "
                       f"{median(per_round(rounds, name, 'rtt_p50_us')):.0f} | "
                       f"{median(per_round(rounds, name, 'rtt_p99_us')):.0f} |")
                if tunnels:
                    t = tunnels[name]
                    row += f" {t['opened']}/{TUNNELS} | {fmt(t['kib_idle'], '.1f')} | {fmt(t['kib_big'], '.1f')} |"
                lines.append(row)
            lines.append("")
            check("P1 throughput, StreamSpace / nginx 64 KiB", ">= 1", kind,
                  *ratio_ok(round_ratio(rounds, "mb_per_s", den="nginx64k"), lambda x: x >= 1),
                  spread(rounds, "mb_per_s", den="nginx64k"))
            check("P1 CPU per MB, StreamSpace / nginx 64 KiB", "<= 1", kind,
                  *ratio_ok(round_ratio(rounds, "cpu_ms_per_mb", den="nginx64k"), lambda x: x <= 1),
                  spread(rounds, "cpu_ms_per_mb", den="nginx64k"))
            check("P1 RTT p99 (100 B), StreamSpace / nginx 64 KiB", "<= 1", kind,
                  *ratio_ok(round_ratio(rounds, "rtt_p99_us", den="nginx64k"), lambda x: x <= 1),
                  spread(rounds, "rtt_p99_us", den="nginx64k"))
            check("P1 RTT p99 (100 B), StreamSpace / nginx stock", "(info)", kind,
                  round_ratio(rounds, "rtt_p99_us"), None, spread(rounds, "rtt_p99_us"))
            check("P1 throughput, StreamSpace / CHP", "(info)", kind, round_ratio(rounds, "mb_per_s", den="chp"), None,
                  spread(rounds, "mb_per_s", den="chp"))
            if tunnels:
                t = tunnels["streamspace"]
                full = t["opened"] >= TUNNELS
                check(f"P1 {TUNNELS} idle tunnels: all open, KiB each", "<= 24 KiB", kind,
                      t["kib_idle"], full and t["kib_idle"] is not None and t["kib_idle"] <= 24)
                check(f"P1 {TUNNELS} tunnels after 64 KiB each: KiB each", "(info)", kind, t["kib_big"], None)
            busiest = max(median(per_round(rounds, n, "busy")) or 0 for n in ("streamspace", "nginx64k"))
            if busiest < 0.85:
                bench.notes.append(
                    f"P1 on the {kind} upstream: no proxy kept its core busy (at most {100 * busiest:.0f}%), so "
                    "throughput there is set by the upstream or the client, and the MB/s ratio says little; "
                    "CPU per MB still compares the proxies.")
    if "p2" in r:
        lines += [
            "## P2: plain HTTP (`GET /api/health` through the proxy; StreamSpace checks the session cookie on "
            "every request)",
            "",
            f"`wrk -t1 -c{CONNECTIONS} -d{SECONDS}s --latency`, the same `Cookie` header sent to every target.",
            "",
        ]
        for kind in kinds:
            rounds = r["p2"].get(kind)
            if not rounds:
                continue
            lines += [f"Upstream: **{kind}**", "",
                      "| target | requests/s | p50 µs | p99 µs | proxy CPU µs/request | of which user space | "
                      "proxy core busy | load core CPU µs/request | errors |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for name in P2_TARGETS:
                lines.append(
                    f"| {labels[name]} | {median(per_round(rounds, name, 'rps')):.0f} | "
                    f"{median(per_round(rounds, name, 'p50_us')):.0f} | {median(per_round(rounds, name, 'p99_us')):.0f}"
                    f" | {fmt(median(per_round(rounds, name, 'cpu_us_per_req')), '.1f')} | "
                    f"{fmt(median(per_round(rounds, name, 'user_us_per_req')), '.1f')} | "
                    f"{pct(median(per_round(rounds, name, 'busy')))} | "
                    f"{fmt(median(per_round(rounds, name, 'load_us_per_req')), '.1f')} | "
                    f"{sum(per_round(rounds, name, 'errors'))} |")
            lines.append("")
            # A proxy that answers errors (a 429, a 502) is fast at the wrong thing: no verdict is met with any.
            answered = sum(per_round(rounds, "streamspace", "errors")) == 0
            check("P2 requests/s, StreamSpace / nginx", ">= 1", kind,
                  *ratio_ok(round_ratio(rounds, "rps"), lambda x: answered and x >= 1), spread(rounds, "rps"))
            check("P2 requests/s, StreamSpace / CHP", ">= 10", kind,
                  *ratio_ok(round_ratio(rounds, "rps", den="chp"), lambda x: answered and x >= 10),
                  spread(rounds, "rps", den="chp"))
            check("P2 p99, StreamSpace / nginx", "<= 1", kind,
                  *ratio_ok(round_ratio(rounds, "p99_us"), lambda x: answered and x <= 1), spread(rounds, "p99_us"))
            check("P2 CPU per request, StreamSpace / nginx", "<= 1", kind,
                  *ratio_ok(round_ratio(rounds, "cpu_us_per_req"), lambda x: answered and x <= 1),
                  spread(rounds, "cpu_us_per_req"))
            check("P2 user-space CPU per request, StreamSpace / nginx", "(info)", kind,
                  round_ratio(rounds, "user_us_per_req"), None, spread(rounds, "user_us_per_req"))
            check("P2 load core CPU per request, StreamSpace / nginx", "(info)", kind,
                  round_ratio(rounds, "load_us_per_req"), None, spread(rounds, "load_us_per_req"))
            check("P2 CPU per request, bare hyper / nginx", "(info)", kind,
                  round_ratio(rounds, "cpu_us_per_req", num="hyper"), None)
            check("P2 CPU per request, StreamSpace / bare hyper", "(info)", kind,
                  round_ratio(rounds, "cpu_us_per_req", den="hyper"), None, spread(rounds, "cpu_us_per_req", den="hyper"))
            ss_busy = median(per_round(rounds, "streamspace", "busy"))
            if ss_busy is not None and ss_busy >= 0.9:
                bench.notes.append(
                    f"P2 on the {kind} upstream: StreamSpace kept its core {100 * ss_busy:.0f}% busy, so "
                    f"{median(per_round(rounds, 'streamspace', 'rps')):.0f} requests/s is its ceiling on one core "
                    f"here ({median(per_round(rounds, 'streamspace', 'cpu_us_per_req')):.1f} µs of CPU per request; "
                    f"nginx {median(per_round(rounds, 'nginx', 'cpu_us_per_req')):.1f} µs at "
                    f"{pct(median(per_round(rounds, 'nginx', 'busy')))} of its core).")
            if median(per_round(rounds, "nginx", "rps")) >= 0.8 * median(per_round(rounds, "direct", "rps")):
                bench.notes.append(
                    f"P2 on the {kind} upstream: nginx reaches at least 80% of the direct rate, so the upstream "
                    "caps the proxies and the requests/s ratio understates the gap; compare CPU per request.")
    if "p3" in r:
        runs = r["p3"]["runs"]

        def stats(key):
            values = [x[key] * 1e3 for x in runs if x.get(key) is not None]
            return (median(values), percentile(values, 99), len(values)) if values else (None, None, 0)

        lines += [
            f"## P3: session start ({len(runs)} fixture sessions one after another, warm image, local Docker)",
            "",
            "| phase, from just before `POST /api/v1/sessions` is sent | median ms | p99 ms | n |",
            "|---|---:|---:|---:|",
        ]
        for label, key in [
            ("`POST /sessions` answered (202)", "post_s"),
            ("agent begins executing the start command (agent's JSON log, `executing command`)", "agent_s"),
            ("session `running` (server's `started_at - created_at`)", "running_s"),
            ("streamer healthy behind the proxy (`GET …/api/health` answers 200 with the cookie)", "healthy_s"),
        ]:
            med, p99, n = stats(key)
            lines.append(f"| {label} | {fmt(med, '.1f')} | {fmt(p99, '.1f')} | {n} |")
        lines += ["", "Histograms from `/metrics` over the same sessions (starts and stops; p50/p99 interpolated in "
                  "buckets, as Prometheus does):", "",
                  "| metric | count | mean ms | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
        for key, h in sorted(r["p3"]["metrics"].items()):
            if key.startswith(("session_", "agent_command")):
                lines.append(f"| `{key}` | {h['count']} | {h['mean_s'] * 1e3:.1f} | "
                             f"{fmt(h['p50_s'] and h['p50_s'] * 1e3, '.1f')} | "
                             f"{fmt(h['p99_s'] and h['p99_s'] * 1e3, '.1f')} |")
        lines.append("")
        _, agent_p99, _ = stats("agent_s")
        healthy_med, _, _ = stats("healthy_s")
        if agent_p99 is not None:
            check("P3 POST → agent holds the start command, p99 ms", "<= 10 ms", "fixture", agent_p99,
                  agent_p99 <= 10)
        if healthy_med is not None:
            check("P3 POST → streamer healthy behind the proxy, median ms", "<= 3000 ms", "fixture", healthy_med,
                  healthy_med <= 3000)
    if "instructions" in r:
        lines += [
            "## P2 in instructions",
            "",
            f"P2's request (`GET /api/health`, the session cookie checked) counted rather than timed: each proxy runs "
            f"under callgrind, which counts the instructions it runs in user space (not the kernel's) between a zero "
            f"and a dump around {INSTRUCTION_REQUESTS} requests over 8 kept-alive connections. Unlike CPU time on a "
            "shared machine, the count repeats to within 1-4% on the echo upstream (2.5% on the fixture), so it "
            "shows what a change to the proxy's own work saves; time per instruction still differs between programs.",
            "",
            "| upstream | " + " | ".join(labels[n] for n in COUNTED_TARGETS) + " |",
            "|---|" + "---:|" * len(COUNTED_TARGETS),
        ]
        for kind, counts in r["instructions"].items():
            lines.append(f"| {kind} | " + " | ".join(fmt(counts.get(n)) for n in COUNTED_TARGETS) + " |")
            for name in ("nginx", "hyper"):
                check(f"P2 instructions per request, StreamSpace / {labels[name]}", "info", kind,
                      counts["streamspace"] / counts[name], None)
        lines.append("")
    if "syscalls" in r:
        lines += [
            "## P2 in system calls",
            "",
            f"System calls per P2 request under wrk's load ({SECONDS} s, {CONNECTIONS} connections), counted by "
            "perf's `syscalls:sys_enter_*` tracepoints on each proxy's threads; calls of at least 0.01 per request. "
            "TCP segments are all those the host's network namespace sent meanwhile (`TcpOutSegs`): the client's, "
            "the proxy's and the acknowledgements, but not the session container's, which has a namespace of its own.",
            "",
        ]
        for kind, by_proxy in r["syscalls"].items():
            calls = sorted({c for counts in by_proxy.values() for c, n in counts["calls"].items() if n >= 0.01})
            lines += [f"{UPSTREAM_LABELS.get(kind, kind)}:", "",
                      "| system call | " + " | ".join(labels[n] for n in COUNTED_TARGETS) + " |",
                      "|---|" + "---:|" * len(COUNTED_TARGETS)]
            lines += [f"| `{c}` | " + " | ".join(fmt(by_proxy[n]["calls"].get(c, 0), ".2f") for n in COUNTED_TARGETS)
                      + " |" for c in calls]
            lines += ["| all | " + " | ".join(fmt(sum(by_proxy[n]["calls"].values()), ".2f") for n in COUNTED_TARGETS)
                      + " |",
                      "| context switches | " + " | ".join(fmt(by_proxy[n]["switches"], ".3f") for n in COUNTED_TARGETS)
                      + " |",
                      "| TCP segments sent | " + " | ".join(fmt(by_proxy[n]["segments"], ".2f") for n in COUNTED_TARGETS)
                      + " |", ""]
    lines += ["## Against the targets", "",
              "Ratios are StreamSpace's figure over the reference's, measured in the same round.", "",
              "| check | upstream | StreamSpace ratio or value | per-round range | target | verdict |",
              "|---|---|---:|---:|---|---|"]
    for label, c in checks.items():
        for kind in dict.fromkeys([*UPSTREAMS, "fixture"]):
            if kind in c:
                value, ok, rng = c[kind]
                verdict = "info" if ok is None else ("✅ met" if ok else "❌ missed")
                lines.append(f"| {label} | {kind} | {fmt(value, '.2f')} | {rng} | {c['target']} | {verdict} |")
    if bench.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in bench.notes]
    return "\n".join(lines) + "\n"


def ratio_ok(value, test):
    return value, (None if value is None else test(value))


def interrupt_on_signals():
    """SIGTERM and SIGHUP stop the run as Ctrl-C does, so its cleanup runs."""
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def write_results(out, text, results):
    """Prints the Markdown report and writes it to `out`, the raw results beside it as JSON."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(text)
    log(f"written to {out}")


def main():
    for tool in (BIN, WSLOAD):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: run bench/run.sh, which builds it")
    if INSTRUCTIONS and ONLY != {"instructions"}:
        sys.exit("BENCH_ONLY=instructions runs alone: under callgrind the proxies are too slow to time")
    if SYSCALLS and ONLY != {"syscalls"}:
        sys.exit("BENCH_ONLY=syscalls runs alone: the tracepoints slow every system call the proxies make")
    started = time.monotonic()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    commit = git_describe()
    bench = Bench()

    interrupt_on_signals()
    try:
        bench.start_control_plane()
        for kind in UPSTREAMS:
            up = bench.open_upstream(kind)
            if "p1" in ONLY:
                bench.p1(up, tunnels=kind == UPSTREAMS[0])
            if "p2" in ONLY:
                bench.p2(up)
            if INSTRUCTIONS:
                bench.instructions(up)
            if SYSCALLS:
                bench.syscalls(up)
            if "p3" in ONLY:  # P3 on a quiet control plane with capacity: the upstream is done
                bench.stop_session(up.sid)
        if "p3" in ONLY:
            bench.p3()
        write_results(OUT, report(bench, started, load_before, commit), bench.results)
    except KeyboardInterrupt as err:
        log(f"interrupted ({err})")
        return 130
    finally:
        bench.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
