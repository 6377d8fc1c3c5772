//! First start: the default organization, the admin account and the template catalog.

use streamspace_store::{HomeScope, NewTemplate, NewUser, Role, StoreError, TemplateHome};

use crate::app::App;
use crate::audit::{Actor, Record};
use crate::auth::password;
use crate::auth::secrets::random_token;
use crate::context::RequestMeta;
use crate::icons::icon_url;
use crate::template_defaults;

pub const DEFAULT_ORG: &str = "default";
pub const ADMIN_USERNAME: &str = "admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The installation already existed.
    AlreadyBootstrapped,
    /// Created now; `generated_password` is set when none was configured (show it once).
    Bootstrapped { generated_password: Option<String> },
}

/// Creates what a fresh installation needs; does nothing on later starts, so deleted templates
/// stay deleted and a changed admin password stays changed.
pub async fn run(app: &App) -> anyhow::Result<Outcome> {
    if app.store.get_org_by_name(DEFAULT_ORG).await?.is_some() {
        return Ok(Outcome::AlreadyBootstrapped);
    }
    let org = match app.store.create_org(DEFAULT_ORG, app.config.default_quotas).await {
        Ok(org) => org,
        // Replicas starting together on a new database: the one whose organization was created bootstraps.
        Err(StoreError::Conflict(_)) => return Ok(Outcome::AlreadyBootstrapped),
        Err(err) => return Err(err.into()),
    };
    let generated = app.config.admin_password.is_none().then(|| random_token("", 18));
    let admin_password = app.config.admin_password.clone().or_else(|| generated.clone()).unwrap_or_default();
    let admin = app
        .store
        .create_user(NewUser {
            org_id: org.id,
            username: ADMIN_USERNAME.to_owned(),
            password_hash: password::hash_off_thread(admin_password).await?,
            role: Role::PlatformAdmin,
        })
        .await?;
    for template in catalog() {
        app.store.create_template(template).await?;
    }
    let meta = RequestMeta::internal();
    let record = Record::new("system.bootstrap", format!("org:{}", org.id)).org(org.id).details(serde_json::json!({
        "admin": admin.id,
        "templates": catalog().len(),
    }));
    app.audit(&meta, &Actor::system(), record).await.map_err(|e| anyhow::anyhow!("{}", e.message))?;
    tracing::info!(org = %org.id, admin = %admin.id, "bootstrapped a new installation");
    Ok(Outcome::Bootstrapped { generated_password: generated })
}

/// The seeded catalog: the images built from `images/`.
pub fn catalog() -> Vec<NewTemplate> {
    let template =
        |name: &str, display: &str, description: &str, icon: String, tags: &[&str], memory_mb: i64| NewTemplate {
            org_id: None,
            name: name.to_owned(),
            display_name: display.to_owned(),
            description: description.to_owned(),
            icon,
            image: format!("streamspace/{name}:latest"),
            env: Default::default(),
            cpu_millis: template_defaults::CPU_MILLIS,
            memory_mb,
            shm_mb: template_defaults::SHM_MB,
            port: template_defaults::PORT,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            enabled: true,
            egress_allow: Vec::new(),
            session_policy: Default::default(),
            // The catalog's applications keep what people save (bookmarks, profiles, files) in their home.
            home: TemplateHome { scope: HomeScope::User, size_mb: None },
        };
    vec![
        template(
            "chromium",
            "Chromium",
            "The open-source web browser behind Google Chrome.",
            icon_url("chromium.svg"),
            &["browser", "web"],
            template_defaults::MEMORY_MB,
        ),
        template(
            "firefox",
            "Firefox",
            "Mozilla Firefox ESR, the extended-support web browser.",
            icon_url("firefox.svg"),
            &["browser", "web"],
            template_defaults::MEMORY_MB,
        ),
        template(
            "desktop",
            "Linux desktop",
            "A full XFCE desktop with a terminal, file manager and text editor.",
            icon_url("desktop.svg"),
            &["desktop", "linux"],
            3072,
        ),
        template(
            "vscode",
            "VS Code",
            "Visual Studio Code (code-server) in its own window, with a terminal and the home folder open.",
            icon_url("vscode.svg"),
            &["development", "editor"],
            3072,
        ),
    ]
}
