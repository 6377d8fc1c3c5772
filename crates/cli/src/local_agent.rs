//! The all-in-one's own Docker agent: registered once, its token kept in the data directory.

use std::io::Write;

use streamspace_proto::hub::Platform;
use streamspace_server::App;
use streamspace_server::auth::secrets::random_token;
use streamspace_server::hub::{AGENT_TOKEN_PREFIX, BUILTIN_LABEL};

use crate::registration::{self, Registration};

const NAME: &str = "local";
const TOKEN_FILE: &str = "local-agent.token";

/// The local agent's token, registering the agent (or re-keying it) when needed.
pub async fn ensure(app: &App) -> anyhow::Result<String> {
    let token = token(&app.config.data_dir)?;
    let local = Registration {
        name: NAME.to_owned(),
        platform: Platform::Docker,
        labels: builtin_labels(),
        endpoint_cidrs: Vec::new(),
    };
    registration::ensure(app, local, &token).await?;
    Ok(token)
}

fn token(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(token) if token.trim().starts_with(AGENT_TOKEN_PREFIX) => Ok(token.trim().to_owned()),
        Ok(_) | Err(_) => {
            let token = random_token(AGENT_TOKEN_PREFIX, 32);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(&path)?.write_all(token.as_bytes())?;
            Ok(token)
        }
    }
}

/// Marks the agent as `streamspace up`'s own (set at registration: the control plane ignores
/// reserved labels an agent announces).
fn builtin_labels() -> std::collections::BTreeMap<String, String> {
    [(BUILTIN_LABEL.to_owned(), "true".to_owned())].into()
}
