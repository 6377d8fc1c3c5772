//! The hardening every session gets, stated once for every runtime: the Docker runtime turns these values into
//! a container's host config and firewall rules, a Kubernetes runtime into a pod `securityContext` and a
//! `NetworkPolicy`. Changing a value here changes it for all of them.

use std::net::IpAddr;

use ipnet::IpNet;

/// Linux capabilities a session keeps; every other one is dropped. None: the session images run Xvfb,
/// PulseAudio, the Selkies streamer and the application as an unprivileged user that never binds a port below
/// 1024, changes a file's owner or switches users, so they need no capability (checked by running every image
/// with all of them dropped: each still streams). A capability an image really needed would be listed here with
/// the reason.
pub const KEPT_CAPABILITIES: &[&str] = &[];

/// At most this many processes and threads in one session: a fork bomb stays inside its session. A Chromium
/// session with a page open runs about 130 threads, an XFCE desktop with a browser several hundred.
pub const PIDS_LIMIT: i64 = 2048;

/// The session's root filesystem is mounted read-only: nothing the user runs can change the image's programs.
pub const READ_ONLY_ROOT_FILESYSTEM: bool = true;

/// An in-memory filesystem the session may write to; its contents count against the session's memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tmpfs {
    pub path: &'static str,
    /// Mount options. `noexec`: nothing a session runs needs to execute files from scratch space (every image
    /// was checked to stream with it), and a downloaded binary cannot be run from there.
    pub options: &'static str,
}

/// Scratch space every session writes: the X11 socket and lock, the PulseAudio socket (`$XDG_RUNTIME_DIR` is
/// under `/tmp`), browser temporary files. Lost when the session hibernates, like a reboot's `/tmp`.
pub const TMPFS: &[Tmpfs] = &[Tmpfs { path: "/tmp", options: "rw,noexec,nosuid,nodev,mode=1777" }];

/// The user's home (browser profiles, desktop settings) survives hibernation, so it is not a tmpfs: images
/// declare it as a volume (`VOLUME /home/streamspace` in the base image) and the runtime gives each session its
/// own, removed with the session.
pub const HOME_IS_A_SESSION_VOLUME: bool = true;

/// Container log rotation: at most this many bytes per file and this many files, so a chatty application cannot
/// fill the host's disk through its logs.
pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const LOG_MAX_FILES: u32 = 3;

/// Why an image's user is not accepted for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    /// No `USER` at all: the image runs as root.
    Unset,
    /// `USER root` or uid 0.
    Root,
    /// A user name: whether it maps to uid 0 is only known inside the image, so it is not trusted (Kubernetes'
    /// `runAsNonRoot` refuses such images for the same reason).
    NotNumeric(String),
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserError::Unset => write!(f, "the image sets no USER, so it would run as root"),
            UserError::Root => write!(f, "the image's USER is root"),
            UserError::NotNumeric(user) => {
                write!(
                    f,
                    "the image's USER {user:?} is a name, not a numeric uid, so it cannot be checked to be non-root"
                )
            }
        }
    }
}

impl std::error::Error for UserError {}

/// Sessions run as the image's own user, which must be a numeric uid other than 0 (optionally `uid:gid`).
/// Returns the uid to enforce; images that would run as root are refused, never silently given another uid,
/// because their files would not be writable by it and they would fail in confusing ways.
pub fn session_user(image_user: &str) -> Result<u32, UserError> {
    let user = image_user.trim();
    if user.is_empty() {
        return Err(UserError::Unset);
    }
    let uid = user.split_once(':').map_or(user, |(uid, _)| uid);
    if uid == "root" {
        return Err(UserError::Root);
    }
    match uid.parse::<u32>() {
        Ok(0) => Err(UserError::Root),
        Ok(uid) => Ok(uid),
        Err(_) => Err(UserError::NotNumeric(user.to_string())),
    }
}

/// Destinations a session never reaches, unless a template or org policy allows a CIDR in them: the host's
/// loopback and unspecified addresses, link-local (cloud metadata at 169.254.169.254), the private and shared
/// ranges where control planes, other sessions and internal services live, and ranges that are not the
/// internet. The host itself and other sessions are refused whatever their address (see `EGRESS` in
/// `docs/security.md`); this list covers everything reached through routing.
pub const EGRESS_DENY: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    // Carrier-grade NAT, also cloud-internal services (Alibaba's metadata is 100.100.100.200).
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    // IPv4-mapped and NAT64 forms would reach the IPv4 ranges above through another door.
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// [`EGRESS_DENY`] parsed.
pub fn egress_deny() -> Vec<IpNet> {
    EGRESS_DENY.iter().map(|cidr| cidr.parse().expect("EGRESS_DENY holds valid CIDRs")).collect()
}

/// Why a CIDR cannot be put on an egress allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowError {
    /// Loopback, link-local and unspecified addresses are the host's own or the cloud's metadata service: no
    /// policy opens them.
    Forbidden(IpNet),
    /// `10.1.2.3/8`: host bits set, most likely a typo for a different network.
    HostBitsSet(IpNet),
}

impl std::fmt::Display for AllowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowError::Forbidden(net) => {
                write!(f, "{net} overlaps loopback, link-local or unspecified addresses, which a session never reaches")
            }
            AllowError::HostBitsSet(net) => write!(f, "{net} has host bits set; did you mean {}?", net.trunc()),
        }
    }
}

impl std::error::Error for AllowError {}

/// Checks one allow-list entry: a network in canonical form that does not overlap the ranges no policy may open.
pub fn check_allowed(net: IpNet) -> Result<IpNet, AllowError> {
    if net != net.trunc() {
        return Err(AllowError::HostBitsSet(net));
    }
    let forbidden = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "::/128", "::1/128", "::ffff:0:0/96", "fe80::/10"];
    let overlaps = forbidden
        .iter()
        .map(|cidr| cidr.parse::<IpNet>().expect("valid CIDR"))
        .any(|bad| bad.contains(&net.network()) || net.contains(&bad.network()));
    if overlaps { Err(AllowError::Forbidden(net)) } else { Ok(net) }
}

/// What the egress rules do with a new connection from a session to `destination`, ignoring the host and other
/// sessions (refused by interface, whatever their address): allowed CIDRs first, then the deny list.
pub fn egress_verdict(destination: IpAddr, allow: &[IpNet], deny: &[IpNet]) -> Verdict {
    if allow.iter().any(|net| net.contains(&destination)) {
        Verdict::Allow
    } else if deny.iter().any(|net| net.contains(&destination)) {
        Verdict::Deny
    } else {
        Verdict::Allow
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

/// Merges the template's and the org's allow-lists into the one a session gets: sorted, without duplicates.
pub fn merge_allow_lists(template: &[IpNet], org: &[IpNet]) -> Vec<IpNet> {
    let mut merged: Vec<IpNet> = template.iter().chain(org).copied().collect();
    merged.sort();
    merged.dedup();
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(cidr: &str) -> IpNet {
        cidr.parse().unwrap()
    }

    #[test]
    fn only_numeric_non_root_users_are_accepted() {
        assert_eq!(session_user("1000"), Ok(1000));
        assert_eq!(session_user("1000:1000"), Ok(1000));
        assert_eq!(session_user(" 65534 "), Ok(65534));
        assert_eq!(session_user(""), Err(UserError::Unset));
        assert_eq!(session_user("root"), Err(UserError::Root));
        assert_eq!(session_user("0"), Err(UserError::Root));
        assert_eq!(session_user("0:1000"), Err(UserError::Root));
        assert_eq!(session_user("root:root"), Err(UserError::Root));
        assert_eq!(session_user("streamspace"), Err(UserError::NotNumeric("streamspace".into())));
        assert!(UserError::Unset.to_string().contains("run as root"));
    }

    #[test]
    fn the_deny_list_covers_metadata_private_ranges_and_loopback() {
        let deny = egress_deny();
        for address in ["169.254.169.254", "10.1.2.3", "172.20.0.1", "192.168.1.1", "127.0.0.1", "100.100.100.200"] {
            assert_eq!(egress_verdict(address.parse().unwrap(), &[], &deny), Verdict::Deny, "{address}");
        }
        for address in ["fd00::2", "fe80::1", "::1", "::ffff:10.0.0.1", "64:ff9b::a00:1"] {
            assert_eq!(egress_verdict(address.parse().unwrap(), &[], &deny), Verdict::Deny, "{address}");
        }
        for address in ["93.184.215.14", "1.1.1.1", "2606:4700::1111"] {
            assert_eq!(egress_verdict(address.parse().unwrap(), &[], &deny), Verdict::Allow, "{address}");
        }
    }

    #[test]
    fn allowed_cidrs_win_over_the_deny_list() {
        let deny = egress_deny();
        let internal = "10.20.30.40".parse().unwrap();
        assert_eq!(egress_verdict(internal, &[], &deny), Verdict::Deny);
        assert_eq!(egress_verdict(internal, &[net("10.20.30.0/24")], &deny), Verdict::Allow);
        assert_eq!(egress_verdict("10.20.31.1".parse().unwrap(), &[net("10.20.30.0/24")], &deny), Verdict::Deny);
    }

    #[test]
    fn allow_lists_refuse_loopback_link_local_and_sloppy_cidrs() {
        assert_eq!(check_allowed(net("10.20.30.0/24")), Ok(net("10.20.30.0/24")));
        assert_eq!(check_allowed(net("203.0.113.0/24")), Ok(net("203.0.113.0/24")));
        assert_eq!(check_allowed(net("fd12:3456::/48")), Ok(net("fd12:3456::/48")));
        for bad in ["169.254.169.254/32", "127.0.0.1/32", "0.0.0.0/0", "::/0", "fe80::/64", "::1/128", "160.0.0.0/3"] {
            assert!(matches!(check_allowed(net(bad)), Err(AllowError::Forbidden(_))), "{bad}");
        }
        let error = check_allowed(net("10.1.2.3/8")).unwrap_err();
        assert_eq!(error.to_string(), "10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?");
    }

    #[test]
    fn merged_allow_lists_are_sorted_and_unique() {
        let merged = merge_allow_lists(&[net("10.0.0.0/8"), net("203.0.113.0/24")], &[net("10.0.0.0/8")]);
        assert_eq!(merged, [net("10.0.0.0/8"), net("203.0.113.0/24")]);
    }
}
