//! Setting an experiment key by its dotted path: the experiment as a TOML
//! table, the value put in place, and the result parsed and validated again
//! (so a swept value is checked exactly as one written in the file).

use super::Experiment;
use crate::error::{Error, Result};

/// The experiment with each `keys[i]` set to `values[i]`; a bad setting is
/// reported as coming from `what` ("the sweep's grid").
pub(super) fn apply(
    exp: &Experiment,
    keys: &[String],
    values: &[toml::Value],
    what: &str,
) -> Result<Experiment> {
    if keys.is_empty() {
        return Ok(exp.clone());
    }
    let mut table: toml::Table =
        toml::from_str(&exp.to_toml()).expect("an experiment reads back as TOML");
    for (key, value) in keys.iter().zip(values) {
        set_key(&mut table, key, value.clone())?;
    }
    let text = toml::to_string_pretty(&table).expect("a table serialises");
    let setting: Vec<String> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    Experiment::parse(&text, &format!("{what} ({})", setting.join(", ")))
}

/// A table of settings as (dotted key, value) pairs, in the table's order:
/// `{task = {answers = {sft = {steps = 5}}}}` is `task.answers.sft.steps = 5`.
pub(super) fn flatten(table: &toml::Table) -> Vec<(String, toml::Value)> {
    let mut out = vec![];
    for (k, v) in table {
        match v {
            toml::Value::Table(inner) => out.extend(
                flatten(inner)
                    .into_iter()
                    .map(|(rest, v)| (format!("{k}.{rest}"), v)),
            ),
            leaf => out.push((k.clone(), leaf.clone())),
        }
    }
    out
}

/// Set `key` (dotted: tables by key, arrays by element name, kind, index or
/// `*`) in `table`. Array elements must exist; a table the experiment left
/// out is added (as if written in the file, so what it does not set keeps
/// the section's defaults), and the experiment's own parser then says
/// whether each added key is one.
pub fn set_key(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::invalid(key, "an empty part in a dotted key"));
    }
    let mut matched = 0;
    set_in_table(table, &parts, key, 0, &value, &mut matched)?;
    if matched == 0 {
        return Err(Error::invalid(key, "no array element matches `*`"));
    }
    Ok(())
}

fn set_in_table(
    table: &mut toml::Table,
    parts: &[&str],
    key: &str,
    depth: usize,
    value: &toml::Value,
    matched: &mut usize,
) -> Result<()> {
    let part = parts[depth];
    if depth + 1 == parts.len() {
        if let Some(old) = table.get(part) {
            if old.is_table()
                || old.is_array()
                    && old
                        .as_array()
                        .is_some_and(|a| a.iter().any(|v| v.is_table()))
            {
                return Err(Error::invalid(
                    key,
                    format!("`{part}` is a section, not a value: name a key inside it"),
                ));
            }
        }
        table.insert(part.to_string(), value.clone());
        *matched += 1;
        return Ok(());
    }
    let next = table
        .entry(part)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    set_in_value(next, parts, key, depth + 1, value, matched)
}

fn set_in_value(
    node: &mut toml::Value,
    parts: &[&str],
    key: &str,
    depth: usize,
    value: &toml::Value,
    matched: &mut usize,
) -> Result<()> {
    let here = parts[..depth].join(".");
    match node {
        toml::Value::Table(t) => set_in_table(t, parts, key, depth, value, matched),
        toml::Value::Array(items) => {
            let part = parts[depth];
            let names: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, v)| element_name(v, i))
                .collect();
            let chosen: Vec<usize> = if part == "*" {
                (0..items.len()).collect()
            } else if let Ok(i) = part.parse::<usize>() {
                (i < items.len()).then_some(i).into_iter().collect()
            } else {
                names
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| *n == part)
                    .map(|(i, _)| i)
                    .collect()
            };
            if chosen.is_empty() {
                return Err(Error::invalid(
                    key,
                    format!(
                        "`{here}` has no element `{part}` (it has: {}; or an index, or `*`)",
                        names.join(", ")
                    ),
                ));
            }
            if depth + 1 == parts.len() {
                return Err(Error::invalid(
                    key,
                    format!("`{here}.{part}` is a section, not a value: name a key inside it"),
                ));
            }
            for i in chosen {
                set_in_value(&mut items[i], parts, key, depth + 1, value, matched)?;
            }
            Ok(())
        }
        _ => Err(Error::invalid(
            key,
            format!(
                "`{here}` is a value, not a section: `{}` cannot be inside it",
                parts[depth]
            ),
        )),
    }
}

/// How a dotted key names an array element: its `name`, else its `kind`
/// (a task without a name is called by its kind), else its index.
fn element_name(v: &toml::Value, i: usize) -> String {
    let field = |k: &str| v.get(k).and_then(|n| n.as_str()).map(str::to_string);
    field("name")
        .or_else(|| field("kind"))
        .unwrap_or_else(|| i.to_string())
}
