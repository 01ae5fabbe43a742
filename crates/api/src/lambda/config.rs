//! The configuration a CreateFunction or UpdateFunctionConfiguration request sets, checked
//! into a [`FunctionSpec`].

use std::sync::Arc;

use lamina_model::{Architecture, FunctionSpec, LambdaError, LogFormat, Runtime, TracingMode};
use lamina_store::FunctionKey;

use super::wire::{self, ConfigFields};
use super::{ApiResult, AppState, blocking};

/// A dead-letter topic must exist, in the function's account and region.
pub(super) async fn check_dead_letter(
    state: &Arc<AppState>,
    key: &FunctionKey,
    c: &ConfigFields,
) -> ApiResult<()> {
    let Some(arn) = c
        .dead_letter_config
        .as_ref()
        .and_then(|d| d.target_arn.clone())
        .filter(|t| t.starts_with("arn:aws:sns:"))
    else {
        return Ok(());
    };
    let invalid = || {
        LambdaError::invalid_parameter(format!(
            "The provided target arn is invalid: {arn}. The topic must exist, in the function's account and region."
        ))
    };
    let topic = crate::sns::parse_topic_arn("TargetArn", &arn).map_err(|_| invalid())?;
    if topic.account != key.account || topic.region != key.region {
        return Err(invalid().into());
    }
    let store = state.store.clone();
    let exists = blocking(move || Ok(store.topic(&topic)?.is_some())).await?;
    if !exists {
        return Err(invalid().into());
    }
    Ok(())
}

pub(super) fn required(member: &str) -> LambdaError {
    LambdaError::missing(member)
}

pub(super) fn unsupported(what: &str) -> LambdaError {
    LambdaError::invalid_parameter(format!("{what} is not supported by this server yet."))
}

fn number(value: i64, member: &str) -> Result<u32, LambdaError> {
    u32::try_from(value).map_err(|_| {
        LambdaError::validation(
            value,
            member,
            "Member must have value greater than or equal to 0",
        )
    })
}

pub(super) fn architecture(list: &[String]) -> Result<Architecture, LambdaError> {
    match list {
        [one] => Architecture::parse(one).ok_or_else(|| {
            LambdaError::validation(
                format!("[{one}]"),
                "architectures",
                "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]",
            )
        }),
        _ => Err(LambdaError::validation(
            format!("[{}]", list.join(", ")),
            "architectures",
            "Member must have length less than or equal to 1 and greater than or equal to 1",
        )),
    }
}

/// Applies the configuration members of a request on top of `spec`, all but `VpcConfig`.
pub(super) fn apply_config(spec: &mut FunctionSpec, c: ConfigFields) -> Result<(), LambdaError> {
    if let Some(role) = c.role {
        spec.role = role;
    }
    if let Some(runtime) = c.runtime {
        spec.runtime = Some(Runtime::parse(&runtime)?);
    }
    if let Some(handler) = c.handler {
        spec.handler = Some(handler);
    }
    if let Some(description) = c.description {
        spec.description = description;
    }
    if let Some(timeout) = c.timeout {
        spec.timeout = number(timeout, "timeout")?;
    }
    if let Some(memory) = c.memory_size {
        spec.memory_size = number(memory, "memorySize")?;
    }
    if let Some(env) = c.environment {
        spec.environment = env.variables.unwrap_or_default();
    }
    if let Some(layers) = c.layers {
        if layers.len() > 5 {
            return Err(LambdaError::invalid_parameter(
                "Cannot reference more than 5 layers.",
            ));
        }
        // Resolved (and checked) against the store by `layers::attach`.
        spec.layers = layers;
        spec.layer_code.clear();
    }
    if let Some(storage) = c.ephemeral_storage {
        spec.ephemeral_storage = storage
            .size
            .ok_or_else(|| required("ephemeralStorage.size"))?;
    }
    if let Some(tracing) = c.tracing_config
        && let Some(mode) = tracing.mode
    {
        spec.tracing_mode = match mode.as_str() {
            "Active" => TracingMode::Active,
            "PassThrough" => TracingMode::PassThrough,
            _ => {
                return Err(LambdaError::validation(
                    mode,
                    "tracingConfig.mode",
                    "Member must satisfy enum value set: [Active, PassThrough]",
                ));
            }
        };
    }
    if let Some(logging) = c.logging_config {
        apply_logging(spec, logging)?;
    }
    // `VpcConfig` is checked against the store by `vpc::requested` and set by `vpc::apply`.
    if let Some(d) = c.dead_letter_config {
        spec.dead_letter_target = match d.target_arn.filter(|t| !t.is_empty()) {
            None => None,
            Some(t) if t.starts_with("arn:aws:sns:") => Some(t),
            Some(t) if t.starts_with("arn:aws:sqs:") => {
                return Err(LambdaError::invalid_parameter(format!(
                    "DeadLetterConfig: this server has no SQS queues ({t}); use an SNS topic."
                )));
            }
            Some(t) => {
                return Err(LambdaError::invalid_parameter(format!(
                    "The provided target arn is invalid: {t}. It must be an SNS topic or an SQS queue."
                )));
            }
        };
    }
    if c.kms_key_arn.is_some_and(|k| !k.is_empty()) {
        return Err(unsupported("KMSKeyArn"));
    }
    if c.file_system_configs.is_some_and(|f| !f.is_empty()) {
        return Err(unsupported("FileSystemConfigs"));
    }
    if let Some(config) = c.image_config {
        let config: lamina_model::ImageConfig = config.into();
        spec.image_config = (config != lamina_model::ImageConfig::default()).then_some(config);
    }
    if c.snap_start.is_some_and(|s| {
        s.get("ApplyOn")
            .and_then(|a| a.as_str())
            .is_some_and(|a| a != "None")
    }) {
        return Err(unsupported("SnapStart"));
    }
    Ok(())
}

fn apply_logging(spec: &mut FunctionSpec, l: wire::LoggingConfig) -> Result<(), LambdaError> {
    if let Some(format) = l.log_format {
        spec.log_format = match format.as_str() {
            "Text" => LogFormat::Text,
            "JSON" => LogFormat::Json,
            _ => {
                return Err(LambdaError::validation(
                    format,
                    "loggingConfig.logFormat",
                    "Member must satisfy enum value set: [Text, JSON]",
                ));
            }
        };
    }
    if let Some(group) = l.log_group {
        let ok = !group.is_empty()
            && group.len() <= 512
            && group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-/.#".contains(&b));
        if !ok {
            return Err(LambdaError::validation(
                group,
                "loggingConfig.logGroup",
                "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
            ));
        }
        spec.log_group = Some(group);
    }
    const APP: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    const SYS: &[&str] = &["DEBUG", "INFO", "WARN"];
    for (value, allowed, member, slot) in [
        (
            l.application_log_level,
            APP,
            "loggingConfig.applicationLogLevel",
            &mut spec.application_log_level,
        ),
        (
            l.system_log_level,
            SYS,
            "loggingConfig.systemLogLevel",
            &mut spec.system_log_level,
        ),
    ] {
        if let Some(v) = value {
            if !allowed.contains(&v.as_str()) {
                return Err(LambdaError::validation(
                    &v,
                    member,
                    &format!(
                        "Member must satisfy enum value set: [{}]",
                        allowed.join(", ")
                    ),
                ));
            }
            *slot = Some(v);
        }
    }
    if spec.log_format == LogFormat::Text
        && (spec.application_log_level.is_some() || spec.system_log_level.is_some())
    {
        return Err(LambdaError::invalid_parameter(
            "ApplicationLogLevel and SystemLogLevel can only be set when LogFormat is JSON.",
        ));
    }
    Ok(())
}

/// Refuses a `LoggingConfig.LogGroup` that is another function's log group: its custom group,
/// or its default `/aws/lambda/<name>`. Lamina keeps one function per group.
pub(super) async fn check_log_group(
    state: &Arc<AppState>,
    key: &FunctionKey,
    group: Option<String>,
) -> ApiResult<()> {
    let Some(group) = group else {
        return Ok(());
    };
    let refuse = |other: &str| {
        LambdaError::invalid_parameter(format!(
            "The log group '{group}' is the log group of the function '{other}'; this server keeps one function per log group. Choose another LoggingConfig.LogGroup."
        ))
    };
    if let Some(other) = group.strip_prefix("/aws/lambda/")
        && other != key.name.as_str()
    {
        return Err(refuse(other).into());
    }
    let store = state.store.clone();
    let (account, region) = (key.account.to_string(), key.region.to_string());
    let custom = blocking(move || Ok(store.custom_log_groups(&account, &region)?)).await?;
    match custom
        .iter()
        .find(|(f, g)| *g == group && f != key.name.as_str())
    {
        Some((other, _)) => Err(refuse(other).into()),
        None => Ok(()),
    }
}
