//! The server's state, below every handler: the label store and the file it
//! must still be, the tasks that draw pairs, the names the server answers to,
//! and the log of failed sign-ins. Handlers reach it through `App`'s methods
//! and run store work off the async threads with `blocking`.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use goodhart_data::feedback::{LabelStore, SessionLimits};
use goodhart_data::task::{self, Task};

use crate::error::ApiError;
use crate::store_file::StoreFile;

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
    /// The store's file as opened: a label is acknowledged only while it is
    /// still that file. (After `store`: its descriptor closes after SQLite's.)
    store_file: StoreFile,
    store_path: PathBuf,
    /// Set once the file was found removed, replaced, cut short or
    /// overwritten: writes are refused until the server is restarted.
    store_lost: AtomicBool,
    /// When recent sign-ins failed.
    failed_sign_ins: Mutex<VecDeque<Instant>>,
}

impl App {
    pub fn open(store: &Path) -> goodhart_data::Result<Arc<Self>> {
        Self::open_with(store, ServeOptions::default())
    }

    pub fn open_with(store: &Path, options: ServeOptions) -> goodhart_data::Result<Arc<Self>> {
        let unusable = |message: String| goodhart_data::Error::Store {
            path: store.to_path_buf(),
            message,
        };
        // A server that cannot write the store would refuse every label: say so now.
        if std::fs::metadata(store).is_ok_and(|m| m.permissions().readonly()) {
            return Err(unusable(
                "is read-only; the server needs to save labels".into(),
            ));
        }
        let mut labels = LabelStore::open_existing(store)?;
        let stamp = labels.stamp()?;
        let store_file = StoreFile::open(store, stamp)
            .map_err(|fault| unusable(format!("{fault}; the server needs to save labels")))?;
        Ok(Arc::new(Self {
            store: Mutex::new(labels),
            tasks: Mutex::new(HashMap::new()),
            hosts: RwLock::new(options.hosts.clone()),
            options,
            store_file,
            store_path: store.to_path_buf(),
            store_lost: AtomicBool::new(false),
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

    /// Whether the store's file is still the one opened and writable; when it
    /// is not (removed, replaced, cut short, overwritten, read-only), nothing
    /// may be acknowledged, and the log says why.
    pub(crate) fn check_store(&self) -> Result<(), ApiError> {
        if !self.store_lost.load(Ordering::SeqCst) {
            let Err(fault) = self.store_file.check() else {
                return Ok(());
            };
            let store = self.store_path.display();
            if fault.passing() {
                tracing::error!(%store, "{fault}: refusing writes until it is writable again");
            } else {
                self.store_lost.store(true, Ordering::SeqCst);
                tracing::error!(%store, "{fault}: refusing writes until the server is restarted");
            }
        }
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the label store is unavailable: labels are not being accepted (the server's log says why)",
        ))
    }

    /// Write to the store: refused unless its file passes [`App::check_store`]
    /// before, and answered 503 (not acknowledged) unless it passes again after
    /// the commit, so an acknowledgement means a fresh connection reads it.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut LabelStore) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.check_store()?;
        let written = f(&mut *self.store()?)?;
        self.check_store()?;
        Ok(written)
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
