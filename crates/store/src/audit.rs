//! The audit hash chain. Each event's hash covers its content and the previous event's hash,
//! so altering, inserting or deleting a row breaks every link after it.

use sha2::{Digest, Sha256};

use crate::model::{AuditEvent, NewAuditEvent};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hash of an event in chain position `seq` following `prev_hash`.
///
/// The input is a canonical JSON array (fixed field order, RFC 3339 time with microseconds, the
/// details value re-serialised with sorted keys), so every backend and every replica computes
/// the same hash for the same content.
pub fn event_hash(seq: i64, id: uuid::Uuid, event: &NewAuditEvent, prev_hash: &str) -> String {
    let canonical = serde_json::json!([
        seq,
        id,
        event.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        event.actor_id,
        event.actor_name,
        event.org_id,
        event.action,
        event.target,
        event.result,
        event.client_ip,
        event.user_agent,
        event.trace_id,
        event.details,
        prev_hash,
    ]);
    let mut hasher = Sha256::new();
    hasher.update(canonical.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

/// The first place where a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub id: uuid::Uuid,
    pub reason: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit event #{} ({}): {}", self.seq, self.id, self.reason)
    }
}

/// Incremental verifier: feed events in sequence order, starting from the first.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier { expected_seq: 1, prev_hash: GENESIS_HASH.to_owned() }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, event: &AuditEvent) -> Result<(), BrokenLink> {
        let broken = |reason: String| BrokenLink { seq: event.seq, id: event.id, reason };
        if event.seq != self.expected_seq {
            return Err(broken(format!(
                "expected sequence number {}, found {} (an event is missing)",
                self.expected_seq, event.seq
            )));
        }
        if event.prev_hash != self.prev_hash {
            return Err(broken("its previous-hash does not match the event before it".to_owned()));
        }
        let content = NewAuditEvent {
            time: event.time,
            actor_id: event.actor_id,
            actor_name: event.actor_name.clone(),
            org_id: event.org_id,
            action: event.action.clone(),
            target: event.target.clone(),
            result: event.result.clone(),
            client_ip: event.client_ip.clone(),
            user_agent: event.user_agent.clone(),
            trace_id: event.trace_id.clone(),
            details: event.details.clone(),
        };
        if event_hash(event.seq, event.id, &content, &event.prev_hash) != event.hash {
            return Err(broken("its content does not match its hash (the row was altered)".to_owned()));
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&event.hash);
        Ok(())
    }

    /// How many events have been verified.
    pub fn verified(&self) -> i64 {
        self.expected_seq - 1
    }
}

/// Walks the whole chain in the store, a page at a time: the number of events verified, or the
/// first broken link.
pub async fn verify_store(store: &dyn crate::Store) -> crate::Result<Result<i64, BrokenLink>> {
    const PAGE: u32 = 1000;
    let mut verifier = ChainVerifier::default();
    loop {
        let events = store.audit_chain(verifier.verified(), PAGE).await?;
        for event in &events {
            if let Err(broken) = verifier.check(event) {
                return Ok(Err(broken));
            }
        }
        if events.len() < PAGE as usize {
            return Ok(Ok(verifier.verified()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let new = NewAuditEvent {
                    time: Utc.timestamp_opt(1_700_000_000 + seq, 123_456_000).unwrap(),
                    actor_id: None,
                    actor_name: "admin".into(),
                    org_id: None,
                    action: "user.create".into(),
                    target: format!("user:{seq}"),
                    result: "success".into(),
                    client_ip: Some("127.0.0.1".into()),
                    user_agent: None,
                    trace_id: None,
                    details: serde_json::json!({"b": 1, "a": [seq]}),
                };
                let id = uuid::Uuid::now_v7();
                let hash = event_hash(seq, id, &new, &prev);
                let event = AuditEvent {
                    seq,
                    id,
                    time: new.time,
                    actor_id: new.actor_id,
                    actor_name: new.actor_name,
                    org_id: new.org_id,
                    action: new.action,
                    target: new.target,
                    result: new.result,
                    client_ip: new.client_ip,
                    user_agent: new.user_agent,
                    trace_id: new.trace_id,
                    details: new.details,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                event
            })
            .collect()
    }

    fn verify(events: &[AuditEvent]) -> Result<i64, BrokenLink> {
        let mut verifier = ChainVerifier::default();
        for event in events {
            verifier.check(event)?;
        }
        Ok(verifier.verified())
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn an_altered_field_names_the_event() {
        let mut events = chain(5);
        events[2].target = "user:999".into();
        let broken = verify(&events).unwrap_err();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("altered"), "{}", broken.reason);
    }

    #[test]
    fn a_deleted_event_is_found() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(verify(&events).unwrap_err().seq, 3);
    }

    #[test]
    fn a_rehashed_event_breaks_the_next_link() {
        let mut events = chain(4);
        events[1].result = "failure".into();
        let content = NewAuditEvent {
            time: events[1].time,
            actor_id: None,
            actor_name: events[1].actor_name.clone(),
            org_id: None,
            action: events[1].action.clone(),
            target: events[1].target.clone(),
            result: events[1].result.clone(),
            client_ip: events[1].client_ip.clone(),
            user_agent: None,
            trace_id: None,
            details: events[1].details.clone(),
        };
        events[1].hash = event_hash(2, events[1].id, &content, &events[1].prev_hash);
        let broken = verify(&events).unwrap_err();
        assert_eq!(broken.seq, 3);
    }
}
