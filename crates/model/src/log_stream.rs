//! Where a function's log line goes.

/// A log stream of a function's log group: shared (behind an `Arc`) by every line written to
/// it, so that a line carries one reference instead of four strings of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogStreamKey {
    pub account: String,
    pub region: String,
    /// The function's name: its log group is `/aws/lambda/<function>`.
    pub function: String,
    pub stream: String,
}
