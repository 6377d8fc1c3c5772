//! The object validation a real API server runs that an agent can get wrong: names, labels, immutable fields.

use serde_json::Value;

use crate::kinds::{NameRule, ResourceKind};
use crate::status::ApiError;

/// Checks what every kind checks on create and update.
pub fn validate(kind: &ResourceKind, object: &Value) -> Result<(), ApiError> {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let name_ok = match kind.name_rule {
        NameRule::Subdomain => is_subdomain(name),
        NameRule::Rfc1035Label => is_rfc1035_label(name),
    };
    if !name_ok {
        let problem = format!("Invalid value: {name:?}: not a valid name for {:?}", kind.name_rule);
        return Err(ApiError::invalid(kind, name, "metadata.name", &problem));
    }
    if let Some(schema) = &kind.schema {
        validate_against_schema(kind, name, schema, object)?;
    }
    for (field, map) in [("metadata.labels", "/metadata/labels"), ("metadata.annotations", "/metadata/annotations")] {
        let Some(entries) = object.pointer(map).and_then(Value::as_object) else { continue };
        for (key, value) in entries {
            if !is_qualified_name(key) {
                return Err(ApiError::invalid(kind, name, field, &format!("Invalid value: {key:?}: invalid key")));
            }
            let valid_value = field == "metadata.annotations" || value.as_str().is_some_and(is_label_value);
            if !valid_value {
                return Err(ApiError::invalid(
                    kind,
                    name,
                    field,
                    &format!("Invalid value: {value}: invalid label value"),
                ));
            }
        }
    }
    Ok(())
}

/// A custom resource against its definition's schema, reported as the real server words it.
fn validate_against_schema(
    kind: &ResourceKind,
    name: &str,
    schema: &jsonschema::Validator,
    object: &Value,
) -> Result<(), ApiError> {
    let Err(error) = schema.validate(object) else { return Ok(()) };
    let field = error.instance_path().to_string().trim_start_matches('/').replace('/', ".");
    let value = object.pointer(&error.instance_path().to_string()).cloned().unwrap_or(Value::Null);
    Err(ApiError::invalid(kind, name, &field, &format!("Invalid value: {value}: {error}")))
}

/// Pods: after create, only container images may change in the spec (the real pod update validation).
pub fn validate_pod_update(kind: &ResourceKind, old: &Value, new: &Value) -> Result<(), ApiError> {
    if !kind.pod_spec_rules {
        return Ok(());
    }
    let without_images = |object: &Value| {
        let mut spec = object.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                containers.iter_mut().filter_map(Value::as_object_mut).for_each(|container| {
                    container.remove("image");
                });
            }
        }
        spec
    };
    if without_images(old) == without_images(new) {
        return Ok(());
    }
    let name = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let problem = "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, \
                   `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to \
                   existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was \
                   previously negative)";
    Err(ApiError::invalid(kind, name, "spec", problem))
}

fn is_rfc1123_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !text.is_empty()
        && text.len() <= 63
        && bytes.iter().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn is_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_rfc1123_label)
}

fn is_rfc1035_label(text: &str) -> bool {
    is_rfc1123_label(text) && text.as_bytes()[0].is_ascii_lowercase()
}

fn is_label_value(text: &str) -> bool {
    text.is_empty() || is_qualified_part(text)
}

/// `[prefix/]name`, the key form of labels and annotations.
fn is_qualified_name(text: &str) -> bool {
    match text.split_once('/') {
        Some((prefix, name)) => is_subdomain(prefix) && is_qualified_part(name),
        None => is_qualified_part(text),
    }
}

fn is_qualified_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    !text.is_empty()
        && text.len() <= 63
        && bytes.iter().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(byte))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kinds_rule() {
        assert!(is_subdomain("ss-0f8c2d9e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"));
        assert!(!is_subdomain("Upper"));
        assert!(!is_subdomain("-leading"));
        assert!(is_rfc1035_label("ss-1"));
        assert!(!is_rfc1035_label("0f8c2d9e-1b2a"));
        assert!(!is_rfc1035_label("a.b"));
    }

    #[test]
    fn label_keys_and_values_follow_the_qualified_name_rules() {
        assert!(is_qualified_name("app.kubernetes.io/managed-by"));
        assert!(is_qualified_name("streamspace.io/session"));
        assert!(!is_qualified_name("bad key"));
        assert!(is_label_value(""));
        assert!(is_label_value("0f8c2d9e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"));
        assert!(!is_label_value(&"x".repeat(64)));
        assert!(!is_label_value("has space"));
    }
}
