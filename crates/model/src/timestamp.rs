//! Lambda's `Timestamp` string form: `2020-04-10T19:06:32.563+0000`, millisecond precision, UTC.

use time::OffsetDateTime;
use time::macros::format_description;

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Formats epoch milliseconds the way Lambda formats `LastModified`.
pub fn format_timestamp(epoch_millis: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(epoch_millis as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    t.format(&fmt).unwrap_or_default()
}

/// Formats epoch milliseconds as ISO 8601 with a `Z`: `2019-11-14T18:16:05.568Z` (destination
/// records, SNS messages).
pub fn iso8601_millis(epoch_millis: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(epoch_millis as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_lambda() {
        assert_eq!(
            format_timestamp(1_586_545_592_563),
            "2020-04-10T19:06:32.563+0000"
        );
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            iso8601_millis(1_573_755_365_568),
            "2019-11-14T18:16:05.568Z"
        );
    }
}
