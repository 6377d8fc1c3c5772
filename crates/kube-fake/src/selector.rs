//! Label and field selectors, parsed and matched the way the API server does.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::kinds::ResourceKind;
use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        split_top_level(text)
            .into_iter()
            .map(|term| parse_term(term.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(LabelSelector)
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let label = |key: &str| labels.and_then(|labels| labels.get(key)).and_then(Value::as_str);
        self.0.iter().all(|requirement| match requirement {
            Requirement::Equals(key, value) => label(key) == Some(value.as_str()),
            Requirement::NotEquals(key, value) => label(key) != Some(value.as_str()),
            Requirement::In(key, values) => label(key).is_some_and(|found| values.contains(found)),
            Requirement::NotIn(key, values) => !label(key).is_some_and(|found| values.contains(found)),
            Requirement::Exists(key) => label(key).is_some(),
            Requirement::DoesNotExist(key) => label(key).is_none(),
        })
    }
}

/// Splits on the commas that separate requirements, not those inside `in (a,b)`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms.into_iter().filter(|term| !term.trim().is_empty()).collect()
}

fn parse_term(term: &str) -> Result<Requirement, ApiError> {
    let invalid =
        || ApiError::bad_request(format!("unable to parse requirement: invalid label selector term {term:?}"));
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(checked_key(key.trim()).ok_or_else(invalid)?));
    }
    if let Some((key, values)) = set_operation(term, " notin ") {
        return Ok(Requirement::NotIn(checked_key(key).ok_or_else(invalid)?, values.ok_or_else(invalid)?));
    }
    if let Some((key, values)) = set_operation(term, " in ") {
        return Ok(Requirement::In(checked_key(key).ok_or_else(invalid)?, values.ok_or_else(invalid)?));
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(checked_key(key).ok_or_else(invalid)?, value.trim().into()));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(checked_key(key).ok_or_else(invalid)?, value.trim().into()));
    }
    Ok(Requirement::Exists(checked_key(term).ok_or_else(invalid)?))
}

fn set_operation<'a>(term: &'a str, operator: &str) -> Option<(&'a str, Option<BTreeSet<String>>)> {
    let (key, rest) = term.split_once(operator)?;
    let values = rest
        .trim()
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .map(|inner| inner.split(',').map(|value| value.trim().to_string()).collect());
    Some((key, values))
}

fn checked_key(key: &str) -> Option<String> {
    let key = key.trim();
    let valid =
        !key.is_empty() && key.chars().all(|character| character.is_ascii_alphanumeric() || "-_./".contains(character));
    valid.then(|| key.to_string())
}

/// A parsed `fieldSelector` (`=`, `==` and `!=` on the field labels the kind supports).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(text: &str, kind: &ResourceKind) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|term| !term.is_empty()) {
            let (field, equal, value) = if let Some((field, value)) = term.split_once("!=") {
                (field, false, value)
            } else if let Some((field, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (field, true, value)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: {term:?}; can't understand it")));
            };
            let field = field.trim();
            let supported =
                ["metadata.name", "metadata.namespace"].contains(&field) || kind.field_labels.contains(&field);
            if !supported {
                let message = format!("field label not supported: {field} (for {})", kind.qualified_plural());
                return Err(ApiError::bad_request(message));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| (field_value(object, field) == *value) == *equal)
    }
}

/// A field as a field selector sees it: a string, and absent fields are empty.
fn field_value(object: &Value, field: &str) -> String {
    let pointer = format!("/{}", field.replace('.', "/"));
    match object.pointer(&pointer) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "labels": labels}})
    }

    #[test]
    fn label_selector_operators_match_like_the_api_server() {
        let object = pod(json!({"app": "web", "tier": "front"}));
        let matches = |selector: &str| LabelSelector::parse(selector).unwrap().matches(&object);
        assert!(matches(""));
        assert!(matches("app=web"));
        assert!(matches("app==web,tier"));
        assert!(!matches("app!=web"));
        assert!(matches("app in (db, web)"));
        assert!(!matches("app notin (db,web)"));
        assert!(matches("missing notin (a)"));
        assert!(matches("!missing"));
        assert!(!matches("!app"));
        assert!(!matches("missing"));
        assert!(matches("missing!=x"));
    }

    #[test]
    fn malformed_label_selectors_are_refused() {
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selector_accepts_only_the_kinds_field_labels() {
        let kinds = ResourceKind::builtins();
        let pods = &kinds[0];
        let selector = FieldSelector::parse("metadata.name=p,status.phase!=Running", pods).unwrap();
        assert!(selector.matches(&pod(json!({}))));
        let error = FieldSelector::parse("spec.containers=x", pods).unwrap_err();
        assert_eq!(error.code.as_u16(), 400);
    }
}
