use super::*;

#[test]
fn uploads_are_capped_per_repository_and_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let images = Images::open(dir.path()).unwrap();
    let open =
        |account: &str, repo: usize| images.start_upload(account, &format!("{account}/r{repo}"));
    for _ in 0..MAX_UPLOADS_PER_OWNER {
        open("a", 0).unwrap();
    }
    assert!(matches!(open("a", 0), Err(BlobError::TooManyUploads)));
    // Other repositories of the account, up to the account's cap.
    for i in MAX_UPLOADS_PER_OWNER..MAX_UPLOADS_PER_ACCOUNT {
        open("a", i).unwrap();
    }
    assert!(matches!(open("a", 1000), Err(BlobError::TooManyUploads)));
    // Another account is not held up by the first.
    open("b", 0).unwrap();
}

/// An uncompressed layer of `files` empty files named `<prefix><n>`, stored as a blob.
fn layer(images: &Images, prefix: &str, files: usize) -> LayerRef {
    let mut tar = tar::Builder::new(Vec::new());
    for i in 0..files {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        tar.append_data(&mut h, format!("{prefix}{i}"), &[][..])
            .unwrap();
    }
    let tar = tar.into_inner().unwrap();
    LayerRef {
        digest: images.put_blob(&tar).unwrap(),
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        diff_id: format!("sha256:{}", hex::encode(Sha256::digest(&tar))),
    }
}

#[test]
fn the_entry_limit_covers_the_whole_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::Store::open(dir.path()).unwrap();
    let (a, b) = (
        layer(store.image_content(), "a", 9),
        layer(store.image_content(), "b", 9),
    );
    let plan = |layers: Vec<LayerRef>| ImagePlan {
        manifest_digest: format!("sha256:{}", "0".repeat(64)),
        layers,
        max_bytes: 1 << 20,
        max_entries: 10,
    };
    let limits = crate::ExtractLimits {
        max_unzipped_bytes: 1 << 20,
        max_entries: 10,
    };
    let too_many = |r: Result<crate::StoredCode, crate::StoreError>| {
        assert!(
            matches!(
                r,
                Err(crate::StoreError::Blob(BlobError::Layer(
                    LayerError::TooManyEntries { limit: 1 }
                )))
            ),
            "{r:?}"
        );
    };
    // The second layer unpacked with what the first left of the limit, then answered from the
    // cache (each layer alone fits).
    too_many(store.put_package(Package::Image(&plan(vec![a.clone(), b.clone()])), limits));
    store
        .put_package(Package::Image(&plan(vec![b.clone()])), limits)
        .unwrap();
    too_many(store.put_package(Package::Image(&plan(vec![a, b])), limits));
}

#[test]
fn stray_bytes_in_an_upload_file_never_reach_a_blob() {
    let dir = tempfile::tempdir().unwrap();
    let images = Images::open(dir.path()).unwrap();
    let id = images.start_upload("a", "a/r").unwrap();
    let mut writer = images.take_upload(&id, "a/r").unwrap();
    writer.write(b"hello", 1 << 20).unwrap();
    // What a write that failed part way would leave: bytes the offset and hash do not know.
    writer.file.write_all_at(b"STRAY BYTES", 5).unwrap();
    writer.write(b"world", 1 << 20).unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(b"helloworld")));
    let r = images.finish_upload(&id, writer, &digest);
    assert!(matches!(r, Err(BlobError::Io { .. })), "{r:?}");
    assert!(images.blob_path(&digest).is_none());
    // Stray bytes the rest of the upload writes over are gone.
    let id = images.start_upload("a", "a/r").unwrap();
    let mut writer = images.take_upload(&id, "a/r").unwrap();
    writer.write(b"hello", 1 << 20).unwrap();
    writer.file.write_all_at(b"XY", 5).unwrap();
    writer.write(b"world", 1 << 20).unwrap();
    assert_eq!(images.finish_upload(&id, writer, &digest).unwrap(), 10);
    assert_eq!(images.read_blob(&digest, 100).unwrap(), b"helloworld");
}

#[test]
fn a_cached_layer_of_an_older_release_is_unpacked_again() {
    let dir = tempfile::tempdir().unwrap();
    let images = Images::open(dir.path()).unwrap();
    let a = layer(&images, "a", 3);
    let limits = LayerLimits {
        max_bytes: 1 << 20,
        max_entries: 10,
        max_whiteout_bytes: image_layer::MAX_WHITEOUT_BYTES,
    };
    let unpack = || images.unpacked_layer(&a.digest, &a.media_type, &a.diff_id, limits);
    let first = unpack().unwrap();
    assert_eq!(first.entries, 3);
    // What an older release wrote: no entries.
    let meta = first.tree.parent().unwrap().join("layer.json");
    let mut old: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("entries");
    fs::write(&meta, serde_json::to_vec(&old).unwrap()).unwrap();
    let again = unpack().unwrap();
    assert_eq!((again.tree, again.entries), (first.tree, 3));
    let now: LayerMeta = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    assert_eq!(now.entries, 3);
}
