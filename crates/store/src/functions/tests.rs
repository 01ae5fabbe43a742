use super::*;
use lamina_model::Runtime;
use std::io::{Cursor, Write};

const LIMITS: ExtractLimits = ExtractLimits {
    max_unzipped_bytes: 1 << 20,
    max_entries: 100,
};

fn zip_of(data: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("app.py", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap().into_inner()
}

fn key(name: &str) -> FunctionKey {
    FunctionKey {
        account: AccountId::parse("000000000000").unwrap(),
        region: Region::parse("us-east-1").unwrap(),
        name: FunctionName::parse(name).unwrap(),
    }
}

/// Publishes a version of the layer `lib` of `zip`, within `code_storage_max`.
fn publish_lib(
    store: &Store,
    zip: &[u8],
    code_storage_max: u64,
) -> Result<crate::LayerVersion, StoreError> {
    let new = crate::NewLayerVersion {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        name: "lib".into(),
        description: String::new(),
        license: None,
        runtimes: Vec::new(),
        architectures: Vec::new(),
        zip,
    };
    store.publish_layer(new, LIMITS, code_storage_max)
}

fn spec() -> FunctionSpec {
    let mut s = FunctionSpec::with_defaults("arn:aws:iam::000000000000:role/r".into());
    s.runtime = Some(Runtime::parse("python3.12").unwrap());
    s.handler = Some("app.handler".into());
    s
}

/// [`spec`] with `layer` (version 1 of `lib`) among its layers.
fn spec_with(layer: &crate::LayerVersion) -> FunctionSpec {
    let mut s = spec();
    s.layer_code = vec![lamina_model::LayerCode {
        arn: "arn:aws:lambda:us-east-1:000000000000:layer:lib:1".into(),
        sha256_hex: layer.code.sha256_hex.clone(),
        size: layer.code.size,
        unzipped_size: layer.code.unzipped_size,
    }];
    s
}

/// A function with a one-file Python package, for other modules' tests.
pub(crate) fn create_plain(store: &Store, key: &FunctionKey) -> FunctionRecord {
    let zip = zip_of(b"def handler(e, c): return 1\n");
    store
        .create_function(
            NewFunction {
                key: key.clone(),
                spec: spec(),
                package: crate::Package::Zip(&zip),
                tags: BTreeMap::new(),
            },
            LIMITS,
            u64::MAX,
        )
        .unwrap()
}

fn create(store: &Store, name: &str, data: &[u8]) -> FunctionRecord {
    let zip = zip_of(data);
    store
        .create_function(
            NewFunction {
                key: key(name),
                spec: spec(),
                package: crate::Package::Zip(&zip),
                tags: BTreeMap::new(),
            },
            LIMITS,
            u64::MAX,
        )
        .unwrap()
}

#[test]
fn create_get_list_delete_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = create(&store, "a", b"1");
    create(&store, "b", b"2");
    create(&store, "c", b"1");
    assert_eq!(store.get_function(&key("a")).unwrap().unwrap(), a);
    let zip = zip_of(b"x");
    let dup = store.create_function(
        NewFunction {
            key: key("a"),
            spec: spec(),
            package: crate::Package::Zip(&zip),
            tags: BTreeMap::new(),
        },
        LIMITS,
        u64::MAX,
    );
    assert!(matches!(dup, Err(StoreError::AlreadyExists)));

    let acct = AccountId::parse("000000000000").unwrap();
    let region = Region::parse("us-east-1").unwrap();
    let page = store.list_functions(&acct, &region, None, 2).unwrap();
    assert_eq!(
        page.iter().map(|r| r.key.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let page = store.list_functions(&acct, &region, Some("b"), 2).unwrap();
    assert_eq!(page.len(), 1);
    let other = Region::parse("eu-west-1").unwrap();
    assert!(
        store
            .list_functions(&acct, &other, None, 10)
            .unwrap()
            .is_empty()
    );

    assert!(store.delete_function(&key("a")).unwrap().is_some());
    assert!(store.delete_function(&key("a")).unwrap().is_none());
    // "c" shares a's code, so only b's and c's packages stay.
    assert_eq!(store.collect_garbage().unwrap(), 0);
    assert!(store.delete_function(&key("c")).unwrap().is_some());
    assert_eq!(store.collect_garbage().unwrap(), 2);
}

#[test]
fn updates_check_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = create(&store, "a", b"1");
    let e = store.update_spec(&key("a"), Some("nope"), |r| Ok(r.spec.clone()));
    assert!(matches!(e, Err(StoreError::RevisionMismatch)));
    let b = store
        .update_spec(&key("a"), Some(&a.revision_id), |r| {
            let mut s = r.spec.clone();
            s.memory_size = 256;
            Ok(s)
        })
        .unwrap();
    assert_ne!(a.revision_id, b.revision_id);
    let c = store
        .update_code(
            &key("a"),
            crate::Package::Zip(&zip_of(b"2")),
            LIMITS,
            u64::MAX,
            None,
            None,
        )
        .unwrap();
    assert_ne!(c.code, a.code);
    assert_eq!(
        store
            .get_function(&key("a"))
            .unwrap()
            .unwrap()
            .spec
            .memory_size,
        256
    );
    let e = store.update_code(
        &key("zzz"),
        crate::Package::Zip(&zip_of(b"2")),
        LIMITS,
        u64::MAX,
        None,
        None,
    );
    assert!(matches!(e, Err(StoreError::NotFound)));
}

#[test]
fn storage_limit_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = create(&store, "a", b"1");
    let acct = AccountId::parse("000000000000").unwrap();
    let region = Region::parse("us-east-1").unwrap();
    assert_eq!(
        store.account_usage(&acct, &region).unwrap(),
        (a.code.size, 1)
    );
    let zip = zip_of(b"2");
    let create_b = |limit: u64| {
        let b = NewFunction {
            key: key("b"),
            spec: spec(),
            package: crate::Package::Zip(&zip),
            tags: BTreeMap::new(),
        };
        store.create_function(b, LIMITS, limit)
    };
    let e = create_b(a.code.size + 10);
    assert!(matches!(e, Err(StoreError::CodeStorageExceeded { .. })));
    // Layer versions count as well, until deleted.
    let layer = |limit: u64| publish_lib(&store, &zip, limit);
    let e = layer(a.code.size + 10);
    assert!(matches!(e, Err(StoreError::CodeStorageExceeded { .. })));
    layer(1 << 30).unwrap();
    let e = create_b(a.code.size + zip.len() as u64 + 10);
    assert!(matches!(e, Err(StoreError::CodeStorageExceeded { .. })));
    store
        .delete_layer_version("000000000000", "us-east-1", "lib", 1)
        .unwrap();
    store.collect_garbage().unwrap();
    create_b(a.code.size + zip.len() as u64 + 10).unwrap();
}

#[test]
fn a_deleted_layer_version_counts_while_a_function_version_holds_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lib = zip_of(b"LIB = 1\n");
    let layer = publish_lib(&store, &lib, u64::MAX).unwrap();
    let with_layer = spec_with(&layer);
    let code = zip_of(b"def handler(e, c): return 1\n");
    let f = store
        .create_function(
            NewFunction {
                key: key("f"),
                spec: with_layer,
                package: crate::Package::Zip(&code),
                tags: BTreeMap::new(),
            },
            LIMITS,
            u64::MAX,
        )
        .unwrap();
    store
        .delete_layer_version("000000000000", "us-east-1", "lib", 1)
        .unwrap();
    store.collect_garbage().unwrap();
    // The function keeps the layer's code on disk, so its owner is still charged for it.
    let both = f.code.size + layer.code.size;
    let e = store.check_storage("000000000000", 1, both);
    assert!(
        matches!(e, Err(StoreError::CodeStorageExceeded { .. })),
        "{e:?}"
    );
    store.check_storage("000000000000", 1, both + 1).unwrap();
    // Once nothing holds it, the code goes and so does the charge.
    store.delete_function(&key("f")).unwrap();
    store.collect_garbage().unwrap();
    store.check_storage("000000000000", 1, 1).unwrap();
}

#[test]
fn a_layer_whose_code_was_collected_since_it_was_resolved_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let zip = zip_of(b"LIB = 1\n");
    let layer = publish_lib(&store, &zip, u64::MAX).unwrap();
    // Resolved for a function, then deleted and collected before the function is stored.
    let with_layer = spec_with(&layer);
    store
        .delete_layer_version("000000000000", "us-east-1", "lib", 1)
        .unwrap();
    store.collect_garbage().unwrap();
    let code = zip_of(b"def handler(e, c): return 1\n");
    let new = |spec: FunctionSpec| NewFunction {
        key: key("f"),
        spec,
        package: crate::Package::Zip(&code),
        tags: BTreeMap::new(),
    };
    let e = store.create_function(new(with_layer.clone()), LIMITS, u64::MAX);
    assert!(
        matches!(&e, Err(StoreError::Rejected(l)) if l.message.contains("lib:1")),
        "{e:?}"
    );
    store
        .create_function(new(spec()), LIMITS, u64::MAX)
        .unwrap();
    let e = store.update_spec(&key("f"), None, |_| Ok(with_layer.clone()));
    assert!(matches!(e, Err(StoreError::Rejected(_))), "{e:?}");
}

#[test]
fn tags_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create(&store, "a", b"1");
    store
        .update_tags(&key("a"), |mut t| {
            t.insert("team".into(), "x".into());
            Ok(t)
        })
        .unwrap();
    assert_eq!(store.tags(&key("a")).unwrap().unwrap()["team"], "x");
    assert!(store.tags(&key("nope")).unwrap().is_none());
}
