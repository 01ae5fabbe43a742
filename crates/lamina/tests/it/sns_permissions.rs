//! A topic shared with another account by `AddPermission` and taken back by `RemovePermission`,
//! through boto3, with signatures verified.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::sdk_auth::AUTH;
use crate::sns::boto3;

/// Python: `code(f)` is `ok` or the error code `f()` raised.
const CODE: &str = r#"
import botocore.exceptions
def code(f):
    try:
        f()
        return 'ok'
    except botocore.exceptions.ClientError as e:
        return e.response['Error']['Code'] + ': ' + e.response['Error']['Message']
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_publishes_only_while_a_permission_lets_it() {
    let app = spawn_app_with(AUTH).await;
    let ep = app.endpoint();
    let alice = ("AKIDALICE", "alice-secret");
    let bob = ("AKIDBOB", "bob-secret");
    let topic = boto3(
        &ep,
        alice,
        "print(json.dumps(sns.create_topic(Name='shared')['TopicArn']))",
    );
    let topic = topic.as_str().unwrap().to_owned();
    // A script run as `who`, with `code` and the topic `t`.
    let run = |who, script: &str| boto3(&ep, who, &format!("{CODE}\nt = '{topic}'\n{script}"));
    // What Bob may do with Alice's topic: publish, subscribe, share it or unshare it himself.
    let bob_tries = || {
        run(
            bob,
            r#"print(json.dumps({
    'publish': code(lambda: sns.publish(TopicArn=t, Message='from bob')),
    'subscribe': code(lambda: sns.subscribe(TopicArn=t, Protocol='lambda', Endpoint='arn:aws:lambda:us-east-1:222222222222:function:f')),
    'share': code(lambda: sns.add_permission(TopicArn=t, Label='mine', AWSAccountId=['333333333333'], ActionName=['Publish'])),
    'unshare': code(lambda: sns.remove_permission(TopicArn=t, Label='bob-publish')),
}))"#,
        )
    };
    let denied = |v: &Value| v.as_str().unwrap_or("").starts_with("AuthorizationError");
    let before = bob_tries();
    assert!(
        ["publish", "subscribe", "share", "unshare"]
            .iter()
            .all(|k| denied(&before[k])),
        "{before}"
    );

    let out = run(
        alice,
        r#"grant = lambda label, actions: sns.add_permission(TopicArn=t, Label=label, AWSAccountId=['222222222222'], ActionName=actions)
print(json.dumps({
    'grant': code(lambda: grant('bob-publish', ['Publish'])),
    'again': code(lambda: grant('bob-publish', ['Subscribe'])),
    'foreign': code(lambda: grant('other', ['CreateTopic'])),
    'policy': json.loads(sns.get_topic_attributes(TopicArn=t)['Attributes']['Policy']),
}))"#,
    );
    assert_eq!(out["grant"], "ok", "{out}");
    assert_eq!(
        out["again"],
        "InvalidParameter: Invalid parameter: Statement already exists"
    );
    assert_eq!(
        out["foreign"],
        "InvalidParameter: Invalid parameter: Policy statement action out of service scope!"
    );
    let statements = out["policy"]["Statement"].as_array().unwrap();
    assert_eq!(
        statements.len(),
        2,
        "the default statement and Bob's: {out}"
    );
    assert_eq!(statements[0]["Sid"], "__default_statement_ID");
    assert_eq!(
        statements[1],
        json!({"Sid": "bob-publish", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
            "Action": "SNS:Publish", "Resource": topic})
    );

    let granted = bob_tries();
    assert_eq!(granted["publish"], "ok", "{granted}");
    assert!(
        ["subscribe", "share", "unshare"]
            .iter()
            .all(|k| denied(&granted[k])),
        "only what was granted: {granted}"
    );

    let out = run(
        alice,
        r#"print(json.dumps({
    'revoke': code(lambda: sns.remove_permission(TopicArn=t, Label='bob-publish')),
    'unknown': code(lambda: sns.remove_permission(TopicArn=t, Label='bob-publish')),
    'policy': json.loads(sns.get_topic_attributes(TopicArn=t)['Attributes']['Policy']),
}))"#,
    );
    assert_eq!(out["revoke"], "ok", "{out}");
    assert_eq!(
        out["unknown"], "ok",
        "a label no statement has changes nothing"
    );
    assert_eq!(out["policy"]["Statement"].as_array().unwrap().len(), 1);
    let after = bob_tries();
    assert!(denied(&after["publish"]), "{after}");
}
