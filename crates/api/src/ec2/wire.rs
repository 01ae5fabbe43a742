//! EC2's `ec2` protocol: form parameters in (lists flattened as `Name.N`, structures as
//! `Name.N.Member`), XML out (`<{Action}Response>` with `requestId` and lowerCamel elements,
//! lists of `<item>`), and EC2's errors (`<Response><Errors><Error>`, status 400).
//!
//! [`Ec2Error`] is the one error type of the module; store refusals become EC2's codes and
//! messages here, in its `From<StoreError>`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lamina_store::ec2::{INTERFACE_TAG, ResourceKind, SOURCE_TAG};
use lamina_store::{Ec2Error as Refused, StoreError};

use crate::query::{ParamError, Params};
use crate::xml::{Xml, document, leaf, write};

/// EC2's XML namespace.
const XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// An EC2 error: its code, message and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Error {
    /// The `<Code>`, e.g. `InvalidVpcID.NotFound`.
    pub code: &'static str,
    /// The `<Message>`.
    pub message: String,
    /// The HTTP status.
    pub status: StatusCode,
}

/// The result of an EC2 action.
pub type Ec2Result<T> = Result<T, Ec2Error>;

impl Ec2Error {
    /// An error answered with 400.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self::with_status(code, StatusCode::BAD_REQUEST, message)
    }

    /// An error with its own status.
    pub fn with_status(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    /// `InvalidParameterValue`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterValue", message)
    }

    /// `MissingParameter`, for a parameter as EC2 names it in messages.
    pub fn missing(name: &str) -> Self {
        Self::new(
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }
}

impl crate::Internal for Ec2Error {
    fn internal() -> Self {
        Self::with_status(
            "InternalError",
            StatusCode::INTERNAL_SERVER_ERROR,
            "An internal error has occurred",
        )
    }
}

impl From<ParamError> for Ec2Error {
    fn from(e: ParamError) -> Self {
        match e {
            ParamError::Missing(name) => Self::missing(&name),
            ParamError::NotBoolean { name, value } => Self::invalid(format!(
                "Value ({value}) for parameter {name} is invalid. Expected: 'true' or 'false'."
            )),
            e @ (ParamError::BadIndex { .. } | ParamError::Malformed(_)) => {
                Self::invalid(e.to_string())
            }
        }
    }
}

impl From<StoreError> for Ec2Error {
    fn from(e: StoreError) -> Self {
        let StoreError::Ec2(e) = e else {
            tracing::error!(error = %e, "EC2 store operation failed");
            return <Self as crate::Internal>::internal();
        };
        match e {
            Refused::NoVpc(id) => Self::new(
                "InvalidVpcID.NotFound",
                format!("The vpc ID '{id}' does not exist"),
            ),
            Refused::NoSubnet(id) => Self::new(
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{id}' does not exist"),
            ),
            Refused::NoGroup(id) => Self::new(
                "InvalidGroup.NotFound",
                format!("The security group '{id}' does not exist"),
            ),
            Refused::NoRule(id) => Self::new(
                "InvalidSecurityGroupRuleId.NotFound",
                format!("The security group rule ID '{id}' does not exist"),
            ),
            Refused::NoNatGateway(id) => Self::new(
                "InvalidNatGatewayID.NotFound",
                format!("The Nat Gateway {id} was not found"),
            ),
            Refused::UnknownId(id) => Self::new("InvalidID", format!("The ID '{id}' is not valid")),
            Refused::DuplicateGroup { name, vpc } => Self::new(
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists for VPC '{vpc}'"),
            ),
            Refused::SubnetRange(cidr) => Self::new(
                "InvalidSubnet.Range",
                format!("The CIDR '{cidr}' is invalid."),
            ),
            Refused::SubnetConflict(cidr) => Self::new(
                "InvalidSubnet.Conflict",
                format!("The CIDR '{cidr}' conflicts with another subnet"),
            ),
            Refused::Dependency(id) => Self::new(
                "DependencyViolation",
                match ResourceKind::of(&id) {
                    Some(ResourceKind::SecurityGroup) => {
                        format!("resource {id} has a dependent object")
                    }
                    Some(ResourceKind::Subnet) => {
                        format!("The subnet '{id}' has dependencies and cannot be deleted.")
                    }
                    _ => format!("The vpc '{id}' has dependencies and cannot be deleted."),
                },
            ),
            Refused::DefaultGroup(id) => Self::new(
                "CannotDelete",
                format!(
                    "the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"
                ),
            ),
            Refused::DuplicateRule(rule) => Self::new(
                "InvalidPermission.Duplicate",
                format!(
                    "the specified rule \"{}\" already exists",
                    describe_rule(&rule)
                ),
            ),
            Refused::MissingRule(_) => Self::new(
                "InvalidPermission.NotFound",
                "The specified rule does not exist in this security group.",
            ),
            Refused::Configured(id) => {
                let (what, section) = match ResourceKind::of(&id) {
                    Some(ResourceKind::Vpc) => ("vpc", "vpcs"),
                    Some(ResourceKind::Subnet) => ("subnet", "subnets"),
                    Some(ResourceKind::NatGateway) => ("NAT gateway", "nat_gateways"),
                    _ => ("security group", "security_groups"),
                };
                Self::new(
                    "OperationNotPermitted",
                    format!(
                        "The {what} '{id}' is defined in the server's configuration file ([[network.{section}]]) and cannot be deleted or changed through the API; change the file and restart the server."
                    ),
                )
            }
            Refused::Quota(q) => {
                use lamina_store::ec2::Quota;
                let (code, what) = match q {
                    Quota::Vpcs => ("VpcLimitExceeded", "VPCs"),
                    Quota::Subnets => ("SubnetLimitExceeded", "subnets"),
                    Quota::SecurityGroups => ("SecurityGroupLimitExceeded", "security groups"),
                    Quota::Rules => (
                        "RulesPerSecurityGroupLimitExceeded",
                        "rules per security group",
                    ),
                    Quota::Tags => ("TagLimitExceeded", "Tags for a resource"),
                    Quota::NatGateways => ("NatGatewayLimitExceeded", "NAT Gateways"),
                };
                Self::new(
                    code,
                    format!(
                        "The maximum number of {what} has been reached ({}).",
                        q.limit()
                    ),
                )
            }
            e @ (Refused::SubnetsInManyVpcs | Refused::GroupsInOtherVpc) => {
                tracing::error!(error = %e, "an EC2 action met a function-only refusal");
                <Self as crate::Internal>::internal()
            }
        }
    }
}

/// A rule as EC2 words it in `InvalidPermission.Duplicate`.
fn describe_rule(r: &lamina_store::ec2::Rule) -> String {
    match (r.protocol.as_str(), r.from_port, r.to_port) {
        ("icmp", Some(t), Some(c)) => {
            format!("peer: {}, ICMP, type: {t}, code: {c}, ALLOW", r.cidr)
        }
        (p, Some(a), Some(b)) => format!(
            "peer: {}, {}, from port: {a}, to port: {b}, ALLOW",
            r.cidr,
            p.to_uppercase()
        ),
        _ => format!("peer: {}, ALL, ALLOW", r.cidr),
    }
}

/// `<{action}Response>` with the request id and `children`.
pub fn respond(action: &str, request_id: &str, children: Vec<Xml>) -> Response {
    let body = document(&format!("{action}Response"), XMLNS, |w| {
        write(w, &leaf("requestId", request_id))?;
        children.iter().try_for_each(|c| write(w, c))
    });
    xml_response(StatusCode::OK, body)
}

/// EC2's error document.
pub fn error_response(e: &Ec2Error, request_id: &str) -> Response {
    let body = document("Response", "", |w| {
        write(
            w,
            &Xml::Node(
                "Errors",
                vec![Xml::Node(
                    "Error",
                    vec![leaf("Code", e.code), leaf("Message", e.message.as_str())],
                )],
            ),
        )?;
        write(w, &leaf("RequestID", request_id))
    });
    xml_response(e.status, body)
}

fn xml_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [("content-type", "text/xml;charset=UTF-8")], body).into_response()
}

/// A list element: `<name><item>…</item>…</name>`.
pub fn set(name: &'static str, items: impl IntoIterator<Item = Vec<Xml>>) -> Xml {
    Xml::Node(
        name,
        items
            .into_iter()
            .map(|children| Xml::Node("item", children))
            .collect(),
    )
}

/// `<tagSet>` of a resource's tags.
pub fn tag_set(tags: &BTreeMap<String, String>) -> Xml {
    set(
        "tagSet",
        tags.iter()
            .map(|(k, v)| vec![leaf("key", k.as_str()), leaf("value", v.as_str())]),
    )
}

/// `true` or `false`.
pub fn flag(name: &'static str, value: bool) -> Xml {
    leaf(name, if value { "true" } else { "false" })
}

/// Checks a tag as EC2 does, and the value of `lamina:interface` as a host interface name.
fn check_tag(key: &str, value: &str) -> Ec2Result<()> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(Ec2Error::invalid(format!(
            "Tag key '{key}' is invalid: a key has 1 to 128 characters."
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(Ec2Error::invalid(
            "Tag keys starting with 'aws:' are reserved for internal use",
        ));
    }
    if key == SOURCE_TAG {
        return Err(Ec2Error::invalid(format!(
            "The tag key '{SOURCE_TAG}' is reserved: the server marks the objects of its configuration file with it."
        )));
    }
    if value.chars().count() > 256 {
        return Err(Ec2Error::invalid(format!(
            "Tag value for key '{key}' is invalid: a value has at most 256 characters."
        )));
    }
    if key == INTERFACE_TAG && !interface_name(value) {
        return Err(Ec2Error::invalid(format!(
            "Value ({value}) for tag {INTERFACE_TAG} is invalid: a host interface name has 1 to 15 characters, none of them '/', ':', '*', '\\' or white space, not starting with '@'."
        )));
    }
    Ok(())
}

/// Whether Linux takes `name` as an interface name (`dev_valid_name`), and nftables matches it
/// as itself (`*` and `\\` would make it a pattern, a leading `@` a set).
pub fn interface_name(name: &str) -> bool {
    (1..16).contains(&name.len())
        && name != "."
        && name != ".."
        && !name.starts_with('@')
        && !name
            .chars()
            .any(|c| matches!(c, '/' | ':' | '*' | '\\') || c.is_whitespace())
}

/// Tags given as `prefix.N.Key` / `prefix.N.Value`, checked.
pub fn tags_at(params: &Params, prefix: &str) -> Ec2Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in params.indexed(prefix)? {
        let key = t.get("Key").ok_or_else(|| Ec2Error::missing("key"))?;
        let value = t.get("Value").unwrap_or("");
        check_tag(key, value)?;
        out.insert(key.to_owned(), value.to_owned());
    }
    Ok(out)
}

/// The tags of `TagSpecification.N` for a resource of `kind` (the only type the action
/// creates).
pub fn tag_specifications(
    params: &Params,
    kind: ResourceKind,
) -> Ec2Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for spec in params.indexed("TagSpecification")? {
        let rtype = spec.get("ResourceType").unwrap_or_default();
        if rtype != kind.as_str() {
            return Err(Ec2Error::invalid(format!(
                "'{rtype}' is not a valid taggable resource type for this operation."
            )));
        }
        out.extend(tags_at(&spec, "Tag")?);
    }
    Ok(out)
}

/// One `Filter.N`: a name and the values any of which may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `Filter.N.Name`: a field (`vpc-id`), or a tag (`tag:<key>`, `tag-key`, `tag-value`).
    pub name: String,
    /// `Filter.N.Value.M`, with `*` and `?` wildcards.
    pub values: Vec<String>,
}

/// `Filter.N.Name` with `Filter.N.Value.M`.
pub fn filters(params: &Params) -> Ec2Result<Vec<Filter>> {
    params
        .indexed("Filter")?
        .into_iter()
        .map(|f| {
            Ok(Filter {
                name: f.required("Name")?.to_owned(),
                values: f.strings("Value")?,
            })
        })
        .collect()
}

/// Whether a resource passes every filter. `field` gives the values of a filter name the
/// resource kind knows (`None`: an unknown filter, refused); `tag:<key>`, `tag-key` and
/// `tag-value` read `tags`. Values may use `*` and `?`.
pub fn passes(
    filters: &[Filter],
    tags: &BTreeMap<String, String>,
    field: impl Fn(&str) -> Option<Vec<String>>,
) -> Ec2Result<bool> {
    for f in filters {
        let have: Vec<String> = if let Some(key) = f.name.strip_prefix("tag:") {
            tags.get(key).cloned().into_iter().collect()
        } else if f.name == "tag-key" {
            tags.keys().cloned().collect()
        } else if f.name == "tag-value" {
            tags.values().cloned().collect()
        } else {
            field(&f.name)
                .ok_or_else(|| Ec2Error::invalid(format!("The filter '{}' is invalid", f.name)))?
        };
        let hit = f
            .values
            .iter()
            .any(|want| have.iter().any(|v| crate::auth::iam_like(want, v)));
        if !hit {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The ids asked for in `prefix.N` (`None`: all), each of which `known` must hold; the first
/// that it does not is refused with `missing`'s error.
pub fn wanted(
    params: &Params,
    prefix: &str,
    known: impl Fn(&str) -> bool,
    missing: impl Fn(String) -> Refused,
) -> Ec2Result<Option<Vec<String>>> {
    let ids = params.strings(prefix)?;
    if ids.is_empty() {
        return Ok(None);
    }
    if let Some(absent) = ids.iter().find(|id| !known(id)) {
        return Err(StoreError::Ec2(missing(absent.clone())).into());
    }
    Ok(Some(ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(raw: &str) -> Params {
        Params::new(crate::query::pairs(raw))
    }

    #[test]
    fn filters_tags_and_tag_specifications_parse_from_ec2_names() {
        let p = params(
            "Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1&Filter.1.Value.2=vpc-2\
             &Filter.2.Name=tag%3Alamina%3Ainterface&Filter.2.Value.1=br-*\
             &TagSpecification.1.ResourceType=subnet&TagSpecification.1.Tag.1.Key=lamina%3Ainterface\
             &TagSpecification.1.Tag.1.Value=br-db&TagSpecification.1.Tag.2.Key=Name&TagSpecification.1.Tag.2.Value=db",
        );
        let f = filters(&p).unwrap();
        assert_eq!(f[0].name, "vpc-id");
        assert_eq!(f[0].values, ["vpc-1", "vpc-2"]);
        let tags = tag_specifications(&p, ResourceKind::Subnet).unwrap();
        assert_eq!(tags[INTERFACE_TAG], "br-db");
        assert_eq!(tags["Name"], "db");
        let e = tag_specifications(&p, ResourceKind::Vpc).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(e.message.starts_with("'subnet' is not a valid taggable"));

        let field =
            |vpc: &'static str| move |name: &str| (name == "vpc-id").then(|| vec![vpc.to_owned()]);
        assert!(passes(&f, &tags, field("vpc-2")).unwrap());
        assert!(!passes(&f, &tags, field("vpc-3")).unwrap());
        assert!(!passes(&f, &BTreeMap::new(), field("vpc-1")).unwrap());
        let unknown = vec![Filter {
            name: "owner-id".into(),
            values: vec!["1".into()],
        }];
        assert_eq!(
            passes(&unknown, &tags, field("vpc-1")).unwrap_err().message,
            "The filter 'owner-id' is invalid"
        );
    }

    #[test]
    fn tags_are_checked_and_interfaces_must_be_names() {
        for (k, v, ok) in [
            ("Name", "x", true),
            (INTERFACE_TAG, "br-db", true),
            (INTERFACE_TAG, "eth0.100", true),
            (INTERFACE_TAG, "", false),
            (INTERFACE_TAG, "a/b", false),
            (INTERFACE_TAG, "sixteen-chars-xx", false),
            (INTERFACE_TAG, "eth0:1", false),
            (INTERFACE_TAG, "..", false),
            (INTERFACE_TAG, "br-*", false),
            (INTERFACE_TAG, "@blocked4", false),
            (INTERFACE_TAG, "br\\x", false),
            ("aws:cloudformation", "x", false),
            (SOURCE_TAG, "config", false),
            ("", "x", false),
        ] {
            assert_eq!(check_tag(k, v).is_ok(), ok, "{k}={v}");
        }
        let e = tags_at(&params("Tag.1.Value=v"), "Tag").unwrap_err();
        assert_eq!(e.code, "MissingParameter");
    }

    #[test]
    fn errors_are_ec2_documents() {
        let e = Ec2Error::from(StoreError::Ec2(Refused::NoVpc("vpc-1".into())));
        assert_eq!(
            (e.code, e.message.as_str()),
            ("InvalidVpcID.NotFound", "The vpc ID 'vpc-1' does not exist")
        );
        let e = Ec2Error::from(StoreError::Ec2(Refused::DuplicateRule(
            lamina_store::ec2::Rule {
                protocol: "tcp".into(),
                from_port: Some(5432),
                to_port: Some(5432),
                cidr: "10.1.2.0/24".into(),
            },
        )));
        assert_eq!(
            e.message,
            "the specified rule \"peer: 10.1.2.0/24, TCP, from port: 5432, to port: 5432, ALLOW\" already exists"
        );
        let quota = Ec2Error::from(StoreError::Ec2(Refused::Quota(
            lamina_store::ec2::Quota::Rules,
        )));
        assert_eq!(quota.code, "RulesPerSecurityGroupLimitExceeded");
        assert_eq!(
            quota.message,
            "The maximum number of rules per security group has been reached (60)."
        );
        let configured = Ec2Error::from(StoreError::Ec2(Refused::Configured("subnet-db".into())));
        assert_eq!(configured.code, "OperationNotPermitted");
        assert!(
            configured.message.starts_with(
                "The subnet 'subnet-db' is defined in the server's configuration file ([[network.subnets]])"
            ),
            "{}",
            configured.message
        );
        let missing = Ec2Error::from(params("").required("VpcId").unwrap_err());
        assert_eq!(
            (missing.code, missing.message.as_str()),
            (
                "MissingParameter",
                "The request must contain the parameter VpcId"
            )
        );
        let doc = document("Response", "", |w| {
            write(
                w,
                &Xml::Node(
                    "Errors",
                    vec![Xml::Node("Error", vec![leaf("Code", e.code)])],
                ),
            )
        });
        assert_eq!(
            String::from_utf8(doc).unwrap(),
            "<Response><Errors><Error><Code>InvalidPermission.Duplicate</Code></Error></Errors></Response>"
        );
    }
}
