//! The log and what the terminal shows: every field of a log line and every
//! cell of a printed table has its control characters escaped, so a name or
//! path holding an escape sequence or a newline cannot colour, clear or forge
//! a line.

use std::borrow::Cow;

use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::EnvFilter;

use crate::progress::LogWriter;

/// `text` with each control character (ESC, a newline, DEL, ...) written as
/// its Rust escape (`\u{1b}`, `\n`); unchanged, and not copied, when it has none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Log to `writer` at `level` (or `GOODHART_LOG`), colour only on a terminal,
/// every field escaped.
pub fn init(level: &str, writer: LogWriter) {
    let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        match field.name() {
            "message" => write!(w, "{}", escape(&text)),
            name => write!(w, "{name}={}", escape(&text)),
        }
    })
    .delimited(" ");
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("GOODHART_LOG").unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .with_writer(writer)
        .fmt_fields(fields)
        // Colour only on a terminal: a log written to a file or a pipe stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("Zoë 日本"), "Zoë 日本");
        assert_eq!(
            escape("\u{1b}[2Jx\nINFO sign_in name=admin\r\u{7f}\u{9b}"),
            "\\u{1b}[2Jx\\nINFO sign_in name=admin\\r\\u{7f}\\u{9b}"
        );
    }
}
