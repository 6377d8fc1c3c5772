//! Session policies as the streamer enforces them (ADR 0032). The UI's frame follows the same
//! policy, but a page can be changed by whoever views it; the streamer's settings cannot, so they
//! are what holds.

use streamspace_store::{ClipboardPolicy, Scope, SessionPolicy, Store};
use uuid::Uuid;

use crate::error::ApiResult;

/// What a session of `template_id` in `org_id` may exchange with the viewer's browser: the stricter
/// of the org's and the template's policies. A deleted org or template allows nothing.
pub async fn effective(store: &dyn Store, org_id: Uuid, template_id: Uuid) -> ApiResult<SessionPolicy> {
    let org = store.get_org(Scope::Platform, org_id).await?;
    let template = store.get_template(Scope::Platform, template_id).await?;
    Ok(match (org, template) {
        (Some(org), Some(template)) => org.session_policy.stricter(&template.session_policy),
        _ => nothing_allowed(),
    })
}

fn nothing_allowed() -> SessionPolicy {
    SessionPolicy {
        clipboard: ClipboardPolicy::Off,
        file_upload: false,
        file_download: false,
        audio: false,
        microphone: false,
    }
}

/// The streamer's settings for `policy`. Switches are `|locked` so a client cannot turn them back
/// on from its side menu; the clipboard and file-transfer settings are not client-adjustable.
pub fn streamer_settings(policy: &SessionPolicy) -> [(String, String); 4] {
    let clipboard = match policy.clipboard {
        ClipboardPolicy::Both => "true",
        ClipboardPolicy::In => "in",
        ClipboardPolicy::Out => "out",
        ClipboardPolicy::Off => "false",
    };
    let transfers: Vec<&str> = [(policy.file_upload, "upload"), (policy.file_download, "download")]
        .into_iter()
        .filter_map(|(allowed, direction)| allowed.then_some(direction))
        .collect();
    let transfers = if transfers.is_empty() { "none".to_owned() } else { transfers.join(",") };
    let locked = |on: bool| format!("{on}|locked");
    [
        ("SELKIES_ENABLE_CLIPBOARD".to_owned(), clipboard.to_owned()),
        ("SELKIES_FILE_TRANSFERS".to_owned(), transfers),
        ("SELKIES_AUDIO_ENABLED".to_owned(), locked(policy.audio)),
        ("SELKIES_MICROPHONE_ENABLED".to_owned(), locked(policy.microphone_usable())),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(policy: SessionPolicy) -> BTreeMap<String, String> {
        streamer_settings(&policy).into_iter().collect()
    }

    #[test]
    fn every_switch_reaches_the_streamer() {
        let open = settings(SessionPolicy::default());
        assert_eq!(open["SELKIES_ENABLE_CLIPBOARD"], "true");
        assert_eq!(open["SELKIES_FILE_TRANSFERS"], "upload,download");
        assert_eq!(open["SELKIES_AUDIO_ENABLED"], "true|locked");
        assert_eq!(open["SELKIES_MICROPHONE_ENABLED"], "true|locked");

        let closed = settings(nothing_allowed());
        assert_eq!(closed["SELKIES_ENABLE_CLIPBOARD"], "false");
        assert_eq!(closed["SELKIES_FILE_TRANSFERS"], "none");
        assert_eq!(closed["SELKIES_AUDIO_ENABLED"], "false|locked");
        assert_eq!(closed["SELKIES_MICROPHONE_ENABLED"], "false|locked");

        let one_way =
            settings(SessionPolicy { clipboard: ClipboardPolicy::Out, file_upload: false, ..SessionPolicy::default() });
        assert_eq!(one_way["SELKIES_ENABLE_CLIPBOARD"], "out");
        assert_eq!(one_way["SELKIES_FILE_TRANSFERS"], "download");
    }

    #[test]
    fn the_microphone_is_off_without_audio() {
        let silent = settings(SessionPolicy { audio: false, ..SessionPolicy::default() });
        assert_eq!(silent["SELKIES_MICROPHONE_ENABLED"], "false|locked");
    }
}
