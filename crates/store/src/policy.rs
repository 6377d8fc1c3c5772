//! What a session may exchange with the viewer's browser: clipboard, files, sound. An org sets one
//! policy for all its sessions and a template one for its own; a session gets the stricter of the
//! two in every respect (ADR 0032), so neither an org admin nor a template author can loosen what
//! the other closed.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which way the clipboard may carry text between the viewer's browser and the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClipboardPolicy {
    /// Both ways.
    #[default]
    Both,
    /// From the browser into the session only.
    In,
    /// From the session out to the browser only.
    Out,
    Off,
}

impl ClipboardPolicy {
    pub fn allows_in(self) -> bool {
        matches!(self, ClipboardPolicy::Both | ClipboardPolicy::In)
    }

    pub fn allows_out(self) -> bool {
        matches!(self, ClipboardPolicy::Both | ClipboardPolicy::Out)
    }

    fn from_directions(allows_in: bool, allows_out: bool) -> ClipboardPolicy {
        match (allows_in, allows_out) {
            (true, true) => ClipboardPolicy::Both,
            (true, false) => ClipboardPolicy::In,
            (false, true) => ClipboardPolicy::Out,
            (false, false) => ClipboardPolicy::Off,
        }
    }
}

/// Everything allowed unless set otherwise; fields left out of a stored or submitted policy
/// take these defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SessionPolicy {
    pub clipboard: ClipboardPolicy,
    /// Files from the viewer's computer into the session.
    pub file_upload: bool,
    /// Files from the session to the viewer's computer.
    pub file_download: bool,
    /// The session's sound played in the viewer's browser.
    pub audio: bool,
    /// The viewer's microphone forwarded into the session (needs audio).
    pub microphone: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            clipboard: ClipboardPolicy::Both,
            file_upload: true,
            file_download: true,
            audio: true,
            microphone: true,
        }
    }
}

impl SessionPolicy {
    /// What both policies allow.
    pub fn stricter(&self, other: &SessionPolicy) -> SessionPolicy {
        SessionPolicy {
            clipboard: ClipboardPolicy::from_directions(
                self.clipboard.allows_in() && other.clipboard.allows_in(),
                self.clipboard.allows_out() && other.clipboard.allows_out(),
            ),
            file_upload: self.file_upload && other.file_upload,
            file_download: self.file_download && other.file_download,
            audio: self.audio && other.audio,
            microphone: self.microphone && other.microphone,
        }
    }

    /// What a guest who only watches gets: the sound, and nothing that reaches into the session or
    /// carries its data out.
    pub fn watching_only(&self) -> SessionPolicy {
        SessionPolicy {
            clipboard: ClipboardPolicy::Off,
            file_upload: false,
            file_download: false,
            microphone: false,
            audio: self.audio,
        }
    }

    /// The microphone rides on the audio channel: the streamer turns it off without audio.
    pub fn microphone_usable(&self) -> bool {
        self.audio && self.microphone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stricter_policy_keeps_only_what_both_allow() {
        use ClipboardPolicy::*;
        let cases = [(Both, Both, Both), (Both, In, In), (In, Out, Off), (Out, Both, Out), (Off, Both, Off)];
        for (a, b, expected) in cases {
            let left = SessionPolicy { clipboard: a, ..SessionPolicy::default() };
            let right = SessionPolicy { clipboard: b, file_upload: false, ..SessionPolicy::default() };
            let both = left.stricter(&right);
            assert_eq!(both.clipboard, expected, "{a:?} and {b:?}");
            assert_eq!(right.stricter(&left), both, "the order does not matter");
            assert!(!both.file_upload && both.file_download && both.audio && both.microphone);
        }
    }

    #[test]
    fn a_stored_policy_missing_fields_allows_them_and_unknown_fields_are_refused() {
        let policy: SessionPolicy = serde_json::from_str(r#"{"clipboard": "out", "audio": false}"#).unwrap();
        assert_eq!(policy, SessionPolicy { clipboard: ClipboardPolicy::Out, audio: false, ..SessionPolicy::default() });
        assert!(!policy.microphone_usable());
        assert!(serde_json::from_str::<SessionPolicy>(r#"{"printing": false}"#).is_err());
    }
}
