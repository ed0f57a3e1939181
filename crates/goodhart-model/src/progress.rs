//! How long work reports progress without the library printing anything:
//! the CLI implements this with progress bars, tests with nothing.

pub trait Progress: Sync {
    /// A stage of `total` units begins.
    fn start(&self, _stage: &str, _total: u64) {}
    /// `n` more units are done.
    fn advance(&self, _n: u64) {}
    /// A short status line for the current stage (latest loss, ...).
    fn message(&self, _msg: &str) {}
    /// The current stage is over.
    fn finish(&self) {}
    /// An independent reporter for work running beside this one (one task of a
    /// run), its stages prefixed by `name`.
    fn lane(&self, _name: &str) -> Box<dyn Progress + '_> {
        Box::new(Silent)
    }
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
