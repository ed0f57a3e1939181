//! The steps of an answer's working, each checked alone.

use super::{Column, Question, Reply};

/// Is step `i` of the working wrong, checked alone? Steps are the columns
/// (each against the true column: its digits, carry and sum) and, last, the
/// assembly of the answer from the written columns (every column of the
/// question written, and the answer their digits): a local check, so an
/// answer that faithfully assembles a wrong column is caught only at that
/// column, not at the answer.
pub(super) fn step_is_wrong(q: &Question, reply: &Reply, i: usize) -> bool {
    let Reply::Answer {
        working, answer, ..
    } = reply
    else {
        return false;
    };
    // Columns past the question's digits are right as `0+0=0` (or taking the carry).
    let truth = q.columns_to(working.len());
    if i < working.len() {
        truth.get(i) != Some(&working[i])
    } else if i == working.len() && !working.is_empty() {
        working.len() < q.difficulty() as usize || *answer != assemble(working)
    } else {
        false
    }
}

/// The answer written columns add up to: each column's last digit, then the
/// last column's carry, most significant first, without the leading zeros of
/// columns written past the sum's digits.
fn assemble(working: &[Column]) -> String {
    let mut digits: Vec<u8> = working.iter().map(|c| c.sum % 10).collect();
    if let Some(last) = working.last() {
        if last.sum >= 10 {
            digits.push(last.sum / 10);
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}
