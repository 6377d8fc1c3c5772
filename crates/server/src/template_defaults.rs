//! What a template gets for what it does not say: in a request to create one, and in the catalog
//! seeded on first start.

pub const CPU_MILLIS: i64 = 2000;
pub const MEMORY_MB: i64 = 2048;
pub const SHM_MB: i64 = 512;
/// The port the session images' streamer listens on.
pub const PORT: i32 = 8080;
