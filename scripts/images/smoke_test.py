#!/usr/bin/env python3
"""Run built images and check them from outside, as the platform would.

    scripts/images/smoke_test.py [--out DIR] [IMAGE...]

Default: every image this repository defines (images/<name>/Dockerfile, tagged
streamspace/<name>:latest). Selkies images (their
entrypoint is streamspace-session) start in secure mode with a random master
token and are checked for: /api/health, POST /api/tokens (refused without the
master token), the client page with ?token=, frame ancestors and allowed
origins from the environment, the WebSocket handshake with a good token, a bad
token and a foreign Origin, a non-blank /api/screenshot, and a clean stop; browser images also that a
kept home's profile is taken over by the next container and left alone by a
second one running at the same time. The
fixture image gets its HTTP, streaming and WebSocket echo checks instead, and
the hostile test image (tests/e2e/hostile) the checks that it serves its
attack page and a service worker allowed the widest scope. The control plane's
image (streamspace/streamspace, built by `make image`) runs `serve` the way the
Helm chart's pod does: the chart's user, group and fsGroup, read-only root, no
capabilities, a tmpfs data directory with the keys mounted read-only into it,
the settings from environment variables. It must answer /healthz and /readyz,
serve the embedded UI, sign the admin in, register the chart's agent, log JSON
without secrets and stop cleanly: once with SQLite on the chart's ports, once
against a scratch database on the test PostgreSQL (STREAMSPACE_TEST_DATABASE_URL,
from scripts/dev/postgres-up.sh).

Times are measured from `docker run` to /api/health answering (health), to the
first non-blank screenshot (screen) and for `docker stop` (stop). Screenshots
are saved to --out. Only the standard library is used; the screenshot is
analysed by the image's own Pillow (a Selkies dependency).
"""

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

UI_ORIGIN = "http://ui.streamspace.test"
CHART_VALUES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "helm", "streamspace",
                            "values.yaml")

# The hardening the platform runs every session with (crates/proto/src/security.rs): images are tested under the
# same constraints, so an image that needs a capability, root or a writable root filesystem fails here first.
HARDENED = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--pids-limit", "2048",
            "--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,nodev,mode=1777"]


class Failure(Exception):
    pass


def docker(*args, check=True, **kwargs):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, **kwargs).stdout.strip()


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def wait_health(port, started, timeout=60, path="/api/health"):
    while time.monotonic() - started < timeout:
        try:
            if request(port, "GET", path)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise Failure(f"{path} did not answer within {timeout}s")


# --- a minimal RFC 6455 client --------------------------------------------------

class WebSocket:
    def __init__(self, port, path, origin=None, extra=""):
        """Send the handshake; `status` and `head` hold the response."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        if origin:
            head += f"Origin: {origin}\r\n"
        self.sock.sendall((head + extra + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            data += chunk
        response, _, self.pending = data.partition(b"\r\n\r\n")
        self.head = response.decode("latin-1")
        self.status = self.head.split("\r\n")[0]
        self.upgraded = " 101 " in self.status

    def send(self, opcode, payload, fin=True):
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += struct.pack("!BH", 0x80 | 126, n)
        else:
            head += struct.pack("!BQ", 0x80 | 127, n)
        mask = os.urandom(4)
        stream = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")
        self.sock.sendall(head + mask + (masked if n else b""))

    def _exact(self, n):
        while len(self.pending) < n:
            chunk = self.sock.recv(max(65536, n - len(self.pending)))
            if not chunk:
                raise Failure("connection closed mid-frame")
            self.pending += chunk
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def recv(self):
        """Next frame as (fin, opcode, payload)."""
        b0, b1 = self._exact(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._exact(8))
        return bool(b0 & 0x80), b0 & 0x0F, self._exact(n)

    def close(self):
        self.sock.close()


# --- checks ---------------------------------------------------------------------

class Checks:
    def __init__(self, image):
        self.image, self.passed, self.failed = image, 0, 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed += 1
            print(f"  FAIL  {what}")


def stop_and_check(container, times, c, what="stopped"):
    """`docker stop` (SIGTERM, then SIGKILL after 10 s): the image must exit 0 on SIGTERM, and soon."""
    stop_started = time.monotonic()
    docker("stop", container, check=False)
    times["stop"] = time.monotonic() - stop_started
    exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", container, check=False)
    c.check(exit_code == "0", f"{what} in {times['stop']:.2f}s with exit code {exit_code}")


def screenshot_is_blank(container, png):
    """Share of the most common colour, by the image's own Pillow."""
    code = ("import io, sys; from PIL import Image; im = Image.open(io.BytesIO(sys.stdin.buffer.read()))"
            ".convert('RGB').reduce(4); c = im.getcolors(1 << 24); print(max(c)[0] / sum(n for n, _ in c))")
    share = subprocess.run(["docker", "exec", "-i", container, "/opt/selkies/bin/python", "-c", code],
                           input=png, capture_output=True, check=True).stdout
    return float(share) > 0.99


def test_selkies(image, out_dir, c):
    name = image.split("/")[-1].split(":")[0]
    container = f"streamspace-smoke-{name}-{os.getpid()}"
    master = secrets.token_urlsafe(24)
    env = ["-e", f"SELKIES_MASTER_TOKEN={master}", "-e", f"SELKIES_ALLOWED_ORIGINS={UI_ORIGIN}",
           "-e", f"SELKIES_FRAME_ANCESTORS={UI_ORIGIN}"]
    if name == "base":
        # The base image has no application: paint a pattern for the screenshot.
        env += ["-e", "STREAMSPACE_APP=xsetroot -mod 16 16 -fg '#c33' -bg '#36c'; exec sleep infinity"]
    started = time.monotonic()
    docker("run", "-d", "--name", container, "-p", "127.0.0.1::8080", "--shm-size", "1g", *HARDENED, *env, image)
    times = {}
    try:
        port = int(docker("port", container, "8080/tcp").splitlines()[0].rsplit(":", 1)[1])
        times["health"] = wait_health(port, started)
        c.check(True, f"/api/health answered {times['health']:.2f}s after docker run")

        tokens = json.dumps({"ctl": {"role": "controller", "slot": 1}, "view": {"role": "viewer"}})
        status, _, _ = request(port, "POST", "/api/tokens", tokens, {"Content-Type": "application/json"})
        c.check(status == 401, f"POST /api/tokens without the master token refused ({status})")
        status, _, _ = request(port, "POST", "/api/tokens", tokens, {
            "Content-Type": "application/json", "Authorization": f"Bearer {master}"})
        c.check(status == 200, f"POST /api/tokens with the master token accepted ({status})")

        status, headers, body = request(port, "GET", "/?token=ctl")
        c.check(status == 200 and b"<html" in body.lower(), f"GET /?token=ctl serves the client ({status})")
        csp = headers.get("Content-Security-Policy", "")
        c.check(UI_ORIGIN in csp and "frame-ancestors" in csp, f"frame ancestors from env: {csp!r}")
        status, _, _ = request(port, "GET", "/api/screenshot?token=wrong")
        c.check(status == 401, f"screenshot with a wrong token refused ({status})")

        ws = WebSocket(port, "/api/websockets?token=ctl", origin=UI_ORIGIN)
        first = ws.recv()[2] if ws.upgraded else b""
        c.check(first.startswith(b"AUTH_SUCCESS"), f"WebSocket with token, allowed Origin: {ws.status}, {first[:40]!r}")
        ws.send(0x8, struct.pack("!H", 1000))
        ws.close()
        time.sleep(0.2)  # Selkies refuses a reconnect from one address within milliseconds
        ws = WebSocket(port, "/api/websockets?token=wrong", origin=UI_ORIGIN)
        frame = ws.recv() if ws.upgraded else (True, 0, b"")
        code = struct.unpack("!H", frame[2][:2])[0] if frame[1] == 0x8 and len(frame[2]) >= 2 else None
        c.check(code == 4001, f"WebSocket with a wrong token closed with {code}")
        ws.close()
        ws = WebSocket(port, "/api/websockets?token=ctl", origin="http://evil.test")
        c.check(" 403 " in ws.status, f"WebSocket from a foreign Origin refused: {ws.status}")
        ws.close()

        png, deadline = b"", time.monotonic() + 90
        while time.monotonic() < deadline:
            status, _, png = request(port, "GET", "/api/screenshot?token=ctl")
            if status == 200 and png.startswith(b"\x89PNG") and not screenshot_is_blank(container, png):
                times["screen"] = time.monotonic() - started
                break
            time.sleep(0.5)
        shot = os.path.join(out_dir, f"{name}.png")
        with open(shot, "wb") as fh:
            fh.write(png)
        c.check("screen" in times, f"non-blank screenshot {times.get('screen', 0):.1f}s after docker run: {shot}")
    except Failure as exc:
        c.check(False, str(exc))
    finally:
        stop_and_check(container, times, c)
        if c.failed:
            logs = subprocess.run(["docker", "logs", "--tail", "30", container], capture_output=True, text=True)
            print((logs.stdout + logs.stderr)[-3000:])
        docker("rm", "-f", "-v", container, check=False)
    return times


# Where each browser image keeps its profile's lock in the home: a symlink naming the container that holds it.
PROFILE_LOCKS = {
    "chromium": "/home/streamspace/.config/chromium/SingletonLock",
    "vscode": "/home/streamspace/.config/streamspace-vscode-window/SingletonLock",
    "firefox": "/home/streamspace/.mozilla/streamspace/lock",
}


def wait_for(what, probe, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise Failure(f"{what}: not within {timeout}s")


def test_profile_in_a_kept_home(image, name, c):
    """A persistent home (ADR 0032) carries the browser's profile into the next container: the browser must take
    it over from a container killed with it open (not refuse it as in use "on another computer"), and a second
    session on the same home at the same time must leave it alone."""
    lock, volume, containers = PROFILE_LOCKS[name], f"streamspace-smoke-home-{name}-{os.getpid()}", []

    def run(role):
        container = f"streamspace-smoke-{name}-{role}-{os.getpid()}"
        docker("run", "-d", "--name", container, "--shm-size", "1g", *HARDENED, "-v", f"{volume}:/home/streamspace",
               "-e", f"SELKIES_MASTER_TOKEN={secrets.token_urlsafe(24)}", image)
        containers.append(container)
        return container

    def lock_of(container):
        # The lock names the host's address and the browser's pid, and both may well repeat in the next
        # container (Docker hands the freed address out again, and a fresh container's pids are alike), so
        # the time the lock was made tells a new one from the stale one.
        made = docker("exec", container, "sh", "-c", f"readlink {lock} && stat -c %.9Y {lock}", check=False)
        return " made at ".join(made.split()) if len(made.split()) == 2 else ""

    def command_lines(container):
        return docker("exec", container, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '", check=False)

    try:
        first = run("first")
        stale = wait_for("the first container's browser locks its profile", lambda: lock_of(first))
        docker("kill", first)
        second = run("second")
        taken = wait_for("the next container's browser takes the profile over",
                         lambda: (target := lock_of(second)) != stale and target)
        c.check(True, f"kept home: the next container takes the profile over ({stale} -> {taken})")
        third = run("third")
        wait_for("a browser at the same time runs on a profile of its own in /tmp",
                 lambda: re.search(r"(--user-data-dir=|--profile )/tmp/", command_lines(third)))
        c.check(lock_of(second) == taken, "kept home: a second session at once leaves the profile in use alone")
    except Failure as exc:
        c.check(False, str(exc))
    finally:
        for container in containers:
            docker("rm", "-f", "-v", container, check=False)
        docker("volume", "rm", "-f", volume, check=False)


def test_fixture(image, c):
    container = f"streamspace-smoke-fixture-{os.getpid()}"
    started = time.monotonic()
    docker("run", "-d", "--name", container, "-p", "127.0.0.1::8080", *HARDENED, image)
    times = {}
    try:
        port = int(docker("port", container, "8080/tcp").splitlines()[0].rsplit(":", 1)[1])
        times["health"] = wait_health(port, started)
        c.check(True, f"/api/health answered {times['health']:.2f}s after docker run")
        c.check(docker("exec", container, "id", "-u") != "0", "runs as non-root")
        status, _, body = request(port, "GET", "/")
        c.check(status == 200 and b"<html" in body, "GET / serves HTML")
        status, _, body = request(port, "PUT", "/echo/a%2Fb?x=1", b"12345", {
            "Authorization": "Bearer t", "Cookie": "s=1", "X-Test": "v"})
        echo = json.loads(body)
        c.check(status == 200 and echo["method"] == "PUT" and echo["path"] == "/echo/a%2Fb"
                and echo["query"] == "x=1" and echo["body_len"] == 5
                and echo["headers"]["authorization"] == "Bearer t" and echo["headers"]["x-test"] == "v",
                "/echo reports method, raw path, query, headers and body length")
        status, headers, body = request(port, "GET", "/stream?bytes=3000000&chunk=65536")
        c.check(status == 200 and len(body) == 3000000, "/stream?bytes=3000000")
        status, headers, body = request(port, "GET", "/stream?bytes=100000&chunk=1000&chunked=1")
        c.check(len(body) == 100000 and headers.get("Transfer-Encoding") == "chunked", "/stream chunked")
        status, _, body = request(port, "POST", "/upload", b"x" * 2_000_000)
        c.check(json.loads(body)["bytes"] == 2_000_000, "/upload counts 2000000 bytes")

        status, _, body = request(port, "GET", "/requests")
        c.check(status == 200 and any(r["target"] == "/echo/a%2Fb?x=1" and r["method"] == "PUT"
                                      for r in json.loads(body)),
                "/requests lists the requests received")

        ws = WebSocket(port, "/ws", extra="Sec-WebSocket-Protocol: a, b\r\n")
        c.check(ws.upgraded and "Sec-WebSocket-Protocol: a" in ws.head, "WebSocket handshake, first subprotocol")
        ws.send(0x1, "grüße".encode())
        c.check(ws.recv() == (True, 0x1, "grüße".encode()), "text echo")
        big = os.urandom(200_000)
        ws.send(0x2, big)
        c.check(ws.recv() == (True, 0x2, big), "200 kB binary echo")
        ws.send(0x1, b"fr", fin=False)
        ws.send(0x9, b"p")
        ws.send(0x0, b"ag")
        c.check(ws.recv() == (True, 0xA, b"p") and ws.recv() == (True, 0x1, b"frag"),
                "ping between fragments, then the reassembled message")
        ws.send(0x8, struct.pack("!H", 1000))
        c.check(ws.recv() == (True, 0x8, struct.pack("!H", 1000)), "close handshake")
        ws.close()
    except Failure as exc:
        c.check(False, str(exc))
    finally:
        stop_and_check(container, times, c)
        docker("rm", "-f", "-v", container, check=False)
    return times


def test_hostile(image, c):
    container = f"streamspace-smoke-hostile-{os.getpid()}"
    started = time.monotonic()
    docker("run", "-d", "--name", container, "-p", "127.0.0.1::8080", image)
    times = {}
    try:
        port = int(docker("port", container, "8080/tcp").splitlines()[0].rsplit(":", 1)[1])
        times["health"] = wait_health(port, started)
        c.check(True, f"/api/health answered {times['health']:.2f}s after docker run")
        c.check(docker("exec", container, "id", "-u") != "0", "runs as non-root")
        status, _, body = request(port, "GET", "/")
        c.check(status == 200 and b'<script src="attack.js">' in body, "GET / serves the attack page")
        status, headers, body = request(port, "GET", "/attack.js")
        c.check(status == 200 and b"window.hostile" in body, "GET /attack.js")
        status, headers, body = request(port, "GET", "/sw.js")
        c.check(status == 200 and headers.get("Service-Worker-Allowed") == "/"
                and headers.get("Content-Type", "").startswith("text/javascript"),
                "GET /sw.js: JavaScript with Service-Worker-Allowed: /")
    except Failure as exc:
        c.check(False, str(exc))
    finally:
        stop_and_check(container, times, c)
        docker("rm", "-f", "-v", container, check=False)
    return times


def chart_settings():
    """The numbers the chart's default values give the control plane's pod (values.yaml, by its indentation:
    this script needs no YAML parser)."""
    with open(CHART_VALUES) as fh:
        text = fh.read()

    def block(name):
        return re.search(rf"^{name}:\n((?:(?:  .*)?\n)+?)(?=\S)", text, re.M).group(1)

    def number(section, key):
        return int(re.search(rf"^  {key}: (\d+)$", block(section), re.M).group(1))

    return {"user": number("podSecurityContext", "runAsUser"), "group": number("podSecurityContext", "runAsGroup"),
            "fs_group": number("podSecurityContext", "fsGroup"), "api_port": number("controlPlane", "apiPort"),
            "session_port": number("controlPlane", "sessionPort")}


def mounted_keys(directory, fs_group):
    """seal.key and session.key as the chart's Secret volume mounts them: 32 random bytes each, root's, readable
    by the fsGroup only (defaultMode 0440)."""
    mounts = []
    for name in ("seal.key", "session.key"):
        path = os.path.join(directory, name)
        with open(path, "wb") as fh:
            fh.write(os.urandom(32))
        os.chown(path, 0, fs_group)
        os.chmod(path, 0o440)
        mounts += ["-v", f"{path}:/data/{name}:ro"]
    return mounts


def check_image_config(image, chart, c):
    config = json.loads(docker("image", "inspect", "-f", "{{json .Config}}", image))
    c.check(config["User"] == f"{chart['user']}:{chart['group']}",
            f"image user {config['User']} is the chart's runAsUser:runAsGroup")
    c.check(config["Entrypoint"] == ["/usr/local/bin/streamspace"] and config["Cmd"] == ["serve"],
            f"entrypoint {config['Entrypoint']}, command {config['Cmd']}")
    exposed = sorted(config.get("ExposedPorts") or {})
    c.check(exposed == sorted(f"{chart[p]}/tcp" for p in ("api_port", "session_port")),
            f"exposes the chart's API and session ports: {exposed}")


def psql(url, sql):
    return subprocess.run(["psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-qAt", url, "-c", sql], check=True,
                          capture_output=True, text=True).stdout


@contextlib.contextmanager
def scratch_database():
    """A database of its own on the test PostgreSQL (scripts/dev/postgres-up.sh), dropped afterwards."""
    url = os.environ.get("STREAMSPACE_TEST_DATABASE_URL")
    if not url:
        raise Failure('STREAMSPACE_TEST_DATABASE_URL is not set: eval "$(scripts/dev/postgres-up.sh)"')
    name = f"streamspace_image_smoke_{os.getpid()}"
    psql(url, f'CREATE DATABASE "{name}"')
    try:
        yield urllib.parse.urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        psql(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bound_ports(container, started, timeout=60):
    """The API and session ports `serve` bound, from its `control plane listening` log line (port 0)."""
    while time.monotonic() - started < timeout:
        log = subprocess.run(["docker", "logs", container], capture_output=True, text=True).stderr
        for line in log.splitlines():
            fields = json.loads(line).get("fields", {}) if line.startswith("{") else {}
            if fields.get("message") == "control plane listening":
                return int(fields["api"].rsplit(":", 1)[1]), int(fields["sessions"].rsplit(":", 1)[1])
        if docker("inspect", "-f", "{{.State.Running}}", container) != "true":
            raise Failure("the container exited before it listened")
        time.sleep(0.05)
    raise Failure(f"no `control plane listening` log line within {timeout}s")


def test_control_plane(image, c):
    chart = chart_settings()
    check_image_config(image, chart, c)
    # As in a pod: the chart's ports, published from the container's own network; SQLite in the data directory
    # (the container cannot reach the host's test PostgreSQL on loopback).
    published = ["-p", f"127.0.0.1::{chart['api_port']}", "-p", f"127.0.0.1::{chart['session_port']}"]
    times = run_control_plane(image, chart, c, "sqlite", published, database_url=None)
    # The chart's database, PostgreSQL, on the host's network to reach it: ports 0, read from the log.
    try:
        with scratch_database() as url:
            run_control_plane(image, chart, c, "postgresql", ["--network", "host"], database_url=url)
            agents = psql(url, "SELECT name FROM agents").split()
            c.check(agents == ["kubernetes"], f"postgresql: the agent is stored in PostgreSQL: {agents}")
    except (Failure, subprocess.CalledProcessError) as exc:
        c.check(False, f"postgresql: {getattr(exc, 'stderr', None) or exc}")
    return times


def run_control_plane(image, chart, c, label, network, database_url):
    """`serve` as the chart's pod runs it; `network` publishes the chart's ports, or (host network) ports 0."""
    container = f"streamspace-smoke-control-plane-{label}-{os.getpid()}"
    secret = {name: secrets.token_urlsafe(32) for name in ("jwt", "audit", "admin", "agent")}
    listen = ("0.0.0.0", chart["api_port"], chart["session_port"]) if database_url is None else ("127.0.0.1", 0, 0)
    # The chart's environment (templates/control-plane-deployment.yaml).
    env = {
        "STREAMSPACE_LISTEN": f"{listen[0]}:{listen[1]}",
        "STREAMSPACE_SESSION_LISTEN": f"{listen[0]}:{listen[2]}",
        "STREAMSPACE_PUBLIC_URL": UI_ORIGIN,
        "STREAMSPACE_SESSION_DOMAIN": "sessions.streamspace.test",
        "STREAMSPACE_DATA_DIR": "/data",
        "STREAMSPACE_LOG_FORMAT": "json",
        "STREAMSPACE_JWT_SECRET": secret["jwt"],
        "STREAMSPACE_AUDIT_KEY": secret["audit"],
        "STREAMSPACE_ADMIN_PASSWORD": secret["admin"],
        "STREAMSPACE_KUBERNETES_AGENT_TOKEN": secret["agent"],
        "STREAMSPACE_KUBERNETES_AGENT_NAME": "kubernetes",
    }
    if database_url:
        env["STREAMSPACE_DATABASE_URL"] = database_url
    keys_dir = tempfile.mkdtemp(prefix="streamspace-smoke-keys-")
    # The pod's securityContext: its user and group, fsGroup as a supplementary group owning the emptyDir, so
    # the group alone lets the user write there (Docker gives a tmpfs the mode of the image's directory).
    pod = ["--user", f"{chart['user']}:{chart['group']}", "--group-add", str(chart["fs_group"]),
           "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--read-only",
           "--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777",
           "--tmpfs", f"/data:rw,nosuid,nodev,uid=0,gid={chart['fs_group']}"]
    started = time.monotonic()
    docker("run", "-d", "--name", container, *network, *pod, *mounted_keys(keys_dir, chart["fs_group"]),
           *[arg for name, value in env.items() for arg in ("-e", f"{name}={value}")], image)
    times = {}
    try:
        port, session_port = bound_ports(container, started) if database_url else published_ports(container, chart)
        times["health"] = wait_health(port, started, path="/healthz")
        c.check(True, f"{label}: /healthz answered {times['health']:.2f}s after docker run")
        check_serving(container, chart, c, label, port, session_port, secret)
    except Failure as exc:
        c.check(False, f"{label}: {exc}")
    finally:
        stop_and_check(container, times, c, f"{label}: SIGTERM as PID 1: stopped")
        # The log goes to stderr; stdout has only the console's greeting.
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
        lines = logs.stderr.splitlines()
        c.check(lines and all(line.startswith("{") for line in lines),
                f"{label}: {len(lines)} log lines on stderr, all JSON")
        leaked = [name for name, value in secret.items() if value in logs.stdout + logs.stderr]
        c.check(not leaked, f"{label}: no secret in the output (leaked: {leaked})")
        if c.failed:
            print((logs.stdout + "\n".join(lines[-30:]))[-3000:])
        docker("rm", "-f", "-v", container, check=False)
        for name in os.listdir(keys_dir):
            os.unlink(os.path.join(keys_dir, name))
        os.rmdir(keys_dir)
    return times


def published_ports(container, chart):
    def host_port(port):
        try:
            return int(docker("port", container, f"{port}/tcp").splitlines()[0].rsplit(":", 1)[1])
        except subprocess.CalledProcessError as exc:
            raise Failure(f"no port {port}: the container is not running ({exc.stderr.strip()})") from exc

    return host_port(chart["api_port"]), host_port(chart["session_port"])


def check_serving(container, chart, c, label, port, session_port, secret):
    status, _, body = request(port, "GET", "/readyz")
    c.check(status == 200 and json.loads(body)["status"] == "ok", f"{label}: /readyz: the store answers ({status})")
    c.check(docker("exec", container, "id", "-u") == str(chart["user"]), f"{label}: runs as the chart's non-root user")

    status, headers, body = request(port, "GET", "/")
    csp = headers.get("content-security-policy", "")
    c.check(status == 200 and b'<div id="root">' in body, f"{label}: GET / serves the embedded UI ({status})")
    c.check("http://*.sessions.streamspace.test" in csp, f"{label}: session domain from the environment in the CSP")
    script = re.search(rb'src="(/assets/[^"]+\.js)"', body)
    status, headers, _ = request(port, "GET", script.group(1).decode()) if script else (None, {}, b"")
    c.check(status == 200 and "immutable" in headers.get("cache-control", ""),
            f"{label}: the UI's script {script and script.group(1)!r} is served, cached for good ({status})")

    login = json.dumps({"username": "admin", "password": secret["admin"]})
    status, _, body = request(port, "POST", "/api/v1/auth/login", login, {"Content-Type": "application/json"})
    c.check(status == 200, f"{label}: admin signs in with STREAMSPACE_ADMIN_PASSWORD ({status})")
    token = json.loads(body).get("access_token", "") if status == 200 else ""
    status, _, body = request(port, "GET", "/api/v1/agents", headers={"Authorization": f"Bearer {token}"})
    names = [agent.get("name") for agent in json.loads(body).get("items", [])] if status == 200 else []
    c.check(names == ["kubernetes"], f"{label}: the chart's agent is registered from the environment: {names}")

    status, headers, _ = request(session_port, "GET", "/")
    c.check(headers.get("content-type", "").startswith("application/json") and status >= 400,
            f"{label}: the session proxy answers on its own port ({status}, a JSON error without a session host)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*")
    parser.add_argument("--out", default="/tmp/streamspace-smoke", help="where screenshots go")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    images_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "images")
    images = args.images or sorted(
        f"streamspace/{name}:latest" for name in os.listdir(images_dir)
        if os.path.isfile(os.path.join(images_dir, name, "Dockerfile")))
    results = []
    for image in images:
        print(f"{image}:")
        c = Checks(image)
        entrypoint = docker("image", "inspect", "-f", "{{json .Config.Entrypoint}}", image)
        if "streamspace-session" in entrypoint:
            times = test_selkies(image, args.out, c)
            name = image.split("/")[-1].split(":")[0]
            if name in PROFILE_LOCKS:
                test_profile_in_a_kept_home(image, name, c)
        elif "/srv/hostile/" in entrypoint:
            times = test_hostile(image, c)
        elif entrypoint == '["/usr/local/bin/streamspace"]':
            times = test_control_plane(image, c)
        else:
            times = test_fixture(image, c)
        results.append((image, times, c))
    print()
    print(f"{'image':30} {'health':>8} {'screen':>8} {'stop':>6}  checks")
    for image, times, c in results:
        cells = [f"{times[k]:7.2f}s" if k in times else "       -" for k in ("health", "screen")]
        print(f"{image:30} {cells[0]} {cells[1]} {times.get('stop', 0):5.1f}s  {c.passed} passed, {c.failed} failed")
    passed, failed = sum(c.passed for *_, c in results), sum(c.failed for *_, c in results)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
