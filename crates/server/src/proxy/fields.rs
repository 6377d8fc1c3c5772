//! What the proxy reads of a request's own fields, found in one walk over them. The proxy asks about
//! the same handful of names on every request, and a lookup by name hashes the name and probes the
//! map each time: one walk over a browser's dozen fields costs a fraction of those lookups.

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A request's fields as the proxy reads them. Where a name may repeat, the first field counts, as
/// a lookup by name would have it, except where noted.
#[derive(Default)]
pub struct RequestFields {
    /// `Host`.
    pub host: Option<HeaderValue>,
    /// The `Cookie` field if it is the only one (a browser sends one over HTTP/1.1).
    only_cookie: Option<HeaderValue>,
    cookies: usize,
    /// `Sec-Fetch-Site` says a page of another site sent the request (`cross-site`, `same-site`).
    from_another_site: Option<bool>,
    /// `Sec-Fetch-Mode: navigate`.
    navigation: Option<bool>,
    /// `Upgrade` is there, and some `Connection` field names it.
    upgrade_field: bool,
    connection_names_upgrade: bool,
    /// Some `X-Forwarded-For` names earlier hops.
    pub forwarded_for: bool,
}

impl RequestFields {
    pub fn read(headers: &HeaderMap) -> RequestFields {
        let mut fields = RequestFields::default();
        for (name, value) in headers {
            if name == header::HOST {
                fields.host.get_or_insert_with(|| value.clone());
            } else if name == header::COOKIE {
                fields.cookies += 1;
                fields.only_cookie = (fields.cookies == 1).then(|| value.clone());
            } else if name == SEC_FETCH_SITE {
                fields.from_another_site.get_or_insert(matches!(value.as_bytes(), b"cross-site" | b"same-site"));
            } else if name == SEC_FETCH_MODE {
                fields.navigation.get_or_insert(value.as_bytes() == b"navigate");
            } else if name == header::UPGRADE {
                fields.upgrade_field = true;
            } else if name == header::CONNECTION {
                fields.connection_names_upgrade |= names_upgrade(value);
            } else if name == X_FORWARDED_FOR {
                fields.forwarded_for = true;
            }
        }
        fields
    }

    /// The `Cookie` field, if the request has exactly one.
    pub fn only_cookie(&self) -> Option<&HeaderValue> {
        self.only_cookie.as_ref()
    }

    /// Whether the request asks to switch protocols (a WebSocket): an `Upgrade` that a `Connection`
    /// field names. An `Upgrade` alone asks for nothing.
    pub fn upgrade(&self) -> bool {
        self.upgrade_field && self.connection_names_upgrade
    }

    /// Whether a page of another site sent the request (its `Sec-Fetch-Site` says so).
    pub fn sent_by_another_site(&self) -> bool {
        self.from_another_site == Some(true)
    }

    /// Whether the browser sent the request to navigate (`Sec-Fetch-Mode: navigate`).
    pub fn navigation(&self) -> bool {
        self.navigation == Some(true)
    }
}

/// Whether a `Connection` field names `upgrade` among its tokens.
pub fn names_upgrade(connection: &HeaderValue) -> bool {
    let tokens = connection.as_bytes().split(|byte| *byte == b',');
    tokens.map(<[u8]>::trim_ascii).any(|token| token.eq_ignore_ascii_case(b"upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&'static str, &'static str)]) -> RequestFields {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        RequestFields::read(&map)
    }

    #[test]
    fn the_first_of_a_repeated_field_counts_as_a_lookup_would_have_it() {
        let read = fields(&[
            ("host", "a.example"),
            ("host", "b.example"),
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-mode", "cors"),
        ]);
        assert_eq!(read.host.as_ref().unwrap(), "a.example");
        assert!(!read.sent_by_another_site());
        assert!(read.navigation());
        assert!(!fields(&[]).sent_by_another_site() && !fields(&[]).navigation(), "no metadata: not a browser page");
    }

    #[test]
    fn one_cookie_field_is_kept_and_several_are_left_to_the_map() {
        assert_eq!(fields(&[("cookie", "a=1")]).only_cookie().unwrap(), "a=1");
        assert!(fields(&[("cookie", "a=1"), ("cookie", "b=2")]).only_cookie().is_none());
        assert!(fields(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]).only_cookie().is_none());
        assert!(fields(&[]).only_cookie().is_none());
    }

    #[test]
    fn an_upgrade_needs_a_connection_field_that_names_it() {
        assert!(fields(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")]).upgrade());
        assert!(fields(&[("connection", "keep-alive"), ("connection", "upgrade"), ("upgrade", "websocket")]).upgrade());
        assert!(!fields(&[("upgrade", "websocket")]).upgrade(), "an Upgrade alone asks for nothing");
        assert!(!fields(&[("connection", "upgrade")]).upgrade());
        assert!(!fields(&[("connection", "upgrades"), ("upgrade", "websocket")]).upgrade());
    }

    #[test]
    fn earlier_hops_are_noticed() {
        assert!(fields(&[("x-forwarded-for", "10.0.0.1")]).forwarded_for);
        assert!(!fields(&[("x-forwarded-host", "a")]).forwarded_for);
    }
}
