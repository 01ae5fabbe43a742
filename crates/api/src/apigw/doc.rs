//! An HTTP API as stored: one document with its routes, integrations, authorizers, stages and
//! deployments. Members serialize in API Gateway's lower camel case, so the wire shapes are
//! these types (timestamps are kept as the ISO-8601 strings the wire carries).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::cors::Cors;

/// An API's top-level members.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Api {
    #[serde(default)]
    pub api_id: String,
    pub name: String,
    pub protocol_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub route_selection_expression: String,
    #[serde(default)]
    pub api_key_selection_expression: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_configuration: Option<ApiCors>,
    #[serde(default)]
    pub disable_execute_api_endpoint: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub created_date: String,
    #[serde(default)]
    pub api_gateway_managed: bool,
    /// Filled in when rendered: it depends on the server's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<String>,
}

/// `corsConfiguration`: Lambda's `Cors`, in lower camel case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCors {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_headers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_origins: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
}

impl From<&ApiCors> for Cors {
    fn from(c: &ApiCors) -> Self {
        Cors {
            allow_credentials: c.allow_credentials,
            allow_headers: c.allow_headers.clone(),
            allow_methods: c.allow_methods.clone(),
            allow_origins: c.allow_origins.clone(),
            expose_headers: c.expose_headers.clone(),
            max_age: c.max_age,
        }
    }
}

/// A route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    #[serde(default)]
    pub route_id: String,
    pub route_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default = "none")]
    pub authorization_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_scopes: Option<Vec<String>>,
    #[serde(default)]
    pub api_key_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_parameters: Option<Value>,
    #[serde(default)]
    pub api_gateway_managed: bool,
}

fn none() -> String {
    "NONE".into()
}

/// An integration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    #[serde(default)]
    pub integration_id: String,
    pub integration_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_format_version: Option<String>,
    #[serde(default = "thirty_seconds")]
    pub timeout_in_millis: i64,
    #[serde(default = "internet")]
    pub connection_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_parameters: Option<Value>,
    #[serde(default)]
    pub api_gateway_managed: bool,
}

fn thirty_seconds() -> i64 {
    30_000
}

fn internet() -> String {
    "INTERNET".into()
}

/// `jwtConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtConfiguration {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audience: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// An authorizer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorizer {
    #[serde(default)]
    pub authorizer_id: String,
    pub authorizer_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_payload_format_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_simple_responses: Option<bool>,
    #[serde(default)]
    pub identity_source: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_result_ttl_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_credentials_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_validation_expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_configuration: Option<JwtConfiguration>,
    pub name: String,
}

/// A stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    pub stage_name: String,
    #[serde(default)]
    pub auto_deploy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(default)]
    pub stage_variables: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_route_settings: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_settings: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_settings: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_deployment_status_message: Option<String>,
    #[serde(default)]
    pub created_date: String,
    #[serde(default)]
    pub last_updated_date: String,
    #[serde(default)]
    pub api_gateway_managed: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// What a deployment froze: the API as its stages serve it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub routes: BTreeMap<String, Route>,
    pub integrations: BTreeMap<String, Integration>,
    pub authorizers: BTreeMap<String, Authorizer>,
    pub cors: Option<ApiCors>,
}

/// A deployment, as the wire has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub deployment_id: String,
    pub deployment_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_date: String,
    pub auto_deployed: bool,
}

/// The most deployments an API keeps (each holds a snapshot of the API).
pub const MAX_DEPLOYMENTS: usize = 20;

/// Everything of one API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiDoc {
    pub account: String,
    pub region: String,
    pub api: Api,
    #[serde(default)]
    pub routes: BTreeMap<String, Route>,
    #[serde(default)]
    pub integrations: BTreeMap<String, Integration>,
    #[serde(default)]
    pub authorizers: BTreeMap<String, Authorizer>,
    #[serde(default)]
    pub stages: BTreeMap<String, Stage>,
    /// Stored with their snapshots (see [`StoredDeployment`]).
    #[serde(default)]
    pub deployments: BTreeMap<String, StoredDeployment>,
}

/// A deployment as stored: the snapshot is kept, unlike on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredDeployment {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub frozen: Snapshot,
}

impl ApiDoc {
    /// The API as it is now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            routes: self.routes.clone(),
            integrations: self.integrations.clone(),
            authorizers: self.authorizers.clone(),
            cors: self.api.cors_configuration.clone(),
        }
    }

    /// After a change: a new deployment for the stages that deploy automatically, and only
    /// the deployments some stage serves (or someone made by hand) are kept.
    pub fn auto_deploy(&mut self, now: &str) {
        if self.stages.values().any(|s| s.auto_deploy) {
            let id = super::new_id();
            let frozen = self.snapshot();
            self.deployments.insert(
                id.clone(),
                StoredDeployment {
                    deployment: Deployment {
                        deployment_id: id.clone(),
                        deployment_status: "DEPLOYED".into(),
                        description: Some(
                            "Automatic deployment triggered by changes to the Api configuration"
                                .into(),
                        ),
                        created_date: now.to_owned(),
                        auto_deployed: true,
                    },
                    frozen,
                },
            );
            for s in self.stages.values_mut().filter(|s| s.auto_deploy) {
                s.deployment_id = Some(id.clone());
                s.last_updated_date = now.to_owned();
                s.last_deployment_status_message = Some(format!(
                    "Successfully deployed stage with deployment ID '{id}'"
                ));
            }
        }
        self.prune();
    }

    /// Keeps the deployments some stage serves, and those made by hand up to a bound (the
    /// oldest unserved go first).
    pub fn prune(&mut self) {
        let served: std::collections::HashSet<String> = self
            .stages
            .values()
            .filter_map(|s| s.deployment_id.clone())
            .collect();
        self.deployments
            .retain(|id, d| !d.deployment.auto_deployed || served.contains(id));
        while self.deployments.len() > MAX_DEPLOYMENTS {
            let oldest = self
                .deployments
                .iter()
                .filter(|(id, _)| !served.contains(*id))
                .min_by(|a, b| {
                    a.1.deployment
                        .created_date
                        .cmp(&b.1.deployment.created_date)
                })
                .map(|(id, _)| id.clone());
            let Some(id) = oldest else { break };
            self.deployments.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manual(doc: &mut ApiDoc, i: usize) {
        let id = format!("d{i:03}");
        doc.deployments.insert(
            id.clone(),
            StoredDeployment {
                deployment: Deployment {
                    deployment_id: id,
                    deployment_status: "DEPLOYED".into(),
                    description: None,
                    created_date: format!("2026-01-01T00:00:{:02}.{i:03}Z", i % 60),
                    auto_deployed: false,
                },
                frozen: Snapshot::default(),
            },
        );
        doc.prune();
    }

    #[test]
    fn deployments_are_bounded_but_served_ones_stay() {
        let mut doc = ApiDoc::default();
        manual(&mut doc, 0);
        doc.stages.insert(
            "s".into(),
            Stage {
                stage_name: "s".into(),
                deployment_id: Some("d000".into()),
                ..Stage::default()
            },
        );
        for i in 1..40 {
            manual(&mut doc, i);
        }
        assert_eq!(doc.deployments.len(), MAX_DEPLOYMENTS);
        assert!(doc.deployments.contains_key("d000"), "served by a stage");
        assert!(doc.deployments.contains_key("d039"));
    }

    #[test]
    fn changes_redeploy_only_automatic_stages() {
        let mut doc = ApiDoc::default();
        doc.stages.insert(
            "auto".into(),
            Stage {
                stage_name: "auto".into(),
                auto_deploy: true,
                ..Stage::default()
            },
        );
        doc.stages.insert("manual".into(), Stage::default());
        doc.auto_deploy("t1");
        let first = doc.stages["auto"].deployment_id.clone().unwrap();
        doc.auto_deploy("t2");
        let second = doc.stages["auto"].deployment_id.clone().unwrap();
        assert_ne!(first, second);
        assert!(doc.stages["manual"].deployment_id.is_none());
        assert_eq!(
            doc.deployments.len(),
            1,
            "the replaced automatic deployment goes"
        );
    }
}
