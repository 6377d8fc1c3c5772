//! The ACS: a SAML Response posted by the browser, checked until nothing an attacker could have changed is
//! left unchecked. The document's shape is checked first (one assertion, unique IDs, no DTD or comments), then
//! the signature, and from then on only the signed part is read.

use std::collections::{BTreeMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use samael::schema::{Assertion, Response, SubjectConfirmation};

use super::{IdpMetadata, ServiceProvider, SignedXml};

const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// How far apart our clock and the IdP's may be.
pub const CLOCK_SKEW: Duration = Duration::minutes(2);

/// Why a response was refused. `code()` is what the audit log records.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the SAMLResponse is not base64 of a UTF-8 XML document")]
    Malformed,
    #[error("the response carries a DTD, a comment or a processing instruction")]
    ForbiddenXml,
    #[error("the document is not a SAML protocol Response")]
    NotAResponse,
    #[error("two elements carry the same ID")]
    DuplicateId,
    #[error("the response must carry exactly one assertion")]
    AssertionCount,
    #[error("encrypted assertions are not accepted")]
    EncryptedAssertion,
    #[error("neither the response nor the assertion is signed")]
    Unsigned,
    #[error("the signature does not verify with a key from the IdP metadata")]
    BadSignature,
    #[error("the signed part does not contain the assertion")]
    AssertionNotSigned,
    #[error("the IdP reported a failure")]
    Status,
    #[error("the issuer is not the IdP")]
    Issuer,
    #[error("the response's Destination is not our ACS")]
    Destination,
    #[error("the assertion's audience is not us")]
    Audience,
    #[error("the assertion has no bearer subject confirmation for our ACS")]
    Recipient,
    #[error("the response answers no request of this browser")]
    InResponseTo,
    #[error("the response answers no request and IdP-initiated sign-in is off")]
    Unsolicited,
    #[error("the assertion is not valid yet")]
    NotYetValid,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion has no subject")]
    NoSubject,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed => "saml_malformed",
            Refusal::ForbiddenXml => "saml_forbidden_xml",
            Refusal::NotAResponse => "saml_not_a_response",
            Refusal::DuplicateId => "saml_duplicate_id",
            Refusal::AssertionCount => "saml_assertion_count",
            Refusal::EncryptedAssertion => "saml_encrypted_assertion",
            Refusal::Unsigned => "saml_unsigned",
            Refusal::BadSignature => "saml_bad_signature",
            Refusal::AssertionNotSigned => "saml_assertion_not_signed",
            Refusal::Status => "saml_status",
            Refusal::Issuer => "saml_issuer",
            Refusal::Destination => "saml_destination",
            Refusal::Audience => "saml_audience",
            Refusal::Recipient => "saml_recipient",
            Refusal::InResponseTo => "saml_in_response_to",
            Refusal::Unsolicited => "saml_unsolicited",
            Refusal::NotYetValid => "saml_not_yet_valid",
            Refusal::Expired => "saml_expired",
            Refusal::NoSubject => "saml_no_subject",
        }
    }
}

/// What a response must match.
pub struct AcsExpectations<'a> {
    pub sp: &'a ServiceProvider,
    pub idp: &'a IdpMetadata,
    /// IDs of the AuthnRequests this browser has pending.
    pub pending_request_ids: &'a [String],
    pub allow_idp_initiated: bool,
    pub now: DateTime<Utc>,
}

/// An assertion that passed every check, read from its signed content only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// To refuse a replay: recorded until `expires_at`.
    pub id: String,
    pub expires_at: DateTime<Utc>,
    pub name_id: String,
    /// The request it answers; `None` for an IdP-initiated sign-in.
    pub in_response_to: Option<String>,
    /// Values by attribute Name, and by FriendlyName too where one is given.
    pub attributes: BTreeMap<String, Vec<String>>,
    pub authn_context_class: Option<String>,
}

/// Checks a base64 `SAMLResponse` form value.
pub fn verify_response(
    saml_response: &str,
    expected: &AcsExpectations<'_>,
    signatures: &dyn SignedXml,
) -> Result<VerifiedAssertion, Refusal> {
    let xml = decode(saml_response)?;
    let shape = inspect_shape(&xml)?;
    if !shape.signed {
        return Err(Refusal::Unsigned);
    }
    let signed = signatures.signed_part(&xml, &expected.idp.signing_certificates).map_err(|_| Refusal::BadSignature)?;
    let assertion = signed_assertion(&signed)?;
    // Exactly one assertion is in the document, so the signed one is it; the envelope around it may be
    // unsigned and is only ever compared against what we expect, never read for identity.
    let envelope: Response = xml.parse().map_err(|_| Refusal::Malformed)?;
    check_envelope(&envelope, expected)?;
    check_assertion(&assertion, expected)
}

fn decode(saml_response: &str) -> Result<String, Refusal> {
    let compact: String = saml_response.split_ascii_whitespace().collect();
    let bytes = STANDARD.decode(compact).map_err(|_| Refusal::Malformed)?;
    String::from_utf8(bytes).map_err(|_| Refusal::Malformed)
}

/// What the raw document looks like, before any signature is trusted.
struct Shape {
    /// A ds:Signature directly under the Response or the Assertion.
    signed: bool,
}

/// Refuses the documents XML-signature wrapping and parser tricks need: a second assertion (before, after or
/// hidden inside another element), two elements with one ID, DTDs (entities) and comments (which canonical
/// XML drops, so a signed `a@x<!---->.evil` would read differently than it was signed).
fn inspect_shape(xml: &str) -> Result<Shape, Refusal> {
    let mut reader = NsReader::from_str(xml);
    let mut path: Vec<Kind> = Vec::new();
    let mut root_seen = false;
    let mut ids = HashSet::new();
    let mut assertions = 0;
    let mut signed = false;
    loop {
        let (namespace, event) = reader.read_resolved_event().map_err(|_| Refusal::Malformed)?;
        let name = match &event {
            Event::Start(element) | Event::Empty(element) => {
                record_ids(element, &mut ids)?;
                element_kind(&namespace, element.local_name().as_ref())
            }
            Event::End(_) => {
                path.pop();
                continue;
            }
            Event::DocType(_) | Event::Comment(_) | Event::PI(_) => return Err(Refusal::ForbiddenXml),
            Event::Eof => break,
            _ => continue,
        };
        if path.is_empty() && (root_seen || name != Kind::Response) {
            return Err(Refusal::NotAResponse);
        }
        root_seen = true;
        match name {
            Kind::Assertion => assertions += 1,
            Kind::EncryptedAssertion => return Err(Refusal::EncryptedAssertion),
            Kind::Signature => {
                signed |= matches!(path.last(), Some(Kind::Response | Kind::Assertion));
            }
            _ => {}
        }
        if matches!(event, Event::Start(_)) {
            path.push(name);
        }
    }
    if assertions != 1 {
        return Err(Refusal::AssertionCount);
    }
    Ok(Shape { signed })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Response,
    Assertion,
    EncryptedAssertion,
    Signature,
    Other,
}

fn element_kind(namespace: &ResolveResult<'_>, local_name: &[u8]) -> Kind {
    let ResolveResult::Bound(namespace) = namespace else {
        return Kind::Other;
    };
    match (namespace.as_ref(), local_name) {
        (PROTOCOL_NS, b"Response") => Kind::Response,
        (ASSERTION_NS, b"Assertion") => Kind::Assertion,
        (ASSERTION_NS, b"EncryptedAssertion") => Kind::EncryptedAssertion,
        (DSIG_NS, b"Signature") => Kind::Signature,
        _ => Kind::Other,
    }
}

fn record_ids(element: &BytesStart<'_>, ids: &mut HashSet<String>) -> Result<(), Refusal> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|_| Refusal::Malformed)?;
        if attribute.key.as_ref() == b"ID" {
            let value =
                attribute.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|_| Refusal::Malformed)?;
            if !ids.insert(value.into_owned()) {
                return Err(Refusal::DuplicateId);
            }
        }
    }
    Ok(())
}

/// The assertion out of the signed part: a signed Response carries it, or the Assertion is the signed part.
fn signed_assertion(signed: &str) -> Result<Assertion, Refusal> {
    match root_kind(signed)? {
        Kind::Response => {
            let response = signed.parse::<Response>().map_err(|_| Refusal::Malformed)?;
            response.assertion.ok_or(Refusal::AssertionNotSigned)
        }
        Kind::Assertion => signed.parse::<Assertion>().map_err(|_| Refusal::Malformed),
        _ => Err(Refusal::AssertionNotSigned),
    }
}

/// What the root element is; the deserializer does not look at the root's name.
fn root_kind(xml: &str) -> Result<Kind, Refusal> {
    let mut reader = NsReader::from_str(xml);
    loop {
        match reader.read_resolved_event().map_err(|_| Refusal::Malformed)? {
            (namespace, Event::Start(element) | Event::Empty(element)) => {
                return Ok(element_kind(&namespace, element.local_name().as_ref()));
            }
            (_, Event::Eof) => return Err(Refusal::Malformed),
            _ => {}
        }
    }
}

fn check_envelope(envelope: &Response, expected: &AcsExpectations<'_>) -> Result<(), Refusal> {
    let success = envelope.status.as_ref().and_then(|status| status.status_code.value.as_deref()) == Some(SUCCESS);
    if !success {
        return Err(Refusal::Status);
    }
    if envelope.issuer.as_ref().is_some_and(|issuer| issuer.value.as_deref() != Some(&expected.idp.entity_id)) {
        return Err(Refusal::Issuer);
    }
    if envelope.destination.as_deref() != Some(&expected.sp.acs_url) {
        return Err(Refusal::Destination);
    }
    match envelope.in_response_to.as_deref() {
        Some(request) if !expected.pending_request_ids.iter().any(|pending| pending == request) => {
            Err(Refusal::InResponseTo)
        }
        _ => Ok(()),
    }
}

fn check_assertion(assertion: &Assertion, expected: &AcsExpectations<'_>) -> Result<VerifiedAssertion, Refusal> {
    if assertion.issuer.value.as_deref() != Some(&expected.idp.entity_id) {
        return Err(Refusal::Issuer);
    }
    let conditions_end = check_conditions(assertion, expected)?;
    let confirmation = bearer_confirmation(assertion, expected)?;
    let in_response_to = check_in_response_to(confirmation, expected)?;
    let confirmation_end = check_confirmation_time(confirmation, expected.now)?;
    let name_id = assertion
        .subject
        .as_ref()
        .and_then(|subject| subject.name_id.as_ref())
        .map(|name_id| name_id.value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .ok_or(Refusal::NoSubject)?;
    Ok(VerifiedAssertion {
        id: assertion.id.clone(),
        expires_at: conditions_end.min(confirmation_end) + CLOCK_SKEW,
        name_id,
        in_response_to,
        attributes: attributes(assertion),
        authn_context_class: authn_context_class(assertion),
    })
}

/// Checks NotBefore/NotOnOrAfter and the audience; returns NotOnOrAfter.
fn check_conditions(assertion: &Assertion, expected: &AcsExpectations<'_>) -> Result<DateTime<Utc>, Refusal> {
    let conditions = assertion.conditions.as_ref().ok_or(Refusal::Audience)?;
    check_not_before(conditions.not_before, expected.now)?;
    let not_on_or_after = conditions.not_on_or_after.ok_or(Refusal::Expired)?;
    check_not_on_or_after(not_on_or_after, expected.now)?;
    // Every AudienceRestriction must name us, and there must be at least one.
    let restrictions = conditions.audience_restrictions.as_deref().unwrap_or_default();
    let for_us = |restriction: &samael::schema::AudienceRestriction| {
        restriction.audience.iter().any(|audience| audience == &expected.sp.entity_id)
    };
    if restrictions.is_empty() || !restrictions.iter().all(for_us) {
        return Err(Refusal::Audience);
    }
    Ok(not_on_or_after)
}

fn check_not_before(not_before: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), Refusal> {
    match not_before {
        Some(not_before) if now + CLOCK_SKEW < not_before => Err(Refusal::NotYetValid),
        _ => Ok(()),
    }
}

fn check_not_on_or_after(not_on_or_after: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Refusal> {
    if now - CLOCK_SKEW >= not_on_or_after { Err(Refusal::Expired) } else { Ok(()) }
}

/// The bearer confirmation meant for our ACS.
fn bearer_confirmation<'a>(
    assertion: &'a Assertion,
    expected: &AcsExpectations<'_>,
) -> Result<&'a SubjectConfirmation, Refusal> {
    let confirmations = assertion.subject.as_ref().ok_or(Refusal::NoSubject)?.subject_confirmations.as_deref();
    confirmations
        .unwrap_or_default()
        .iter()
        .filter(|confirmation| confirmation.method.as_deref() == Some(BEARER))
        .find(|confirmation| {
            let data = confirmation.subject_confirmation_data.as_ref();
            data.and_then(|data| data.recipient.as_deref()) == Some(&expected.sp.acs_url)
        })
        .ok_or(Refusal::Recipient)
}

fn check_in_response_to(
    confirmation: &SubjectConfirmation,
    expected: &AcsExpectations<'_>,
) -> Result<Option<String>, Refusal> {
    let in_response_to = confirmation.subject_confirmation_data.as_ref().and_then(|data| data.in_response_to.clone());
    match &in_response_to {
        Some(request) if expected.pending_request_ids.contains(request) => Ok(in_response_to),
        Some(_) => Err(Refusal::InResponseTo),
        None if expected.allow_idp_initiated => Ok(None),
        None => Err(Refusal::Unsolicited),
    }
}

fn check_confirmation_time(confirmation: &SubjectConfirmation, now: DateTime<Utc>) -> Result<DateTime<Utc>, Refusal> {
    let data = confirmation.subject_confirmation_data.as_ref().ok_or(Refusal::Recipient)?;
    check_not_before(data.not_before, now)?;
    // A bearer confirmation without an end would make the assertion good forever.
    let not_on_or_after = data.not_on_or_after.ok_or(Refusal::Expired)?;
    check_not_on_or_after(not_on_or_after, now)?;
    Ok(not_on_or_after)
}

fn attributes(assertion: &Assertion) -> BTreeMap<String, Vec<String>> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let statements = assertion.attribute_statements.as_deref().unwrap_or_default();
    for attribute in statements.iter().flat_map(|statement| &statement.attributes) {
        let values = attribute.values.iter().filter_map(|value| value.value.clone()).collect::<Vec<_>>();
        for name in [&attribute.name, &attribute.friendly_name].into_iter().flatten() {
            by_name.entry(name.clone()).or_default().extend(values.iter().cloned());
        }
    }
    by_name
}

fn authn_context_class(assertion: &Assertion) -> Option<String> {
    let statements = assertion.authn_statements.as_deref().unwrap_or_default();
    statements.iter().filter_map(|statement| statement.authn_context.as_ref()?.value.as_ref()?.value.clone()).next()
}
