//! Subscription filter policies: parsed and checked once (with SNS's error texts), matched
//! against a message's attributes or its JSON body. Pure: no IO.
//!
//! A policy is a JSON object. Its keys are ANDed; each key's array of match values is ORed; a
//! `$or` key holding two or more objects makes its objects alternatives. In the body scope,
//! nested objects address nested properties (a dotted key is the same path), and a value that is
//! an array matches if any element does. Operators: exact strings, numbers, booleans and `null`;
//! `prefix`, `suffix`, `equals-ignore-case`, `wildcard`; `anything-but` (values, or a `prefix`,
//! `suffix`, `equals-ignore-case` or `wildcard` pattern); `numeric` (`=`, or one or two bounds);
//! `exists`; `cidr`.
//!
//! Types do not cross: a string condition never matches a `Number` attribute, nor a number
//! condition a `String` one. `Binary` attributes are ignored. A `String.Array` value is parsed as
//! JSON; one that does not parse matches nothing. `anything-but` and `null` never match a
//! property that is absent; `exists: false` needs the message to have some attribute.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{Map, Value};

/// Most keys a policy may have.
const MAX_KEYS: usize = 5;
/// Most value combinations a policy may have.
const MAX_COMBINATIONS: u64 = 150;
/// The largest policy, bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// The most a policy may hold parsed, bytes (see [`FilterPolicy::weight`]): a body-scope policy
/// repeats its key paths in every alternative, so 256 KiB of text could hold about 38 MB, kept
/// for every message matched. Refused beyond (a limit SNS does not state).
pub const MAX_WEIGHT: usize = 4 << 20;
/// Operators that make an object a match expression rather than a nested policy or an `$or`
/// alternative.
const OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
];

/// What a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The message's attributes (the default).
    MessageAttributes,
    /// The message itself, a JSON object.
    MessageBody,
}

/// A message attribute as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    /// `String`, `Number`, `Binary`, `String.Array`, or one with a custom suffix.
    pub data_type: String,
    /// The value (Base64 for `Binary`).
    pub value: String,
}

/// A parsed, checked filter policy.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPolicy {
    root: Group,
}

/// Conditions that must all hold, and sets of alternatives of which one must.
#[derive(Debug, Clone, PartialEq, Default)]
struct Group {
    leaves: Vec<Leaf>,
    ors: Vec<Vec<Group>>,
}

/// A property (its path) and the match values of which one must match it.
#[derive(Debug, Clone, PartialEq)]
struct Leaf {
    path: Vec<String>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    Wildcard(String),
    AnythingBut(Vec<Scalar>),
    AnythingButPattern(Box<Condition>),
    Numeric(Range),
    Exists(bool),
    Cidr(IpAddr, u8),
}

/// A value of a message, or an excluded one.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl Group {
    fn weight(&self) -> usize {
        let leaves: usize = self.leaves.iter().map(Leaf::weight).sum();
        let ors: usize = self.ors.iter().flatten().map(Group::weight).sum();
        size_of::<Self>() + leaves + ors
    }
}

impl Leaf {
    fn weight(&self) -> usize {
        let path: usize = self
            .path
            .iter()
            .map(|p| size_of::<String>() + p.len())
            .sum();
        let conditions: usize = self.conditions.iter().map(Condition::weight).sum();
        size_of::<Self>() + path + conditions
    }
}

impl Condition {
    fn weight(&self) -> usize {
        size_of::<Self>()
            + match self {
                Condition::Str(s)
                | Condition::Prefix(s)
                | Condition::Suffix(s)
                | Condition::EqualsIgnoreCase(s)
                | Condition::Wildcard(s) => s.len(),
                Condition::AnythingBut(values) => values
                    .iter()
                    .map(|v| match v {
                        Scalar::Str(s) => size_of::<Scalar>() + s.len(),
                        _ => size_of::<Scalar>(),
                    })
                    .sum(),
                Condition::AnythingButPattern(c) => c.weight(),
                _ => 0,
            }
    }
}

/// `numeric`: an equality, or bounds (inclusive when the flag says so).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Range {
    low: Option<(f64, bool)>,
    high: Option<(f64, bool)>,
}

type Parsed<T> = Result<T, String>;

/// `FilterPolicy: ` and a reason, as SNS words its policy errors.
fn policy_error(reason: impl std::fmt::Display) -> String {
    format!("FilterPolicy: {reason}")
}

impl FilterPolicy {
    /// About how many bytes the parsed policy holds: in the body scope every condition carries
    /// its whole key path, so a policy can hold many times its text.
    pub fn weight(&self) -> usize {
        self.root.weight()
    }

    /// Parses and checks a policy for a scope. The error is SNS's message after
    /// `Invalid parameter: `.
    pub fn parse(text: &str, scope: Scope) -> Parsed<Self> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(policy_error("Filter policy is too large"));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| policy_error(format!("failed to parse JSON. {e}")))?;
        let Value::Object(map) = value else {
            return Err(policy_error("Filter policy must be a JSON object"));
        };
        let root = group(&map, &[], scope)?;
        if scope == Scope::MessageAttributes && root.nested() {
            return Err(
                "Filter policy scope MessageAttributes does not support nested filter policy"
                    .into(),
            );
        }
        let mut paths = BTreeSet::new();
        root.paths(&mut paths);
        if paths.len() > MAX_KEYS {
            return Err(policy_error(format!(
                "Filter policy can not have more than {MAX_KEYS} keys"
            )));
        }
        if root.combinations() > MAX_COMBINATIONS {
            return Err(policy_error("Filter policy is too complex"));
        }
        let policy = Self { root };
        if policy.weight() > MAX_WEIGHT {
            return Err(policy_error(format!(
                "Filter policy is too complex: its keys repeated across its alternatives come to more than {} MiB",
                MAX_WEIGHT >> 20
            )));
        }
        Ok(policy)
    }

    /// Whether a message with these attributes passes (scope `MessageAttributes`).
    pub fn matches_attributes(&self, attributes: &BTreeMap<String, MessageAttribute>) -> bool {
        let lookup = |path: &[String]| -> Option<Vec<Scalar>> {
            let a = attributes.get(path.first()?)?;
            attribute_values(a)
        };
        let any = attributes
            .values()
            .any(|a| !a.data_type.starts_with("Binary"));
        self.root.matches(&lookup, any)
    }

    /// Whether a message with this body passes (scope `MessageBody`): only JSON objects can.
    pub fn matches_body(&self, body: &str) -> bool {
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(body) else {
            return false;
        };
        let body = Value::Object(body);
        let lookup = |path: &[String]| -> Option<Vec<Scalar>> {
            let mut found = Vec::new();
            collect(&body, path, &mut found);
            if found.is_empty() {
                return None;
            }
            let mut out = Vec::new();
            for v in found {
                flatten(v, &mut out);
            }
            Some(out)
        };
        self.root.matches(&lookup, true)
    }
}

/// The values of an attribute to compare, or `None` when it is ignored (`Binary`).
fn attribute_values(a: &MessageAttribute) -> Option<Vec<Scalar>> {
    let base = a.data_type.split('.').next().unwrap_or("");
    match base {
        "Binary" => None,
        "Number" => Some(
            a.value
                .trim()
                .parse::<f64>()
                .map(|n| vec![Scalar::Num(n)])
                .unwrap_or_default(),
        ),
        _ if a.data_type == "String.Array" => {
            let mut out = Vec::new();
            if let Ok(v) = serde_json::from_str::<Value>(&a.value) {
                flatten(&v, &mut out);
            }
            Some(out)
        }
        _ => Some(vec![Scalar::Str(a.value.clone())]),
    }
}

/// The scalars of a JSON value (the elements of an array, recursively; objects have none).
fn flatten(v: &Value, out: &mut Vec<Scalar>) {
    match v {
        Value::String(s) => out.push(Scalar::Str(s.clone())),
        Value::Number(n) => out.extend(n.as_f64().map(Scalar::Num)),
        Value::Bool(b) => out.push(Scalar::Bool(*b)),
        Value::Null => out.push(Scalar::Null),
        Value::Array(a) => a.iter().for_each(|e| flatten(e, out)),
        Value::Object(_) => {}
    }
}

/// Every value at `path` in a body: arrays are walked through, and a dotted key in the body
/// stands for the same path as nested ones.
fn collect<'a>(v: &'a Value, path: &[String], out: &mut Vec<&'a Value>) {
    if path.is_empty() {
        out.push(v);
        return;
    }
    match v {
        Value::Array(a) => a.iter().for_each(|e| collect(e, path, out)),
        Value::Object(m) => {
            for i in 1..=path.len() {
                if let Some(next) = m.get(&path[..i].join(".")) {
                    collect(next, &path[i..], out);
                }
            }
        }
        _ => {}
    }
}

impl Group {
    fn nested(&self) -> bool {
        self.leaves.iter().any(|l| l.path.len() > 1) || self.ors.iter().flatten().any(Group::nested)
    }

    fn paths(&self, out: &mut BTreeSet<Vec<String>>) {
        out.extend(self.leaves.iter().map(|l| l.path.clone()));
        self.ors.iter().flatten().for_each(|g| g.paths(out));
    }

    /// The product of each leaf's values times its depth, and of each `$or`'s sum. Each value of
    /// an `anything-but` list counts as one: matching compares a message's values with each.
    fn combinations(&self) -> u64 {
        let leaves = self.leaves.iter().fold(1u64, |acc, l| {
            let values = l.conditions.iter().fold(0u64, |n, c| {
                n.saturating_add(match c {
                    Condition::AnythingBut(excluded) => excluded.len().max(1) as u64,
                    _ => 1,
                })
            });
            acc.saturating_mul(values.saturating_mul(l.path.len() as u64))
        });
        self.ors.iter().fold(leaves, |acc, alternatives| {
            let sum = alternatives
                .iter()
                .fold(0u64, |s, g| s.saturating_add(g.combinations()));
            acc.saturating_mul(sum)
        })
    }

    fn matches(&self, lookup: &dyn Fn(&[String]) -> Option<Vec<Scalar>>, any: bool) -> bool {
        self.leaves.iter().all(|l| {
            let values = lookup(&l.path);
            l.conditions
                .iter()
                .any(|c| c.matches(values.as_deref(), any))
        }) && self
            .ors
            .iter()
            .all(|alternatives| alternatives.iter().any(|g| g.matches(lookup, any)))
    }
}

impl Condition {
    /// Whether the values of a property (`None`: absent) match; `any`: whether the message has
    /// any property at all (for `exists: false`).
    fn matches(&self, values: Option<&[Scalar]>, any: bool) -> bool {
        match self {
            // A non-null, non-empty value.
            Self::Exists(true) => values.is_some_and(|v| {
                v.iter()
                    .any(|s| !matches!(s, Scalar::Null) && *s != Scalar::Str(String::new()))
            }),
            Self::Exists(false) => values.is_none() && any,
            Self::AnythingBut(excluded) => {
                values.is_some_and(|v| v.iter().any(|s| !excluded.iter().any(|e| same(e, s))))
            }
            Self::AnythingButPattern(p) => values.is_some_and(|v| {
                v.iter()
                    .any(|s| matches!(s, Scalar::Str(_)) && !p.matches_one(s))
            }),
            _ => values.is_some_and(|v| v.iter().any(|s| self.matches_one(s))),
        }
    }

    fn matches_one(&self, s: &Scalar) -> bool {
        match (self, s) {
            (Self::Str(a), Scalar::Str(b)) => a == b,
            (Self::Num(a), Scalar::Num(b)) => same_number(*a, *b),
            (Self::Bool(a), Scalar::Bool(b)) => a == b,
            (Self::Null, Scalar::Null) => true,
            (Self::Prefix(p), Scalar::Str(b)) => b.starts_with(p.as_str()),
            (Self::Suffix(p), Scalar::Str(b)) => b.ends_with(p.as_str()),
            (Self::EqualsIgnoreCase(p), Scalar::Str(b)) => p.to_lowercase() == b.to_lowercase(),
            (Self::Wildcard(p), Scalar::Str(b)) => wildcard(p, b),
            (Self::Numeric(r), Scalar::Num(n)) => r.contains(*n),
            (Self::Cidr(net, bits), Scalar::Str(b)) => b
                .parse::<IpAddr>()
                .is_ok_and(|ip| in_network(*net, *bits, ip)),
            _ => false,
        }
    }
}

/// Numbers compare to six decimal places, as SNS does.
fn same_number(a: f64, b: f64) -> bool {
    (a * 1e6).round() == (b * 1e6).round()
}

fn same(excluded: &Scalar, s: &Scalar) -> bool {
    match (excluded, s) {
        (Scalar::Num(a), Scalar::Num(b)) => same_number(*a, *b),
        (a, b) => a == b,
    }
}

impl Range {
    fn contains(&self, n: f64) -> bool {
        let low = self
            .low
            .is_none_or(|(v, inclusive)| if inclusive { n >= v } else { n > v });
        let high = self
            .high
            .is_none_or(|(v, inclusive)| if inclusive { n <= v } else { n < v });
        low && high
    }
}

/// `*` matches any run of characters; everything else itself.
pub(crate) fn wildcard(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Whether `ip` is in the network `net`/`bits`.
pub(crate) fn in_network(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - bits as u32).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - bits as u32).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// An `$or` key is one only when it holds two or more objects that are not match expressions;
/// otherwise it is a property named `$or`.
fn or_alternatives(v: &Value) -> Option<&Vec<Value>> {
    let Value::Array(a) = v else { return None };
    let ok = a.len() >= 2
        && a.iter().all(|e| {
            e.as_object()
                .is_some_and(|o| !o.keys().any(|k| OPERATORS.contains(&k.as_str())))
        });
    ok.then_some(a)
}

/// A policy object's conditions; in the body scope a dotted key is a path.
fn group(map: &Map<String, Value>, prefix: &[String], scope: Scope) -> Parsed<Group> {
    let mut g = Group::default();
    for (key, value) in map {
        if key == "$or"
            && let Some(alternatives) = or_alternatives(value)
        {
            let mut set = Vec::new();
            for alt in alternatives {
                if let Value::Object(m) = alt {
                    set.push(group(m, prefix, scope)?);
                }
            }
            g.ors.push(set);
            continue;
        }
        let mut path = prefix.to_vec();
        match scope {
            Scope::MessageBody => path.extend(key.split('.').map(str::to_owned)),
            Scope::MessageAttributes => path.push(key.clone()),
        }
        match value {
            Value::Array(values) => {
                if values.is_empty() {
                    return Err(policy_error("Empty arrays are not allowed"));
                }
                let conditions = values.iter().map(condition).collect::<Parsed<Vec<_>>>()?;
                g.leaves.push(Leaf { path, conditions });
            }
            Value::Object(m) if m.is_empty() => {
                return Err(policy_error("Empty objects are not allowed"));
            }
            Value::Object(m) => {
                let inner = group(m, &path, scope)?;
                g.leaves.extend(inner.leaves);
                g.ors.extend(inner.ors);
            }
            _ => {
                return Err(policy_error(format!(
                    "\"{key}\" must be an object or an array"
                )));
            }
        }
    }
    Ok(g)
}

fn condition(v: &Value) -> Parsed<Condition> {
    match v {
        Value::String(s) => Ok(Condition::Str(s.clone())),
        Value::Number(n) => Ok(Condition::Num(n.as_f64().unwrap_or(f64::NAN))),
        Value::Bool(b) => Ok(Condition::Bool(*b)),
        Value::Null => Ok(Condition::Null),
        Value::Array(_) => Err(policy_error(
            "Match value must be String, number, true, false, or null",
        )),
        Value::Object(m) => {
            let mut entries = m.iter();
            let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
                return Err(policy_error(if m.is_empty() {
                    "Empty objects are not allowed"
                } else {
                    "Only one key allowed in match expression"
                }));
            };
            operator(op, arg)
        }
    }
}

fn pattern(op: &str, arg: &Value) -> Parsed<String> {
    arg.as_str()
        .map(str::to_owned)
        .ok_or_else(|| policy_error(format!("{op} match pattern must be a string")))
}

fn operator(op: &str, arg: &Value) -> Parsed<Condition> {
    match op {
        "prefix" => Ok(Condition::Prefix(pattern(op, arg)?)),
        "suffix" => Ok(Condition::Suffix(pattern(op, arg)?)),
        "equals-ignore-case" => Ok(Condition::EqualsIgnoreCase(pattern(op, arg)?)),
        "wildcard" => Ok(Condition::Wildcard(checked_wildcard(pattern(op, arg)?)?)),
        "exists" => arg
            .as_bool()
            .map(Condition::Exists)
            .ok_or_else(|| policy_error("exists match pattern must be either true or false.")),
        "cidr" => {
            let text = pattern("prefix", arg)?;
            let (addr, bits) = cidr(&text)?;
            Ok(Condition::Cidr(addr, bits))
        }
        "numeric" => Ok(Condition::Numeric(numeric(arg)?)),
        "anything-but" => anything_but(arg),
        other => Err(policy_error(format!("Unrecognized match type {other}"))),
    }
}

fn checked_wildcard(p: String) -> Parsed<String> {
    if p.matches('*').count() > 3 {
        return Err(policy_error(
            "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character",
        ));
    }
    Ok(p)
}

fn scalar(v: &Value) -> Parsed<Scalar> {
    match v {
        Value::String(s) => Ok(Scalar::Str(s.clone())),
        Value::Number(n) => Ok(Scalar::Num(n.as_f64().unwrap_or(f64::NAN))),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Null => Ok(Scalar::Null),
        _ => Err(policy_error(
            "Inside anything but list, start|null|boolean is not supported.",
        )),
    }
}

fn anything_but(arg: &Value) -> Parsed<Condition> {
    match arg {
        Value::Array(values) => {
            if values.is_empty() {
                return Err(policy_error("Empty arrays are not allowed"));
            }
            Ok(Condition::AnythingBut(
                values.iter().map(scalar).collect::<Parsed<_>>()?,
            ))
        }
        Value::Object(m) => {
            let mut entries = m.iter();
            let (Some((op, p)), None) = (entries.next(), entries.next()) else {
                return Err(policy_error("Only one key allowed in match expression"));
            };
            let inner = match op.as_str() {
                // Recorded from SNS: `suffix` is refused here (the documentation lists it).
                "prefix" => Condition::Prefix(pattern(op, p)?),
                "equals-ignore-case" => Condition::EqualsIgnoreCase(pattern(op, p)?),
                "wildcard" => Condition::Wildcard(checked_wildcard(pattern(op, p)?)?),
                other => {
                    return Err(policy_error(format!(
                        "Unsupported anything-but pattern: {other}"
                    )));
                }
            };
            Ok(Condition::AnythingButPattern(Box::new(inner)))
        }
        v => Ok(Condition::AnythingBut(vec![scalar(v)?])),
    }
}

fn cidr(text: &str) -> Parsed<(IpAddr, u8)> {
    parse_cidr(text).map_err(policy_error)
}

/// A network in CIDR form; the error in SNS's words.
pub(crate) fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let mut parts = text.split('/');
    let (Some(addr), Some(bits), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("Malformed CIDR, one '/' required".into());
    };
    let bits = bits
        .parse::<u8>()
        .map_err(|_| "Malformed CIDR, mask bits must be an integer".to_string())?;
    let ip = addr
        .parse::<IpAddr>()
        .map_err(|_| format!("Nonstandard IP address: {addr}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(format!("Malformed CIDR, mask bits must be at most {max}"));
    }
    Ok((ip, bits))
}

fn op_name(op: &str) -> &str {
    if op == "=" { "equals" } else { op }
}

fn numeric(arg: &Value) -> Parsed<Range> {
    let items: &[Value] = match arg {
        Value::Array(a) => a,
        _ => return Err(policy_error("Value of numeric must be an array.")),
    };
    let member = |i: usize| -> String {
        items.get(i).map_or_else(
            || "]".into(),
            |v| v.to_string().trim_matches('"').to_owned(),
        )
    };
    let number = |i: usize, op: &str| -> Parsed<f64> {
        items
            .get(i)
            .and_then(Value::as_f64)
            .ok_or_else(|| policy_error(format!("Value of {} must be numeric", op_name(op))))
    };
    let first = items
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| policy_error(format!("Invalid member in numeric match: {}", member(0))))?;
    let mut range = Range::default();
    match first {
        "=" | "<" | "<=" => {
            let n = number(1, first)?;
            match first {
                "=" => {
                    range.low = Some((n, true));
                    range.high = Some((n, true));
                }
                "<" => range.high = Some((n, false)),
                _ => range.high = Some((n, true)),
            }
            if items.len() > 2 {
                return Err(policy_error("Too many elements in numeric expression"));
            }
        }
        ">" | ">=" => {
            range.low = Some((number(1, first)?, first == ">="));
            if items.len() > 2 {
                let op = match &items[2] {
                    Value::String(op) if op == "<" || op == "<=" => op.as_str(),
                    Value::String(op) => {
                        return Err(policy_error(format!("Bad numeric range operator: {op}")));
                    }
                    v => return Err(policy_error(format!("Bad value in numeric range: {v}"))),
                };
                let high = number(3, op)?;
                if items.len() > 4 {
                    return Err(policy_error("Too many terms in numeric range expression"));
                }
                if range.low.is_some_and(|(low, _)| low >= high) {
                    return Err(policy_error("Bottom must be less than top"));
                }
                range.high = Some((high, op == "<="));
            }
        }
        other => {
            return Err(policy_error(format!(
                "Unrecognized numeric range operator: {other}"
            )));
        }
    }
    Ok(range)
}

mod cache;
pub use cache::Policies;

#[cfg(test)]
mod tests;
