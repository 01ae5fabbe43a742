//! A function's configuration as the user sets it, and the lifecycle states Lambda reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Runtime, VpcConfig};

/// The instruction set a function is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Architecture {
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "x86_64" => Some(Self::X86_64),
            "arm64" => Some(Self::Arm64),
            _ => None,
        }
    }
}

/// How the function's code is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PackageType {
    #[default]
    Zip,
    Image,
}

impl PackageType {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageType::Zip => "Zip",
            PackageType::Image => "Image",
        }
    }
}

/// X-Ray tracing mode (stored and returned; Lamina does not trace to X-Ray).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TracingMode {
    #[default]
    PassThrough,
    Active,
}

impl TracingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TracingMode::PassThrough => "PassThrough",
            TracingMode::Active => "Active",
        }
    }
}

/// The log format of `LoggingConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum LogFormat {
    #[default]
    Text,
    #[serde(rename = "JSON")]
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "Text",
            LogFormat::Json => "JSON",
        }
    }
}

/// `State` of a function version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Pending,
    Active,
    Inactive,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "Pending",
            State::Active => "Active",
            State::Inactive => "Inactive",
            State::Failed => "Failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Pending" => Some(State::Pending),
            "Active" => Some(State::Active),
            "Inactive" => Some(State::Inactive),
            "Failed" => Some(State::Failed),
            _ => None,
        }
    }
}

/// `LastUpdateStatus` of a function version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LastUpdateStatus {
    InProgress,
    Successful,
    Failed,
}

impl LastUpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LastUpdateStatus::InProgress => "InProgress",
            LastUpdateStatus::Successful => "Successful",
            LastUpdateStatus::Failed => "Failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "InProgress" => Some(Self::InProgress),
            "Successful" => Some(Self::Successful),
            "Failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Everything about a function version that its owner configures, apart from the code itself.
///
/// This is the validated form: [`crate::limits::Limits::check_spec`] has accepted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    pub runtime: Option<Runtime>,
    pub handler: Option<String>,
    pub role: String,
    pub description: String,
    /// Seconds.
    pub timeout: u32,
    /// MB.
    pub memory_size: u32,
    pub environment: BTreeMap<String, String>,
    pub architecture: Architecture,
    /// `/tmp` size in MB.
    pub ephemeral_storage: u32,
    pub package_type: PackageType,
    pub tracing_mode: TracingMode,
    pub log_format: LogFormat,
    /// `None` means the default `/aws/lambda/<name>`.
    pub log_group: Option<String>,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
    /// Layer version ARNs, in order.
    #[serde(default)]
    pub layers: Vec<String>,
    /// The code of those layers, resolved when they were attached (in the same order).
    #[serde(default)]
    pub layer_code: Vec<LayerCode>,
    /// Where events that failed every asynchronous attempt go (an SNS topic ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_target: Option<String>,
    /// The image a `PackageType: Image` function runs, resolved when its code was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,
    /// `ImageConfig`: overrides of the image's own configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_config: Option<ImageConfig>,
    /// `VpcConfig`: the subnets and security groups the function runs in. Functions stored
    /// before VPCs existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<VpcConfig>,
    /// The VPC of `vpc_config`'s subnets, resolved when it was set (shown as `VpcId`): a subnet
    /// never moves to another VPC, and one a function uses cannot be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
}

/// An image function's image: what the user named, the digest it resolved to, and the parts of
/// the image's configuration that decide how it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// `ImageUri` as given.
    pub uri: String,
    /// `<repository>@sha256:<hex>`: what this version runs, whatever the tag names later.
    pub resolved_uri: String,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    #[serde(default)]
    pub entry_point: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    /// The image's `Env`, `KEY=VALUE` each.
    #[serde(default)]
    pub env: Vec<String>,
}

/// `ImageConfig` (each member absent means the image's own value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
}

/// How an image function starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLaunch {
    pub argv: Vec<String>,
    pub cwd: String,
    /// The image's own environment.
    pub env: Vec<(String, String)>,
}

impl FunctionSpec {
    /// What an image function executes, where, with the image's environment first: `ImageConfig`
    /// over the image's configuration, as Lambda does. `None` for zip functions.
    pub fn image_run(&self) -> Option<ImageLaunch> {
        let image = self.image.as_ref()?;
        let over = self.image_config.clone().unwrap_or_default();
        let mut argv = over
            .entry_point
            .unwrap_or_else(|| image.entry_point.clone());
        argv.extend(over.command.unwrap_or_else(|| image.cmd.clone()));
        let cwd = over
            .working_directory
            .filter(|d| !d.is_empty())
            .or_else(|| Some(image.working_dir.clone()).filter(|d| !d.is_empty()))
            .unwrap_or_else(|| "/".into());
        let env = image
            .env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(ImageLaunch { argv, cwd, env })
    }
}

/// A layer version as a function uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCode {
    pub arn: String,
    pub sha256_hex: String,
    pub size: u64,
    pub unzipped_size: u64,
}

impl FunctionSpec {
    /// Lambda's defaults for the fields a CreateFunction request may leave out.
    pub fn with_defaults(role: String) -> Self {
        Self {
            runtime: None,
            handler: None,
            role,
            description: String::new(),
            timeout: 3,
            memory_size: 128,
            environment: BTreeMap::new(),
            architecture: Architecture::X86_64,
            ephemeral_storage: 512,
            package_type: PackageType::Zip,
            tracing_mode: TracingMode::PassThrough,
            log_format: LogFormat::Text,
            log_group: None,
            application_log_level: None,
            system_log_level: None,
            layers: Vec::new(),
            layer_code: Vec::new(),
            dead_letter_target: None,
            image: None,
            image_config: None,
            vpc_config: None,
            vpc_id: None,
        }
    }
}
