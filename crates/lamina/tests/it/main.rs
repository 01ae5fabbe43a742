//! Integration tests: a real server (in-process or as the `lamina` binary) driven by clients we
//! did not write: the official Rust SDK, the AWS CLI and boto3.

mod async_invoke;
mod awscli;
mod billing;
mod cli;
mod console;
mod crash;
mod ec2;
mod ec2_config;
mod fuzz;
mod hardening;
mod helpers;
mod http_apis;
mod http_jwt;
mod http_node;
mod http_urls;
mod images;
mod images_auth;
mod images_pull;
mod images_python;
mod invoke;
mod json_logs;
mod layers;
mod logs_api;
mod logs_live_tail;
mod metrics_history;
mod network;
mod nonroot;
mod runtime_clients;
mod scaling;
mod sdk_auth;
mod sdk_errors;
mod sdk_functions;
mod sns;
mod sns_delivery;
mod versions;
