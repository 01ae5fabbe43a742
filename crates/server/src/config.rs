//! Server configuration: embedded defaults, then a TOML file, then command-line flags.
//!
//! The raw file form ([`FileConfig`]) is parsed and validated into [`Config`], which is all the
//! rest of the server sees.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lamina_api::{AccessKey, AuthConfig};
use lamina_model::{AccountId, Limits, Region};
use serde::Deserialize;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database and code live.
    pub data_dir: PathBuf,
    /// The address the API listens on.
    pub listen: SocketAddr,
    /// Limits enforced at the API.
    pub limits: Limits,
    /// Caller identification.
    pub auth: AuthConfig,
    /// The account concurrency limit.
    pub account_concurrency: u32,
    /// How long function logs are kept, days.
    pub log_retention_days: u32,
    /// How often the metric history's counts are written to the store (and so the most a
    /// kill -9 loses of them).
    pub metrics_flush: std::time::Duration,
    /// A binary to run as `<binary> sandbox-init` instead of the `lamina-init` carried inside.
    pub init_exe: Option<PathBuf>,
    /// Prices for bills (AWS's by default).
    pub prices: lamina_billing::PriceSheet,
    /// How long an idle environment is kept before it is destroyed.
    pub keep_alive: std::time::Duration,
    /// The most memory (sum of MemorySize) live environments may hold, MB.
    pub memory_budget_mb: u64,
    /// The budget's multiplier: live environments' MemorySize may add up to the budget times
    /// this (1: no over-commit, the default).
    pub memory_overcommit: f64,
    /// No new environment starts while the host has less memory available than this, MB
    /// (default: none without over-commit, a tenth of the host's memory with it).
    pub memory_reserve_mb: u64,
    /// Sandboxes kept made ahead of time, up to their function, for cold starts (0: none).
    pub prepared_sandboxes: usize,
    /// How long shutdown waits for in-flight invocations.
    pub shutdown_grace: std::time::Duration,
    /// New environments per function per 10 s.
    pub scale_up_per_10s: u32,
    /// The most `/tmp` (sum of EphemeralStorage) live environments may hold, MB; `None`: 80 %
    /// of the data directory's free space at start.
    pub tmp_budget_mb: Option<u64>,
    /// Log bytes per second a function may write, and the burst above that rate.
    pub log_rate_bytes_per_s: u64,
    pub log_burst_bytes: u64,
    /// Log bytes kept per function; the oldest lines go first.
    pub log_max_bytes_per_function: u64,
    /// Asynchronous invocation.
    pub async_settings: lamina_api::lambda::queue::AsyncSettings,
    /// The part of the concurrency asynchronous attempts may hold.
    pub async_share: f64,
    /// The base URL in links this server sends (SNS confirmation and unsubscribe links);
    /// `None`: `http://` and the listening address.
    pub public_url: Option<String>,
    /// How long an SNS HTTP endpoint has to answer.
    pub sns_http_timeout: std::time::Duration,
    /// Bytes the SNS outbox may hold.
    pub sns_backlog_max_bytes: u64,
    /// Networks SNS HTTP deliveries (and JWKS fetches) may not reach.
    pub sns_http_deny: lamina_api::sns::egress::Deny,
    /// JWKS files by JWT issuer.
    pub jwks_files: std::collections::BTreeMap<String, PathBuf>,
    /// Which other registries image functions may be pulled from, and how.
    pub image_pulls: lamina_api::ecr::pull::PullSettings,
    /// Functions' egress: the address pool and the namespaces kept ready; `None`: loopback
    /// only.
    pub network: Option<lamina_net::NetConfig>,
    /// The VPC objects `[network]` declares, applied to the store at start.
    pub declared_vpcs: lamina_store::ec2::Declared,
    /// The host interfaces each account may bind subnets to.
    pub interface_permits: lamina_model::vpc::InterfacePermits,
}

/// `[images]` in the configuration file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesSection {
    /// Registries (`host[:port]`, `docker.io`) image functions may be pulled from; `"*"` for any.
    pub pull_from: Vec<String>,
    /// Registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Credentials by registry.
    pub credentials: std::collections::BTreeMap<String, RegistryCredentials>,
}

/// A registry's user and password.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

/// One access key in the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account: String,
}

/// `[auth]` in the configuration file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub verify: bool,
    pub max_skew_s: Option<i64>,
    pub keys: Vec<KeyEntry>,
}

/// The configuration file as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    pub account_concurrency: Option<u32>,
    pub log_retention_days: Option<u32>,
    /// Seconds between flushes of the metric history (fractions allowed).
    pub metrics_flush_s: Option<f64>,
    pub keep_alive_s: Option<u64>,
    pub memory_budget_mb: Option<u64>,
    pub memory_overcommit: Option<f64>,
    pub memory_reserve_mb: Option<u64>,
    pub prepared_sandboxes: Option<usize>,
    pub shutdown_grace_s: Option<u64>,
    pub scale_up_per_10s: Option<u32>,
    pub tmp_budget_mb: Option<u64>,
    pub log_rate_bytes_per_s: Option<u64>,
    pub log_burst_bytes: Option<u64>,
    pub log_max_mb_per_function: Option<u64>,
    pub async_queue_max_events: Option<u64>,
    pub async_queue_max_mb: Option<u64>,
    /// Delays before the 2nd, 3rd... attempt of a failed asynchronous event, seconds.
    pub async_retry_delays_s: Option<Vec<f64>>,
    pub async_max_backoff_s: Option<f64>,
    pub async_share: Option<f64>,
    pub public_url: Option<String>,
    pub sns_http_timeout_s: Option<u64>,
    pub sns_backlog_max_mb: Option<u64>,
    pub sns_http_deny: Option<Vec<String>>,
    /// JWKS files by JWT issuer, for hosts that cannot fetch issuers' keys.
    pub jwks_files: Option<std::collections::BTreeMap<String, PathBuf>>,
    /// A price sheet (TOML) replacing AWS's prices.
    pub price_sheet: Option<PathBuf>,
    pub auth: AuthSection,
    pub images: ImagesSection,
    pub network: crate::network::NetworkSection,
    pub limits: Limits,
}

/// Flags that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub verify_auth: Option<bool>,
    pub init_exe: Option<PathBuf>,
    /// `Some(false)`: functions get loopback only, whatever the file says.
    pub egress: Option<bool>,
}

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

pub(crate) fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

impl Config {
    /// Reads `file` (if given) and applies `overrides` on top.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let raw = match file {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
        };
        Self::from_parts(raw, overrides)
    }

    /// Validates a raw configuration.
    pub fn from_parts(raw: FileConfig, o: Overrides) -> Result<Self, ConfigError> {
        let listen = o
            .listen
            .or(raw.listen)
            .unwrap_or_else(|| "127.0.0.1:9001".into());
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| invalid("listen", format!("'{listen}' is not host:port")))?;
        let region = raw.region.unwrap_or_else(|| "us-east-1".into());
        let region = Region::parse(&region).map_err(|e| invalid("region", e.message))?;
        let account = raw.account.unwrap_or_else(|| "000000000000".into());
        let account = AccountId::parse(&account).map_err(|e| invalid("account", e.message))?;
        let mut keys = HashMap::new();
        for k in raw.auth.keys {
            let account = AccountId::parse(&k.account)
                .map_err(|e| invalid("auth.keys.account", e.message))?;
            if k.access_key_id.is_empty() || k.secret_access_key.is_empty() {
                return Err(invalid(
                    "auth.keys",
                    "access_key_id and secret_access_key must not be empty",
                ));
            }
            keys.insert(
                k.access_key_id,
                AccessKey {
                    secret_access_key: k.secret_access_key,
                    account,
                },
            );
        }
        let verify = o.verify_auth.unwrap_or(raw.auth.verify);
        if verify && keys.is_empty() {
            return Err(invalid(
                "auth.verify",
                "signature verification needs at least one [[auth.keys]] entry in the configuration file",
            ));
        }
        let mut network = raw.network;
        if let Some(egress) = o.egress {
            network.egress = egress;
        }
        let settings = network.settings().map_err(|e| invalid("network.pool", e))?;
        let declared_vpcs = crate::network::objects::check(
            &network.vpcs,
            &network.subnets,
            &network.security_groups,
            &network.nat_gateways,
            (&account, &region),
            settings.as_ref().map(|n| n.pool),
        )?;
        let interface_permits = crate::network::interface_permits(&network.interfaces)
            .map_err(|e| invalid("network.interfaces", e))?;
        let network = settings;
        let limits = raw.limits;
        if limits.memory_min_mb > limits.memory_max_mb
            || limits.ephemeral_min_mb > limits.ephemeral_max_mb
        {
            return Err(invalid("limits", "a minimum is larger than its maximum"));
        }
        Ok(Self {
            data_dir: o
                .data_dir
                .or(raw.data_dir)
                .unwrap_or_else(|| PathBuf::from("./lamina-data")),
            listen,
            limits,
            auth: AuthConfig {
                verify,
                keys,
                default_account: account,
                default_region: region,
                max_skew_s: raw.auth.max_skew_s.unwrap_or(15 * 60),
                sessions: Default::default(),
            },
            account_concurrency: raw.account_concurrency.unwrap_or(1000),
            log_retention_days: raw.log_retention_days.unwrap_or(7),
            metrics_flush: match raw.metrics_flush_s {
                Some(s) if !(0.05..=300.0).contains(&s) => {
                    return Err(invalid("metrics_flush_s", "must be from 0.05 to 300"));
                }
                s => std::time::Duration::from_secs_f64(s.unwrap_or(10.0)),
            },
            keep_alive: std::time::Duration::from_secs(raw.keep_alive_s.unwrap_or(600)),
            memory_budget_mb: raw
                .memory_budget_mb
                .unwrap_or_else(default_memory_budget_mb),
            memory_overcommit: match raw.memory_overcommit {
                Some(r) if !(1.0..=100.0).contains(&r) => {
                    return Err(invalid(
                        "memory_overcommit",
                        "must be from 1 (no over-commit) to 100",
                    ));
                }
                r => r.unwrap_or(1.0),
            },
            memory_reserve_mb: raw.memory_reserve_mb.unwrap_or_else(|| {
                if raw.memory_overcommit.is_some_and(|r| r > 1.0) {
                    host_memory_mb() / 10
                } else {
                    0
                }
            }),
            prepared_sandboxes: match raw.prepared_sandboxes {
                Some(n) if n > 64 => {
                    return Err(invalid("prepared_sandboxes", "must be from 0 to 64"));
                }
                n => n.unwrap_or(2),
            },
            shutdown_grace: std::time::Duration::from_secs(raw.shutdown_grace_s.unwrap_or(30)),
            scale_up_per_10s: raw.scale_up_per_10s.unwrap_or(1000),
            tmp_budget_mb: raw.tmp_budget_mb,
            log_rate_bytes_per_s: raw.log_rate_bytes_per_s.unwrap_or(1 << 20),
            log_burst_bytes: raw.log_burst_bytes.unwrap_or(8 << 20),
            log_max_bytes_per_function: raw.log_max_mb_per_function.unwrap_or(256) << 20,
            public_url: match raw.public_url {
                Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                    return Err(invalid(
                        "public_url",
                        format!("'{u}' is not an http(s) URL"),
                    ));
                }
                u => u.map(|u| u.trim_end_matches('/').to_owned()),
            },
            sns_http_timeout: std::time::Duration::from_secs(
                raw.sns_http_timeout_s.unwrap_or(15).clamp(1, 900),
            ),
            sns_backlog_max_bytes: raw.sns_backlog_max_mb.unwrap_or(256) << 20,
            sns_http_deny: match raw.sns_http_deny {
                None => lamina_api::sns::egress::Deny::link_local(),
                Some(list) => lamina_api::sns::egress::Deny::parse(&list)
                    .map_err(|e| invalid("sns_http_deny", e))?,
            },
            jwks_files: raw.jwks_files.unwrap_or_default(),
            network,
            declared_vpcs,
            interface_permits,
            image_pulls: lamina_api::ecr::pull::PullSettings {
                allow: raw.images.pull_from,
                insecure: raw.images.insecure_registries,
                credentials: raw
                    .images
                    .credentials
                    .into_iter()
                    .map(|(k, c)| (k, (c.username, c.password)))
                    .collect(),
                exe: None,
            },
            async_settings: lamina_api::lambda::queue::AsyncSettings {
                max_events: raw.async_queue_max_events.unwrap_or(100_000),
                max_bytes: raw.async_queue_max_mb.unwrap_or(1024) << 20,
                retry_delays: seconds(
                    "async_retry_delays_s",
                    &raw.async_retry_delays_s
                        .unwrap_or_else(|| vec![60.0, 120.0]),
                )?,
                max_backoff: seconds(
                    "async_max_backoff_s",
                    &[raw.async_max_backoff_s.unwrap_or(300.0)],
                )?[0],
                max_in_flight: raw.account_concurrency.unwrap_or(1000) as usize,
            },
            async_share: match raw.async_share.unwrap_or(0.5) {
                s if s > 0.0 && s <= 1.0 => s,
                _ => return Err(invalid("async_share", "must be above 0 and at most 1")),
            },
            prices: match &raw.price_sheet {
                None => lamina_billing::PriceSheet::default(),
                Some(path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    lamina_billing::PriceSheet::from_toml(&text).map_err(|message| {
                        ConfigError::Parse {
                            path: path.clone(),
                            message,
                        }
                    })?
                }
            },
            init_exe: o.init_exe,
        })
    }
}

/// Durations in seconds, each positive and finite.
fn seconds(setting: &'static str, values: &[f64]) -> Result<Vec<std::time::Duration>, ConfigError> {
    values
        .iter()
        .map(|s| {
            std::time::Duration::try_from_secs_f64(*s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| invalid(setting, format!("{s} is not a positive number of seconds")))
        })
        .collect()
}

/// 80 % of the host's memory, MB.
fn default_memory_budget_mb() -> u64 {
    host_memory_mb() * 8 / 10
}

/// The host's memory (`MemTotal`), MB; 4 GB if it cannot be read.
fn host_memory_mb() -> u64 {
    let total_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(4 * 1024 * 1024);
    total_kb / 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::load(None, Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(c.data_dir, PathBuf::from("./lamina-data"));
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.auth.default_account.as_str(), "000000000000");
        assert!(!c.auth.verify);
    }

    #[test]
    fn file_then_flags() {
        let raw: FileConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:7000"
            account = "123456789012"
            [auth]
            verify = true
            [[auth.keys]]
            access_key_id = "AKID"
            secret_access_key = "s"
            account = "111111111111"
            [limits]
            timeout_max_s = 1800
            "#,
        )
        .unwrap();
        let c = Config::from_parts(
            raw,
            Overrides {
                listen: Some("127.0.0.1:0".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.limits.timeout_max_s, 1800);
        assert_eq!(c.limits.memory_max_mb, 10_240);
        assert!(c.auth.verify);
        assert_eq!(c.auth.keys["AKID"].account.as_str(), "111111111111");
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(toml::from_str::<FileConfig>("nonsense = 1").is_err());
        let raw: FileConfig = toml::from_str("[auth]\nverify = true").unwrap();
        assert!(Config::from_parts(raw, Overrides::default()).is_err());
        let raw: FileConfig = toml::from_str("account = \"12\"").unwrap();
        assert!(Config::from_parts(raw, Overrides::default()).is_err());
        for bad in [
            "memory_overcommit = 0.5",
            "memory_overcommit = 1000.0",
            "prepared_sandboxes = 65",
        ] {
            let raw: FileConfig = toml::from_str(bad).unwrap();
            assert!(
                Config::from_parts(raw, Overrides::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn over_commit_brings_a_reserve_of_a_tenth_of_the_host() {
        let c = Config::load(None, Overrides::default()).unwrap();
        assert_eq!((c.memory_overcommit, c.memory_reserve_mb), (1.0, 0));
        assert_eq!(c.prepared_sandboxes, 2);
        let raw: FileConfig = toml::from_str("memory_overcommit = 4.0").unwrap();
        let c = Config::from_parts(raw, Overrides::default()).unwrap();
        assert_eq!(c.memory_reserve_mb, host_memory_mb() / 10);
        let raw: FileConfig =
            toml::from_str("memory_overcommit = 4.0\nmemory_reserve_mb = 512").unwrap();
        let c = Config::from_parts(raw, Overrides::default()).unwrap();
        assert_eq!((c.memory_overcommit, c.memory_reserve_mb), (4.0, 512));
    }
}
