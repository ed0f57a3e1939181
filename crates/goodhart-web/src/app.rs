//! The server's state, below every handler: the label store and the file it
//! must still be, the tasks that draw pairs, the names the server answers to,
//! and the log of failed sign-ins. Handlers reach it through `App`'s methods
//! and run store work off the async threads with `blocking`.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use goodhart_data::feedback::{LabelStore, SessionLimits};
use goodhart_data::task::{self, Task};

use crate::error::ApiError;

/// Failed sign-ins allowed per minute (all names together) before the server
/// answers 429 to every sign-in until the minute has passed.
pub const SIGN_IN_FAILURES_PER_MINUTE: usize = 30;

/// How the server is exposed.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// `Host` values accepted besides the address served on (`--host`): the
    /// names people reach the server by. Any other is refused, so a foreign
    /// name that resolves here (DNS rebinding) gets nothing.
    pub hosts: Vec<String>,
    /// Mark the session cookie `Secure` (when served behind TLS).
    pub secure_cookie: bool,
    /// How long sessions last on the server.
    pub sessions: SessionLimits,
}

/// The server's state: the store (one connection; SQLite has one writer at a
/// time anyway), the tasks that render pairs (built on first use), and what
/// it needs to refuse what it must.
pub struct App {
    store: Mutex<LabelStore>,
    tasks: Mutex<HashMap<String, Option<Arc<dyn Task>>>>,
    options: ServeOptions,
    /// Accepted `Host` values; empty (a router used on its own) accepts any.
    hosts: RwLock<Vec<String>>,
    /// The store's file and its identity when opened: a label is acknowledged
    /// only while that same file is there.
    store_path: PathBuf,
    store_identity: Option<(u64, u64)>,
    /// When recent sign-ins failed.
    failed_sign_ins: Mutex<VecDeque<Instant>>,
}

/// A file's device and inode: what stays the same while it is the same file.
fn identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|m| (m.len(), 0))
    }
}

impl App {
    pub fn open(store: &Path) -> goodhart_data::Result<Arc<Self>> {
        Self::open_with(store, ServeOptions::default())
    }

    pub fn open_with(store: &Path, options: ServeOptions) -> goodhart_data::Result<Arc<Self>> {
        // A server that cannot write the store would refuse every label: say so now.
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(store) {
            return Err(goodhart_data::Error::Store {
                path: store.to_path_buf(),
                message: format!("cannot be written ({e}); the server needs to save labels"),
            });
        }
        Ok(Arc::new(Self {
            store: Mutex::new(LabelStore::open_existing(store)?),
            tasks: Mutex::new(HashMap::new()),
            hosts: RwLock::new(options.hosts.clone()),
            options,
            store_path: store.to_path_buf(),
            store_identity: identity(store),
            failed_sign_ins: Mutex::new(VecDeque::new()),
        }))
    }

    /// How the server is exposed (the cookie's flags, how long sessions last).
    pub(crate) fn options(&self) -> &ServeOptions {
        &self.options
    }

    /// Accept `Host` values naming `addr` too (what `serve` listens on).
    pub(crate) fn allow_address(&self, addr: std::net::SocketAddr) {
        let mut hosts = self.hosts.write().expect("host list");
        let port = addr.port();
        hosts.push(addr.to_string());
        if addr.ip().is_loopback() {
            hosts.extend([
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]);
        }
    }

    /// Whether a request's `Host` is one this server was told it has.
    pub(crate) fn knows_host(&self, host: Option<&str>) -> bool {
        let hosts = self.hosts.read().expect("host list");
        hosts.is_empty() || host.is_some_and(|h| hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
    }

    /// Whether the store file is still the one opened; when it is not (removed,
    /// replaced), nothing may be acknowledged, and the log says why.
    pub(crate) fn check_store(&self) -> Result<(), ApiError> {
        if self.store_identity.is_some() && identity(&self.store_path) == self.store_identity {
            return Ok(());
        }
        tracing::error!(store = %self.store_path.display(), "the label store file was removed or replaced: refusing writes until the server is restarted");
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the label store is unavailable: labels are not being accepted (the server's log says why)",
        ))
    }

    pub(crate) fn store(&self) -> Result<MutexGuard<'_, LabelStore>, ApiError> {
        self.store.lock().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable; restart the server",
            )
        })
    }

    /// The bundled task a pair belongs to (its own rendering), if there is one.
    pub(crate) fn task(&self, name: &str) -> Option<Arc<dyn Task>> {
        let mut tasks = self.tasks.lock().ok()?;
        tasks
            .entry(name.to_string())
            .or_insert_with(|| {
                let built = task::by_name(name).and_then(|c| c.build(0));
                built.ok().map(Arc::from)
            })
            .clone()
    }

    /// Whether sign-ins are refused for now: [`SIGN_IN_FAILURES_PER_MINUTE`]
    /// failed within the last minute.
    pub(crate) fn sign_ins_throttled(&self) -> bool {
        let minute = Duration::from_secs(60);
        let mut failed = self.failed_sign_ins.lock().expect("sign-in log");
        while failed.front().is_some_and(|t| t.elapsed() > minute) {
            failed.pop_front();
        }
        failed.len() >= SIGN_IN_FAILURES_PER_MINUTE
    }

    pub(crate) fn note_failed_sign_in(&self) {
        self.failed_sign_ins
            .lock()
            .expect("sign-in log")
            .push_back(Instant::now());
    }
}

/// Run store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request's worker failed",
            )
        })?
}
