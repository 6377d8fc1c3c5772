//! A viewer's way into a session's WebSocket (ADR 0033): the frames the viewer's browser sends are
//! read one by one, and only the messages a watching client needs reach the streamer. Keyboard,
//! mouse, clipboard, file and command messages never do. The streamer drops a viewer token's
//! input on its own; this is the second wall, so a flaw in either lets nothing through.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Text messages of a watching client that drive nothing: its own stream's settings, pausing and
/// resuming its own feed, asking for a key frame (what Selkies lets a viewer token send, less
/// gamepads).
const VIEWER_MESSAGES: [&[u8]; 4] = [b"SETTINGS,", b"START_VIDEO", b"STOP_VIDEO", b"REQUEST_KEYFRAME"];

/// The largest frame a viewer may send: its messages are a few hundred bytes, and a frame is held
/// whole before it is judged.
const MAX_FRAME: usize = 64 * 1024;

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
/// Close, ping and pong (RFC 6455 5.5) carry no input.
const FIRST_CONTROL: u8 = 0x8;

/// One frame at the start of a buffer (RFC 6455 5.2).
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    fin: bool,
    /// RSV1-3: set only by an extension (compression), which viewers' upgrades do not negotiate.
    reserved: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: std::ops::Range<usize>,
}

impl Frame {
    fn len(&self) -> usize {
        self.payload.end
    }
}

/// The frame at the start of `bytes`, `None` when it has not all arrived yet; an error when it is
/// larger than a viewer may send.
fn frame_at(bytes: &[u8]) -> std::io::Result<Option<Frame>> {
    let [first, second, ..] = *bytes else { return Ok(None) };
    let (length, mut at) = match second & 0x7f {
        126 if bytes.len() >= 4 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
        127 if bytes.len() >= 10 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap_or_default()), 10),
        126 | 127 => return Ok(None),
        short => (u64::from(short), 2),
    };
    let length = usize::try_from(length).ok().filter(|length| *length <= MAX_FRAME).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "a viewer's WebSocket frame is too large")
    })?;
    let mask = if second & 0x80 != 0 {
        let Some(key) = bytes.get(at..at + 4) else { return Ok(None) };
        at += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    if bytes.len() < at + length {
        return Ok(None);
    }
    Ok(Some(Frame {
        fin: first & 0x80 != 0,
        reserved: (first >> 4) & 0x7,
        opcode: first & 0x0f,
        mask,
        payload: at..at + length,
    }))
}

/// Whether a frame's payload, unmasked, starts with `prefix`.
fn payload_starts_with(bytes: &[u8], frame: &Frame, prefix: &[u8]) -> bool {
    let payload = &bytes[frame.payload.clone()];
    payload.len() >= prefix.len()
        && prefix.iter().zip(payload).enumerate().all(|(i, (want, byte))| {
            let key = frame.mask.map_or(0, |mask| mask[i % 4]);
            byte ^ key == *want
        })
}

/// Decides frame by frame what passes, remembering whether the message being continued did.
#[derive(Default)]
struct Gate {
    passing_message: bool,
}

impl Gate {
    fn admits(&mut self, bytes: &[u8], frame: &Frame) -> bool {
        if frame.opcode >= FIRST_CONTROL {
            return true;
        }
        let passes = if frame.opcode == CONTINUATION {
            self.passing_message
        } else {
            frame.opcode == TEXT
                && frame.reserved == 0
                && VIEWER_MESSAGES.iter().any(|prefix| payload_starts_with(bytes, frame, prefix))
        };
        self.passing_message = passes && !frame.fin;
        passes
    }
}

/// Copies a viewer's frames from `reader` to `writer` as they arrive, leaving out every one the
/// gate does not admit; at the end of `reader`, shuts `writer` down.
pub async fn pipe<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut reader: R, mut writer: W) -> std::io::Result<()> {
    let mut gate = Gate::default();
    let mut pending = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let read = reader.read(&mut chunk).await?;
        if read == 0 {
            return writer.shutdown().await;
        }
        pending.extend_from_slice(&chunk[..read]);
        let mut consumed = 0;
        while let Some(frame) = frame_at(&pending[consumed..])? {
            let bytes = &pending[consumed..consumed + frame.len()];
            if gate.admits(bytes, &frame) {
                writer.write_all(bytes).await?;
            } else {
                metrics::counter!("streamspace_proxy_viewer_frames_dropped_total").increment(1);
            }
            consumed += frame.len();
        }
        pending.drain(..consumed);
        writer.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as a browser sends it: masked.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut bytes = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            short @ 0..=125 => bytes.push(0x80 | short as u8),
            medium @ 126..=0xffff => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(medium as u16).to_be_bytes());
            }
            long => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&(long as u64).to_be_bytes());
            }
        }
        bytes.extend_from_slice(&mask);
        bytes.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ mask[i % 4]));
        bytes
    }

    async fn through_the_gate(sent: &[Vec<u8>]) -> std::io::Result<Vec<u8>> {
        let (mut browser, proxy_side) = tokio::io::duplex(1 << 20);
        let (streamer_side, mut streamer) = tokio::io::duplex(1 << 20);
        for bytes in sent {
            browser.write_all(bytes).await?;
        }
        drop(browser);
        pipe(proxy_side, streamer_side).await?;
        let mut received = Vec::new();
        streamer.read_to_end(&mut received).await?;
        Ok(received)
    }

    #[tokio::test]
    async fn a_viewers_input_never_reaches_the_streamer_and_watching_does() {
        let settings = frame(true, TEXT, br#"SETTINGS,{"videoFramerate":60}"#);
        let keyframe = frame(true, TEXT, b"REQUEST_KEYFRAME");
        let ping = frame(true, 0x9, b"hi");
        let input = [
            frame(true, TEXT, b"kd,65"),
            frame(true, TEXT, b"m,10,10,1,0"),
            frame(true, TEXT, b"cw,aGVsbG8="),
            frame(true, TEXT, b"cmd,xterm"),
            frame(true, 0x2, b"\x01file upload"),
            frame(true, TEXT, b"SETTING"),
        ];
        let mut sent = vec![settings.clone()];
        sent.extend(input.iter().cloned());
        sent.extend([keyframe.clone(), ping.clone()]);
        let received = through_the_gate(&sent).await.unwrap();
        assert_eq!(received, [settings, keyframe, ping].concat());
    }

    #[tokio::test]
    async fn continuations_follow_the_message_they_continue() {
        let allowed = [frame(false, TEXT, b"SETTINGS,{"), frame(true, CONTINUATION, b"}")];
        let refused = [frame(false, TEXT, b"kd"), frame(false, CONTINUATION, b",6"), frame(true, CONTINUATION, b"5")];
        let mut sent = refused.to_vec();
        sent.extend(allowed.iter().cloned());
        let received = through_the_gate(&sent).await.unwrap();
        assert_eq!(received, allowed.concat());
        let split_prefix = [frame(false, TEXT, b"S"), frame(true, CONTINUATION, b"ETTINGS,{}")];
        assert_eq!(through_the_gate(&split_prefix).await.unwrap(), b"", "judged by its first frame alone");
    }

    #[tokio::test]
    async fn compressed_and_oversized_frames_do_not_pass() {
        let mut compressed = frame(true, TEXT, b"SETTINGS,{}");
        compressed[0] |= 0x40;
        assert_eq!(through_the_gate(&[compressed]).await.unwrap(), b"");
        let oversized = frame(true, TEXT, &[b'S'; MAX_FRAME + 1]);
        assert!(through_the_gate(&[oversized]).await.is_err(), "the tunnel ends");
    }

    #[test]
    fn frames_are_judged_only_once_whole() {
        let whole = frame(true, TEXT, &[b'x'; 300]);
        for cut in [0, 1, 2, 3, 7, whole.len() - 1] {
            assert_eq!(frame_at(&whole[..cut]).unwrap(), None, "{cut} bytes");
        }
        let parsed = frame_at(&whole).unwrap().unwrap();
        assert_eq!((parsed.len(), parsed.opcode, parsed.fin), (whole.len(), TEXT, true));
    }
}
