//! Egress rules for session networks, owned by the agent.
//!
//! Each session's bridge (`ss-<tag>`) gets two chains of its own in the `filter` table, for IPv4 and IPv6 alike:
//! - `SS-FWD-<tag>`, jumped to from `DOCKER-USER` (or `FORWARD` where Docker keeps no `DOCKER-USER`, as for IPv6
//!   by default) for traffic coming in on the bridge: replies pass, other sessions' bridges are refused, then the
//!   host's DNS resolvers (port 53 only), the allow-list, and the deny list of [`streamspace_proto::security::EGRESS_DENY`];
//!   everything else (the internet) returns to Docker's own rules.
//! - `SS-IN-<tag>`, jumped to from `INPUT`: a session reaches the host itself (the bridge gateway, the control
//!   plane's port, any host address) only with replies to connections the host opened, such as health checks.
//!
//! Refusals are `REJECT`s, so a blocked connection fails at once instead of hanging.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{Context, bail};
use async_trait::async_trait;
use ipnet::IpNet;
use tokio::process::Command;

use crate::container::BRIDGE_PREFIX;

const FORWARD_CHAIN_PREFIX: &str = "SS-FWD-";
const INPUT_CHAIN_PREFIX: &str = "SS-IN-";

/// Everything the rules of one session's network depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRules {
    /// The session's network tag ([`crate::container::network_tag`]); its bridge is `ss-<tag>`.
    pub tag: String,
    /// Networks the session may reach although the deny list covers them.
    pub allow: Vec<IpNet>,
    /// Networks the session must not reach: [`streamspace_proto::security::EGRESS_DENY`] and the operator's additions.
    pub deny: Vec<IpNet>,
    /// The resolvers Docker's embedded DNS forwards to from inside the session's network namespace.
    pub dns: Vec<IpAddr>,
}

/// Installs and removes the egress rules of session networks.
#[async_trait]
pub(crate) trait Firewall: Send + Sync {
    /// Installs the rules of one session, replacing any it already has.
    async fn install(&self, rules: &SessionRules) -> anyhow::Result<()>;
    /// Removes a session's rules; a session without rules is fine.
    async fn remove(&self, tag: &str) -> anyhow::Result<()>;
    /// The tags of every session that has rules installed.
    async fn installed(&self) -> anyhow::Result<BTreeSet<String>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    const ALL: [Family; 2] = [Family::V4, Family::V6];

    fn program(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    fn reject_with(self) -> &'static str {
        match self {
            Family::V4 => "icmp-admin-prohibited",
            Family::V6 => "icmp6-adm-prohibited",
        }
    }

    fn holds(self, address: IpAddr) -> bool {
        matches!((self, address), (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_)))
    }
}

fn forward_chain(tag: &str) -> String {
    format!("{FORWARD_CHAIN_PREFIX}{tag}")
}

fn input_chain(tag: &str) -> String {
    format!("{INPUT_CHAIN_PREFIX}{tag}")
}

fn bridge(tag: &str) -> String {
    format!("{BRIDGE_PREFIX}{tag}")
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| word.to_string()).collect()
}

fn reject(family: Family) -> Vec<String> {
    args(&["-j", "REJECT", "--reject-with", family.reject_with()])
}

fn replies() -> Vec<String> {
    args(&["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN"])
}

/// The rules of a session's forward chain, in order, each as the arguments after `-A <chain>`, written the
/// way `iptables -S` prints them so that installed rules can be recognised.
pub(crate) fn forward_rules(rules: &SessionRules, family: Family) -> Vec<Vec<String>> {
    let mut out = vec![replies(), [args(&["-o", &format!("{BRIDGE_PREFIX}+")]), reject(family)].concat()];
    for resolver in rules.dns.iter().filter(|address| family.holds(**address)) {
        let host = IpNet::from(*resolver).to_string();
        for protocol in ["udp", "tcp"] {
            out.push(args(&["-d", &host, "-p", protocol, "-m", protocol, "--dport", "53", "-j", "RETURN"]));
        }
    }
    let of_family = |net: &&IpNet| family.holds(net.addr());
    out.extend(rules.allow.iter().filter(of_family).map(|net| args(&["-d", &net.to_string(), "-j", "RETURN"])));
    out.extend(
        rules.deny.iter().filter(of_family).map(|net| [args(&["-d", &net.to_string()]), reject(family)].concat()),
    );
    out
}

/// The rules of a session's input chain: the host answers, it is never called.
pub(crate) fn input_rules(family: Family) -> Vec<Vec<String>> {
    vec![replies(), reject(family)]
}

/// One line of `iptables -S` output.
fn declares_chain(listing: &str, chain: &str) -> bool {
    listing.lines().any(|line| line.split_whitespace().eq(["-N", chain]))
}

/// The hooks the forward jump goes into: `FORWARD` itself, first, and Docker's `DOCKER-USER` where Docker
/// manages rules. `DOCKER-USER` alone is not enough: each time Docker creates or removes a network it deletes
/// the `FORWARD -j DOCKER-USER` jump and inserts it again, and in between a session's traffic met Docker's own
/// accept rules (measured: a quarter of the connections to a denied address got through while networks came
/// and went). `DOCKER-USER` keeps the rules ahead of Docker's should Docker insert its own first in `FORWARD`
/// (as it does for a network's rules when the daemon restarts).
fn forward_hooks(listing: &str) -> &'static [&'static str] {
    if declares_chain(listing, "DOCKER-USER") { &["FORWARD", "DOCKER-USER"] } else { &["FORWARD"] }
}

fn jumps(listing: &str, tag: &str) -> Vec<(&'static str, Vec<String>)> {
    let bridge = bridge(tag);
    let forward = args(&["-i", &bridge, "-j", &forward_chain(tag)]);
    let mut jumps: Vec<_> = forward_hooks(listing).iter().map(|hook| (*hook, forward.clone())).collect();
    jumps.push(("INPUT", args(&["-i", &bridge, "-j", &input_chain(tag)])));
    jumps
}

fn has_rule(listing: &str, chain: &str, rule: &[String]) -> bool {
    listing
        .lines()
        .any(|line| line.split_whitespace().eq(["-A", chain].into_iter().chain(rule.iter().map(String::as_str))))
}

/// The rules a listing holds in `chain`, in order, each as the arguments after `-A <chain>`.
fn rules_of(listing: &str, chain: &str) -> Vec<Vec<String>> {
    listing
        .lines()
        .filter_map(|line| line.strip_prefix("-A ")?.strip_prefix(chain)?.strip_prefix(' '))
        .map(|rule| rule.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The commands that install a session's rules given the table's current `iptables -S` listing: its chains are
/// created or emptied and filled, and the jumps into them added first in their hooks unless they are there.
pub(crate) fn install_commands(listing: &str, rules: &SessionRules, family: Family) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let chains =
        [(forward_chain(&rules.tag), forward_rules(rules, family)), (input_chain(&rules.tag), input_rules(family))];
    for (chain, chain_rules) in chains {
        let exists = declares_chain(listing, &chain);
        // Emptying a chain lets traffic through until it is filled again: a chain that already holds
        // exactly these rules (another agent on this engine reconciled it first) is left alone.
        if exists && rules_of(listing, &chain) == chain_rules {
            continue;
        }
        commands.push(args(&[if exists { "-F" } else { "-N" }, &chain]));
        commands.extend(chain_rules.into_iter().map(|rule| [args(&["-A", &chain]), rule].concat()));
    }
    for (hook, jump) in jumps(listing, &rules.tag) {
        if !has_rule(listing, hook, &jump) {
            commands.push([args(&["-I", hook, "1"]), jump].concat());
        }
    }
    commands
}

/// The commands that remove a session's rules given the table's current listing: every jump into its chains
/// (from any hook), then the chains.
pub(crate) fn remove_commands(listing: &str, tag: &str) -> Vec<Vec<String>> {
    let chains = [forward_chain(tag), input_chain(tag)];
    let mut commands: Vec<Vec<String>> = listing
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let jumps_to_ours = words.windows(2).any(|pair| pair[0] == "-j" && chains.iter().any(|c| c == pair[1]));
            (words.first() == Some(&"-A") && jumps_to_ours).then(|| [args(&["-D"]), args(&words[1..])].concat())
        })
        .collect();
    for chain in chains.iter().filter(|chain| declares_chain(listing, chain)) {
        commands.push(args(&["-F", chain]));
        commands.push(args(&["-X", chain]));
    }
    commands
}

/// The tags of the sessions whose chains a listing declares.
pub(crate) fn installed_tags(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter_map(|line| line.strip_prefix("-N "))
        .filter_map(|chain| {
            chain.trim().strip_prefix(FORWARD_CHAIN_PREFIX).or_else(|| chain.trim().strip_prefix(INPUT_CHAIN_PREFIX))
        })
        .map(str::to_string)
        .collect()
}

/// The resolvers in a `resolv.conf`. Loopback ones are left out: Docker does not forward a session's queries to
/// them.
pub(crate) fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|address| address.trim().parse::<IpAddr>().ok())
        .filter(|address| !address.is_loopback())
        .collect()
}

/// How often removing a session's rules starts over after a command failed because another agent
/// changed them meanwhile.
const REMOVE_RETRIES: u32 = 5;

/// [`Firewall`] on the host's `iptables` and `ip6tables` (either backend, nft or legacy). Needs root or
/// `CAP_NET_ADMIN`.
#[derive(Debug, Default)]
pub(crate) struct Iptables;

impl Iptables {
    /// Runs one command, waiting for the xtables lock Docker also takes; returns its output.
    async fn run(&self, family: Family, command: &[String]) -> anyhow::Result<String> {
        let output = Command::new(family.program())
            .arg("-w")
            .args(command)
            .output()
            .await
            .with_context(|| format!("cannot run {} (is it installed?)", family.program()))?;
        if !output.status.success() {
            bail!(
                "{} {} failed: {} (the agent needs root or CAP_NET_ADMIN to manage session egress rules)",
                family.program(),
                command.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    async fn listing(&self, family: Family) -> anyhow::Result<String> {
        self.run(family, &args(&["-S"])).await
    }

    async fn run_all(&self, family: Family, commands: Vec<Vec<String>>) -> anyhow::Result<()> {
        for command in commands {
            self.run(family, &command).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Firewall for Iptables {
    async fn install(&self, rules: &SessionRules) -> anyhow::Result<()> {
        for family in Family::ALL {
            let listing = self.listing(family).await?;
            self.run_all(family, install_commands(&listing, rules, family)).await?;
        }
        Ok(())
    }

    async fn remove(&self, tag: &str) -> anyhow::Result<()> {
        for family in Family::ALL {
            let mut retries = 0;
            loop {
                let commands = remove_commands(&self.listing(family).await?, tag);
                if commands.is_empty() {
                    break;
                }
                match self.run_all(family, commands).await {
                    Ok(()) => break,
                    // Another agent on this host may be removing the same rules (its start-up reconcile
                    // sees a session whose container is already gone): list again, remove what is left.
                    Err(_) if retries < REMOVE_RETRIES => {
                        retries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }

    async fn installed(&self) -> anyhow::Result<BTreeSet<String>> {
        let mut tags = BTreeSet::new();
        for family in Family::ALL {
            tags.extend(installed_tags(&self.listing(family).await?));
        }
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use streamspace_proto::security::{Verdict, egress_deny, egress_verdict};

    use super::*;

    fn rules() -> SessionRules {
        SessionRules {
            tag: "b302099a8057".into(),
            allow: vec!["203.0.113.0/24".parse().unwrap(), "10.9.0.0/16".parse().unwrap()],
            deny: egress_deny(),
            dns: vec!["10.255.255.53".parse().unwrap()],
        }
    }

    const DOCKER_LISTING: &str = "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N DOCKER\n-N DOCKER-USER\n\
                                  -A FORWARD -j DOCKER-USER\n-A DOCKER-USER -j RETURN\n";

    fn line(words: &[String]) -> String {
        words.join(" ")
    }

    #[test]
    fn forward_rules_pass_replies_then_refuse_sessions_then_allow_dns_and_the_allow_list_before_denying() {
        let forward: Vec<String> = forward_rules(&rules(), Family::V4).iter().map(|rule| line(rule)).collect();
        assert_eq!(forward[0], "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN");
        assert_eq!(forward[1], "-o ss-+ -j REJECT --reject-with icmp-admin-prohibited");
        assert_eq!(forward[2], "-d 10.255.255.53/32 -p udp -m udp --dport 53 -j RETURN");
        assert_eq!(forward[3], "-d 10.255.255.53/32 -p tcp -m tcp --dport 53 -j RETURN");
        assert_eq!(forward[4], "-d 203.0.113.0/24 -j RETURN");
        assert_eq!(forward[5], "-d 10.9.0.0/16 -j RETURN");
        assert!(forward.contains(&"-d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited".to_string()));
        assert!(forward[6..].iter().all(|rule| rule.ends_with("-j REJECT --reject-with icmp-admin-prohibited")));
        assert!(!forward.iter().any(|rule| rule.contains("fc00::/7")), "IPv6 networks stay out of iptables");

        let forward6: Vec<String> = forward_rules(&rules(), Family::V6).iter().map(|rule| line(rule)).collect();
        assert!(forward6.contains(&"-d fc00::/7 -j REJECT --reject-with icmp6-adm-prohibited".to_string()));
        assert!(!forward6.iter().any(|rule| rule.contains("10.") || rule.contains("--dport 53")), "{forward6:?}");
    }

    /// The first matching rule decides, as in the kernel: `RETURN` lets Docker accept, `REJECT` refuses. The
    /// first two rules (replies, other sessions) and the DNS rules do not depend on the destination address.
    fn verdict_of_rules(destination: IpAddr, rules: &SessionRules) -> Verdict {
        let family = if destination.is_ipv4() { Family::V4 } else { Family::V6 };
        for rule in forward_rules(rules, family).iter().skip(2).filter(|rule| !rule.contains(&"--dport".to_string())) {
            let net: IpNet = rule[1].parse().unwrap();
            if net.contains(&destination) {
                return if rule[3] == "RETURN" { Verdict::Allow } else { Verdict::Deny };
            }
        }
        Verdict::Allow
    }

    #[test]
    fn the_installed_rules_decide_like_the_policy() {
        let with_allow = rules();
        let without_allow = SessionRules { allow: vec![], ..rules() };
        let cases = ["203.0.113.7", "10.9.1.1", "10.8.1.1", "169.254.169.254", "192.168.1.1", "8.8.8.8", "fd00::2"];
        for destination in cases {
            let address: IpAddr = destination.parse().unwrap();
            for rules in [&with_allow, &without_allow] {
                let policy = egress_verdict(address, &rules.allow, &rules.deny);
                assert_eq!(verdict_of_rules(address, rules), policy, "{destination} with {:?}", rules.allow);
            }
        }
        let documentation_net: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(verdict_of_rules(documentation_net, &with_allow), Verdict::Allow);
        assert_eq!(verdict_of_rules("10.9.1.1".parse().unwrap(), &without_allow), Verdict::Deny);
    }

    #[test]
    fn installing_creates_chains_and_jumps_first_in_forward_docker_user_and_input() {
        let commands: Vec<String> =
            install_commands(DOCKER_LISTING, &rules(), Family::V4).iter().map(|c| line(c)).collect();
        assert_eq!(commands[0], "-N SS-FWD-b302099a8057");
        assert_eq!(commands[1], "-A SS-FWD-b302099a8057 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN");
        assert!(commands.contains(&"-N SS-IN-b302099a8057".to_string()));
        assert!(commands.contains(&"-A SS-IN-b302099a8057 -j REJECT --reject-with icmp-admin-prohibited".to_string()));
        let tail = &commands[commands.len() - 3..];
        assert_eq!(
            tail,
            [
                "-I FORWARD 1 -i ss-b302099a8057 -j SS-FWD-b302099a8057",
                "-I DOCKER-USER 1 -i ss-b302099a8057 -j SS-FWD-b302099a8057",
                "-I INPUT 1 -i ss-b302099a8057 -j SS-IN-b302099a8057"
            ]
        );
    }

    #[test]
    fn installing_again_empties_the_chains_and_keeps_the_jumps() {
        let listing = format!(
            "{DOCKER_LISTING}-N SS-FWD-b302099a8057\n-N SS-IN-b302099a8057\n\
             -A INPUT -i ss-b302099a8057 -j SS-IN-b302099a8057\n\
             -A FORWARD -i ss-b302099a8057 -j SS-FWD-b302099a8057\n\
             -A DOCKER-USER -i ss-b302099a8057 -j SS-FWD-b302099a8057\n"
        );
        let commands: Vec<String> = install_commands(&listing, &rules(), Family::V4).iter().map(|c| line(c)).collect();
        assert_eq!(commands[0], "-F SS-FWD-b302099a8057");
        assert!(commands.contains(&"-F SS-IN-b302099a8057".to_string()));
        assert!(!commands.iter().any(|c| c.starts_with("-N") || c.starts_with("-I")), "{commands:?}");
    }

    #[test]
    fn installing_rules_that_are_already_in_place_changes_nothing() {
        let installed = install_commands(DOCKER_LISTING, &rules(), Family::V4);
        let listing: String = std::iter::once(DOCKER_LISTING.to_string())
            .chain(installed.iter().map(|command| match command[0].as_str() {
                "-I" => format!("-A {} {}\n", command[1], line(&command[3..])),
                _ => format!("{}\n", line(command)),
            }))
            .collect();
        assert_eq!(install_commands(&listing, &rules(), Family::V4), Vec::<Vec<String>>::new());
        let mut wider = rules();
        wider.allow.push("198.51.100.0/24".parse().unwrap());
        let changed: Vec<String> = install_commands(&listing, &wider, Family::V4).iter().map(|c| line(c)).collect();
        assert_eq!(changed[0], "-F SS-FWD-b302099a8057", "another policy refills the forward chain");
        assert!(!changed.iter().any(|c| c.contains("SS-IN-")), "the input chain is unchanged: {changed:?}");
    }

    #[test]
    fn without_docker_user_the_forward_jump_goes_into_forward() {
        let listing = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n";
        let commands: Vec<String> = install_commands(listing, &rules(), Family::V6).iter().map(|c| line(c)).collect();
        assert!(commands.contains(&"-I FORWARD 1 -i ss-b302099a8057 -j SS-FWD-b302099a8057".to_string()));
    }

    #[test]
    fn removing_deletes_every_jump_then_the_chains_and_touches_nothing_else() {
        let listing = format!(
            "{DOCKER_LISTING}-N SS-FWD-b302099a8057\n-N SS-IN-b302099a8057\n-N SS-FWD-aaaaaaaaaaaa\n\
             -A INPUT -i ss-b302099a8057 -j SS-IN-b302099a8057\n\
             -A DOCKER-USER -i ss-b302099a8057 -j SS-FWD-b302099a8057\n\
             -A DOCKER-USER -i ss-aaaaaaaaaaaa -j SS-FWD-aaaaaaaaaaaa\n"
        );
        let commands: Vec<String> = remove_commands(&listing, "b302099a8057").iter().map(|c| line(c)).collect();
        assert_eq!(
            commands,
            [
                "-D INPUT -i ss-b302099a8057 -j SS-IN-b302099a8057",
                "-D DOCKER-USER -i ss-b302099a8057 -j SS-FWD-b302099a8057",
                "-F SS-FWD-b302099a8057",
                "-X SS-FWD-b302099a8057",
                "-F SS-IN-b302099a8057",
                "-X SS-IN-b302099a8057",
            ]
        );
        assert_eq!(remove_commands(DOCKER_LISTING, "b302099a8057"), Vec::<Vec<String>>::new());
        assert_eq!(installed_tags(&listing), BTreeSet::from(["aaaaaaaaaaaa".to_string(), "b302099a8057".to_string()]));
    }

    #[test]
    fn nameservers_skip_loopback_and_junk() {
        let conf = "# generated\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver fd00::53\nnameserver x\nsearch lan\n";
        assert_eq!(nameservers(conf), ["10.255.255.53".parse::<IpAddr>().unwrap(), "fd00::53".parse().unwrap()]);
    }
}
