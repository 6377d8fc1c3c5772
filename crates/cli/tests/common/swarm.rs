//! A Docker Swarm of one manager for the tests, on a Docker engine of its own: the machine's engine runs the
//! sessions of every test, and turning it into a Swarm would change it for all of them.
//!
//! The engine keeps to itself: its own data, exec root and socket in a temporary directory, and a network
//! namespace of its own (`unshare --net`), so its interfaces and rules never meet the machine's. In the machine's
//! namespace it took `docker0` away from the engine every other test uses, even with `--bridge=none`. The bridge
//! Swarm wants (`docker_gwbridge`) is made first with a Linux name and subnet of its own, so two such engines never
//! meet either. Only its Unix socket is shared, which is all the tests talk to.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateSwarm {
    daemon: Child,
    /// `unix:///...`: the manager's Docker API, for `--ha-swarm-host`.
    pub host: String,
    _dir: tempfile::TempDir,
}

impl PrivateSwarm {
    pub fn start() -> PrivateSwarm {
        // Under /tmp: a Unix socket's path must stay short.
        let dir = tempfile::Builder::new().prefix("ss-swarm").tempdir_in("/tmp").unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let host = format!("unix://{}", path("docker.sock"));
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let daemon = Command::new("unshare")
            .args(["--net", "--", "sh", "-c", "ip link set lo up && exec dockerd \"$@\"", "dockerd"])
            .args(["--data-root", &path("data"), "--exec-root", &path("exec"), "--pidfile", &path("dockerd.pid")])
            .args(["-H", &host, "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("these tests need unshare (util-linux) and dockerd: run scripts/images/docker-up.sh");
        let swarm = PrivateSwarm { daemon, host, _dir: dir };
        swarm.wait_until_it_answers();
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let subnet = format!("10.215.{}.0/28", rand_octet(tag));
        swarm.docker(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            &subnet,
            "--opt",
            &format!("com.docker.network.bridge.name=ssgw{tag}"),
            "--opt",
            "com.docker.network.bridge.enable_ip_masquerade=false",
            "docker_gwbridge",
        ]);
        swarm.docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            "127.0.0.1",
            "--listen-addr",
            &format!("127.0.0.1:{}", free_port()),
        ]);
        swarm
    }

    fn wait_until_it_answers(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.try_docker(&["version"]).0 {
            assert!(Instant::now() < deadline, "the private dockerd did not answer within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_docker(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new("docker").args(["-H", &self.host]).args(args).output().unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    }

    /// Runs the Docker CLI against this engine, failing the test if it fails.
    pub fn docker(&self, args: &[&str]) {
        let (ok, stderr) = self.try_docker(args);
        assert!(ok, "docker {args:?} on the private engine: {stderr}");
    }
}

impl Drop for PrivateSwarm {
    fn drop(&mut self) {
        // Leaving removes the Swarm's networks, so the bridge made for it can go before the engine does.
        let _ = self.try_docker(&["swarm", "leave", "--force"]);
        let _ = self.try_docker(&["network", "rm", "docker_gwbridge"]);
        let _ = Command::new("kill").args(["-TERM", &self.daemon.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// An octet chosen by `tag` (random), so concurrent private engines' bridges take different subnets.
fn rand_octet(tag: &str) -> u8 {
    u8::from_str_radix(&tag[..2], 16).unwrap_or(0)
}

/// A port free a moment ago, for the Swarm's listener (which cannot take port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
