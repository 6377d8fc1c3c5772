#!/usr/bin/env python3
"""StreamSpace scale benchmark (issue 11, target P5 and the replicas' API throughput).

    scale.py agents     1,000 simulated agents on one control plane, on SQLite then on PostgreSQL: memory and CPU
                        at rest, and the latency from `POST /api/v1/sessions` to the agent holding the start command
    scale.py replicas   three replicas on one PostgreSQL with one key file: wrk against `GET` and `POST
                        /api/v1/sessions` on every replica at once, and on one replica alone
    scale.py api        target P4: one control plane on its embedded SQLite, wrk against `GET /api/v1/sessions`
                        with 100 sessions in the org

Run it through bench/scale.sh, which builds the binaries and starts PostgreSQL first. Standard library only; the
helpers shared with the proxy benchmark come from bench.py. Everything it starts (control planes, the agent
simulator, the databases it creates, temp dirs) is stopped and removed when it exits, also on Ctrl-C or SIGTERM.
Settings come from the environment: see bench/README.md.
"""

import datetime
import http.client
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import bench as common
from bench import Api, env_int, free_port, log, percentile, request, wait_for

AGENTS = env_int("BENCH_AGENTS", 1000)
REST_SECONDS = env_int("BENCH_REST_SECONDS", 60)
SESSIONS = env_int("BENCH_SESSIONS", 500)
SESSION_RATE = env_int("BENCH_SESSION_RATE", 20)
HEARTBEAT = env_int("BENCH_HEARTBEAT", 10)
STORES = [s for s in os.environ.get("BENCH_STORES", "sqlite,postgres").split(",") if s]
REPLICAS = env_int("BENCH_REPLICAS", 3)
REPLICA_AGENTS = env_int("BENCH_REPLICA_AGENTS", 30)
MEMBER_SESSIONS = env_int("BENCH_MEMBER_SESSIONS", 20)
API_SESSIONS = env_int("BENCH_API_SESSIONS", 100)
WRK_SECONDS = env_int("BENCH_SECONDS", 10)
WRK_CONNECTIONS = env_int("BENCH_CONNECTIONS", 32)
SERVER_RUST_LOG = os.environ.get("BENCH_SERVER_RUST_LOG", "info")
# agents: the control plane, its PostgreSQL backends, the simulator and the driver run at this nice value, so other
# people's builds on the shared cores do not set the latency's tail ("0": off).
NICE = common.NICE
BIN = common.BIN
AGENTSIM = os.environ.get("AGENTSIM_BIN", os.path.join(common.TARGET, "bench", "release", "agentsim"))
DATABASE_URL = os.environ.get("STREAMSPACE_TEST_DATABASE_URL")
ENDPOINT_IMAGE = os.environ.get("BENCH_FIXTURE_IMAGE", "streamspace/fixture:latest")
POST_SCRIPT = os.path.join(common.BENCH_DIR, "post-session.lua")
RESULTS = os.path.join(common.BENCH_DIR, "results")
ADMIN_PASSWORD, MEMBER_PASSWORD = common.ADMIN_PASSWORD, common.MEMBER_PASSWORD
# Sessions never run anything: the simulated agents report them running at once. Small, like the tests' sessions.
TEMPLATE = {"name": "scale", "display_name": "Scale", "image": "streamspace/fixture:latest",
            "cpu_millis": 100, "memory_mb": 64, "shm_mb": 16}
UNLIMITED = {"max_sessions": None, "max_sessions_per_user": None, "max_cpu_millis": None, "max_memory_mb": None}


def micros():
    return time.time_ns() // 1000


def pressure_stall_us():
    """Microseconds some task waited for a CPU and for I/O (pressure stall information), cumulative."""
    def total(kind):
        with open(f"/proc/pressure/{kind}") as f:
            return int(f.readline().rsplit("total=", 1)[1])

    return total("cpu"), total("io")


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def metric(base, name):
    """The value of an unlabelled gauge or counter from `/metrics` (None if absent)."""
    text = request("GET", f"{base}/metrics", timeout=10)[2].decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


class Run:
    """Processes, databases and files of one benchmark run, removed on exit."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="streamspace-scale-")
        self.processes = []  # (name, Popen), in start order
        self.databases = []
        self.container = None

    def spawn(self, name, argv, env=None, stdout=subprocess.DEVNULL):
        logfile = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        process = subprocess.Popen([str(a) for a in argv], env={**os.environ, **(env or {})}, stdout=stdout,
                                   stderr=logfile, stdin=subprocess.DEVNULL, text=stdout is not subprocess.DEVNULL)
        self.processes.append((name, process))
        return process

    def stop(self, process):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def database(self):
        """A fresh PostgreSQL database (dropped at the end); its URL."""
        if not DATABASE_URL:
            raise RuntimeError("STREAMSPACE_TEST_DATABASE_URL is unset: run through bench/scale.sh, which starts "
                               "PostgreSQL (scripts/dev/postgres-up.sh)")
        name = f"scale_{secrets.token_hex(4)}"
        subprocess.run(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", DATABASE_URL, "-c", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True)
        self.databases.append(name)
        return urllib.parse.urlsplit(DATABASE_URL)._replace(path=f"/{name}").geturl()

    def endpoint(self):
        """The one HTTP server every simulated session reports as its endpoint: a fixture container (the session
        proxy refuses the host's own addresses, so it cannot be a process here). Answers its URL."""
        name = f"streamspace-scale-endpoint-{secrets.token_hex(3)}"
        common.docker("run", "-d", "--rm", "--name", name, ENDPOINT_IMAGE)
        self.container = name
        inspected = json.loads(common.docker("inspect", name))[0]
        address = next(n["IPAddress"] for n in inspected["NetworkSettings"]["Networks"].values() if n.get("IPAddress"))
        url = f"http://{address}:8080"

        def answers():
            try:
                return request("GET", f"{url}/api/health", timeout=2)[0] == 200
            except OSError:
                return False

        wait_for("the endpoint container", 30, answers)
        return url

    def cleanup(self):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        log("cleaning up")
        for _, process in reversed(self.processes):
            self.stop(process)
        if self.container:
            common.docker("rm", "-f", self.container, check=False)
        for name in self.databases:
            subprocess.run(["psql", "-qAtX", DATABASE_URL, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                           capture_output=True)
        if os.environ.get("BENCH_KEEP_TMP") == "1":
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


class ControlPlane:
    """One `streamspace serve` (release build) with budgets that bind nobody."""

    def __init__(self, run, name, database_url=None, key_file=None, prefix=()):
        self.run, self.name = run, name
        port = free_port()
        self.api = f"http://127.0.0.1:{port}"
        data = os.path.join(run.tmp, name)
        os.makedirs(data)
        store = [*(["--database-url", database_url] if database_url else []),
                 *(["--key-file", key_file] if key_file else [])]
        self.process = run.spawn(name, [
            *prefix, BIN, "serve", "--listen", f"127.0.0.1:{port}", "--session-listen", f"127.0.0.1:{free_port()}",
            "--data-dir", data, "--idle-timeout", "0", "--heartbeat-interval", HEARTBEAT, *store,
            *[arg for scope in ("address", "user", "org") for arg in (f"--rate-limit-{scope}", common.NO_BUDGET_BINDS)],
        ], env={"STREAMSPACE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STREAMSPACE_LOG_FORMAT": "json",
                "RUST_LOG": SERVER_RUST_LOG})
        self.pid = self.process.pid

        def healthy():
            self.check_alive()
            try:
                return request("GET", f"{self.api}/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_for(f"{name}'s /healthz", 90, healthy)

    def check_alive(self):
        if self.process.poll() is not None:
            tail = open(os.path.join(self.run.tmp, f"{self.name}.log"), errors="replace").read()[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")

    def rss_mib(self):
        return common.rss_kib([self.pid]) / 1024

    def cpu_seconds(self):
        return common.cpu_seconds([self.pid])


def set_up_org(admin):
    """The scale template, a member, and no quota: the bench measures the platform, not the default quotas."""
    admin.call("POST", "/api/v1/templates", TEMPLATE)
    admin.call("POST", "/api/v1/users", {"username": "bench", "password": MEMBER_PASSWORD, "role": "member"})
    org = admin.call("GET", "/api/v1/me")["org_id"]
    admin.call("PATCH", f"/api/v1/orgs/{org}", UNLIMITED)


def register_agents(admin, count, max_sessions, path):
    """Registers `count` agents through the API and writes their tokens to `path`, one a line."""
    started = time.monotonic()
    limit = {"max_sessions": max_sessions}
    with open(path, "w") as f:
        for i in range(count):
            reply = admin.call("POST", "/api/v1/agents",
                               {"name": f"sim-{i:04d}", "platform": "docker", "capacity_limit": limit})
            f.write(reply["token"] + "\n")
    return time.monotonic() - started


class Simulator:
    """bench/agentsim: one process holding every simulated agent; its stdout is read in a thread."""

    def __init__(self, run, servers, tokens, endpoint, max_sessions, prefix=()):
        self.starts = {}  # session id -> microseconds since the epoch when its start command was read
        self.lost = []
        self.ready = threading.Event()
        self.process = run.spawn("agentsim", [*prefix, AGENTSIM, ",".join(servers), tokens, endpoint, max_sessions],
                                 stdout=subprocess.PIPE)
        self.pid = self.process.pid
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.process.stdout:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "start":
                session, at = rest.split()
                self.starts.setdefault(session, int(at))
            elif kind == "ready":
                self.ready.set()
            elif kind == "lost":
                self.lost.append(rest)

    def wait_ready(self, timeout):
        started = time.monotonic()
        if not self.ready.wait(timeout):
            raise RuntimeError(f"the simulated agents did not all connect within {timeout} s; lost: {self.lost[:5]}")
        return time.monotonic() - started


class SessionSender:
    """POSTs sessions at a steady rate from a few threads, each on its own kept-alive connection, recording when
    each request was sent (just before the request line is written) and when its 202 came."""

    def __init__(self, base, token, count, rate, threads=4):
        self.base, self.token, self.count, self.rate = base, token, count, rate
        self.sent = {}  # session id -> (sent µs, answered µs)
        self.errors = []
        self.late = 0  # sends that left more than 10 ms after their slot (the client fell behind)
        self.slots = itertools.count()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.work) for _ in range(threads)]

    def run(self):
        self.start = time.monotonic()
        for thread in self.threads:
            thread.start()
        for thread in self.threads:
            thread.join()

    def work(self):
        parts = urllib.parse.urlsplit(self.base)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        body = json.dumps({"template": TEMPLATE["name"]})
        headers = {"authorization": f"Bearer {self.token}", "content-type": "application/json"}
        while True:
            with self.lock:
                slot = next(self.slots)
            if slot >= self.count:
                break
            delay = self.start + slot / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.01:
                self.late += 1
            sent = micros()
            connection.request("POST", "/api/v1/sessions", body=body, headers=headers)
            response = connection.getresponse()
            reply = response.read()
            answered = micros()
            if response.status == 202:
                self.sent[json.loads(reply)["id"]] = (sent, answered)
            else:
                self.errors.append(f"{response.status} {reply[:200]!r}")
        connection.close()


def summary_ms(values):
    if not values:
        return {"n": 0}
    return {"n": len(values), **{f"p{p}": percentile(values, p) / 1000 for p in (50, 90, 99)},
            "max": max(values) / 1000}


# --- part 1: 1,000 agents on one control plane -----------------------------------------------------------------

def prioritised():
    """The argv prefix that runs a process at NICE."""
    return ["nice", "-n", NICE] if NICE != "0" else []


def prioritise_postgres(database):
    """The PostgreSQL backends serving `database` at NICE (the control plane's pool keeps its connections)."""
    pids = list(postgres_cpu(database))
    if NICE != "0" and pids:
        subprocess.run(["renice", "-n", NICE, "-p", *pids], check=True, capture_output=True)


def agents_on(run, store, endpoint):
    result = {"store": store}
    database_url = run.database() if store == "postgres" else None
    server = ControlPlane(run, f"cp-{store}", database_url, prefix=prioritised())
    admin = Api(server.api, "admin", ADMIN_PASSWORD)
    set_up_org(admin)
    tokens = os.path.join(run.tmp, f"tokens-{store}")
    result["register_s"] = register_agents(admin, AGENTS, max_sessions=100, path=tokens)
    log(f"{store}: {AGENTS} agents registered in {result['register_s']:.1f} s")
    # The baseline: registered, not connected. Start-up and the sign-in's password hash leave memory the allocator
    # gives back only as later requests churn it; the registrations did, so this is what the process needs.
    time.sleep(2)
    result["rss_idle_mib"] = server.rss_mib()
    simulator = Simulator(run, [server.api], tokens, endpoint, 100, prefix=prioritised())
    result["connect_s"] = simulator.wait_ready(300)
    wait_for("every agent connected", 120,
             lambda: metric(server.api, "streamspace_agents_connected") == AGENTS, interval=0.5)
    log(f"{store}: {AGENTS} agents connected in {result['connect_s']:.1f} s; settling for one heartbeat interval")
    time.sleep(HEARTBEAT + 2)  # every agent heartbeating, the connect burst's garbage returned
    if database_url:
        prioritise_postgres(run.databases[-1])

    lost_before = len(simulator.lost)
    cpu0, busy0, sim0, rss = server.cpu_seconds(), common.busy_ticks(), common.cpu_seconds([simulator.pid]), []
    started = time.monotonic()
    while time.monotonic() - started < REST_SECONDS:
        rss.append(server.rss_mib())
        server.check_alive()
        time.sleep(1)
    elapsed = time.monotonic() - started
    busy1 = common.busy_ticks()
    result.update(
        rss_rest_mib=sum(rss) / len(rss), rss_rest_max_mib=max(rss),
        cpu_rest=(server.cpu_seconds() - cpu0) / elapsed,
        sim_cpu=(common.cpu_seconds([simulator.pid]) - sim0) / elapsed,
        machine_busy=(busy1[0] - busy0[0]) / (busy1[1] - busy0[1]),
        rest_s=elapsed, online=metric(server.api, "streamspace_agents_connected"),
    )
    result["kib_per_agent"] = (result["rss_rest_mib"] - result["rss_idle_mib"]) * 1024 / AGENTS
    log(f"{store}: at rest {result['rss_rest_mib']:.0f} MiB, {100 * result['cpu_rest']:.1f}% of a core")

    member = Api(server.api, "bench", MEMBER_PASSWORD)
    sender = SessionSender(server.api, member.token, SESSIONS, SESSION_RATE)
    busy0, stalls0, sending = common.busy_ticks(), pressure_stall_us(), time.monotonic()
    sender.run()
    busy1, stalls1, sending = common.busy_ticks(), pressure_stall_us(), time.monotonic() - sending
    wait_for("every start command at an agent", 60,
             lambda: all(sid in simulator.starts for sid in sender.sent), interval=0.2)
    delivery = [simulator.starts[sid] - sent for sid, (sent, _) in sender.sent.items()]
    answer = [answered - sent for sent, answered in sender.sent.values()]
    agents_used = len({s["agent_id"] for s in running_sessions(member)})
    result.update(
        delivery=summary_ms(delivery), answer=summary_ms(answer), post_errors=sender.errors, late=sender.late,
        agents_used=agents_used, rss_after_mib=server.rss_mib(),
        machine_busy_sending=(busy1[0] - busy0[0]) / (busy1[1] - busy0[1]),
        cpu_stall_sending=(stalls1[0] - stalls0[0]) / 1e6 / sending,
        io_stall_sending=(stalls1[1] - stalls0[1]) / 1e6 / sending,
        lost=len(simulator.lost) - lost_before, lost_examples=simulator.lost[:3],
    )
    log(f"{store}: start command at the agent p50 {result['delivery'].get('p50', 0):.1f} ms, "
        f"p99 {result['delivery'].get('p99', 0):.1f} ms over {result['delivery']['n']} sessions on {agents_used} agents")
    run.stop(simulator.process)
    run.stop(server.process)
    return result


def running_sessions(member):
    """The member's sessions once every one is running (the simulated agents report it at once)."""
    def all_running():
        items, cursor = [], None
        while True:
            page = member.call("GET", "/api/v1/sessions?limit=200" + (f"&cursor={cursor}" if cursor else ""))
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return items if all(s["state"] == "running" for s in items) else None

    return wait_for("the member's sessions running", 60, all_running, interval=0.5)


def agents_report(results, started, load_before, commit):
    lines = header(f"{AGENTS:,} simulated agents on one control plane", started, load_before, commit) + [
        f"- {AGENTS} agents (`bench/agentsim`, one process, one thread, real WebSockets to `/api/v1/agents/connect`), "
        f"registered through the API; heartbeat every {HEARTBEAT} s ("
        + ("the control plane's default" if HEARTBEAT == 10 else "`--heartbeat-interval`, shorter than the default "
           "10 s") + ", asked for in the welcome) with the agent's inventory; each start answered as the Docker agent "
        "does (`running` with an endpoint, then the command's result). The endpoint is one fixture container "
        "(`streamspace/fixture`), where the control plane registers each running session's streamer tokens.",
        f"- At rest: {REST_SECONDS} s with every agent connected and heartbeating, after one heartbeat interval "
        "of settling; RSS is `VmRSS` sampled every second (mean, max), CPU is utime+stime over the window as a "
        "share of one core. *Before* is with every agent registered and none connected (the registrations' "
        "requests also made the allocator return what start-up and the admin's sign-in left: a figure taken "
        "earlier is inflated by it); *KiB per agent* is (at rest - before) / agents.",
        f"- Latency: {SESSIONS} sessions `POST`ed at {SESSION_RATE}/s from 4 client threads on kept-alive "
        "connections; from just before the request is written to the simulator reading the `start` command "
        "(both clocks are this machine's wall clock), and to the 202 answer.",
        (f"- The control plane, its PostgreSQL backends, the simulator and the client run at nice {NICE}, so that "
         "other work on the shared cores does not set the tail (`BENCH_NICE=0` turns it off)." if NICE != "0" else
         "- Nothing runs at a raised priority (`BENCH_NICE=0`): other work on the shared cores shows in the tail."),
        "",
        "| store | agents online | RSS before MiB | RSS at rest MiB (max) | KiB per agent | CPU at rest, % of one core "
        "| start command at the agent p50 / p90 / p99 / max ms | 202 answer p50 / p99 ms | sessions (agents) "
        "| RSS after MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        d, a = r["delivery"], r["answer"]
        lines.append(
            f"| {r['store']} | {r['online']:.0f} | {r['rss_idle_mib']:.1f} | {r['rss_rest_mib']:.1f} "
            f"({r['rss_rest_max_mib']:.1f}) | {r['kib_per_agent']:.1f} | {100 * r['cpu_rest']:.1f}% "
            f"| {d['p50']:.1f} / {d['p90']:.1f} / {d['p99']:.1f} / {d['max']:.1f} | {a['p50']:.1f} / {a['p99']:.1f} "
            f"| {d['n']} ({r['agents_used']}) | {r['rss_after_mib']:.1f} |")
    lines += ["", "Targets (P5, `docs/design/targets.md` of the shared design notes): 1,000 agents in at most 300 MB; "
              "at most 25% of one core at rest; command delivery p99 under 50 ms.", ""]
    for r in results:
        d = r["delivery"]
        verdict = lambda ok: "met" if ok else "**missed**"  # noqa: E731
        lines.append(
            f"- {r['store']}: memory {verdict(r['rss_rest_max_mib'] * 1.048576 <= 300)} "
            f"({r['rss_rest_max_mib'] * 1.048576:.0f} MB), CPU {verdict(r['cpu_rest'] <= 0.25)}, "
            f"delivery p99 {verdict(d['p99'] < 50)}. Registering took {r['register_s']:.1f} s, connecting "
            f"{r['connect_s']:.1f} s; the simulator used {100 * r['sim_cpu']:.1f}% of a core and the whole machine "
            f"was {100 * r['machine_busy']:.0f}% busy at rest and {100 * r['machine_busy_sending']:.0f}% while the sessions "
            f"were sent, when some task waited for a CPU {100 * r['cpu_stall_sending']:.0f}% of the time and for I/O "
            f"{100 * r['io_stall_sending']:.0f}% (`/proc/pressure`); connections lost while measuring: {r['lost']}"
            + (f" (e.g. {r['lost_examples'][0]})" if r["lost_examples"] else "")
            + (f"; failed POSTs: {len(r['post_errors'])} ({r['post_errors'][0]})" if r["post_errors"] else "")
            + (f"; {r['late']} POSTs left more than 10 ms late" if r["late"] else "") + ".")
    return "\n".join(lines) + "\n"


# --- part 2: three replicas on PostgreSQL ---------------------------------------------------------------------

def run_wrk(url, token, seconds, script=None):
    argv = ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "5s",
            "-H", f"Authorization: Bearer {token}", *(["-s", script] if script else []), url]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def postgres_cpu(database):
    """utime+stime (s) of each PostgreSQL backend connected to `database`, by pid (none for SQLite)."""
    if database is None:
        return {}
    query = f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'"
    pids = subprocess.run(["psql", "-qAtX", DATABASE_URL, "-c", query], capture_output=True, text=True,
                          check=True).stdout.split()
    cpu = {}
    for pid in pids:
        try:
            cpu[pid] = common.cpu_seconds([pid])
        except OSError:  # the backend ended meanwhile
            pass
    return cpu


def cpu_since(before, after):
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def session_count(database_url):
    return int(subprocess.run(["psql", "-qAtX", database_url, "-c", "SELECT count(*) FROM sessions"],
                              capture_output=True, text=True, check=True).stdout)


def load(replicas, token, database, script=None):
    """wrk on every replica at once for WRK_SECONDS (after a 2 s warm-up); per replica: rps, latency, CPU."""
    for process in [run_wrk(f"{r.api}/api/v1/sessions", token, 2, script) for r in replicas]:
        process.communicate()
    cpu0, busy0, pg0 = [r.cpu_seconds() for r in replicas], common.busy_ticks(), postgres_cpu(database)
    processes = [run_wrk(f"{r.api}/api/v1/sessions", token, WRK_SECONDS, script) for r in replicas]
    outputs = [p.communicate()[0] for p in processes]
    busy1, pg1 = common.busy_ticks(), postgres_cpu(database)
    rows = []
    for replica, out, before in zip(replicas, outputs, cpu0):
        row = common.parse_wrk(out)
        cpu = replica.cpu_seconds() - before
        row.update(replica=replica.name, cpu_us_per_req=cpu / row["requests"] * 1e6 if row["requests"] else None,
                   busy=cpu / WRK_SECONDS)
        rows.append(row)
        log(f"{replica.name}: {row['rps']:.0f} req/s, p50 {row['p50_us'] / 1000:.1f} ms, "
            f"p99 {row['p99_us'] / 1000:.1f} ms, {row['cpu_us_per_req'] or 0:.0f} µs CPU/request"
            + (f", {row['errors']} errors" if row["errors"] else ""))
    return {"rows": rows, "machine_busy": (busy1[0] - busy0[0]) / (busy1[1] - busy0[1]),
            "postgres_cores": cpu_since(pg0, pg1) / WRK_SECONDS}


def replicas(run):
    database_url = run.database()
    key_file = os.path.join(run.tmp, "replicas.key")
    with open(key_file, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    os.chmod(key_file, 0o600)
    servers = [ControlPlane(run, "replica-1", database_url, key_file)]
    servers += [ControlPlane(run, f"replica-{i + 1}", database_url, key_file) for i in range(1, REPLICAS)]
    admin = Api(servers[-1].api, "admin", ADMIN_PASSWORD)
    set_up_org(admin)
    tokens = os.path.join(run.tmp, "tokens-replicas")
    capacity = 1_000_000  # every session wrk creates finds room
    register_agents(admin, REPLICA_AGENTS, max_sessions=capacity, path=tokens)
    simulator = Simulator(run, [s.api for s in servers], tokens, run.endpoint(), capacity)
    simulator.wait_ready(120)
    wait_for("every agent connected", 60, lambda: sum(
        metric(s.api, "streamspace_agents_connected") or 0 for s in servers) == REPLICA_AGENTS, interval=0.5)
    member = Api(servers[0].api, "bench", MEMBER_PASSWORD)
    for _ in range(MEMBER_SESSIONS):
        member.call("POST", "/api/v1/sessions", {"template": TEMPLATE["name"]}, expect=(202,))
    running_sessions(member)
    log(f"{REPLICAS} replicas, {REPLICA_AGENTS} agents, the member's {MEMBER_SESSIONS} sessions running")
    phases = {}
    for name, targets, script in (("GET, all replicas", servers, None), ("GET, one replica", servers[:1], None),
                                  ("POST, all replicas", servers, POST_SCRIPT),
                                  ("POST, one replica", servers[:1], POST_SCRIPT)):
        sessions = session_count(database_url)
        log(f"wrk: {name} ({sessions} sessions in the database)")
        member = Api(servers[0].api, "bench", MEMBER_PASSWORD)  # a fresh token for every phase
        phases[name] = {**load(targets, member.token, run.databases[-1], script), "sessions_before": sessions}
    for server in servers:
        server.check_alive()
    return {"phases": phases, "lost": simulator.lost}


def replicas_report(result, started, load_before, commit):
    lines = header(f"API throughput with {REPLICAS} replicas on PostgreSQL", started, load_before, commit) + [
        f"- {REPLICAS} `streamspace serve` replicas (release build) on one PostgreSQL 15 database, one `--key-file`, "
        f"`RUST_LOG={SERVER_RUST_LOG}`, request budgets that bind nobody; {REPLICA_AGENTS} simulated agents "
        "(`bench/agentsim`) spread over the replicas take the sessions.",
        f"- `wrk -t1 -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s` per replica, all at once, with a member's bearer token "
        f"(a 2 s warm-up first). `GET /api/v1/sessions`: the member has {MEMBER_SESSIONS} running sessions. "
        "`POST /api/v1/sessions` (`bench/post-session.lua`): every request creates a session that is scheduled, "
        "sent to an agent and reported running; the org has no quota.",
        "- Everything shares the machine's 2 cores: the replicas, PostgreSQL, wrk, the simulator (and other "
        "people's builds). *CPU per request* is the replica's utime+stime over the run divided by the requests it "
        "answered; *machine busy* is the share of both cores in use (from /proc/stat).",
        "",
        "| load | replica | requests/s | p50 ms | p99 ms | non-2xx or errors | CPU µs per request | replica's CPU, "
        "cores |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for name, phase in result["phases"].items():
        rows = phase["rows"]
        for row in rows:
            lines.append(f"| {name} | {row['replica']} | {row['rps']:.0f} | {row['p50_us'] / 1000:.1f} "
                         f"| {row['p99_us'] / 1000:.1f} | {row['errors']} | {row['cpu_us_per_req'] or 0:.0f} "
                         f"| {row['busy']:.2f} |")
        if len(rows) > 1:
            lines.append(f"| {name} | **total** | **{sum(r['rps'] for r in rows):.0f}** | | | "
                         f"{sum(r['errors'] for r in rows)} | | {sum(r['busy'] for r in rows):.2f} |")
        notes.append(f"{name}: {phase['sessions_before']} sessions in the database before the warm-up, machine "
                     f"{100 * phase['machine_busy']:.0f}% busy, PostgreSQL's backends {phase['postgres_cores']:.2f} "
                     "cores")
    reads = result["phases"]["GET, all replicas"]["rows"]
    alone = result["phases"]["GET, one replica"]["rows"][0]["rps"]
    # A replica's capacity is what it serves given the machine; replicas at once divide the same two cores.
    lines += ["", "During each run: " + "; ".join(notes) + ".",
              "", "Target: 5,000 requests/s per replica for reads on this 2-core machine: "
              + ("met" if alone >= 5000 else "**not met**")
              + f" by one replica given the machine ({alone:.0f}/s). {REPLICAS} replicas at once share its two cores: "
              + f"{sum(r['rps'] for r in reads):.0f}/s in total, the lowest replica {min(r['rps'] for r in reads):.0f}/s.",
              f"Simulated agent connections lost during the run: {len(result['lost'])}."]
    return "\n".join(lines) + "\n"


# --- part 3: target P4, the API on SQLite ---------------------------------------------------------------------

def api(run):
    """One control plane on its embedded SQLite; the member's API_SESSIONS sessions run on one simulated agent."""
    server = ControlPlane(run, "cp-sqlite")
    admin = Api(server.api, "admin", ADMIN_PASSWORD)
    set_up_org(admin)
    tokens = os.path.join(run.tmp, "tokens-api")
    register_agents(admin, 1, max_sessions=API_SESSIONS, path=tokens)
    Simulator(run, [server.api], tokens, run.endpoint(), API_SESSIONS).wait_ready(60)
    member = Api(server.api, "bench", MEMBER_PASSWORD)
    for _ in range(API_SESSIONS):
        member.call("POST", "/api/v1/sessions", {"template": TEMPLATE["name"]}, expect=(202,))
    running_sessions(member)
    log(f"wrk: GET /api/v1/sessions, the member's {API_SESSIONS} sessions running")
    result = load([server], Api(server.api, "bench", MEMBER_PASSWORD).token, None)
    server.check_alive()
    return result


def api_report(result, started, load_before, commit):
    row = result["rows"][0]
    met = row["rps"] >= 5000 and row["p99_us"] <= 20_000
    return "\n".join(header("the API on SQLite (target P4)", started, load_before, commit) + [
        f"- One `streamspace serve` (release build) on its embedded SQLite, `RUST_LOG={SERVER_RUST_LOG}`, request "
        "budgets that bind nobody; one simulated agent (`bench/agentsim`) runs the sessions.",
        f"- `wrk -t1 -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s` (a 2 s warm-up first) against `GET /api/v1/sessions` with "
        f"a member's bearer token; the member has {API_SESSIONS} running sessions, the whole org's, and the answer "
        "is the default page of them.",
        "- wrk, the simulator and the control plane share the machine's 2 cores. *CPU per request* is the control "
        "plane's utime+stime over the run divided by the requests it answered.",
        "",
        "| requests/s | p50 ms | p99 ms | non-2xx or errors | CPU µs per request | control plane's CPU, cores "
        "| machine busy |",
        "|---|---|---|---|---|---|---|",
        f"| {row['rps']:.0f} | {row['p50_us'] / 1000:.1f} | {row['p99_us'] / 1000:.1f} | {row['errors']} "
        f"| {row['cpu_us_per_req'] or 0:.0f} | {row['busy']:.2f} | {100 * result['machine_busy']:.0f}% |",
        "",
        "Target P4: at least 5,000 requests/s on 2 cores with SQLite, p99 at most 20 ms: "
        + ("met." if met else "**not met**."),
    ]) + "\n"


# --- the run -------------------------------------------------------------------------------------------------

def header(title, started, load_before, commit):
    return [
        f"# StreamSpace scale benchmark: {title} ({datetime.datetime.now().strftime('%Y-%m-%d %H:%M')})",
        "",
        f"- Commit at the start of the run: {commit}; binary {common.binary_describe()}.",
        f"- Machine: {os.cpu_count()} cores, Linux {os.uname().release}; load average {load_before} before, "
        f"{load_average()} after (the machine is shared: other people's builds and tests ran too); the run took "
        f"{(time.monotonic() - started) / 60:.1f} min.",
    ]


PARTS = {"agents": None, "replicas": (replicas, replicas_report), "api": (api, api_report)}


def main():
    part = sys.argv[1] if len(sys.argv) > 1 else ""
    if part not in PARTS:
        sys.exit("usage: scale.py " + "|".join(PARTS))
    for tool in (BIN, AGENTSIM):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: run bench/scale.sh, which builds it")
    out = os.environ.get("BENCH_OUT", os.path.join(RESULTS, f"{part}-latest.md"))
    started, load_before, commit = time.monotonic(), load_average(), common.git_describe()
    run = Run()

    common.interrupt_on_signals()
    try:
        if part == "agents":
            os.setpriority(os.PRIO_PROCESS, 0, int(NICE))  # the client's threads (a no-op with 0)
            endpoint = run.endpoint()
            results = [agents_on(run, store, endpoint) for store in STORES]
            text = agents_report(results, started, load_before, commit)
        else:
            measure, report = PARTS[part]
            results = measure(run)
            text = report(results, started, load_before, commit)
        common.write_results(out, text, results)
    except KeyboardInterrupt as err:
        log(f"interrupted ({err})")
        return 130
    finally:
        run.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
