//! EC2's VPC control plane: the subset of EC2's API (protocol `ec2`, SigV4 scope `ec2`) that
//! makes the networks Lambda functions run in: VPCs, subnets, security groups and their rules,
//! NAT gateways, tags. `POST /` with `Action=…&Version=2016-11-15`.
//!
//! A subnet is a CIDR reached through a host interface, named by its `lamina:interface` tag; a
//! group's egress rules decide what a function may reach; an available public NAT gateway in
//! the VPC opens the internet (`images-net-notes.md` §2.3). Ingress rules are kept and shown,
//! and change nothing: nothing connects into a function. Each caller sees only its own
//! account's objects, in the region its signature names.
//!
//! Objects declared in the server's configuration file (`[[network.vpcs]]`, …) are shown like
//! any other, with the tag `lamina:source=config`; deleting them, changing their rules or their
//! `lamina:` tags is refused with `OperationNotPermitted` (the store's `Configured`).

mod groups;
mod nat;
mod subnets;
mod tags;
mod vpcs;
pub mod wire;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;

use crate::auth::{AuthFailure, identify, read_body};
use crate::query::Params;
use crate::xml::Xml;
use crate::{AppState, Caller};
use wire::{Ec2Error, Ec2Result, error_response};

/// The largest request body: a batch of rules or tags is a few kilobytes.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// The network layer is told here that what functions of `account` in `region` may reach has
/// changed: a security group's egress rules, a NAT gateway, or the interface a subnet is bound
/// to. Called after the change is committed.
pub fn network_changed(state: &AppState, account: &str, region: &str) {
    // Applied before the response, so that a caller's next invoke sees it (blocking: the store
    // and nft; off the runtime's worker when there is one).
    let apply = || state.executor.network_changed(account, region);
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(apply)
        }
        _ => apply(),
    }
}

/// Serves one EC2 request.
pub async fn serve(state: Arc<AppState>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    match handle(&state, req, &request_id).await {
        Ok(r) => r,
        Err(e) => error_response(&e, &request_id),
    }
}

async fn handle(state: &Arc<AppState>, req: Request, request_id: &str) -> Ec2Result<Response> {
    let (parts, body) = req.into_parts();
    if parts.method != Method::POST && parts.method != Method::GET {
        return Err(Ec2Error::with_status(
            "InvalidAction",
            StatusCode::METHOD_NOT_ALLOWED,
            "EC2 takes POST (or GET) requests at /.",
        ));
    }
    let Some(body) = read_body(&parts, body, MAX_REQUEST_BYTES).await else {
        return Err(Ec2Error::with_status(
            "RequestEntityTooLarge",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request must be smaller than {MAX_REQUEST_BYTES} bytes."),
        ));
    };
    let caller = identify(&state.auth, &parts, &body).map_err(|e| {
        let (code, status) = match e.kind {
            AuthFailure::MissingToken => ("MissingAuthenticationToken", StatusCode::UNAUTHORIZED),
            AuthFailure::Malformed => ("IncompleteSignature", StatusCode::BAD_REQUEST),
            AuthFailure::UnknownKey => ("AuthFailure", StatusCode::UNAUTHORIZED),
            AuthFailure::BadSignature => ("SignatureDoesNotMatch", StatusCode::FORBIDDEN),
        };
        Ec2Error::with_status(code, status, e.message)
    })?;
    let mut pairs = crate::query::pairs(parts.uri.query().unwrap_or(""));
    pairs.extend(crate::query::pairs(&String::from_utf8_lossy(&body)));
    let params = Params::new(pairs);
    let action = params
        .get("Action")
        .ok_or_else(|| {
            Ec2Error::new(
                "MissingAction",
                "The request must contain the parameter Action",
            )
        })?
        .to_owned();
    let ctx = Ctx {
        state,
        caller: &caller,
        params: &params,
        request_id,
        action: &action,
    };
    let invalid_action = || {
        Ec2Error::new(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )
    };
    if !ACTIONS.contains(&action.as_str()) {
        return Err(invalid_action());
    }
    if params.flag("DryRun")? == Some(true) {
        return Err(Ec2Error::with_status(
            "DryRunOperation",
            StatusCode::PRECONDITION_FAILED,
            "Request would have succeeded, but DryRun flag is set.",
        ));
    }
    match action.as_str() {
        "CreateVpc" => vpcs::create(&ctx).await,
        "DescribeVpcs" => vpcs::describe(&ctx).await,
        "DeleteVpc" => vpcs::delete(&ctx).await,
        "DescribeAccountAttributes" => vpcs::account_attributes(&ctx),
        "CreateSubnet" => subnets::create(&ctx).await,
        "DescribeSubnets" => subnets::describe(&ctx).await,
        "DeleteSubnet" => subnets::delete(&ctx).await,
        "CreateSecurityGroup" => groups::create(&ctx).await,
        "DescribeSecurityGroups" => groups::describe(&ctx).await,
        "DeleteSecurityGroup" => groups::delete(&ctx).await,
        "AuthorizeSecurityGroupEgress" => groups::authorize(&ctx, true).await,
        "AuthorizeSecurityGroupIngress" => groups::authorize(&ctx, false).await,
        "RevokeSecurityGroupEgress" => groups::revoke(&ctx, true).await,
        "RevokeSecurityGroupIngress" => groups::revoke(&ctx, false).await,
        "CreateNatGateway" => nat::create(&ctx).await,
        "DescribeNatGateways" => nat::describe(&ctx).await,
        "DeleteNatGateway" => nat::delete(&ctx).await,
        "CreateTags" => tags::create(&ctx).await,
        "DeleteTags" => tags::delete(&ctx).await,
        "DescribeTags" => tags::describe(&ctx).await,
        _ => Err(invalid_action()),
    }
}

/// The actions this server answers.
pub const ACTIONS: &[&str] = &[
    "CreateVpc",
    "DescribeVpcs",
    "DeleteVpc",
    "DescribeAccountAttributes",
    "CreateSubnet",
    "DescribeSubnets",
    "DeleteSubnet",
    "CreateSecurityGroup",
    "DescribeSecurityGroups",
    "DeleteSecurityGroup",
    "AuthorizeSecurityGroupEgress",
    "AuthorizeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "CreateNatGateway",
    "DescribeNatGateways",
    "DeleteNatGateway",
    "CreateTags",
    "DeleteTags",
    "DescribeTags",
];

/// What every action gets.
pub(crate) struct Ctx<'a> {
    pub state: &'a Arc<AppState>,
    pub caller: &'a Caller,
    pub params: &'a Params,
    pub request_id: &'a str,
    pub action: &'a str,
}

impl Ctx<'_> {
    /// The answer to this action.
    pub fn respond(&self, children: Vec<Xml>) -> Ec2Result<Response> {
        Ok(wire::respond(self.action, self.request_id, children))
    }

    /// Runs store work for the caller's account and region off the async threads.
    pub async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&lamina_store::Store, &Caller) -> Result<T, lamina_store::StoreError>
        + Send
        + 'static,
    ) -> Ec2Result<T> {
        let store = self.state.store.clone();
        let caller = self.caller.clone();
        crate::blocking(move || f(&store, &caller).map_err(Ec2Error::from)).await
    }

    /// Refuses a `lamina:interface` among `tags` that the operator did not give the caller's
    /// account (`network.interfaces`): an interface reaches the host's networks behind it.
    pub fn may_bind(&self, tags: &std::collections::BTreeMap<String, String>) -> Ec2Result<()> {
        let Some(interface) = tags.get(lamina_store::ec2::INTERFACE_TAG) else {
            return Ok(());
        };
        if self
            .state
            .ec2_interfaces
            .allows(self.caller.account.as_str(), interface)
        {
            return Ok(());
        }
        Err(Ec2Error::invalid(format!(
            "Value ({interface}) for tag {} is invalid: this server does not let account {} bind subnets to host interface {interface}. Its operator lists the interfaces each account may use under [network.interfaces].",
            lamina_store::ec2::INTERFACE_TAG,
            self.caller.account
        )))
    }

    /// Tells the network layer about a committed change.
    pub fn network_changed(&self) {
        network_changed(
            self.state,
            self.caller.account.as_str(),
            self.caller.region.as_str(),
        );
    }

    /// `arn:aws:ec2:<region>:<account>:<kind>/<id>`.
    pub fn arn(&self, kind: &str, id: &str) -> String {
        format!(
            "arn:aws:ec2:{}:{}:{kind}/{id}",
            self.caller.region, self.caller.account
        )
    }
}
