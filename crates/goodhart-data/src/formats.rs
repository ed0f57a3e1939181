//! File formats people bring and take away: JSONL, one JSON value a line, read
//! by one reader, and the common preference-pair line.

use std::io::{BufRead, Read as _};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One line of the common preference JSONL form, with goodhart's extra fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferenceLine {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    /// Who judged (default on import: the name given to the import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labeler: Option<String>,
    /// The two were judged equally good (chosen/rejected order carries no meaning).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tie: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_gold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_gold: Option<f64>,
}

/// A parsed JSONL line: its 1-based number and the value, or why it does not parse.
pub type Line<T> = (usize, std::result::Result<T, String>);

/// The longest JSONL line read (a completion of a few hundred thousand characters fits).
pub const MAX_LINE_BYTES: usize = 8 << 20;

/// Every non-blank line of JSONL from `reader` (`path` names it in I/O errors),
/// each a JSON object parsed as `T`; a line that is not UTF-8, not an object,
/// longer than [`MAX_LINE_BYTES`] or not a `T` is kept as its message, for the
/// caller to stop at or skip.
pub fn parse_jsonl<T: DeserializeOwned>(
    mut reader: impl BufRead,
    path: &Path,
) -> Result<Vec<Line<T>>> {
    let mut out = vec![];
    let mut buf = vec![];
    for n in 1.. {
        buf.clear();
        // Read at most one byte past the limit, so a huge line costs no more than that.
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?;
        if read == 0 {
            break;
        }
        if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            out.push((n, Err(format!("line longer than {MAX_LINE_BYTES} bytes"))));
            // Skip the rest of the line.
            loop {
                buf.clear();
                let r = (&mut reader)
                    .take(1 << 16)
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| Error::io(path, e))?;
                if r == 0 || buf.last() == Some(&b'\n') {
                    break;
                }
            }
            continue;
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            out.push((n, Err("not UTF-8 text".into())));
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        out.push((n, parse_object(line)));
    }
    Ok(out)
}

/// One line as a `T`, which must be written as a JSON object (serde would
/// also take a struct from an array of its fields). Read straight into `T`,
/// so a key written twice is an error, not the last one silently kept.
fn parse_object<T: DeserializeOwned>(line: &str) -> std::result::Result<T, String> {
    if !line.trim_start().starts_with('{') {
        return match serde_json::from_str::<serde::de::IgnoredAny>(line) {
            Ok(_) => Err("not a JSON object".into()),
            Err(e) => Err(e.to_string()),
        };
    }
    serde_json::from_str(line).map_err(|e| e.to_string())
}

/// Every non-blank line of the file at `path` as a `T`; the first bad line is
/// an error naming its number, and so is a file with no lines at all.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let lines = parse_jsonl(std::io::BufReader::new(file), path)?;
    if lines.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: 0,
            message: "no lines".into(),
        });
    }
    lines
        .into_iter()
        .map(|(line, value)| {
            value.map_err(|message| Error::Data {
                path: path.to_path_buf(),
                line,
                message,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_written_twice_or_an_array_is_a_bad_line() {
        let text = "{\"prompt\": \"p\", \"chosen\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n[\"p\", \"a\", \"c\"]\n";
        let lines: Vec<Line<PreferenceLine>> =
            parse_jsonl(text.as_bytes(), Path::new("x.jsonl")).unwrap();
        assert!(
            lines[0]
                .1
                .as_ref()
                .unwrap_err()
                .contains("duplicate field `chosen`"),
            "{lines:?}"
        );
        assert_eq!(lines[1].1.as_ref().unwrap_err(), "not a JSON object");
    }

    #[test]
    fn blank_lines_are_skipped_and_bad_lines_keep_their_number() {
        let text = "{\"a\": 1}\n\n  \nnot json\n{\"a\": 2}\n";
        let lines: Vec<Line<serde_json::Value>> =
            parse_jsonl(text.as_bytes(), Path::new("x.jsonl")).unwrap();
        let numbers: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 4, 5]);
        assert!(lines[1].1.is_err());
    }

    #[test]
    fn arrays_bad_utf8_and_overlong_lines_are_bad_lines_with_their_numbers() {
        let mut text = b"[\"p\", \"c\", \"r\"]\n".to_vec();
        text.extend(b"{\"prompt\": \"\xff\"}\n");
        text.extend(vec![b'x'; MAX_LINE_BYTES + 10]);
        text.extend(b"\n{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\"}\n");
        let lines: Vec<Line<PreferenceLine>> =
            parse_jsonl(text.as_slice(), Path::new("x.jsonl")).unwrap();
        let numbers: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 2, 3, 4]);
        assert_eq!(lines[0].1.as_ref().unwrap_err(), "not a JSON object");
        assert_eq!(lines[1].1.as_ref().unwrap_err(), "not UTF-8 text");
        assert!(lines[2].1.as_ref().unwrap_err().contains("longer than"));
        assert_eq!(lines[3].1.as_ref().unwrap().chosen, "c");
    }

    #[test]
    fn reading_stops_at_the_first_bad_line_and_rejects_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        std::fs::write(&path, "{\"a\": 1}\n{\"a\":\n").unwrap();
        let err = read_jsonl::<serde_json::Value>(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.jsonl:2:"), "{err}");
        std::fs::write(&path, "\n\n").unwrap();
        let err = read_jsonl::<serde_json::Value>(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no lines"), "{err}");
    }
}
