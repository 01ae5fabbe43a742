//! `lamina bench --compare FILE`: this run against a saved one (`lamina bench --json > FILE`),
//! figure by figure, so that a regression shows at a glance.
//!
//! Every number both runs have is compared by its path in the JSON report. Its name says which
//! way is better: times (`…_ms`, `…_us`, `…_s`), memory (`…_kib`) and ratios to a baseline
//! (`…ratio`, `…_vs_echo`) are better lower; rates (`…per_s`) better higher. Other numbers
//! (counts, sizes of the run) are not compared. A change within ±5 % is reported as noise:
//! runs on a shared machine vary that much.

use serde_json::Value;

/// Changes smaller than this fraction are noise.
const NOISE: f64 = 0.05;

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
}

fn better(path: &str) -> Option<Better> {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    if leaf.ends_with("per_s") {
        Some(Better::Higher)
    } else if leaf.ends_with("_ms")
        || leaf.ends_with("_us")
        || leaf.ends_with("_s")
        || leaf.ends_with("_kib")
        || leaf.ends_with("ratio")
        || leaf.ends_with("_vs_echo")
    {
        Some(Better::Lower)
    } else {
        None
    }
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    pub figure: String,
    pub before: f64,
    pub after: f64,
    /// `after / before - 1`.
    pub change: f64,
    /// `better`, `worse` or `noise`.
    pub verdict: &'static str,
}

/// The names of an array's elements: their `function` or `concurrency` when they have one, so
/// that a figure is matched with the same one's in the other run, else their index.
fn element_name(v: &Value, i: usize) -> String {
    match (v.get("function"), v.get("concurrency")) {
        (Some(Value::String(f)), _) => format!("[{f}]"),
        (_, Some(c)) => format!("[c={c}]"),
        _ => format!("[{i}]"),
    }
}

fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                leaves(&format!("{prefix}{}", element_name(v, i)), v, out);
            }
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push((prefix.to_owned(), x));
            }
        }
        _ => {}
    }
}

/// The figures both reports have, compared.
pub fn compare(before: &Value, after: &Value) -> Vec<Change> {
    let (mut old, mut new) = (Vec::new(), Vec::new());
    leaves("", before, &mut old);
    leaves("", after, &mut new);
    let mut out = Vec::new();
    for (path, a) in new {
        let Some(better) = better(&path) else {
            continue;
        };
        let Some((_, b)) = old.iter().find(|(p, _)| *p == path) else {
            continue;
        };
        let b = *b;
        if b == 0.0 || !b.is_finite() || !a.is_finite() {
            continue;
        }
        let change = a / b - 1.0;
        let verdict = if change.abs() < NOISE {
            "noise"
        } else if (change < 0.0) == (better == Better::Lower) {
            "better"
        } else {
            "worse"
        };
        out.push(Change {
            figure: path,
            before: b,
            after: a,
            change,
            verdict,
        });
    }
    out
}

/// Prints the comparison as a table, worst first.
pub fn print(changes: &[Change], file: &str) {
    let mut sorted: Vec<&Change> = changes.iter().collect();
    let rank = |c: &Change| match c.verdict {
        "worse" => 0,
        "better" => 2,
        _ => 1,
    };
    sorted.sort_by(|x, y| {
        rank(x)
            .cmp(&rank(y))
            .then(y.change.abs().total_cmp(&x.change.abs()))
    });
    let worse = changes.iter().filter(|c| c.verdict == "worse").count();
    let better = changes.iter().filter(|c| c.verdict == "better").count();
    println!();
    println!(
        "against {file}: {worse} worse, {better} better, {} within ±{:.0} %",
        changes.len() - worse - better,
        NOISE * 100.0
    );
    println!(
        "{:<64} {:>12} {:>12} {:>8}",
        "figure", "before", "after", "change"
    );
    for c in sorted {
        let mark = match c.verdict {
            "worse" => "  worse",
            "better" => "  better",
            _ => "",
        };
        println!(
            "{:<64} {:>12.3} {:>12.3} {:>+7.1}%{mark}",
            c.figure,
            c.before,
            c.after,
            c.change * 100.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn figures_are_matched_by_name_and_judged_by_their_kind() {
        let before = json!({
            "loopback_echo": { "n": 1000, "p50_ms": 0.050 },
            "functions": [ { "function": "native", "warm": { "p50_ms": 0.400 } },
                           { "function": "python", "warm": { "p50_ms": 1.000 } } ],
            "throughput": [ { "concurrency": 8, "invokes_per_s": 3000.0 } ],
            "scale_out": { "host_memory_per_idle_environment_kib": 1600.0 },
        });
        let after = json!({
            "loopback_echo": { "n": 500, "p50_ms": 0.051 },
            // Reordered: matched by name, not position.
            "functions": [ { "function": "python", "warm": { "p50_ms": 1.500 } },
                           { "function": "native", "warm": { "p50_ms": 0.300 } } ],
            "throughput": [ { "concurrency": 8, "invokes_per_s": 2000.0 } ],
            "scale_out": { "host_memory_per_idle_environment_kib": 1600.0 },
            "new_section": { "p50_ms": 1.0 },
        });
        let c = compare(&before, &after);
        let verdict = |f: &str| c.iter().find(|x| x.figure == f).map(|x| x.verdict);
        assert_eq!(verdict("loopback_echo.p50_ms"), Some("noise"));
        assert_eq!(verdict("functions[native].warm.p50_ms"), Some("better"));
        assert_eq!(verdict("functions[python].warm.p50_ms"), Some("worse"));
        assert_eq!(verdict("throughput[c=8].invokes_per_s"), Some("worse"));
        assert_eq!(
            verdict("scale_out.host_memory_per_idle_environment_kib"),
            Some("noise")
        );
        // Counts are not figures; a figure one run lacks is not compared.
        assert_eq!(verdict("loopback_echo.n"), None);
        assert_eq!(verdict("new_section.p50_ms"), None);
        assert_eq!(c.len(), 5);
    }
}
