//! IP allow-lists: the networks people may come from. The platform's list holds for everyone, an
//! org's for its users; an empty list allows every address. Checked on sign-in (password and SSO
//! alike, through [`check_sign_in`]), on every API call ([`enforce`] from the principal) and on
//! every request into a session.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use ipnet::IpNet;
use serde_json::json;
use streamspace_store::{AllowList, Store, StoreError, User};
use uuid::Uuid;

use crate::app::App;
use crate::audit::{Actor, Outcome, Record};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult};
use crate::recent::Ticket;

/// Lists are read again after this, so a change made on another replica holds within it.
const FRESH_FOR: Duration = Duration::from_secs(2);
/// One denial of a user (or an unknown caller) from one address on one path is audited this often
/// at most: a client retrying in a loop must not fill the audit log. Every denial is counted.
const AUDIT_EVERY: Duration = Duration::from_secs(60);
/// Past this many remembered denials, the expired ones are dropped.
const AUDITED_PRUNE_AT: usize = 4096;
/// An allow-list longer than this is a mistake (or an attempt to make every request slow).
pub const MAX_ENTRIES: usize = 256;

/// Where a denial happened: a metric label and an audit detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    SignIn,
    Api,
    Session,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::SignIn => "sign_in",
            Via::Api => "api",
            Via::Session => "session",
        }
    }
}

/// A list as read from the store, and when.
type Loaded = (Instant, Arc<Vec<IpNet>>);
/// Who was denied, from where, on which path.
type DenialKey = (Option<Uuid>, IpAddr, Via);

/// The allow-lists as recently read, and the denials recently audited.
#[derive(Default)]
pub struct AllowLists {
    lists: Mutex<HashMap<AllowList, Loaded>>,
    /// Counts the lists this replica replaced: a verdict given before may rest on the old list.
    replaced: AtomicU64,
    audited: Mutex<HashMap<DenialKey, Instant>>,
}

impl AllowLists {
    /// The list, and until when it is reused.
    async fn get(&self, store: &dyn Store, list: AllowList) -> Result<(Arc<Vec<IpNet>>, Instant), StoreError> {
        if let Some((loaded, nets)) = self.lists.lock().unwrap_or_else(|p| p.into_inner()).get(&list)
            && loaded.elapsed() < FRESH_FOR
        {
            return Ok((nets.clone(), *loaded + FRESH_FOR));
        }
        let loaded = Instant::now();
        let nets = Arc::new(store.get_ip_allow_list(list).await?);
        self.lists.lock().unwrap_or_else(|p| p.into_inner()).insert(list, (loaded, nets.clone()));
        Ok((nets, loaded + FRESH_FOR))
    }

    /// Replaces a list in the store and at once in this replica's view of it.
    pub async fn set(&self, app: &App, list: AllowList, nets: &[IpNet]) -> Result<(), StoreError> {
        app.store.set_ip_allow_list(list, nets, app.clock.now()).await?;
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        self.replaced.fetch_add(1, Ordering::AcqRel);
        lists.remove(&list);
        Ok(())
    }

    /// Taken before judging an address: a verdict given after it is still true while the ticket is
    /// the current one and the lists are fresh.
    pub fn ticket(&self) -> Ticket {
        Ticket::of(&self.replaced)
    }

    /// The list as stored, for the API.
    pub async fn read(&self, app: &App, list: AllowList) -> Result<Vec<IpNet>, StoreError> {
        Ok(self.get(app.store.as_ref(), list).await?.0.to_vec())
    }

    /// Whether this denial is due for the audit log (see [`AUDIT_EVERY`]).
    fn due_for_audit(&self, user: Option<Uuid>, address: IpAddr, via: Via) -> bool {
        let mut audited = self.audited.lock().unwrap_or_else(|p| p.into_inner());
        if audited.len() >= AUDITED_PRUNE_AT {
            audited.retain(|_, at| at.elapsed() < AUDIT_EVERY);
        }
        match audited.get(&(user, address, via)) {
            Some(at) if at.elapsed() < AUDIT_EVERY => false,
            _ => {
                audited.insert((user, address, via), Instant::now());
                true
            }
        }
    }
}

/// Whether `nets` lets `address` in. An IPv4 client seen on an IPv6 socket (`::ffff:a.b.c.d`)
/// is judged by its IPv4 address.
pub fn allows(nets: &[IpNet], address: IpAddr) -> bool {
    let address = address.to_canonical();
    nets.is_empty() || nets.iter().any(|net| net.contains(&address))
}

/// The list an address is refused by, if any: the platform's first, then the org's.
pub async fn refusing_list(app: &App, org_id: Option<Uuid>, address: IpAddr) -> Result<Option<AllowList>, StoreError> {
    Ok(verdict(app, org_id, address).await?.0)
}

/// [`refusing_list`], and until when the lists it judged by are reused.
pub async fn verdict(
    app: &App,
    org_id: Option<Uuid>,
    address: IpAddr,
) -> Result<(Option<AllowList>, Instant), StoreError> {
    let lists = std::iter::once(AllowList::Platform).chain(org_id.map(AllowList::Org));
    let mut fresh_until = None::<Instant>;
    for list in lists {
        let (nets, until) = app.allow_lists.get(app.store.as_ref(), list).await?;
        let until = fresh_until.map_or(until, |earlier| earlier.min(until));
        if !allows(&nets, address) {
            return Ok((Some(list), until));
        }
        fresh_until = Some(until);
    }
    Ok((None, fresh_until.unwrap_or_else(Instant::now)))
}

/// Refuses the request when the client's address is not allowed for `actor` (whose org's list
/// applies besides the platform's); the denial is counted, audited and answered with
/// `403 network_denied`.
pub async fn enforce(app: &App, meta: &RequestMeta, actor: &Actor, via: Via) -> ApiResult<()> {
    let Some(list) = refusing_list(app, actor.org_id, meta.client_ip).await? else {
        return Ok(());
    };
    let reason = match list {
        AllowList::Platform => "platform_allow_list",
        AllowList::Org(_) => "org_allow_list",
    };
    metrics::counter!("streamspace_network_denied_total", "via" => via.as_str(), "list" => reason).increment(1);
    if app.allow_lists.due_for_audit(actor.id, meta.client_ip, via) {
        let target = actor.id.map_or_else(|| format!("ip:{}", meta.client_ip), |id| format!("user:{id}"));
        let details = json!({"address": meta.client_ip.to_string(), "reason": reason, "via": via.as_str()});
        let record = Record::new("network.denied", target).outcome(Outcome::Denied).org(actor.org_id);
        app.audit(meta, actor, record.details(details)).await?;
    }
    let whose = match list {
        AllowList::Platform => "the platform's",
        AllowList::Org(_) => "your organization's",
    };
    let message = format!("your network address {} is not in {whose} IP allow-list", meta.client_ip);
    Err(ApiError::new(StatusCode::FORBIDDEN, "network_denied", message))
}

/// The check every sign-in makes once it knows whose account it is, before any secret is checked
/// (so a refused address learns nothing about the password): the password path and SSO alike.
pub async fn check_sign_in(app: &App, meta: &RequestMeta, user: &User) -> ApiResult<()> {
    enforce(app, meta, &Actor::from(user), Via::SignIn).await
}

/// Refuses a change to `list` that would shut out the administrator making it: their own address
/// must stay allowed when the list applies to them.
pub fn refuse_self_lockout(nets: &[IpNet], applies_to_caller: bool, address: IpAddr) -> ApiResult<()> {
    if !applies_to_caller || allows(nets, address) {
        return Ok(());
    }
    let message = format!(
        "this allow-list does not include your own address {address}: saving it would lock you out; \
         add your address (or its network) to the list"
    );
    Err(ApiError::new(StatusCode::CONFLICT, "self_lockout", message))
}

/// Sorted, without duplicates, each network in its canonical form (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn normalize(nets: &[IpNet]) -> ApiResult<Vec<IpNet>> {
    if nets.len() > MAX_ENTRIES {
        return Err(ApiError::validation(format!("an allow-list has at most {MAX_ENTRIES} entries")));
    }
    let mut nets: Vec<IpNet> = nets.iter().map(IpNet::trunc).collect();
    nets.sort();
    nets.dedup();
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(cidrs: &[&str]) -> Vec<IpNet> {
        cidrs.iter().map(|cidr| cidr.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_empty_list_allows_everyone_and_a_list_only_its_networks() {
        assert!(allows(&[], ip("203.0.113.9")));
        let list = nets(&["198.51.100.0/24", "2001:db8::/32"]);
        assert!(allows(&list, ip("198.51.100.200")));
        assert!(allows(&list, ip("2001:db8:1::5")));
        assert!(!allows(&list, ip("198.51.101.1")));
        assert!(!allows(&list, ip("2001:db9::1")));
    }

    #[test]
    fn ipv4_clients_on_ipv6_sockets_are_judged_as_ipv4() {
        assert!(allows(&nets(&["198.51.100.0/24"]), ip("::ffff:198.51.100.7")));
        assert!(!allows(&nets(&["198.51.100.0/24"]), ip("::ffff:203.0.113.7")));
    }

    #[test]
    fn lists_are_normalized_and_bounded() {
        let given = nets(&["10.1.2.3/8", "10.0.0.0/8", "2001:db8::1/32"]);
        assert_eq!(normalize(&given).unwrap(), nets(&["10.0.0.0/8", "2001:db8::/32"]));
        assert!(normalize(&vec!["10.0.0.0/8".parse().unwrap(); MAX_ENTRIES + 1]).is_err());
    }

    #[test]
    fn a_change_that_shuts_out_its_author_is_refused() {
        let list = nets(&["198.51.100.0/24"]);
        assert!(refuse_self_lockout(&list, true, ip("198.51.100.1")).is_ok());
        assert_eq!(refuse_self_lockout(&list, true, ip("203.0.113.1")).unwrap_err().code, "self_lockout");
        assert!(refuse_self_lockout(&list, false, ip("203.0.113.1")).is_ok(), "another org's list");
        assert!(refuse_self_lockout(&[], true, ip("203.0.113.1")).is_ok());
    }
}
