//! Naming layers: by name or ARN, in the caller's region, changed by their own account only.

use lamina_model::{AccountId, ErrorKind, Region};

use super::*;

fn caller() -> Caller {
    Caller {
        account: AccountId::parse("111111111111").unwrap(),
        region: Region::parse("us-east-1").unwrap(),
        lineage: None,
    }
}

fn kind(r: ApiResult<Layer>) -> ErrorKind {
    r.unwrap_err().error.kind
}

#[test]
fn a_layer_is_named_by_name_or_arn() {
    let c = caller();
    let own = Layer {
        account: "111111111111".into(),
        region: "us-east-1".into(),
        name: "lib".into(),
    };
    assert_eq!(Layer::parse(&c, "lib").unwrap(), own);
    let arn = "arn:aws:lambda:us-east-1:111111111111:layer:lib";
    assert_eq!(Layer::parse(&c, arn).unwrap(), own);
    assert_eq!(own.arn(), arn);
    let other = Layer::parse(&c, "arn:aws:lambda:us-east-1:222222222222:layer:lib").unwrap();
    assert_eq!(other.account, "222222222222");
    assert_eq!(
        other
            .owned(&c, "DeleteLayerVersion", Some(1))
            .unwrap_err()
            .error
            .kind,
        ErrorKind::AccessDenied
    );
    for bad in [
        "",
        "a b",
        &"n".repeat(141),
        "arn:aws:lambda:us-east-1:111111111111:layer:lib:1",
        "arn:aws:lambda:us-east-1:1111:layer:lib",
        "arn:aws:lambda:us-east-1:111111111111:function:lib",
        "arn:aws:lambda:us-east-1:111111111111:layer:a b",
    ] {
        assert_eq!(kind(Layer::parse(&c, bad)), ErrorKind::Validation, "{bad}");
    }
    // Another region's layer is not used here.
    let e = Layer::parse(&c, "arn:aws:lambda:eu-west-1:111111111111:layer:lib").unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::InvalidParameterValue);
    assert!(e.error.message.contains("us-east-1"), "{}", e.error.message);
}

#[test]
fn version_arns_name_a_layer_and_a_number() {
    let (layer, v) =
        parse_version_arn("arn:aws:lambda:eu-west-1:222222222222:layer:lib:3", "arn").unwrap();
    assert_eq!(
        (
            layer.account.as_str(),
            layer.region.as_str(),
            layer.name.as_str(),
            v
        ),
        ("222222222222", "eu-west-1", "lib", 3)
    );
    for bad in [
        "arn:aws:lambda:eu-west-1:222222222222:layer:lib",
        "arn:aws:lambda:eu-west-1:222222222222:layer:lib:x",
        "arn:aws:lambda:eu-west-1:222222222222:layer::1",
    ] {
        let e = parse_version_arn(bad, "arn").unwrap_err();
        assert!(e.message.contains("at 'arn'"), "{}", e.message);
    }
    let c = caller();
    assert!(same_region(&c, "us-east-1", "function").is_ok());
    assert_eq!(
        same_region(&c, "eu-west-1", "function")
            .unwrap_err()
            .message,
        "Layers are not in the same region as the function. Layers are expected to be in region us-east-1."
    );
}
