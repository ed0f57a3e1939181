//! Formal goals: linear temporal logic over the finite trajectory of a
//! simulator's full state (LTLf), for example
//! `F at_goal & G !vase_broken & G !button_pressed`.
//!
//! Grammar, loosest binding first:
//! ```text
//! formula := or ("->" formula)?          implication, right-associative
//! or      := and ("|" and)*
//! and     := until ("&" until)*
//! until   := unary ("U" until)?          right-associative
//! unary   := ("!" | "X" | "F" | "G") unary | atom
//! atom    := "(" formula ")" | "true" | "false" | predicate | "steps" cmp integer
//! cmp     := "<=" | "<" | ">=" | ">" | "=="
//! ```
//! `X` is strong next (false at the last state). Besides satisfied/violated,
//! a formula has a robustness margin: predicates count +1 when they hold and
//! minus their shortfall (at most 1) when not, `steps <= k`
//! counts how many steps are left to spare; `&`/`G` take minima, `|`/`F` maxima.

use std::fmt;

use crate::error::{Error, Result};

/// The state of the world at one time step, as the formal goal sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorldState {
    /// Named boolean facts (at_goal, vase_broken, ...).
    pub facts: Vec<(&'static str, bool)>,
    /// How far a false fact is from holding, in (0, 1] (e.g. the distance to
    /// the goal over the map's size): its robustness is minus this instead of
    /// -1, which makes the margin a graded signal. Facts not listed count 1.
    pub shortfalls: Vec<(&'static str, f64)>,
    /// Moves taken so far.
    pub steps: u32,
}

impl WorldState {
    fn fact(&self, name: &str) -> Option<bool> {
        self.facts.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }

    /// Robustness of a predicate: +1 when it holds, minus its shortfall (default 1) when not.
    fn margin(&self, name: &str) -> f64 {
        if self.fact(name).unwrap_or(false) {
            return 1.0;
        }
        let shortfall = self
            .shortfalls
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(1.0, |&(_, d)| d);
        -shortfall.clamp(f64::MIN_POSITIVE, 1.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Le,
    Lt,
    Ge,
    Gt,
    Eq,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Formula {
    True,
    False,
    Pred(String),
    Steps(Cmp, u32),
    Not(Box<Formula>),
    And(Box<Formula>, Box<Formula>),
    Or(Box<Formula>, Box<Formula>),
    Implies(Box<Formula>, Box<Formula>),
    Next(Box<Formula>),
    Eventually(Box<Formula>),
    Always(Box<Formula>),
    Until(Box<Formula>, Box<Formula>),
}

/// How a trajectory fares against a formula.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub satisfied: bool,
    /// Positive when satisfied, negative when violated; larger magnitude = more room.
    pub robustness: f64,
}

impl Formula {
    /// Parse `text`; `predicates` lists the names the world defines.
    pub fn parse(text: &str, predicates: &[&str]) -> Result<Self> {
        let tokens = lex(text)?;
        if tokens.len() > MAX_TOKENS {
            return Err(spec_error(
                text,
                tokens[MAX_TOKENS].col,
                format!("longer than {MAX_TOKENS} tokens"),
            ));
        }
        let mut p = Parser {
            text,
            tokens,
            pos: 0,
            predicates,
            depth: 0,
        };
        let f = p.formula()?;
        if let Some(t) = p.peek() {
            return Err(p.error(t.col, format!("unexpected {} after the formula", t.kind)));
        }
        Ok(f)
    }

    /// Evaluate on a trajectory of at least one state (the initial one).
    pub fn evaluate(&self, trace: &[WorldState]) -> Verdict {
        let r = if trace.is_empty() {
            -1.0
        } else {
            self.robustness(trace)[0]
        };
        Verdict {
            satisfied: r > 0.0,
            robustness: r,
        }
    }

    /// Robustness at every position of `tr` (non-empty), bottom-up over the
    /// subformulas: time linear in formula size x trajectory length.
    fn robustness(&self, tr: &[WorldState]) -> Vec<f64> {
        let n = tr.len();
        match self {
            Formula::True => vec![1.0; n],
            Formula::False => vec![-1.0; n],
            Formula::Pred(name) => tr.iter().map(|s| s.margin(name)).collect(),
            Formula::Steps(cmp, k) => tr
                .iter()
                .map(|st| {
                    // Half a step of slack puts the boundary strictly inside the satisfied side.
                    let (s, k) = (st.steps as f64, *k as f64);
                    match cmp {
                        Cmp::Le => k - s + 0.5,
                        Cmp::Lt => k - s - 0.5,
                        Cmp::Ge => s - k + 0.5,
                        Cmp::Gt => s - k - 0.5,
                        Cmp::Eq => 0.5 - (s - k).abs(),
                    }
                })
                .collect(),
            Formula::Not(f) => f.robustness(tr).into_iter().map(|r| -r).collect(),
            Formula::And(a, b) => zip_with(a.robustness(tr), b.robustness(tr), f64::min),
            Formula::Or(a, b) => zip_with(a.robustness(tr), b.robustness(tr), f64::max),
            Formula::Implies(a, b) => {
                zip_with(a.robustness(tr), b.robustness(tr), |x, y| (-x).max(y))
            }
            // Strong next: false at the last state.
            Formula::Next(f) => {
                let mut r = f.robustness(tr);
                r.remove(0);
                r.push(-1.0);
                r
            }
            Formula::Eventually(f) => suffix(f.robustness(tr), f64::NEG_INFINITY, f64::max),
            Formula::Always(f) => suffix(f.robustness(tr), f64::INFINITY, f64::min),
            // a U b at i: b at some j >= i, a at every i <= k < j;
            // U(i) = max(b(i), min(a(i), U(i + 1))), U(n) = -inf.
            Formula::Until(a, b) => {
                let (a, b) = (a.robustness(tr), b.robustness(tr));
                let mut out = vec![0.0; n];
                let mut next = f64::NEG_INFINITY;
                for i in (0..n).rev() {
                    next = b[i].max(a[i].min(next));
                    out[i] = next;
                }
                out
            }
        }
    }
}

fn zip_with(a: Vec<f64>, b: Vec<f64>, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.into_iter().zip(b).map(|(x, y)| f(x, y)).collect()
}

/// `out[i] = fold(r[i..])`, from the end.
fn suffix(mut r: Vec<f64>, init: f64, fold: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let mut acc = init;
    for x in r.iter_mut().rev() {
        acc = fold(acc, *x);
        *x = acc;
    }
    r
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Formula::True => write!(f, "true"),
            Formula::False => write!(f, "false"),
            Formula::Pred(p) => write!(f, "{p}"),
            Formula::Steps(c, k) => {
                let op = match c {
                    Cmp::Le => "<=",
                    Cmp::Lt => "<",
                    Cmp::Ge => ">=",
                    Cmp::Gt => ">",
                    Cmp::Eq => "==",
                };
                write!(f, "steps {op} {k}")
            }
            Formula::Not(a) => write!(f, "!{a}"),
            Formula::And(a, b) => write!(f, "({a} & {b})"),
            Formula::Or(a, b) => write!(f, "({a} | {b})"),
            Formula::Implies(a, b) => write!(f, "({a} -> {b})"),
            Formula::Next(a) => write!(f, "X {a}"),
            Formula::Eventually(a) => write!(f, "F {a}"),
            Formula::Always(a) => write!(f, "G {a}"),
            Formula::Until(a, b) => write!(f, "({a} U {b})"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Ident(String),
    Int(u32),
    Op(&'static str),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Ident(s) => write!(f, "`{s}`"),
            Kind::Int(n) => write!(f, "number {n}"),
            Kind::Op(o) => write!(f, "`{o}`"),
        }
    }
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    /// 1-based column of the token's first character.
    col: usize,
}

const OPS: [&str; 15] = [
    "->", "<=", ">=", "==", "<", ">", "!", "&", "|", "(", ")", "X", "F", "G", "U",
];

fn lex(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_lowercase() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token {
                kind: Kind::Ident(chars[start..i].iter().collect()),
                col,
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s
                .parse()
                .map_err(|_| spec_error(text, col, format!("number {s} is too large")))?;
            tokens.push(Token {
                kind: Kind::Int(n),
                col,
            });
        } else if let Some(op) = OPS
            .iter()
            .find(|op| chars[i..].iter().take(op.len()).copied().eq(op.chars()))
        {
            // `F`, `G`, `X`, `U` are operators only as whole words.
            if op.as_bytes()[0].is_ascii_uppercase() && next_is_word(&chars, i) {
                return Err(spec_error(
                    text,
                    col,
                    format!("unexpected character {c:?} (operators stand apart: `F at_goal`)"),
                ));
            }
            tokens.push(Token {
                kind: Kind::Op(op),
                col,
            });
            i += op.len();
        } else {
            return Err(spec_error(text, col, format!("unexpected character {c:?}")));
        }
    }
    Ok(tokens)
}

/// Is the character after `i` part of a word (so `Foo` is not the operator `F`)?
fn next_is_word(chars: &[char], i: usize) -> bool {
    chars
        .get(i + 1)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
}

/// One line: where, what, and the formula (shortened when long).
fn spec_error(text: &str, col: usize, message: String) -> Error {
    let shown: String = text.chars().take(80).collect();
    let more = if text.chars().count() > 80 { "..." } else { "" };
    Error::invalid(
        "spec",
        format!("column {col}: {message} (in `{shown}{more}`)"),
    )
}

/// The longest formula read, in tokens, and the deepest nesting of
/// parentheses and unary operators: a goal is a few dozen tokens, and these
/// bounds keep every recursion over a formula far from the stack's end.
pub const MAX_TOKENS: usize = 1000;
pub const MAX_NESTING: usize = 64;

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    predicates: &'a [&'a str],
    /// Parentheses and unary operators open around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn error(&self, col: usize, message: String) -> Error {
        spec_error(self.text, col, message)
    }

    fn end_col(&self) -> usize {
        self.text.chars().count() + 1
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Token { kind: Kind::Op(o), .. }) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn formula(&mut self) -> Result<Formula> {
        let lhs = self.or()?;
        if self.eat("->") {
            return Ok(Formula::Implies(Box::new(lhs), Box::new(self.formula()?)));
        }
        Ok(lhs)
    }

    fn or(&mut self) -> Result<Formula> {
        let mut f = self.and()?;
        while self.eat("|") {
            f = Formula::Or(Box::new(f), Box::new(self.and()?));
        }
        Ok(f)
    }

    fn and(&mut self) -> Result<Formula> {
        let mut f = self.until()?;
        while self.eat("&") {
            f = Formula::And(Box::new(f), Box::new(self.until()?));
        }
        Ok(f)
    }

    fn until(&mut self) -> Result<Formula> {
        let lhs = self.unary()?;
        if self.eat("U") {
            return Ok(Formula::Until(Box::new(lhs), Box::new(self.until()?)));
        }
        Ok(lhs)
    }

    /// Run `parse` one level deeper, refusing to nest past [`MAX_NESTING`].
    fn nested(
        &mut self,
        col: usize,
        parse: impl FnOnce(&mut Self) -> Result<Formula>,
    ) -> Result<Formula> {
        if self.depth == MAX_NESTING {
            return Err(self.error(col, format!("nested deeper than {MAX_NESTING} levels")));
        }
        self.depth += 1;
        let f = parse(self);
        self.depth -= 1;
        f
    }

    fn unary(&mut self) -> Result<Formula> {
        let col = self.peek().map_or(self.end_col(), |t| t.col);
        for (op, make) in [
            ("!", Formula::Not as fn(Box<Formula>) -> Formula),
            ("X", Formula::Next),
            ("F", Formula::Eventually),
            ("G", Formula::Always),
        ] {
            if self.eat(op) {
                return Ok(make(Box::new(self.nested(col, Self::unary)?)));
            }
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Formula> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.error(
                self.end_col(),
                "expected a predicate, `(` or an operator, found the end".into(),
            ));
        };
        self.pos += 1;
        match tok.kind {
            Kind::Op("(") => {
                let f = self.nested(tok.col, Self::formula)?;
                if !self.eat(")") {
                    let col = self.peek().map_or(self.end_col(), |t| t.col);
                    return Err(self.error(
                        col,
                        format!("expected `)` to close the `(` at column {}", tok.col),
                    ));
                }
                Ok(f)
            }
            Kind::Ident(name) if name == "true" => Ok(Formula::True),
            Kind::Ident(name) if name == "false" => Ok(Formula::False),
            Kind::Ident(name) if name == "steps" => {
                let cmp = match self.peek().map(|t| &t.kind) {
                    Some(Kind::Op("<=")) => Cmp::Le,
                    Some(Kind::Op("<")) => Cmp::Lt,
                    Some(Kind::Op(">=")) => Cmp::Ge,
                    Some(Kind::Op(">")) => Cmp::Gt,
                    Some(Kind::Op("==")) => Cmp::Eq,
                    _ => {
                        let col = self.peek().map_or(self.end_col(), |t| t.col);
                        return Err(self.error(
                            col,
                            "expected a comparison (<=, <, >=, >, ==) after `steps`".into(),
                        ));
                    }
                };
                self.pos += 1;
                match self.peek().cloned() {
                    Some(Token {
                        kind: Kind::Int(k), ..
                    }) => {
                        self.pos += 1;
                        Ok(Formula::Steps(cmp, k))
                    }
                    other => Err(self.error(
                        other.map_or(self.end_col(), |t| t.col),
                        "expected a whole number after the comparison".into(),
                    )),
                }
            }
            Kind::Ident(name) => {
                if self.predicates.contains(&name.as_str()) {
                    Ok(Formula::Pred(name))
                } else {
                    Err(self.error(
                        tok.col,
                        format!(
                            "unknown predicate `{name}` (known: {}, steps)",
                            self.predicates.join(", ")
                        ),
                    ))
                }
            }
            other => Err(self.error(
                tok.col,
                format!("expected a predicate or `(`, found {other}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
