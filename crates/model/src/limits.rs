//! Lambda's quotas as server settings, and the validators that enforce them.
//!
//! Defaults are Lambda's own values (spec §7). A server may change any of them in its
//! configuration; the messages always name the limit in force.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{FunctionSpec, LambdaError, PackageType};

/// Environment variable names Lambda sets itself and refuses from users.
pub const RESERVED_ENV_KEYS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The limits the API enforces. Every field defaults to Lambda's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Smallest `MemorySize`, MB.
    pub memory_min_mb: u32,
    /// Largest `MemorySize`, MB.
    pub memory_max_mb: u32,
    /// Largest `Timeout`, seconds.
    pub timeout_max_s: u32,
    /// Size of the compact JSON of `Environment.Variables`, bytes.
    pub env_max_bytes: usize,
    /// Smallest `EphemeralStorage.Size`, MB.
    pub ephemeral_min_mb: u32,
    /// Largest `EphemeralStorage.Size`, MB.
    pub ephemeral_max_mb: u32,
    /// A zip uploaded directly (`ZipFile`), bytes.
    pub zipped_max_bytes: u64,
    /// Code (plus layers) once unzipped, bytes.
    pub unzipped_max_bytes: u64,
    /// A whole CreateFunction/UpdateFunctionCode request body, bytes (base64 inflates the zip).
    pub request_max_bytes: u64,
    /// Entries in one zip.
    pub zip_max_entries: usize,
    /// Tags on one function.
    pub tags_max: usize,
    /// Total code storage per account, bytes.
    pub code_storage_max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_min_mb: 128,
            memory_max_mb: 10_240,
            timeout_max_s: 900,
            env_max_bytes: 4096,
            ephemeral_min_mb: 512,
            ephemeral_max_mb: 10_240,
            zipped_max_bytes: 52_428_800,
            unzipped_max_bytes: 262_144_000,
            request_max_bytes: 70_167_211,
            zip_max_entries: 100_000,
            tags_max: 50,
            code_storage_max_bytes: 80_530_636_800,
        }
    }
}

impl Limits {
    /// Checks a whole function configuration against these limits.
    pub fn check_spec(&self, spec: &FunctionSpec) -> Result<(), LambdaError> {
        self.check_memory(spec.memory_size)?;
        self.check_timeout(spec.timeout)?;
        self.check_ephemeral(spec.ephemeral_storage)?;
        check_role(&spec.role)?;
        check_description(&spec.description)?;
        if let Some(handler) = &spec.handler {
            check_handler(handler)?;
        }
        self.check_environment(&spec.environment)?;
        if spec.package_type == PackageType::Zip {
            if spec.runtime.is_none() {
                return Err(LambdaError::invalid_parameter(
                    "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
                ));
            }
            if spec.handler.is_none() {
                return Err(LambdaError::invalid_parameter(
                    "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
                ));
            }
        }
        if spec.layers.len() > 5 {
            return Err(LambdaError::invalid_parameter(
                "Cannot reference more than 5 layers.",
            ));
        }
        check_image(spec)
    }

    pub fn check_memory(&self, mb: u32) -> Result<(), LambdaError> {
        if mb < self.memory_min_mb {
            return Err(LambdaError::validation(
                mb,
                "memorySize",
                &format!(
                    "Member must have value greater than or equal to {}",
                    self.memory_min_mb
                ),
            ));
        }
        if mb > self.memory_max_mb {
            return Err(LambdaError::validation(
                mb,
                "memorySize",
                &format!(
                    "Member must have value less than or equal to {}",
                    self.memory_max_mb
                ),
            ));
        }
        Ok(())
    }

    pub fn check_timeout(&self, s: u32) -> Result<(), LambdaError> {
        if s < 1 {
            return Err(LambdaError::validation(
                s,
                "timeout",
                "Member must have value greater than or equal to 1",
            ));
        }
        if s > self.timeout_max_s {
            return Err(LambdaError::validation(
                s,
                "timeout",
                &format!(
                    "Member must have value less than or equal to {}",
                    self.timeout_max_s
                ),
            ));
        }
        Ok(())
    }

    pub fn check_ephemeral(&self, mb: u32) -> Result<(), LambdaError> {
        if mb < self.ephemeral_min_mb || mb > self.ephemeral_max_mb {
            return Err(LambdaError::validation(
                mb,
                "ephemeralStorage.size",
                &format!(
                    "Member must have value between {} and {} (MB)",
                    self.ephemeral_min_mb, self.ephemeral_max_mb
                ),
            ));
        }
        Ok(())
    }

    /// Keys must match `[a-zA-Z][a-zA-Z0-9_]+`, must not be reserved, and the compact JSON of the
    /// whole map must fit in `env_max_bytes`.
    pub fn check_environment(&self, env: &BTreeMap<String, String>) -> Result<(), LambdaError> {
        for key in env.keys() {
            let b = key.as_bytes();
            let ok = b.len() >= 2
                && b[0].is_ascii_alphabetic()
                && b[1..]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_');
            if !ok {
                return Err(LambdaError::validation(
                    key,
                    "environment.variables",
                    "Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
                ));
            }
        }
        let reserved: Vec<&str> = env
            .keys()
            .map(String::as_str)
            .filter(|k| RESERVED_ENV_KEYS.contains(k))
            .collect();
        if !reserved.is_empty() {
            return Err(LambdaError::invalid_parameter(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
                reserved.join(",")
            )));
        }
        let measured = serde_json::to_string(env).unwrap_or_default();
        if measured.len() > self.env_max_bytes {
            return Err(LambdaError::invalid_parameter(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the {}KB limit. String measured: {measured}",
                self.env_max_bytes / 1024
            )));
        }
        Ok(())
    }

    /// Tags: at most `tags_max`, keys 1–128 and values 0–256 characters.
    pub fn check_tags(&self, tags: &BTreeMap<String, String>) -> Result<(), LambdaError> {
        if tags.len() > self.tags_max {
            return Err(LambdaError::invalid_parameter(
                "Number of tags exceeds resource tag limit.",
            ));
        }
        for (k, v) in tags {
            if k.is_empty() || k.chars().count() > 128 {
                return Err(LambdaError::validation(
                    k,
                    "tags",
                    "Map keys must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]",
                ));
            }
            if v.chars().count() > 256 {
                return Err(LambdaError::validation(
                    v,
                    "tags",
                    "Map value must satisfy constraint: [Member must have length less than or equal to 256]",
                ));
            }
        }
        Ok(())
    }
}

/// An IAM role ARN: `arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+`.
pub fn check_role(role: &str) -> Result<(), LambdaError> {
    let err = || {
        LambdaError::validation(
            role,
            "role",
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        )
    };
    let rest = role.strip_prefix("arn:").ok_or_else(err)?;
    let (partition, rest) = rest.split_once(':').ok_or_else(err)?;
    if !(partition.is_empty()
        || (partition.starts_with("aws")
            && partition
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'-')))
    {
        return Err(err());
    }
    let rest = rest.strip_prefix("iam::").ok_or_else(err)?;
    let (account, rest) = rest.split_once(':').ok_or_else(err)?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let path = rest.strip_prefix("role").ok_or_else(err)?;
    let path = path.strip_prefix('/').unwrap_or(path);
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || b"_+=,.@-/".contains(&b);
    if path.is_empty() || !path.bytes().all(ok_char) || role.len() > 2048 {
        return Err(err());
    }
    Ok(())
}

pub fn check_description(d: &str) -> Result<(), LambdaError> {
    if d.chars().count() > 256 {
        return Err(LambdaError::validation(
            d,
            "description",
            "Member must have length less than or equal to 256",
        ));
    }
    Ok(())
}

pub fn check_handler(h: &str) -> Result<(), LambdaError> {
    if h.is_empty() || h.chars().count() > 128 || h.chars().any(char::is_whitespace) {
        return Err(LambdaError::validation(
            h,
            "handler",
            "Member must satisfy regular expression pattern: [^\\s]+ and have length between 1 and 128",
        ));
    }
    Ok(())
}

/// What Lambda refuses on image functions (and `ImageConfig` on zip functions).
fn check_image(spec: &FunctionSpec) -> Result<(), LambdaError> {
    if spec.package_type == PackageType::Zip {
        if spec.image_config.is_some() {
            return Err(LambdaError::invalid_parameter(
                "ImageConfig is only supported for functions with PackageType Image.",
            ));
        }
        return Ok(());
    }
    if spec.runtime.is_some() || spec.handler.is_some() {
        return Err(LambdaError::invalid_parameter(
            "Runtime and Handler are not supported for functions with PackageType Image: the image's ENTRYPOINT and CMD (or ImageConfig) decide what runs.",
        ));
    }
    if !spec.layers.is_empty() {
        return Err(LambdaError::invalid_parameter(
            "Layers are not supported for functions with PackageType Image.",
        ));
    }
    if let Some(c) = &spec.image_config {
        for (name, list) in [("EntryPoint", &c.entry_point), ("Command", &c.command)] {
            if list.as_ref().is_some_and(|l| l.len() > 1500) {
                return Err(LambdaError::validation(
                    "[...]",
                    &format!("imageConfig.{}", name.to_lowercase()),
                    "Member must have length less than or equal to 1500",
                ));
            }
        }
        if c.working_directory.as_ref().is_some_and(|d| d.len() > 1000) {
            return Err(LambdaError::validation(
                "...",
                "imageConfig.workingDirectory",
                "Member must have length less than or equal to 1000",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, Runtime};
    use proptest::prelude::*;

    fn spec() -> FunctionSpec {
        let mut s =
            FunctionSpec::with_defaults("arn:aws:iam::123456789012:role/lambda-role".into());
        s.runtime = Some(Runtime::parse("python3.12").unwrap());
        s.handler = Some("app.handler".into());
        s
    }

    #[test]
    fn defaults_pass() {
        Limits::default().check_spec(&spec()).unwrap();
    }

    #[test]
    fn memory_bounds() {
        let l = Limits::default();
        assert!(
            l.check_memory(128).is_ok()
                && l.check_memory(10_240).is_ok()
                && l.check_memory(129).is_ok()
        );
        let e = l.check_memory(127).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(
            e.message.contains("greater than or equal to 128"),
            "{}",
            e.message
        );
        assert!(
            l.check_memory(10_241)
                .unwrap_err()
                .message
                .contains("less than or equal to 10240")
        );
    }

    #[test]
    fn timeout_and_storage_bounds() {
        let l = Limits::default();
        assert!(
            l.check_timeout(0).is_err()
                && l.check_timeout(901).is_err()
                && l.check_timeout(900).is_ok()
        );
        assert!(
            l.check_ephemeral(511).is_err()
                && l.check_ephemeral(10_241).is_err()
                && l.check_ephemeral(512).is_ok()
        );
    }

    #[test]
    fn environment_rules() {
        let l = Limits::default();
        let mut env = BTreeMap::new();
        env.insert("AWS_REGION".to_string(), "x".to_string());
        let e = l.check_environment(&env).unwrap_err();
        assert!(e.message.contains("reserved keys") && e.message.contains("AWS_REGION"));

        let mut env = BTreeMap::new();
        env.insert("1BAD".to_string(), "x".to_string());
        assert_eq!(
            l.check_environment(&env).unwrap_err().kind,
            ErrorKind::Validation
        );

        // The compact JSON `{"KEY":"vvv..."}` is 10 bytes of framing plus the value.
        let mut env = BTreeMap::new();
        env.insert("KEY".to_string(), "v".repeat(4096 - 10));
        assert!(l.check_environment(&env).is_ok());
        env.insert("KEY".to_string(), "v".repeat(4096 - 9));
        let e = l.check_environment(&env).unwrap_err();
        assert!(
            e.message.contains("exceeded the 4KB limit"),
            "{}",
            e.message
        );
    }

    #[test]
    fn zip_needs_runtime_and_handler() {
        let mut s = spec();
        s.handler = None;
        assert!(
            Limits::default()
                .check_spec(&s)
                .unwrap_err()
                .message
                .contains("mandatory")
        );
        let mut s = spec();
        s.runtime = None;
        assert!(Limits::default().check_spec(&s).is_err());
    }

    #[test]
    fn roles() {
        assert!(check_role("arn:aws:iam::123456789012:role/service-role/x_y+=,.@-").is_ok());
        assert!(check_role("arn:aws-cn:iam::123456789012:role/r").is_ok());
        for bad in [
            "",
            "role",
            "arn:aws:iam::12345678901:role/r",
            "arn:aws:iam::123456789012:user/r",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(check_role(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn validators_never_panic(s in ".{0,300}", n in any::<u32>()) {
            let l = Limits::default();
            let _ = check_role(&s);
            let _ = check_handler(&s);
            let _ = check_description(&s);
            let _ = l.check_memory(n);
            let _ = l.check_timeout(n);
            let mut env = BTreeMap::new();
            env.insert(s.clone(), s.clone());
            let _ = l.check_environment(&env);
            let _ = Runtime::parse(&s);
        }
    }
}
