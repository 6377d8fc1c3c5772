//! Persistent homes (ADR 0032): a named volume per home, created the first time a session mounts it
//! and kept when sessions end; only a `remove_home` command deletes it.

use std::collections::HashMap;

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ImageInspect, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{ListVolumesOptions, RemoveVolumeOptions};
use streamspace_proto::hub::{HomeUsage, HomeVolume};
use uuid::Uuid;

use crate::container::{LABEL_AGENT, LABEL_OWNER};
use crate::usage::VolumeSizes;

/// The home a volume holds, so an operator can tell homes from other volumes.
pub(crate) const LABEL_HOME: &str = "streamspace.home";

/// Where an image keeps its user's files: the one directory it declares a volume for (the base image
/// declares its user's home), else its working directory.
pub(crate) fn image_home(image: &str, inspect: &ImageInspect) -> anyhow::Result<String> {
    let config = inspect.config.as_ref();
    let declared = config.and_then(|config| config.volumes.clone()).unwrap_or_default();
    if let [home] = declared.as_slice() {
        return Ok(home.clone());
    }
    match config.and_then(|config| config.working_dir.clone()) {
        Some(dir) if declared.is_empty() && dir.starts_with('/') && dir != "/" => Ok(dir),
        _ => bail!(
            "image {image} has no home directory to keep: it must declare exactly one VOLUME (its user's home) \
             or set a WORKDIR other than /"
        ),
    }
}

pub(crate) fn home_mount(home: &HomeVolume, target: String) -> Mount {
    Mount {
        target: Some(target),
        source: Some(HomeVolume::volume_name(home.id)),
        typ: Some(MountType::VOLUME),
        read_only: Some(false),
        ..Mount::default()
    }
}

/// Creates the home's volume unless it exists. A size limit needs a storage driver with quotas (the
/// local driver on XFS with project quotas); elsewhere the volume is created unlimited and a warning says
/// so, since refusing every session would help nobody.
pub(crate) async fn ensure_home(
    docker: &Docker,
    home: &HomeVolume,
    owner: Uuid,
    agent: Option<Uuid>,
) -> anyhow::Result<()> {
    let name = HomeVolume::volume_name(home.id);
    match docker.inspect_volume(&name).await {
        Ok(_) => return Ok(()),
        Err(error) if !crate::not_found(&error) => {
            return Err(error).with_context(|| format!("inspecting volume {name}"));
        }
        Err(_) => {}
    }
    let mut labels =
        HashMap::from([(LABEL_HOME.to_string(), home.id.to_string()), (LABEL_OWNER.to_string(), owner.to_string())]);
    labels.extend(agent.map(|agent| (LABEL_AGENT.to_string(), agent.to_string())));
    let request = |driver_opts: Option<HashMap<String, String>>| VolumeCreateRequest {
        name: Some(name.clone()),
        labels: Some(labels.clone()),
        driver_opts,
        ..VolumeCreateRequest::default()
    };
    let Some(size_mb) = home.size_mb else {
        docker.create_volume(request(None)).await.with_context(|| format!("creating volume {name}"))?;
        return Ok(());
    };
    let sized = HashMap::from([("size".to_string(), format!("{size_mb}m"))]);
    match docker.create_volume(request(Some(sized))).await {
        Ok(_) => Ok(()),
        Err(error) if no_quota_support(&error) => {
            tracing::warn!(volume = %name, size_mb, "the storage driver has no quotas: the home is not size-limited");
            docker.create_volume(request(None)).await.with_context(|| format!("creating volume {name}"))?;
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("creating volume {name} of {size_mb} MiB")),
    }
}

/// Deletes the home's volume; one that is gone is deleted. Docker refuses while a container mounts it.
pub(crate) async fn remove_home(docker: &Docker, home_id: Uuid) -> anyhow::Result<()> {
    let name = HomeVolume::volume_name(home_id);
    match docker.remove_volume(&name, Some(RemoveVolumeOptions { force: false })).await {
        Ok(()) => Ok(()),
        Err(error) if crate::not_found(&error) => Ok(()),
        Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => {
            bail!("home {home_id} is still mounted by a session's container")
        }
        Err(error) => Err(error).with_context(|| format!("removing volume {name}")),
    }
}

/// The used space of the homes on this engine. Nothing is measured while it holds none: Docker's
/// accounting walks every volume's files.
pub(crate) async fn home_usage(docker: &Docker, sizes: &dyn VolumeSizes) -> anyhow::Result<Vec<HomeUsage>> {
    let filters = HashMap::from([("label".to_string(), vec![LABEL_HOME.to_string()])]);
    let listed = docker
        .list_volumes(Some(ListVolumesOptions { filters: Some(filters) }))
        .await
        .context("listing home volumes")?;
    let homes: Vec<(Uuid, String)> = listed
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|volume| Some((volume.labels.get(LABEL_HOME)?.parse().ok()?, volume.name)))
        .collect();
    if homes.is_empty() {
        return Ok(Vec::new());
    }
    let sizes = sizes.volume_sizes().await?;
    Ok(homes
        .into_iter()
        .filter_map(|(home_id, name)| Some(HomeUsage { home_id, used_bytes: *sizes.get(&name)? }))
        .collect())
}

fn no_quota_support(error: &DockerError) -> bool {
    matches!(error, DockerError::DockerResponseServerError { message, .. } if message.contains("quota"))
}

#[cfg(test)]
mod tests {
    use bollard::models::ImageConfig;

    use super::*;

    fn image(volumes: &[&str], working_dir: Option<&str>) -> ImageInspect {
        let config = ImageConfig {
            volumes: Some(volumes.iter().map(|v| (*v).to_string()).collect()),
            working_dir: working_dir.map(str::to_string),
            ..ImageConfig::default()
        };
        ImageInspect { config: Some(config), ..ImageInspect::default() }
    }

    #[test]
    fn the_home_is_the_declared_volume_else_the_working_directory() {
        assert_eq!(image_home("i", &image(&["/home/streamspace"], Some("/"))).unwrap(), "/home/streamspace");
        assert_eq!(image_home("i", &image(&[], Some("/home/app"))).unwrap(), "/home/app");
        for unclear in [image(&[], Some("/")), image(&[], None), image(&["/a", "/b"], Some("/home/app"))] {
            let error = image_home("i", &unclear).unwrap_err().to_string();
            assert!(error.contains("no home directory"), "{error}");
        }
    }

    #[test]
    fn a_home_mounts_its_own_volume() {
        let home = HomeVolume { id: Uuid::from_u128(7), size_mb: None };
        let mount = home_mount(&home, "/home/streamspace".into());
        assert_eq!(mount.source.as_deref(), Some("ss-home-00000000-0000-0000-0000-000000000007"));
        assert_eq!((mount.target.as_deref(), mount.typ), (Some("/home/streamspace"), Some(MountType::VOLUME)));
    }
}
