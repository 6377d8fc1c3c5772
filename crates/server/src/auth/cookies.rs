//! The platform's cookies: their names and attributes, and reading them back.
//!
//! Session origins can set cookies for their parent domain, so a cookie name alone proves nothing
//! about who set it. Where the origin is a secure context the names carry the `__Host-` prefix,
//! which browsers only accept from the host itself, with `Secure`, `Path=/` and no `Domain`; and a
//! name that arrives twice is refused rather than one of the values picked.

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, StatusCode};
use uuid::Uuid;

use crate::config::Urls;
use crate::error::{ApiError, ApiResult};

/// One platform cookie as the browser must store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieSpec {
    /// The name without prefix, e.g. `ss_refresh`.
    pub base: &'static str,
    /// Set on a secure context: `__Host-` name, `Secure`, `Path=/`.
    pub secure: bool,
    /// The path when not secure (a `__Host-` cookie must use `/`).
    pub insecure_path: &'static str,
    /// `SameSite=...` and any further attributes.
    pub attributes: &'static str,
}

impl CookieSpec {
    pub fn name(&self) -> String {
        if self.secure { format!("__Host-{}", self.base) } else { self.base.to_owned() }
    }

    /// The `Set-Cookie` value; a `max_age` of 0 clears it.
    pub fn set(&self, value: &str, max_age: i64) -> String {
        let name = self.name();
        let (path, secure) = if self.secure { ("/", "; Secure") } else { (self.insecure_path, "") };
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; {}{secure}", self.attributes)
    }

    /// The cookie's value in the request, if it is there exactly once. Checked on every proxied
    /// request, so the name is matched in place rather than built.
    pub fn read<'a>(&self, headers: &'a HeaderMap) -> Read<'a> {
        read(headers, |key| match self.secure {
            true => key.strip_prefix("__Host-") == Some(self.base),
            false => key == self.base,
        })
    }
}

/// The refresh cookie: `__Host-ss_refresh` on a secure context, so a session origin cannot plant
/// one for a parent domain (a `__Host-` cookie has the root path). Elsewhere it is sent only to
/// the auth routes.
pub fn refresh_cookie(urls: &Urls) -> CookieSpec {
    CookieSpec {
        base: "ss_refresh",
        secure: urls.secure_cookies,
        insecure_path: "/api/v1/auth",
        attributes: "SameSite=Strict",
    }
}

/// The refresh token the request carries. Two cookies of that name mean one was planted: neither
/// is used, so nobody can be signed in to an account of another's choosing.
pub fn refresh_token<'a>(urls: &Urls, headers: &'a HeaderMap) -> ApiResult<Option<&'a str>> {
    match refresh_cookie(urls).read(headers) {
        Read::Missing => Ok(None),
        Read::One(token) => Ok(Some(token)),
        Read::Duplicated => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "duplicate_cookie",
            "the refresh cookie was sent twice; sign in again",
        )),
    }
}

/// The session cookie. On a secure context it is `__Host-` prefixed and `SameSite=None;
/// Partitioned`: the UI frames the session from another site, and only a partitioned cookie is
/// kept in a cross-site frame once browsers block third-party cookies. Other sites' pages still
/// cannot use it: the proxy refuses their fetches and WebSockets (`refused_cross_site`).
pub fn session_cookie(urls: &Urls) -> CookieSpec {
    let secure = is_secure_context(&urls.session_origin(Uuid::nil()));
    CookieSpec {
        base: "ss_session",
        secure,
        insecure_path: "/",
        attributes: if secure { "SameSite=None; Partitioned" } else { "SameSite=Lax" },
    }
}

/// What a request holds of one cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<'a> {
    Missing,
    One(&'a str),
    /// Sent more than once: one of them was planted (a longer path or a parent domain).
    Duplicated,
}

impl<'a> Read<'a> {
    pub fn value(self) -> Option<&'a str> {
        match self {
            Read::One(value) => Some(value),
            Read::Missing | Read::Duplicated => None,
        }
    }
}

/// The cookie whose name `is_name` accepts, among all of the request's `Cookie` headers.
fn read<'a>(headers: &'a HeaderMap, is_name: impl Fn(&str) -> bool) -> Read<'a> {
    let mut values = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| is_name(key))
        .map(|(_, value)| value);
    match (values.next(), values.next()) {
        (None, _) => Read::Missing,
        (Some(value), None) => Read::One(value),
        (Some(_), Some(_)) => Read::Duplicated,
    }
}

/// Whether a page at `url` is a secure context, where browsers keep `Secure` cookies: HTTPS, or a
/// loopback name or address (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`).
pub fn is_secure_context(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(authority) = url.strip_prefix("http://").map(|rest| rest.split('/').next().unwrap_or(rest)) else {
        return false;
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(host, _port)| host),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::http::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(COOKIE, HeaderValue::from_static(value));
        }
        map
    }

    const PLAIN: CookieSpec = CookieSpec { base: "ss_refresh", secure: false, insecure_path: "/", attributes: "" };
    const SECURE: CookieSpec = CookieSpec { secure: true, ..PLAIN };

    #[test]
    fn a_cookie_is_read_only_when_it_arrives_once() {
        assert_eq!(PLAIN.read(&headers(&["a=1; ss_refresh=abc", "b=2"])), Read::One("abc"));
        assert_eq!(PLAIN.read(&headers(&["a=1"])), Read::Missing);
        assert_eq!(PLAIN.read(&headers(&["ss_refresh=planted; ss_refresh=real"])), Read::Duplicated);
        assert_eq!(PLAIN.read(&headers(&["ss_refresh=planted", "ss_refresh=real"])), Read::Duplicated);
        assert_eq!(SECURE.read(&headers(&["ss_refresh=x"])), Read::Missing, "the prefix is part of the name");
        assert_eq!(SECURE.read(&headers(&["__Host-ss_refresh=x; ss_refresh=y"])), Read::One("x"));
        assert_eq!(PLAIN.read(&headers(&["__Host-ss_refresh=x"])), Read::Missing);
        assert_eq!(Read::Duplicated.value(), None);
    }

    #[test]
    fn secure_cookies_carry_the_host_prefix_and_the_root_path() {
        let spec = CookieSpec { base: "ss_x", secure: true, insecure_path: "/p", attributes: "SameSite=Strict" };
        assert_eq!(spec.name(), "__Host-ss_x");
        assert_eq!(spec.set("v", 60), "__Host-ss_x=v; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure");
        let plain = CookieSpec { secure: false, ..spec };
        assert_eq!(plain.set("v", 0), "ss_x=v; Path=/p; Max-Age=0; HttpOnly; SameSite=Strict");
    }

    #[test]
    fn secure_contexts_are_https_and_loopback() {
        for url in [
            "https://streamspace.example.com",
            "http://localhost:8000",
            "http://0190a1b2-0000-7000-8000-000000000000.localhost:8001/x",
            "http://127.0.0.1:8000",
            "http://[::1]:8000",
            "http://LOCALHOST",
        ] {
            assert!(is_secure_context(url), "{url}");
        }
        for url in ["http://streamspace.example.com", "http://10.0.0.1:8000", "http://localhost.example.com", "ftp://x"]
        {
            assert!(!is_secure_context(url), "{url}");
        }
    }

    #[test]
    fn session_cookies_are_host_only_and_partitioned_on_secure_contexts() {
        let local = session_cookie(&Urls::new(&Config::default()));
        assert_eq!(local.name(), "__Host-ss_session");
        let set = local.set("v", 60);
        assert!(set.contains("Path=/;") && set.contains("SameSite=None; Partitioned; Secure"), "{set}");
        assert!(!set.contains("Domain"), "{set}");
        let plain = Config {
            public_url: Some("http://streamspace.lan:8000".into()),
            session_domain: Some("sessions.lan:8001".into()),
            ..Config::default()
        };
        assert_eq!(
            session_cookie(&Urls::new(&plain)).set("v", 60),
            "ss_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
    }
}
