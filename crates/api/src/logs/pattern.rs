//! CloudWatch Logs filter patterns, parsed once and matched against each event's message.
//!
//! Two forms are understood, both case-sensitive:
//! - terms: `ERROR` (the message contains it), `ERROR timeout` (both), `?ERROR ?WARN` (either),
//!   `-DEBUG` (not), `"exact phrase"` (any of these may be quoted);
//! - JSON: `{ $.level = "ERROR" }`, `{ $.latency > 100 && ($.user = "a*" || $.admin IS TRUE) }`
//!   over messages that are JSON objects (others never match): selectors `$.a.b[0]`,
//!   comparisons `=`, `!=` (strings, with `*` as a wildcard, or numbers) and `<`, `<=`, `>`,
//!   `>=` (numbers), `IS NULL`, `IS TRUE`, `IS FALSE`, `NOT EXISTS`.
//!
//! - a regular expression: `%ERROR|WARN%` (the message contains a match), in the `regex`
//!   crate's syntax, which runs in linear time whatever the pattern (no backreferences or
//!   look-around, which CloudWatch Logs refuses too), bounded in compiled size.
//!
//! Space-delimited patterns (`[a, b]`) are refused as invalid parameters rather than matched
//! wrongly.

use serde_json::Value;

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// The empty pattern: every event.
    All,
    /// Unstructured terms.
    Terms(Terms),
    /// A JSON pattern.
    Json(Expr),
    /// A regular expression (`%…%`).
    Regex(Regex),
}

/// A compiled regular expression, equal to another when their sources are.
#[derive(Debug, Clone)]
pub struct Regex(regex::Regex);

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// The longest regular expression accepted, as CloudWatch Logs' own limit.
const MAX_REGEX_LEN: usize = 1024;
/// The longest filter pattern (CloudWatch Logs' own limit).
pub const MAX_PATTERN_LEN: usize = 1024;
/// How deep parentheses may nest in a JSON pattern.
const MAX_DEPTH: usize = 32;

/// The terms of an unstructured pattern.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Terms {
    /// Every one must occur.
    pub all: Vec<String>,
    /// At least one must occur (when there are any).
    pub any: Vec<String>,
    /// None may occur.
    pub none: Vec<String>,
}

/// A JSON pattern's condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both hold.
    And(Box<Expr>, Box<Expr>),
    /// Either holds.
    Or(Box<Expr>, Box<Expr>),
    /// A test of one selected value.
    Test(Selector, Test),
}

/// A path into the event: `$.a.b[0]` is `[Key("a"), Key("b"), Index(0)]`.
pub type Selector = Vec<Step>;

/// One step of a selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// What is tested of a selected value.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// A comparison with a literal.
    Compare(Op, Literal),
    /// The value is JSON `null`.
    IsNull,
    /// The value is `true`.
    IsTrue,
    /// The value is `false`.
    IsFalse,
    /// There is no such value.
    NotExists,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A literal a value is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number.
    Number(f64),
    /// A string, where `*` matches any run of characters.
    Text(String),
}

/// Why a pattern does not parse; the message is the client's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

fn invalid(msg: impl Into<String>) -> PatternError {
    PatternError(msg.into())
}

impl Pattern {
    /// Parses a filter pattern.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.len() > MAX_PATTERN_LEN && text.chars().count() > MAX_PATTERN_LEN {
            return Err(invalid(format!(
                "Invalid filter pattern: longer than {MAX_PATTERN_LEN} characters."
            )));
        }
        let t = text.trim();
        if t.is_empty() {
            return Ok(Self::All);
        }
        if t.starts_with('{') {
            return Ok(Self::Json(JsonParser::new(t).pattern()?));
        }
        if t.starts_with('[') {
            return Err(invalid(
                "Space-delimited filter patterns ('[...]') are not supported by this server.",
            ));
        }
        if t.len() > 1 && t.starts_with('%') && t.ends_with('%') {
            return Ok(Self::Regex(regex(&t[1..t.len() - 1])?));
        }
        Ok(Self::Terms(parse_terms(t)?))
    }

    /// Whether an event's message matches.
    pub fn matches(&self, message: &str) -> bool {
        match self {
            Self::All => true,
            Self::Terms(t) => {
                t.all.iter().all(|w| message.contains(w.as_str()))
                    && !t.none.iter().any(|w| message.contains(w.as_str()))
                    && (t.any.is_empty() || t.any.iter().any(|w| message.contains(w.as_str())))
            }
            Self::Regex(r) => r.0.is_match(message),
            Self::Json(e) => {
                let m = message.trim();
                if !m.starts_with('{') {
                    return false;
                }
                match serde_json::from_str::<Value>(m) {
                    Ok(v @ Value::Object(_)) => e.eval(&v),
                    _ => false,
                }
            }
        }
    }
}

/// Compiles the body of a `%…%` pattern.
fn regex(body: &str) -> Result<Regex, PatternError> {
    if body.is_empty() {
        return Err(invalid(
            "Invalid regex: the expression between '%' is empty.",
        ));
    }
    if body.len() > MAX_REGEX_LEN {
        return Err(invalid(format!(
            "Invalid regex: longer than {MAX_REGEX_LEN} characters."
        )));
    }
    regex::RegexBuilder::new(body)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map(Regex)
        .map_err(|e| invalid(format!("Invalid regex: {e}")))
}

/// Characters that mean something in patterns and so cannot appear in a bare term.
const SPECIAL: &[char] = &[
    '{', '}', '[', ']', '(', ')', '%', '&', '|', '=', '<', '>', '!', '$', '"', '\'', '*',
];

fn parse_terms(text: &str) -> Result<Terms, PatternError> {
    let mut terms = Terms::default();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mode = match c {
            '?' | '-' => {
                chars.next();
                Some(c)
            }
            _ => None,
        };
        let word = match chars.peek() {
            Some(&(_, '"')) => {
                chars.next();
                let mut w = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                w.push(n);
                            }
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => w.push(c),
                    }
                }
                if !closed {
                    return Err(invalid(format!(
                        "Unterminated quoted term in '{}'",
                        &text[start..]
                    )));
                }
                w
            }
            _ => {
                let mut w = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                if w.is_empty() || w.contains(SPECIAL) {
                    let shown = format!("{}{w}", mode.map(String::from).unwrap_or_default());
                    return Err(invalid(format!("Invalid character(s) in term '{shown}'")));
                }
                w
            }
        };
        if word.is_empty() {
            continue;
        }
        match mode {
            Some('?') => terms.any.push(word),
            Some(_) => terms.none.push(word),
            None => terms.all.push(word),
        }
    }
    Ok(terms)
}

impl Expr {
    fn eval(&self, root: &Value) -> bool {
        match self {
            Self::And(a, b) => a.eval(root) && b.eval(root),
            Self::Or(a, b) => a.eval(root) || b.eval(root),
            Self::Test(sel, test) => {
                let found = select(root, sel);
                match (test, found) {
                    (Test::NotExists, v) => v.is_none(),
                    (_, None) => false,
                    (Test::IsNull, Some(v)) => v.is_null(),
                    (Test::IsTrue, Some(v)) => v == &Value::Bool(true),
                    (Test::IsFalse, Some(v)) => v == &Value::Bool(false),
                    (Test::Compare(op, lit), Some(v)) => compare(v, *op, lit),
                }
            }
        }
    }
}

fn select<'a>(root: &'a Value, sel: &Selector) -> Option<&'a Value> {
    sel.iter().try_fold(root, |v, step| match step {
        Step::Key(k) => v.as_object()?.get(k),
        Step::Index(i) => v.as_array()?.get(*i),
    })
}

fn compare(v: &Value, op: Op, lit: &Literal) -> bool {
    match lit {
        Literal::Number(n) => {
            let Some(x) = v.as_f64() else {
                return false;
            };
            match op {
                Op::Eq => x == *n,
                Op::Ne => x != *n,
                Op::Lt => x < *n,
                Op::Le => x <= *n,
                Op::Gt => x > *n,
                Op::Ge => x >= *n,
            }
        }
        Literal::Text(pattern) => {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return false,
            };
            match op {
                Op::Eq => glob(pattern, &text),
                Op::Ne => !glob(pattern, &text),
                _ => false,
            }
        }
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A recursive-descent parser of JSON patterns.
struct JsonParser<'a> {
    text: &'a str,
    pos: usize,
    /// Parentheses open where the parser is.
    depth: usize,
}

impl<'a> JsonParser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            depth: 0,
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn error(&self, what: &str) -> PatternError {
        let at = self.rest().trim();
        if at.is_empty() {
            invalid(format!("Invalid JSON filter pattern: {what} at its end"))
        } else {
            invalid(format!("Invalid JSON filter pattern: {what} at '{at}'"))
        }
    }

    fn pattern(&mut self) -> Result<Expr, PatternError> {
        if !self.eat("{") {
            return Err(self.error("expected '{'"));
        }
        let e = self.or()?;
        if !self.eat("}") {
            return Err(self.error("expected '}'"));
        }
        self.skip_ws();
        if !self.rest().is_empty() {
            return Err(self.error("unexpected text after '}'"));
        }
        Ok(e)
    }

    fn or(&mut self) -> Result<Expr, PatternError> {
        let mut e = self.and()?;
        while self.eat("||") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, PatternError> {
        let mut e = self.unary()?;
        while self.eat("&&") {
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, PatternError> {
        if self.eat("(") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error(&format!("parentheses nested more than {MAX_DEPTH} deep")));
            }
            let e = self.or()?;
            if !self.eat(")") {
                return Err(self.error("expected ')'"));
            }
            self.depth -= 1;
            return Ok(e);
        }
        let sel = self.selector()?;
        for (word, test) in [
            ("IS NULL", Test::IsNull),
            ("IS TRUE", Test::IsTrue),
            ("IS FALSE", Test::IsFalse),
            ("NOT EXISTS", Test::NotExists),
        ] {
            if self.eat(word) {
                return Ok(Expr::Test(sel, test));
            }
        }
        let op = if self.eat("!=") {
            Op::Ne
        } else if self.eat("<=") {
            Op::Le
        } else if self.eat(">=") {
            Op::Ge
        } else if self.eat("=") {
            Op::Eq
        } else if self.eat("<") {
            Op::Lt
        } else if self.eat(">") {
            Op::Gt
        } else {
            return Err(self.error("expected a comparison operator"));
        };
        let lit = self.literal()?;
        if matches!(lit, Literal::Text(_)) && !matches!(op, Op::Eq | Op::Ne) {
            return Err(self.error("strings can only be compared with '=' or '!='"));
        }
        Ok(Expr::Test(sel, Test::Compare(op, lit)))
    }

    fn selector(&mut self) -> Result<Selector, PatternError> {
        if !self.eat("$") {
            return Err(self.error("expected a selector starting with '$'"));
        }
        let mut steps = Vec::new();
        loop {
            let r = self.rest();
            if let Some(after) = r.strip_prefix('.') {
                let len = after
                    .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '@' | ':')))
                    .unwrap_or(after.len());
                if len == 0 {
                    self.pos += 1;
                    return Err(self.error("expected a member name"));
                }
                steps.push(Step::Key(after[..len].to_owned()));
                self.pos += 1 + len;
            } else if let Some(after) = r.strip_prefix('[') {
                let len = after.find(']').ok_or_else(|| self.error("expected ']'"))?;
                let index = after[..len]
                    .trim()
                    .parse()
                    .map_err(|_| self.error("expected an array index"))?;
                steps.push(Step::Index(index));
                self.pos += len + 2;
            } else {
                break;
            }
        }
        if steps.is_empty() {
            return Err(self.error("expected '.' or '[' after '$'"));
        }
        Ok(steps)
    }

    fn literal(&mut self) -> Result<Literal, PatternError> {
        self.skip_ws();
        let r = self.rest();
        if let Some(after) = r.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = after.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        self.pos += 1 + i + 1;
                        return Ok(Literal::Text(out));
                    }
                    c => out.push(c),
                }
            }
            return Err(self.error("unterminated string"));
        }
        let len = r
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '}' | '&' | '|'))
            .unwrap_or(r.len());
        let word = &r[..len];
        if word.is_empty() {
            return Err(self.error("expected a value"));
        }
        self.pos += len;
        Ok(match word.parse::<f64>() {
            Ok(n) if n.is_finite() => Literal::Number(n),
            _ => Literal::Text(word.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, message: &str) -> bool {
        Pattern::parse(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .matches(message)
    }

    #[test]
    fn empty_matches_everything() {
        assert!(m("", "anything"));
        assert!(m("   ", ""));
    }

    #[test]
    fn terms_all_any_none_and_phrases() {
        assert!(m("ERROR", "[ERROR] disk full"));
        assert!(!m("ERROR", "[error] disk full"));
        assert!(m("ERROR disk", "[ERROR] disk full"));
        assert!(!m("ERROR net", "[ERROR] disk full"));
        assert!(m("?ERROR ?WARN", "WARN low"));
        assert!(!m("?ERROR ?WARN", "INFO fine"));
        assert!(m("ERROR -disk", "ERROR net down"));
        assert!(!m("ERROR -disk", "ERROR disk full"));
        assert!(m("-DEBUG", "INFO x"));
        assert!(m("\"disk full\"", "[ERROR] disk full!"));
        assert!(!m("\"disk full\"", "full disk"));
        assert!(m("?\"a b\" ?c", "xa by"));
        assert!(m("-\"a b\"", "ab"));
        assert!(m("\"say \\\"hi\\\"\"", "they say \"hi\""));
        assert!(m("status-code 200", "status-code: 200"));
    }

    #[test]
    fn bad_terms_are_refused_with_the_term() {
        let e = Pattern::parse("ERROR (x)").unwrap_err();
        assert_eq!(e.0, "Invalid character(s) in term '(x)'");
        let e = Pattern::parse("ok -a=b").unwrap_err();
        assert_eq!(e.0, "Invalid character(s) in term '-a=b'");
        assert!(Pattern::parse("\"open").is_err());
        assert!(Pattern::parse("[a, b]").is_err());
        assert!(Pattern::parse("[a, b]").is_err());
    }

    #[test]
    fn regular_expressions() {
        assert!(m("%ERROR|WARN%", "a WARN here"));
        assert!(m("%ERROR|WARN%", "ERROR"));
        assert!(!m("%ERROR|WARN%", "error, lower case"));
        assert!(m("%[0-9]{3} ms%", "served in 120 ms"));
        assert!(!m("%^served%", "it served"));
        assert!(m("%^served%", "served at once"));
        for bad in ["%(%", "%%", "%a{1000000}%"] {
            let e = Pattern::parse(bad).unwrap_err();
            assert!(e.0.starts_with("Invalid regex"), "{bad}: {e}");
        }
        assert!(Pattern::parse(&format!("%{}%", "a".repeat(2000))).is_err());
        // A pattern that backtracking engines take exponential time over: linear here.
        assert!(!m("%(a+)+b%", &"a".repeat(10_000)));
    }

    #[test]
    fn json_comparisons() {
        let line = r#"{"level":"ERROR","n":7,"user":{"name":"alice","tags":["x","y"]},"ok":true,"none":null}"#;
        assert!(m(r#"{ $.level = "ERROR" }"#, line));
        assert!(m(r#"{$.level=ERROR}"#, line));
        assert!(!m(r#"{ $.level = "error" }"#, line));
        assert!(m(r#"{ $.level != "INFO" }"#, line));
        assert!(m("{ $.n > 5 }", line));
        assert!(m("{ $.n >= 7 }", line));
        assert!(!m("{ $.n < 7 }", line));
        assert!(m("{ $.n <= 7 }", line));
        assert!(m("{ $.n = 7 }", line));
        assert!(m("{ $.n != 8 }", line));
        assert!(m(r#"{ $.user.name = "ali*" }"#, line));
        assert!(m(r#"{ $.user.name = "*ic*" }"#, line));
        assert!(!m(r#"{ $.user.name = "bob*" }"#, line));
        assert!(m(r#"{ $.user.tags[1] = "y" }"#, line));
        assert!(m("{ $.ok IS TRUE }", line));
        assert!(!m("{ $.ok IS FALSE }", line));
        assert!(m("{ $.none IS NULL }", line));
        assert!(m("{ $.missing NOT EXISTS }", line));
        assert!(!m("{ $.level NOT EXISTS }", line));
        // A missing member fails every comparison, `!=` included.
        assert!(!m(r#"{ $.missing != "x" }"#, line));
        // A number is not a string and a string is not a number.
        assert!(!m(r#"{ $.level > 3 }"#, line));
    }

    #[test]
    fn json_and_or_and_grouping() {
        let line = r#"{"level":"ERROR","latency":1500,"user":"a1"}"#;
        assert!(m(r#"{ $.latency > 1000 && $.user = "a*" }"#, line));
        assert!(!m(r#"{ $.latency > 2000 && $.user = "a*" }"#, line));
        assert!(m(r#"{ $.latency > 2000 || $.user = "a*" }"#, line));
        assert!(m(
            r#"{ ($.level = "WARN" || $.level = "ERROR") && $.latency >= 1500 }"#,
            line
        ));
        assert!(!m(
            r#"{ ($.level = "WARN" || $.level = "INFO") && $.latency >= 1500 }"#,
            line
        ));
    }

    #[test]
    fn json_patterns_never_match_other_lines() {
        assert!(!m(r#"{ $.level = "ERROR" }"#, "ERROR plain text"));
        assert!(!m(r#"{ $.level = "ERROR" }"#, r#"["ERROR"]"#));
        assert!(!m(r#"{ $.level = "ERROR" }"#, r#"{"level": "ERROR""#));
        assert!(m(r#"{ $.level = "ERROR" }"#, "  {\"level\": \"ERROR\"}  "));
    }

    #[test]
    fn bad_json_patterns_say_where() {
        for p in [
            "{ $.a = }",
            "{ $.a }",
            "{ a = 1 }",
            "{ $.a = 1",
            "{ $.a = 1 } x",
            r#"{ $.a > "x" }"#,
            "{ ($.a = 1 }",
            "{ $.a[x] = 1 }",
            r#"{ $.a = "open }"#,
        ] {
            let e = Pattern::parse(p).unwrap_err();
            assert!(e.0.starts_with("Invalid JSON filter pattern"), "{p}: {e}");
        }
    }

    #[test]
    fn patterns_are_bounded_in_length_and_depth() {
        // Each would have overflowed the parser's stack, killing the server.
        let deep = format!("{{{}", "(".repeat(200_000));
        assert!(Pattern::parse(&deep).unwrap_err().0.contains("longer than"));
        let nested = format!("{{ {}$.a = 1{} }}", "(".repeat(40), ")".repeat(40));
        assert!(nested.len() <= MAX_PATTERN_LEN);
        assert!(Pattern::parse(&nested).unwrap_err().0.contains("nested"));
        let fine = format!("{{ {}$.a = 1{} }}", "(".repeat(30), ")".repeat(30));
        assert!(m(&fine, r#"{"a": 1}"#));
        // As long as CloudWatch Logs allows: the longest chain of terms evaluates and drops.
        let chain = format!("{{ {} }}", vec!["$.a=1"; 140].join("&&"));
        assert!(chain.len() <= MAX_PATTERN_LEN);
        assert!(m(&chain, r#"{"a": 1}"#));
    }

    #[test]
    fn globs() {
        assert!(glob("a*", "abc"));
        assert!(glob("*c", "abc"));
        assert!(glob("a*c", "abc"));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(!glob("a*b*c", "acb"));
        assert!(glob("*", ""));
        assert!(!glob("ab*ba", "aba"));
    }
}
