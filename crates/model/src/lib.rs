//! Lambda's domain vocabulary: account ids, regions, function names, qualifiers, ARNs, runtimes,
//! function configuration, VPC configuration and the networks it resolves to, limits and their
//! validators.
//!
//! Everything here is pure: no IO, no clocks except formatting helpers, no async. Raw strings from
//! the wire are parsed into these types at the edge (`api`), and every other crate passes only the
//! typed values around. Every validator returns a [`LambdaError`] carrying Lambda's own error type
//! and a message that says what is wrong.

mod arn;
mod error;
mod function;
pub mod limits;
mod log_stream;
mod names;
mod runtime;
mod timestamp;
pub mod vpc;

pub use arn::{AccountId, Region};
pub use error::{ErrorKind, LambdaError};
pub use function::{
    Architecture, FunctionSpec, ImageConfig, ImageLaunch, ImageSpec, LastUpdateStatus, LayerCode,
    LogFormat, PackageType, State, TracingMode,
};
pub use limits::Limits;
pub use log_stream::LogStreamKey;
pub use names::{FunctionName, FunctionRef, Qualifier, function_arn};
pub use runtime::Runtime;
pub use timestamp::{format_timestamp, iso8601_millis, now_millis};
pub use vpc::{
    EgressRule, Ipv4Cidr, MAX_SECURITY_GROUPS, MAX_SUBNETS, SecurityGroupRules, SubnetAccess,
    VpcAccess, VpcConfig,
};
