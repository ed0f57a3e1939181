//! The library's error type: every failure a user can cause names the file,
//! field or tensor it came from, so the CLI can print one clear line.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration file (or embedded config) that does not parse or validate.
    #[error("{source_name}: {message}")]
    Config {
        source_name: String,
        message: String,
    },

    /// A setting that parses but makes no sense (n < 1, q outside (0, 1], ...).
    #[error("invalid setting `{field}`: {message}")]
    Invalid { field: String, message: String },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A checkpoint directory that is missing a file, truncated, or disagrees with its config.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },

    /// Text the tokenizer cannot encode.
    #[error("cannot tokenize: {0}")]
    Tokenize(String),

    /// A data file (JSONL, ...) with a bad line.
    #[error("{}:{line}: {message}", path.display())]
    Data {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A NaN or infinity in training; the last good checkpoint is kept.
    #[error("{what} diverged at step {step}: {quantity} is {value}")]
    Diverged {
        what: String,
        step: usize,
        quantity: String,
        value: f64,
    },

    /// Two artefacts that do not belong together (a reward model for another tokenizer, ...).
    #[error("mismatch: {0}")]
    Mismatch(String),

    /// The label store.
    #[error("label store {}: {message}", path.display())]
    Store { path: PathBuf, message: String },

    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),

    /// A fault in goodhart itself (a panic caught at a stage's edge): please report it.
    #[error("internal error (a bug in goodhart; please report it): {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An invalid setting's field as seen from the section `at` holding it
    /// (`n_head` within `reward_model.model`); other errors unchanged.
    pub fn within(self, at: &str) -> Self {
        match self {
            Error::Invalid { field, message } => Error::Invalid {
                field: format!("{at}.{field}"),
                message,
            },
            other => other,
        }
    }

    pub fn checkpoint(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
}

/// Attach a path to `std::io::Result`s.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
