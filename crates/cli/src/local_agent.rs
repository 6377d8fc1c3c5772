//! The all-in-one's own Docker agent: registered once, its token kept in the data directory.

use std::io::Write;

use streamspace_proto::hub::Platform;
use streamspace_server::App;
use streamspace_server::auth::secrets::{random_token, sha256_hex};
use streamspace_server::hub::{AGENT_TOKEN_PREFIX, BUILTIN_LABEL};
use streamspace_store::NewAgent;

const NAME: &str = "local";
const TOKEN_FILE: &str = "local-agent.token";

/// The local agent's token, registering the agent (or re-keying it) when needed.
pub async fn ensure(app: &App) -> anyhow::Result<String> {
    let token = token(&app.config.data_dir)?;
    let hash = sha256_hex(&token);
    if app.store.find_agent_by_token(&hash).await?.is_some() {
        return Ok(token);
    }
    match app.store.list_agents().await?.into_iter().find(|agent| agent.name == NAME) {
        Some(agent) => {
            app.store.set_agent_token(agent.id, &hash).await?;
        }
        None => {
            let agent = NewAgent {
                name: NAME.to_owned(),
                platform: Platform::Docker,
                labels: builtin_labels(),
                token_hash: hash,
                capacity_limit: Default::default(),
                endpoint_cidrs: Vec::new(),
            };
            app.store.create_agent(agent).await?;
        }
    }
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
