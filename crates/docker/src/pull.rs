//! Turning Docker's per-layer pull messages into one percentage for the `pulling` phase.

use std::collections::HashMap;

use bollard::models::CreateImageInfo;

/// Download progress over all layers seen so far.
#[derive(Debug, Default)]
pub(crate) struct PullProgress {
    /// Bytes downloaded and total bytes per layer id.
    layers: HashMap<String, (i64, i64)>,
    reported: i32,
}

impl PullProgress {
    /// Takes one pull message; returns a new percentage when it grew. Layers only announce their size once they
    /// start downloading, so the raw ratio can drop; the reported value never does.
    pub(crate) fn update(&mut self, info: &CreateImageInfo) -> Option<i32> {
        let (Some(layer), Some(status)) = (info.id.as_deref(), info.status.as_deref()) else { return None };
        match status {
            "Downloading" => {
                let detail = info.progress_detail.as_ref()?;
                let total = detail.total.filter(|total| *total > 0)?;
                let current = detail.current.unwrap_or(0).clamp(0, total);
                self.layers.insert(layer.to_string(), (current, total));
            }
            "Download complete" | "Pull complete" => {
                let (current, total) = self.layers.get_mut(layer)?;
                *current = *total;
            }
            _ => return None,
        }
        let (done, total) = self.layers.values().fold((0i64, 0i64), |(done, total), (current, size)| {
            (done.saturating_add(*current), total.saturating_add(*size))
        });
        let percent = i32::try_from(done.saturating_mul(100) / total.max(1)).unwrap_or(100).min(100);
        (percent > self.reported).then(|| {
            self.reported = percent;
            percent
        })
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::ProgressDetail;

    use super::*;

    fn info(layer: &str, status: &str, progress: Option<(i64, i64)>) -> CreateImageInfo {
        CreateImageInfo {
            id: Some(layer.into()),
            status: Some(status.into()),
            progress_detail: progress
                .map(|(current, total)| ProgressDetail { current: Some(current), total: Some(total) }),
            ..CreateImageInfo::default()
        }
    }

    #[test]
    fn percent_grows_with_downloaded_bytes_across_layers() {
        let mut pull = PullProgress::default();
        assert_eq!(pull.update(&info("a", "Pulling fs layer", None)), None);
        assert_eq!(pull.update(&info("a", "Downloading", Some((25, 100)))), Some(25));
        assert_eq!(pull.update(&info("a", "Downloading", Some((25, 100)))), None, "unchanged: not reported again");
        // A second layer appears: the raw ratio drops to 50/400, the reported percentage holds.
        assert_eq!(pull.update(&info("b", "Downloading", Some((25, 300)))), None);
        assert_eq!(pull.update(&info("a", "Download complete", None)), Some(31), "125 of 400 bytes");
        assert_eq!(pull.update(&info("b", "Downloading", Some((200, 300)))), Some(75));
        assert_eq!(pull.update(&info("b", "Pull complete", None)), Some(100));
    }

    #[test]
    fn odd_messages_are_ignored() {
        let mut pull = PullProgress::default();
        let no_id = CreateImageInfo { status: Some("Downloading".into()), ..CreateImageInfo::default() };
        assert_eq!(pull.update(&no_id), None);
        assert_eq!(pull.update(&info("a", "Downloading", Some((5, 0)))), None, "unknown size");
        assert_eq!(pull.update(&info("a", "Pull complete", None)), None, "never seen downloading");
        assert_eq!(pull.update(&info("a", "Downloading", Some((500, 100)))), Some(100), "clamped");
    }
}
