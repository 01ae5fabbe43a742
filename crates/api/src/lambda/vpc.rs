//! `VpcConfig`: checked on CreateFunction and UpdateFunctionConfiguration against the account's
//! VPC objects (through [`lamina_store::Store::vpc_access`], in Lambda's words), shown as
//! `VpcConfig` with its `VpcId`, and resolved for the invoke path ([`vpc_access_of`]).

use lamina_model::{AccountId, ErrorKind, FunctionSpec, LambdaError, Region, VpcAccess, VpcConfig};
use lamina_store::{Ec2Error, StoreError};

use super::wire;
use super::{ApiResult, AppState, blocking};

/// A request's `VpcConfig`, checked: `None` when the request has none, `Some(None)` when it
/// takes the function out of its VPC (empty lists), otherwise the configuration with its VPC.
pub(super) async fn requested(
    state: &AppState,
    account: &AccountId,
    region: &Region,
    v: Option<wire::VpcConfig>,
) -> ApiResult<Option<Option<(VpcConfig, String)>>> {
    let Some(v) = v else {
        return Ok(None);
    };
    let Some(config) = VpcConfig::parse(
        v.subnet_ids.unwrap_or_default(),
        v.security_group_ids.unwrap_or_default(),
        v.ipv6_allowed_for_dual_stack.unwrap_or(false),
    )?
    else {
        return Ok(Some(None));
    };
    let (store, a, r, c) = (
        state.store.clone(),
        account.clone(),
        region.clone(),
        config.clone(),
    );
    let access = blocking(move || Ok(store.vpc_access(&a, &r, &c)?)).await?;
    Ok(Some(Some((config, access.vpc_id))))
}

/// Sets a checked `VpcConfig` (see [`requested`]) on `spec`.
pub(super) fn apply(spec: &mut FunctionSpec, checked: Option<Option<(VpcConfig, String)>>) {
    if let Some(v) = checked {
        (spec.vpc_config, spec.vpc_id) = match v {
            Some((config, vpc)) => (Some(config), Some(vpc)),
            None => (None, None),
        };
    }
}

/// `VpcConfig` in a `FunctionConfiguration`; absent for functions outside a VPC.
pub(super) fn response(spec: &FunctionSpec) -> Option<wire::VpcConfigResponse> {
    let config = spec.vpc_config.as_ref()?;
    Some(wire::VpcConfigResponse {
        subnet_ids: config.subnet_ids.clone(),
        security_group_ids: config.security_group_ids.clone(),
        vpc_id: spec.vpc_id.clone().unwrap_or_default(),
        ipv6_allowed_for_dual_stack: config.ipv6_allowed_for_dual_stack,
    })
}

/// Lambda's words for the store's refusals of a `VpcConfig`: the EC2 error Lambda met while it
/// described the subnets and groups.
pub(super) fn lambda_error(e: Ec2Error) -> LambdaError {
    match e {
        Ec2Error::NoSubnet(id) => LambdaError::invalid_parameter(format!(
            "Error occurred while DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. EC2 Error Message: The subnet ID '{id}' does not exist"
        )),
        Ec2Error::NoGroup(id) => LambdaError::invalid_parameter(format!(
            "Error occurred while DescribeSecurityGroups. EC2 Error Code: InvalidGroup.NotFound. EC2 Error Message: The security group '{id}' does not exist"
        )),
        Ec2Error::SubnetsInManyVpcs => {
            LambdaError::invalid_parameter("Subnets are required to be in the same VPC.")
        }
        Ec2Error::GroupsInOtherVpc => {
            LambdaError::invalid_parameter("Security Groups are required to be in the same VPC.")
        }
        e => {
            tracing::error!(error = %e, "a Lambda operation met an EC2 refusal it does not expect");
            LambdaError::service("An internal error occurred. The server log has the details.")
        }
    }
}

/// The network a function version runs in, for the invoke path: `Ok(None)` outside a VPC. A
/// VPC function whose subnets or groups are gone fails (`InvalidSubnetIDException`,
/// `InvalidSecurityGroupIDException`, 502, as Lambda's invokes do) rather than run without its
/// VPC's limits.
pub async fn vpc_access_of(
    state: &AppState,
    account: &AccountId,
    region: &Region,
    spec: &FunctionSpec,
) -> ApiResult<Option<VpcAccess>> {
    let Some(config) = spec.vpc_config.clone() else {
        return Ok(None);
    };
    let (store, a, r) = (state.store.clone(), account.clone(), region.clone());
    let resolved = blocking(move || Ok(store.vpc_access(&a, &r, &config))).await?;
    match resolved {
        Ok(access) => Ok(Some(access)),
        Err(StoreError::Ec2(Ec2Error::NoSubnet(id))) => Err(LambdaError::new(
            ErrorKind::InvalidSubnetId,
            format!("The function's subnet '{id}' does not exist."),
        )
        .into()),
        Err(StoreError::Ec2(Ec2Error::NoGroup(id))) => Err(LambdaError::new(
            ErrorKind::InvalidSecurityGroupId,
            format!("The function's security group '{id}' does not exist."),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}
