//! Placing a session on an agent: pure logic over a snapshot of the agents.

use std::collections::BTreeMap;

use streamspace_proto::hub::{Capacity, Platform};
use uuid::Uuid;

/// What the scheduler knows of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: Uuid,
    pub platform: Platform,
    pub online: bool,
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    /// Sessions placed on it that are not terminal, and what they reserve.
    pub sessions: i64,
    pub cpu_millis: i64,
    pub memory_mb: i64,
}

/// What a session asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirements {
    pub platform: Option<Platform>,
    /// Every one of these labels must match the agent's.
    pub labels: BTreeMap<String, String>,
    pub cpu_millis: i64,
    pub memory_mb: i64,
}

impl Candidate {
    fn fits(&self, req: &Requirements) -> bool {
        let capacity = self.capacity;
        // A zero capacity field means the agent did not state that limit.
        let within = |limit: i64, used: i64, wanted: i64| limit <= 0 || used + wanted <= limit;
        self.online
            && req.platform.is_none_or(|p| p == self.platform)
            && req.labels.iter().all(|(k, v)| self.labels.get(k) == Some(v))
            && within(capacity.max_sessions, self.sessions, 1)
            && within(capacity.cpu_millis, self.cpu_millis, req.cpu_millis)
            && within(capacity.memory_mb, self.memory_mb, req.memory_mb)
    }

    /// Share of the agent in use, in thousandths of its tightest stated limit.
    fn load(&self) -> i64 {
        let share = |used: i64, limit: i64| if limit > 0 { used * 1000 / limit } else { 0 };
        share(self.sessions, self.capacity.max_sessions)
            .max(share(self.cpu_millis, self.capacity.cpu_millis))
            .max(share(self.memory_mb, self.capacity.memory_mb))
    }
}

/// Why no agent could take a session, in words for the person who asked.
pub fn no_fit_reason(candidates: &[Candidate], req: &Requirements) -> String {
    if !candidates.iter().any(|c| c.online) {
        return "no agent is online".to_owned();
    }
    let matching = |c: &&Candidate| {
        c.online
            && req.platform.is_none_or(|p| p == c.platform)
            && req.labels.iter().all(|(k, v)| c.labels.get(k) == Some(v))
    };
    if !candidates.iter().any(|c| matching(&c)) {
        return "no online agent matches the template's platform and labels".to_owned();
    }
    "every matching agent is at capacity".to_owned()
}

/// The least loaded agent that fits, ties broken by fewer sessions then by id (so the choice is
/// stable), or the reason none does.
pub fn choose(candidates: &[Candidate], req: &Requirements) -> Result<Uuid, String> {
    candidates
        .iter()
        .filter(|c| c.fits(req))
        .min_by_key(|c| (c.load(), c.sessions, c.id))
        .map(|c| c.id)
        .ok_or_else(|| no_fit_reason(candidates, req))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(n: u128, sessions: i64) -> Candidate {
        Candidate {
            id: Uuid::from_u128(n),
            platform: Platform::Docker,
            online: true,
            labels: BTreeMap::new(),
            capacity: Capacity { max_sessions: 10, cpu_millis: 8000, memory_mb: 16_384 },
            sessions,
            cpu_millis: sessions * 1000,
            memory_mb: sessions * 1024,
        }
    }

    fn req() -> Requirements {
        Requirements { cpu_millis: 1000, memory_mb: 1024, ..Requirements::default() }
    }

    #[test]
    fn the_least_loaded_fitting_agent_wins() {
        let agents = [agent(1, 5), agent(2, 2), agent(3, 7)];
        assert_eq!(choose(&agents, &req()), Ok(Uuid::from_u128(2)));
    }

    #[test]
    fn ties_are_broken_stably() {
        let agents = [agent(9, 1), agent(4, 1)];
        assert_eq!(choose(&agents, &req()), Ok(Uuid::from_u128(4)));
    }

    #[test]
    fn offline_full_and_mismatched_agents_are_skipped_with_a_reason() {
        let mut offline = agent(1, 0);
        offline.online = false;
        assert_eq!(choose(&[offline.clone()], &req()), Err("no agent is online".into()));

        let full = agent(2, 10);
        assert_eq!(choose(&[offline.clone(), full.clone()], &req()), Err("every matching agent is at capacity".into()));

        let mut cpu_bound = agent(3, 0);
        cpu_bound.cpu_millis = 7500;
        assert!(choose(&[cpu_bound], &req()).is_err());

        let wants_gpu = Requirements { labels: [("gpu".into(), "yes".into())].into(), ..req() };
        assert_eq!(
            choose(&[agent(4, 0)], &wants_gpu),
            Err("no online agent matches the template's platform and labels".into())
        );
        let mut gpu = agent(5, 3);
        gpu.labels.insert("gpu".into(), "yes".into());
        assert_eq!(choose(&[agent(4, 0), gpu], &wants_gpu), Ok(Uuid::from_u128(5)));

        let k8s = Requirements { platform: Some(Platform::Kubernetes), ..req() };
        assert!(choose(&[agent(6, 0)], &k8s).is_err());
    }

    #[test]
    fn unstated_limits_do_not_bind() {
        let mut open = agent(1, 50);
        open.capacity = Capacity::default();
        assert_eq!(choose(&[open], &req()), Ok(Uuid::from_u128(1)));
    }
}
