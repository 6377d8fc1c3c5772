//! The audit chain. Each event's link covers its content and the previous event's link, so
//! altering, inserting or deleting a row breaks every link after it.
//!
//! Links are HMAC-SHA256 under an [`AuditKey`] kept outside the database, and the chain head
//! (the newest event's position and link) carries a seal of its own, so that someone holding the
//! database alone can neither rewrite the chain nor cut its tail off unnoticed (ADR 0014). Events
//! written before keyed links keep their SHA-256 links (ADR 0004); the seal records where keyed
//! links start.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::StoreError;
use crate::model::{AuditEvent, NewAuditEvent};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The secret that keys the chain. It lives outside the database (a file in the data directory,
/// or a setting shared by the replicas) and is never printed: `Debug` shows a placeholder.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl AuditKey {
    pub fn new(secret: impl Into<Vec<u8>>) -> AuditKey {
        AuditKey(secret.into())
    }

    /// The key a setting (`STREAMSPACE_AUDIT_KEY`) gives: a secret of at least 32 bytes.
    pub fn from_setting(secret: &str) -> Result<AuditKey, String> {
        if secret.len() < 32 {
            return Err("the audit key must be at least 32 bytes long".to_owned());
        }
        Ok(AuditKey::new(secret.as_bytes()))
    }

    fn mac(&self, message: &serde_json::Value) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(message.to_string().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Tells replicas apart that were given different keys, revealing nothing of the key.
    pub fn fingerprint(&self) -> String {
        self.mac(&json!(["streamspace key fingerprint"]))
    }

    /// Tells which key sealed a chain without revealing anything of the key, so that a wrong key
    /// is reported as such rather than as every link broken.
    fn check_value(&self) -> String {
        self.mac(&json!(["streamspace audit key check"]))
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

/// The input of an event's link: a canonical JSON array (fixed field order, RFC 3339 time with
/// microseconds, the details value re-serialised with sorted keys), so every backend and every
/// replica computes the same link for the same content. Head seals and the key check are arrays
/// that begin with a string, never with a number, so no MAC of one kind can pass for another.
fn canonical(seq: i64, id: uuid::Uuid, event: &NewAuditEvent, prev_hash: &str) -> serde_json::Value {
    json!([
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
    ])
}

/// The SHA-256 link of an event written before keyed links.
pub fn event_hash(seq: i64, id: uuid::Uuid, event: &NewAuditEvent, prev_hash: &str) -> String {
    hex::encode(Sha256::digest(canonical(seq, id, event, prev_hash).to_string().as_bytes()))
}

/// The keyed link of an event in chain position `seq` following `prev_hash`.
pub fn event_mac(key: &AuditKey, seq: i64, id: uuid::Uuid, event: &NewAuditEvent, prev_hash: &str) -> String {
    key.mac(&canonical(seq, id, event, prev_hash))
}

/// Compares MACs without an early exit: an appender that answers faster for a closer forgery
/// would let someone who can write the head and time requests forge its seal byte by byte.
fn same_mac(stored: &str, computed: &str) -> bool {
    stored.len() == computed.len() && stored.bytes().zip(computed.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn head_mac(key: &AuditKey, seq: i64, hash: &str, keyed_from: i64) -> String {
    key.mac(&json!(["head", seq, hash, keyed_from]))
}

/// The end of the chain, stored beside the events and moved with every append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The newest event's position (0 while the chain is empty) and link.
    pub seq: i64,
    pub hash: String,
    /// `None` for a chain no control plane has keyed yet.
    pub seal: Option<HeadSeal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadSeal {
    /// The first position linked by HMAC; the ones before it are SHA-256 links.
    pub keyed_from: i64,
    /// Which key sealed the chain (an HMAC of a constant).
    pub key_check: String,
    /// HMAC of the head's position, link and `keyed_from`: nobody without the key can move the
    /// head back to an earlier event, or claim that keyed links start later.
    pub mac: String,
}

const KEY_MISMATCH: &str = "the audit key is not the one the audit chain was keyed with \
     (check STREAMSPACE_AUDIT_KEY, or the data directory's audit.key)";

const SEAL_BROKEN: &str = "the audit chain head was altered outside the control plane (its seal does not match): \
     run `streamspace admin audit verify`";

const NOT_SEALED: &str = "the audit chain holds events but its head carries no seal: a chain written before keyed \
     links must be adopted once with `streamspace admin audit verify --adopt` (ADR 0014); if this \
     installation has run with keyed links before, the seal was stripped and the chain was tampered with";

impl ChainHead {
    fn sealed(key: &AuditKey, seq: i64, hash: String, keyed_from: i64) -> ChainHead {
        let mac = head_mac(key, seq, &hash, keyed_from);
        ChainHead { seq, hash, seal: Some(HeadSeal { keyed_from, key_check: key.check_value(), mac }) }
    }

    /// Whether `key` sealed this head and the head is the one it sealed.
    fn check_seal(&self, key: &AuditKey, seal: &HeadSeal) -> Result<(), StoreError> {
        if !same_mac(&seal.key_check, &key.check_value()) {
            return Err(StoreError::Invalid(KEY_MISMATCH.to_owned()));
        }
        if !same_mac(&seal.mac, &head_mac(key, self.seq, &self.hash, seal.keyed_from)) {
            return Err(StoreError::Invalid(SEAL_BROKEN.to_owned()));
        }
        Ok(())
    }

    /// This head, sealed with `key`. A sealed head must hold under `key`. An unsealed one is
    /// sealed when the chain is empty (a new installation) or when `adopt_unkeyed` says an
    /// operator vouched for the SHA-256 chain it ends: the database alone can always be made to
    /// look unsealed, so sealing a non-empty chain unasked would launder a rewritten one.
    pub fn sealed_with(self, key: &AuditKey, adopt_unkeyed: bool) -> Result<ChainHead, StoreError> {
        match &self.seal {
            Some(seal) => self.check_seal(key, seal).map(|()| self),
            None if self.seq == 0 || adopt_unkeyed => {
                let keyed_from = self.seq + 1;
                Ok(ChainHead::sealed(key, self.seq, self.hash, keyed_from))
            }
            None => Err(StoreError::Invalid(NOT_SEALED.to_owned())),
        }
    }

    /// Links `event` as the next one with `key`: the event (its time truncated to what the
    /// database keeps *before* linking, so it verifies when read back) and the head after it.
    pub(crate) fn extend(
        self,
        key: &AuditKey,
        mut event: NewAuditEvent,
    ) -> Result<(AuditEvent, ChainHead), StoreError> {
        let head = self.sealed_with(key, false)?;
        let keyed_from = head.seal.as_ref().map_or(1, |seal| seal.keyed_from);
        let seq = head.seq + 1;
        event.time = crate::sql::micros(event.time);
        let id = uuid::Uuid::now_v7();
        let hash = event_mac(key, seq, id, &event, &head.hash);
        let sealed = record(seq, id, event, head.hash, hash.clone());
        Ok((sealed, ChainHead::sealed(key, seq, hash, keyed_from)))
    }
}

/// The first place where an event's link does not hold.
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

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainFault {
    /// An event's content, link or position does not hold.
    Link(BrokenLink),
    /// The key given is not the one that sealed the chain: nothing can be checked with it.
    WrongKey,
    /// The head carries no seal (a chain never keyed, or a seal stripped).
    Unsealed { seq: i64 },
    /// The head's seal does not match it: it was moved or edited without the key.
    SealBroken { seq: i64 },
    /// The events stop before the position the head records: the newest ones were deleted.
    Truncated { after: i64, head: i64 },
    /// The newest event is not the one the head records.
    HeadMismatch { seq: i64 },
    /// An event lies after the head: it was inserted outside the control plane.
    BeyondHead { seq: i64, head: i64 },
    /// The chain no longer holds the head an operator recorded earlier: the whole database was
    /// rolled back to an earlier state, or replaced.
    RolledBack { seq: i64 },
    /// A retention checkpoint does not hold: altered, forged, or out of place.
    Checkpoint { from_seq: i64, to_seq: i64, reason: String },
}

impl std::fmt::Display for ChainFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainFault::Link(broken) => broken.fmt(f),
            ChainFault::WrongKey => f.write_str(KEY_MISMATCH),
            ChainFault::Unsealed { seq } => write!(
                f,
                "the chain head (#{seq}) carries no seal: either a chain written before keyed links that was never \
                 adopted (`--adopt`, once, after upgrading), or its seal was stripped to hide a rewrite"
            ),
            ChainFault::SealBroken { seq } => write!(
                f,
                "the chain head (#{seq}) does not match its seal: it was altered outside the control plane \
                 (newest events deleted, or the head moved)"
            ),
            ChainFault::Truncated { after, head } => write!(
                f,
                "the chain was truncated after #{after}: the head records #{head}, events #{} to #{head} are missing",
                after + 1
            ),
            ChainFault::HeadMismatch { seq } => {
                write!(f, "audit event #{seq} is not the newest event the chain head records (it was replaced)")
            }
            ChainFault::BeyondHead { seq, head } => write!(
                f,
                "audit event #{seq} lies beyond the chain head (#{head}): it was inserted outside the control plane"
            ),
            ChainFault::Checkpoint { from_seq, to_seq, reason } => {
                write!(f, "the retention checkpoint for events #{from_seq} to #{to_seq}: {reason}")
            }
            ChainFault::RolledBack { seq } => write!(
                f,
                "the chain no longer holds event #{seq} as recorded: the database was rolled back to an earlier \
                 state, or replaced"
            ),
        }
    }
}

impl From<BrokenLink> for ChainFault {
    fn from(broken: BrokenLink) -> ChainFault {
        ChainFault::Link(broken)
    }
}

/// Incremental verifier: feed events in sequence order, starting from the first, then
/// [`finish`](ChainVerifier::finish) against the head.
#[derive(Debug, Clone)]
pub struct ChainVerifier<'k> {
    key: &'k AuditKey,
    /// Positions from here on are linked by HMAC.
    keyed_from: i64,
    expected_seq: i64,
    prev_hash: String,
}

impl<'k> ChainVerifier<'k> {
    /// A verifier for the chain `head` ends. An unsealed head is walked as SHA-256 links
    /// throughout (and reported by `finish`); a head sealed with another key fails at once.
    pub fn new(key: &'k AuditKey, head: &ChainHead) -> Result<ChainVerifier<'k>, ChainFault> {
        let keyed_from = match &head.seal {
            Some(seal) if !same_mac(&seal.key_check, &key.check_value()) => return Err(ChainFault::WrongKey),
            Some(seal) => seal.keyed_from,
            None => i64::MAX,
        };
        Ok(ChainVerifier { key, keyed_from, expected_seq: 1, prev_hash: GENESIS_HASH.to_owned() })
    }

    pub fn check(&mut self, event: &AuditEvent) -> Result<(), BrokenLink> {
        let broken = |reason: &str| BrokenLink { seq: event.seq, id: event.id, reason: reason.to_owned() };
        if event.seq != self.expected_seq {
            return Err(broken(&format!(
                "expected sequence number {}, found {} (an event is missing)",
                self.expected_seq, event.seq
            )));
        }
        if event.prev_hash != self.prev_hash {
            return Err(broken("its previous-hash does not match the event before it"));
        }
        own_link_holds(self.key, self.keyed_from, event).map_err(broken)?;
        self.expected_seq += 1;
        self.prev_hash.clone_from(&event.hash);
        Ok(())
    }

    /// Crosses events removed by retention: `checkpoint` must carry the key's MAC, start at the
    /// next position and follow the last event verified.
    pub fn bridge(&mut self, checkpoint: &Checkpoint) -> Result<(), ChainFault> {
        let fault = |reason: &str| ChainFault::Checkpoint {
            from_seq: checkpoint.from_seq,
            to_seq: checkpoint.to_seq,
            reason: reason.to_owned(),
        };
        if !same_mac(&checkpoint.mac, &checkpoint.expected_mac(self.key)) {
            return Err(fault("it does not match its MAC (it was altered, or forged without the audit key)"));
        }
        if checkpoint.from_seq != self.expected_seq || checkpoint.to_seq < checkpoint.from_seq {
            return Err(fault(&format!("it does not start at the next position (#{})", self.expected_seq)));
        }
        if checkpoint.prev_hash != self.prev_hash {
            return Err(fault("its previous-hash does not match the event before it"));
        }
        self.expected_seq = checkpoint.to_seq + 1;
        self.prev_hash.clone_from(&checkpoint.hash);
        Ok(())
    }

    /// How many events have been verified.
    pub fn verified(&self) -> i64 {
        self.expected_seq - 1
    }

    /// Checks that the events verified so far end where the head says, and that the head is
    /// the one the key sealed: answers the number of events verified.
    pub fn finish(self, head: &ChainHead) -> Result<i64, ChainFault> {
        let Some(seal) = &head.seal else {
            return Err(ChainFault::Unsealed { seq: head.seq });
        };
        if !same_mac(&seal.mac, &head_mac(self.key, head.seq, &head.hash, seal.keyed_from)) {
            return Err(ChainFault::SealBroken { seq: head.seq });
        }
        if self.verified() < head.seq {
            return Err(ChainFault::Truncated { after: self.verified(), head: head.seq });
        }
        if self.prev_hash != head.hash {
            return Err(ChainFault::HeadMismatch { seq: self.verified() });
        }
        Ok(self.verified())
    }
}

/// Whether an event's link covers its own content: HMAC from `keyed_from` on, SHA-256 before.
fn own_link_holds(key: &AuditKey, keyed_from: i64, event: &AuditEvent) -> Result<(), &'static str> {
    if event.seq >= keyed_from {
        if !same_mac(&event.hash, &event_mac(key, event.seq, event.id, &content(event), &event.prev_hash)) {
            return Err("its content does not match its MAC (the row was altered, or rewritten without the audit key)");
        }
    } else if event_hash(event.seq, event.id, &content(event), &event.prev_hash) != event.hash {
        return Err("its content does not match its hash (the row was altered)");
    }
    Ok(())
}

/// What stands in the chain for a run of consecutive events that retention removed (ADR 0029):
/// the run's positions, the link before its first event and its last event's link, sealed with
/// the audit key, so the chain still verifies across the cut and nobody without the key can
/// forge one to hide a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub from_seq: i64,
    pub to_seq: i64,
    pub prev_hash: String,
    pub hash: String,
    /// The organization whose retention removed the run.
    pub org_id: Option<uuid::Uuid>,
    pub created_at: crate::Timestamp,
    pub mac: String,
}

impl Checkpoint {
    /// The checkpoint for `run` (consecutive positions, oldest first), once every event in it has
    /// been checked against its own link: a checkpoint must never vouch for an altered row.
    pub fn for_run(
        key: &AuditKey,
        keyed_from: i64,
        run: &[AuditEvent],
        org_id: Option<uuid::Uuid>,
        created_at: crate::Timestamp,
    ) -> Result<Checkpoint, BrokenLink> {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return Err(BrokenLink { seq: 0, id: uuid::Uuid::nil(), reason: "an empty run".to_owned() });
        };
        let mut prev_hash = &first.prev_hash;
        for (offset, event) in run.iter().enumerate() {
            let broken = |reason: &str| BrokenLink { seq: event.seq, id: event.id, reason: reason.to_owned() };
            if event.seq != first.seq + offset as i64 || &event.prev_hash != prev_hash {
                return Err(broken("it does not follow the event before it"));
            }
            own_link_holds(key, keyed_from, event).map_err(broken)?;
            prev_hash = &event.hash;
        }
        let mut checkpoint = Checkpoint {
            from_seq: first.seq,
            to_seq: last.seq,
            prev_hash: first.prev_hash.clone(),
            hash: last.hash.clone(),
            org_id,
            created_at: crate::sql::micros(created_at),
            mac: String::new(),
        };
        checkpoint.mac = checkpoint.expected_mac(key);
        Ok(checkpoint)
    }

    fn expected_mac(&self, key: &AuditKey) -> String {
        key.mac(&json!([
            "checkpoint",
            self.from_seq,
            self.to_seq,
            self.prev_hash,
            self.hash,
            self.org_id,
            self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ]))
    }
}

/// Splits events (oldest first) into runs of consecutive positions.
pub fn consecutive_runs(events: &[AuditEvent]) -> Vec<&[AuditEvent]> {
    events.chunk_by(|a, b| b.seq == a.seq + 1).collect()
}

/// The stored form of `event` at position `seq`.
fn record(seq: i64, id: uuid::Uuid, event: NewAuditEvent, prev_hash: String, hash: String) -> AuditEvent {
    AuditEvent {
        seq,
        id,
        time: event.time,
        actor_id: event.actor_id,
        actor_name: event.actor_name,
        org_id: event.org_id,
        action: event.action,
        target: event.target,
        result: event.result,
        client_ip: event.client_ip,
        user_agent: event.user_agent,
        trace_id: event.trace_id,
        details: event.details,
        prev_hash,
        hash,
    }
}

/// What an event says, without its place in the chain.
pub fn content(event: &AuditEvent) -> NewAuditEvent {
    NewAuditEvent {
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
    }
}

/// A chain that verified: how many events, and the head, which an operator records elsewhere to
/// detect a later rollback of the whole database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub events: i64,
    pub head: ChainHead,
}

/// A chain head recorded outside the database from an earlier run of `verify`, as it prints it:
/// `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedHead {
    pub seq: i64,
    pub hash: String,
}

impl RecordedHead {
    pub fn parse(text: &str) -> Result<RecordedHead, String> {
        let (seq, hash) = text.trim().split_once(':').ok_or("a recorded head reads SEQ:HASH")?;
        let seq = seq.trim_start_matches('#').parse().map_err(|_| format!("{seq:?} is not a sequence number"))?;
        let hash = hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the hash of a recorded head is 64 hexadecimal digits".to_owned());
        }
        Ok(RecordedHead { seq, hash })
    }
}

impl std::fmt::Display for RecordedHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl From<&ChainHead> for RecordedHead {
    fn from(head: &ChainHead) -> RecordedHead {
        RecordedHead { seq: head.seq, hash: head.hash.clone() }
    }
}

/// Walks the whole chain in the store, a page at a time, up to the head read first (events
/// appended meanwhile are left for the next run), and checks that it still holds `recorded`, a
/// head kept from an earlier run: what verified, or the first fault.
pub async fn verify_store(
    store: &dyn crate::Store,
    key: &AuditKey,
    recorded: Option<&RecordedHead>,
) -> crate::Result<Result<Verified, ChainFault>> {
    const PAGE: i64 = 1000;
    let head = store.audit_head().await?;
    let mut verifier = match ChainVerifier::new(key, &head) {
        Ok(verifier) => verifier,
        Err(fault) => return Ok(Err(fault)),
    };
    while verifier.verified() < head.seq {
        let limit = u32::try_from((head.seq - verifier.verified()).min(PAGE)).unwrap_or(u32::MAX);
        let events = store.audit_chain(verifier.verified(), limit).await?;
        let checkpoints = store.audit_checkpoints(verifier.verified(), limit).await?;
        if events.is_empty() && checkpoints.is_empty() {
            break;
        }
        if let Err(fault) = walk_page(&mut verifier, &events, &checkpoints, limit as usize) {
            return Ok(Err(fault));
        }
    }
    let events = match verifier.finish(&head) {
        Ok(events) => events,
        Err(fault) => return Ok(Err(fault)),
    };
    if let Some(fault) = event_beyond_head(store, &head).await? {
        return Ok(Err(fault));
    }
    if let Some(recorded) = recorded
        && !holds(store, &head, recorded).await?
    {
        return Ok(Err(ChainFault::RolledBack { seq: recorded.seq }));
    }
    Ok(Ok(Verified { events, head }))
}

/// Feeds one page of events and one of checkpoints to `verifier` in chain order, up to where
/// both pages are known to be complete: a full page may stop short of an item of the other kind.
fn walk_page(
    verifier: &mut ChainVerifier<'_>,
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
    page: usize,
) -> Result<(), ChainFault> {
    let horizon = |full: bool, last: Option<i64>| if full { last.unwrap_or(i64::MAX) } else { i64::MAX };
    let until = horizon(events.len() == page, events.last().map(|e| e.seq))
        .min(horizon(checkpoints.len() == page, checkpoints.last().map(|c| c.from_seq)));
    let mut checkpoints = checkpoints.iter().filter(|c| c.from_seq <= until).peekable();
    for event in events.iter().filter(|e| e.seq <= until) {
        while let Some(checkpoint) = checkpoints.next_if(|c| c.from_seq < event.seq) {
            verifier.bridge(checkpoint)?;
        }
        verifier.check(event)?;
    }
    checkpoints.try_for_each(|checkpoint| verifier.bridge(checkpoint))
}

/// Whether the chain, verified up to `head`, has `recorded` as one of its heads: its links then
/// vouch for every event up to there being the ones recorded.
async fn holds(store: &dyn crate::Store, head: &ChainHead, recorded: &RecordedHead) -> crate::Result<bool> {
    if recorded.seq == 0 {
        return Ok(recorded.hash == GENESIS_HASH);
    }
    if recorded.seq > head.seq {
        return Ok(false);
    }
    let event = store.audit_chain(recorded.seq - 1, 1).await?.pop();
    Ok(event.is_some_and(|event| event.seq == recorded.seq && event.hash == recorded.hash))
}

/// Seals a chain written before keyed links, once its SHA-256 links have verified all the way
/// to its head (an operator's `verify --adopt` after upgrading): answers whether it did. Any other
/// chain is left as it is, for [`verify_store`] to report on.
pub async fn adopt_unkeyed(store: &dyn crate::Store, key: &AuditKey) -> crate::Result<bool> {
    match verify_store(store, key, None).await? {
        Err(ChainFault::Unsealed { .. }) => {
            store.seal_audit_head(key, true).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// An event after `head` that the head, read again now, still does not cover. (An append moves
/// the head in the same transaction as it writes the event, so a concurrent one is covered.)
async fn event_beyond_head(store: &dyn crate::Store, head: &ChainHead) -> crate::Result<Option<ChainFault>> {
    let Some(next) = store.audit_chain(head.seq, 1).await?.pop() else {
        return Ok(None);
    };
    let now = store.audit_head().await?;
    Ok((now.seq < next.seq).then_some(ChainFault::BeyondHead { seq: next.seq, head: now.seq }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn key() -> AuditKey {
        AuditKey::new(*b"0123456789abcdef0123456789abcdef")
    }

    fn new_event(seq: i64) -> NewAuditEvent {
        NewAuditEvent {
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
        }
    }

    fn empty_head() -> ChainHead {
        ChainHead { seq: 0, hash: GENESIS_HASH.to_owned(), seal: None }
    }

    /// `legacy` events with SHA-256 links as ADR 0004 wrote them, unsealed.
    fn legacy_chain(legacy: i64) -> (Vec<AuditEvent>, ChainHead) {
        let mut head = empty_head();
        let events = (1..=legacy)
            .map(|seq| {
                let new = new_event(seq);
                let id = uuid::Uuid::now_v7();
                let hash = event_hash(seq, id, &new, &head.hash);
                let event = record(seq, id, new, head.hash.clone(), hash.clone());
                head = ChainHead { seq, hash, seal: None };
                event
            })
            .collect();
        (events, head)
    }

    /// Appends `keyed` events to `chain` the way the store does.
    fn append(
        key: &AuditKey,
        (mut events, mut head): (Vec<AuditEvent>, ChainHead),
        keyed: i64,
    ) -> (Vec<AuditEvent>, ChainHead) {
        for _ in 0..keyed {
            let (event, next) = head.extend(key, new_event(events.len() as i64 + 1)).unwrap();
            events.push(event);
            head = next;
        }
        (events, head)
    }

    fn chain(n: i64) -> (Vec<AuditEvent>, ChainHead) {
        append(&key(), (Vec::new(), empty_head()), n)
    }

    fn verify(key: &AuditKey, events: &[AuditEvent], head: &ChainHead) -> Result<i64, ChainFault> {
        let mut verifier = ChainVerifier::new(key, head)?;
        for event in events {
            verifier.check(event)?;
        }
        verifier.finish(head)
    }

    fn link_fault(result: Result<i64, ChainFault>) -> BrokenLink {
        match result {
            Err(ChainFault::Link(broken)) => broken,
            other => panic!("expected a broken link, got {other:?}"),
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (events, head) = chain(5);
        assert_eq!(verify(&key(), &events, &head), Ok(5));
        assert_eq!(head.seal.as_ref().unwrap().keyed_from, 1);
    }

    #[test]
    fn an_altered_field_names_the_event() {
        let (mut events, head) = chain(5);
        events[2].target = "user:999".into();
        let broken = link_fault(verify(&key(), &events, &head));
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("altered"), "{}", broken.reason);
    }

    #[test]
    fn a_deleted_event_is_found() {
        let (mut events, head) = chain(5);
        events.remove(1);
        assert_eq!(link_fault(verify(&key(), &events, &head)).seq, 3);
    }

    #[test]
    fn deleting_the_newest_events_is_a_truncation() {
        let (mut events, head) = chain(5);
        events.truncate(3);
        assert_eq!(verify(&key(), &events, &head), Err(ChainFault::Truncated { after: 3, head: 5 }));
        assert!(ChainFault::Truncated { after: 3, head: 5 }.to_string().contains("truncated after #3"));
    }

    #[test]
    fn moving_the_head_back_without_the_key_breaks_its_seal() {
        let (mut events, mut head) = chain(5);
        events.truncate(3);
        head.seq = 3;
        head.hash = events[2].hash.clone();
        assert_eq!(verify(&key(), &events, &head), Err(ChainFault::SealBroken { seq: 3 }));
        assert!(head.clone().extend(&key(), new_event(4)).is_err(), "appends refuse to build on it");
    }

    #[test]
    fn stripping_the_seal_is_reported_and_not_laundered() {
        let (events, mut head) = chain(3);
        head.seal = None;
        // Without a seal every link is taken for SHA-256, which keyed links are not.
        assert_eq!(link_fault(verify(&key(), &events, &head)).seq, 1);
        assert_eq!(verify(&key(), &[], &head), Err(ChainFault::Unsealed { seq: 3 }));
        assert!(head.clone().extend(&key(), new_event(4)).is_err(), "appends refuse an unsealed non-empty chain");
        assert!(head.sealed_with(&key(), false).is_err());
    }

    #[test]
    fn a_chain_rewritten_with_sha256_fails_at_the_first_rewritten_event() {
        let (mut events, head) = chain(4);
        events[1].result = "failure".into();
        for i in 1..events.len() {
            events[i].prev_hash = events[i - 1].hash.clone();
            events[i].hash = event_hash(events[i].seq, events[i].id, &content(&events[i]), &events[i].prev_hash);
        }
        assert_eq!(link_fault(verify(&key(), &events, &head)).seq, 2);
    }

    #[test]
    fn a_chain_rewritten_with_another_key_fails() {
        let (events, genuine_head) = chain(4);
        let attacker = AuditKey::new(*b"attacker-key-attacker-key-attack");
        let (forged_events, forged_head) = append(&attacker, (Vec::new(), empty_head()), 4);
        assert_eq!(verify(&key(), &forged_events, &forged_head), Err(ChainFault::WrongKey));
        // Keeping the genuine key check beside forged links does not help either.
        let mut head = forged_head.clone();
        head.seal.as_mut().unwrap().key_check = key().check_value();
        assert_eq!(link_fault(verify(&key(), &forged_events, &head)).seq, 1);
        // And the genuine chain does not verify under the attacker's key.
        assert_eq!(verify(&attacker, &events, &genuine_head), Err(ChainFault::WrongKey));
    }

    #[test]
    fn the_wrong_key_is_named_as_such() {
        let (events, head) = chain(2);
        let other = AuditKey::new(*b"another-key-another-key-another!");
        assert_eq!(verify(&other, &events, &head), Err(ChainFault::WrongKey));
        assert!(ChainFault::WrongKey.to_string().contains("audit key is not the one"));
        assert!(matches!(head.extend(&other, new_event(3)), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn an_adopted_legacy_chain_keeps_its_sha256_links_and_keys_the_rest() {
        let (events, head) = legacy_chain(3);
        assert_eq!(verify(&key(), &events, &head), Err(ChainFault::Unsealed { seq: 3 }), "old links verify, no seal");
        let adopted = head.sealed_with(&key(), true).unwrap();
        assert_eq!(adopted.seal.as_ref().unwrap().keyed_from, 4);
        let (events, head) = append(&key(), (events, adopted), 2);
        assert_eq!(verify(&key(), &events, &head), Ok(5));
        assert_ne!(events[3].hash, event_hash(4, events[3].id, &content(&events[3]), &events[3].prev_hash));
    }

    #[test]
    fn rewriting_the_newest_unkeyed_event_no_longer_matches_the_head() {
        let (events, head) = legacy_chain(3);
        let adopted = head.sealed_with(&key(), true).unwrap();
        let mut events = events;
        events[2].target = "user:mallory".into();
        events[2].hash = event_hash(3, events[2].id, &content(&events[2]), &events[2].prev_hash);
        assert_eq!(verify(&key(), &events, &adopted), Err(ChainFault::HeadMismatch { seq: 3 }));
    }

    #[test]
    fn claiming_keyed_links_start_later_breaks_the_seal() {
        let (events, head) = legacy_chain(2);
        let (mut events, mut head) = append(&key(), (events, head.sealed_with(&key(), true).unwrap()), 2);
        // Rewrite the keyed events 3 and 4 as SHA-256 links and claim keyed links start at 5.
        events[2].target = "user:mallory".into();
        for i in 2..4 {
            events[i].prev_hash = events[i - 1].hash.clone();
            events[i].hash = event_hash(events[i].seq, events[i].id, &content(&events[i]), &events[i].prev_hash);
        }
        head.hash = events[3].hash.clone();
        head.seal.as_mut().unwrap().keyed_from = 5;
        assert_eq!(verify(&key(), &events, &head), Err(ChainFault::SealBroken { seq: 4 }));
    }

    /// Removes the runs `[from, to]` from the chain behind checkpoints, as retention does.
    fn cut(events: &mut Vec<AuditEvent>, runs: &[(i64, i64)]) -> Vec<Checkpoint> {
        let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let checkpoints = runs
            .iter()
            .map(|&(from, to)| {
                let run: Vec<AuditEvent> = events.iter().filter(|e| (from..=to).contains(&e.seq)).cloned().collect();
                Checkpoint::for_run(&key(), 1, &run, None, at).unwrap()
            })
            .collect();
        events.retain(|e| !runs.iter().any(|&(from, to)| (from..=to).contains(&e.seq)));
        checkpoints
    }

    /// `verify_store`'s walk over pages of `page` events and `page` checkpoints.
    fn walk_in_pages(
        events: &[AuditEvent],
        checkpoints: &[Checkpoint],
        head: &ChainHead,
        page: usize,
    ) -> Result<i64, ChainFault> {
        let key = key();
        let mut verifier = ChainVerifier::new(&key, head)?;
        while verifier.verified() < head.seq {
            let after = verifier.verified();
            let events: Vec<_> = events.iter().filter(|e| e.seq > after).take(page).cloned().collect();
            let checkpoints: Vec<_> = checkpoints.iter().filter(|c| c.from_seq > after).take(page).cloned().collect();
            if events.is_empty() && checkpoints.is_empty() {
                break;
            }
            walk_page(&mut verifier, &events, &checkpoints, page)?;
        }
        verifier.finish(head)
    }

    #[test]
    fn a_chain_verifies_across_checkpoints_whatever_the_page_size() {
        let (mut events, head) = chain(9);
        let checkpoints = cut(&mut events, &[(1, 1), (3, 4), (5, 5), (8, 9)]);
        for page in 1..=4 {
            assert_eq!(walk_in_pages(&events, &checkpoints, &head, page), Ok(9), "pages of {page}");
        }
    }

    #[test]
    fn checkpoints_that_were_forged_moved_or_dropped_are_found() {
        let (mut events, head) = chain(6);
        let checkpoints = cut(&mut events, &[(2, 3)]);
        let mut forged = checkpoints.clone();
        forged[0].hash = events[0].hash.clone();
        assert!(matches!(walk_in_pages(&events, &forged, &head, 2), Err(ChainFault::Checkpoint { from_seq: 2, .. })));
        // Another key's checkpoint does not pass either.
        let attacker = AuditKey::new(*b"attacker-key-attacker-key-attack");
        let mut other = checkpoints.clone();
        other[0].mac = other[0].expected_mac(&attacker);
        assert!(matches!(walk_in_pages(&events, &other, &head, 2), Err(ChainFault::Checkpoint { .. })));
        assert_eq!(link_fault(walk_in_pages(&events, &[], &head, 2)).seq, 4, "a gap without its checkpoint");
    }

    #[test]
    fn a_checkpoint_is_refused_for_an_altered_or_broken_run() {
        let (events, _) = chain(4);
        let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let mut altered = events.clone();
        altered[1].actor_name = "mallory".into();
        assert_eq!(Checkpoint::for_run(&key(), 1, &altered[..3], None, at).unwrap_err().seq, 2);
        let broken_run = [events[0].clone(), events[2].clone()];
        assert_eq!(Checkpoint::for_run(&key(), 1, &broken_run, None, at).unwrap_err().seq, 3);
        assert_eq!(consecutive_runs(&broken_run).len(), 2);
    }

    #[test]
    fn a_key_setting_must_be_long_enough() {
        assert!(AuditKey::from_setting("short").is_err());
        assert!(AuditKey::from_setting(&"k".repeat(32)).is_ok());
    }

    #[test]
    fn a_recorded_head_reads_as_verify_prints_it() {
        let (_, head) = chain(2);
        let recorded = RecordedHead::from(&head);
        assert_eq!(RecordedHead::parse(&recorded.to_string()), Ok(recorded.clone()));
        assert_eq!(RecordedHead::parse(&format!("#{}", recorded.to_string().to_uppercase())), Ok(recorded));
        assert!(RecordedHead::parse("2").is_err());
        assert!(RecordedHead::parse("x:00").is_err());
        assert!(RecordedHead::parse(&format!("2:{}", "g".repeat(64))).is_err());
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let text = format!("{:?}", key());
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }
}
