use std::io::Write;

use super::*;

const LIMITS: LayerLimits = LayerLimits {
    max_bytes: 1 << 20,
    max_entries: 100,
    max_whiteout_bytes: MAX_WHITEOUT_BYTES,
};

/// A tar built header by header, so that hostile names can be written as they are.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn entry(
        mut self,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
        mode: u32,
    ) -> Self {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, "", data, 0o644)
    }
    fn dir(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Directory, "", b"", 0o755)
    }
    fn link(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Symlink, target, b"", 0o777)
    }
    fn hard(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Link, target, b"", 0o644)
    }
    fn done(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

fn unpack_plain(tar: &[u8]) -> (tempfile::TempDir, Result<Unpacked, LayerError>) {
    let dir = tempfile::tempdir().unwrap();
    let r = unpack(tar, Compression::None, dir.path(), LIMITS, None);
    (dir, r)
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

#[test]
fn a_layer_unpacks_with_its_diff_id_whatever_the_compression() {
    let tar = Tar::default()
        .dir("./usr/")
        .file("./usr/bin/tool", b"#!/bin/sh\n")
        .entry("usr/bin/suid", tar::EntryType::Regular, "", b"x", 0o4755)
        .link("usr/bin/alias", "/usr/bin/tool")
        .hard("usr/bin/again", "./usr/bin/tool")
        .done();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    for (blob, c) in [
        (&tar, Compression::None),
        (&gz, Compression::Gzip),
        (&zst, Compression::Zstd),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let u = unpack(&blob[..], c, dir.path(), LIMITS, Some(&sha(&tar))).unwrap();
        assert_eq!(u.diff_id, sha(&tar));
        assert_eq!(u.bytes, tar.len() as u64);
        let root = dir.path();
        assert_eq!(fs::read(root.join("usr/bin/tool")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(
            fs::read_link(root.join("usr/bin/alias")).unwrap(),
            Path::new("/usr/bin/tool")
        );
        assert_eq!(
            fs::read(root.join("usr/bin/again")).unwrap(),
            b"#!/bin/sh\n"
        );
        let mode = fs::metadata(root.join("usr/bin/suid"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "setuid dropped");
    }
    assert_eq!(
        Compression::of_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
        Some(Compression::Zstd)
    );
    assert_eq!(
        Compression::of_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        Some(Compression::Gzip)
    );
    assert_eq!(
        Compression::of_media_type("application/vnd.oci.image.layer.v1.tar"),
        Some(Compression::None)
    );
}

#[test]
fn hostile_layers_are_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("parent", Tar::default().file("../escape", b"x").done()),
        (
            "deep parent",
            Tar::default().file("a/../../escape", b"x").done(),
        ),
        ("absolute", Tar::default().file("/etc/passwd", b"x").done()),
        (
            "through a symlink",
            Tar::default().link("l", "..").file("l/escape", b"x").done(),
        ),
        (
            "through an absolute symlink",
            Tar::default()
                .link("etc", "/etc")
                .file("etc/passwd", b"x")
                .done(),
        ),
        (
            "hard link outside",
            Tar::default().hard("h", "../../etc/shadow").done(),
        ),
        (
            "hard link to nothing",
            Tar::default().hard("h", "missing").done(),
        ),
        (
            "hard link to a symlink",
            Tar::default()
                .link("s", "/etc/shadow")
                .hard("h", "s")
                .done(),
        ),
        (
            "duplicate",
            Tar::default().file("a", b"1").file("a", b"2").done(),
        ),
        ("not a tar", vec![7u8; 2048]),
    ];
    for (what, tar) in cases {
        let (dir, r) = unpack_plain(&tar);
        assert!(r.is_err(), "{what} was accepted");
        // Nothing was written outside the directory (the caller removes the directory itself).
        assert!(
            !dir.path().parent().unwrap().join("escape").exists(),
            "{what}"
        );
    }
}

#[test]
fn devices_are_skipped_and_bombs_stop_at_the_limit() {
    let tar = Tar::default()
        .entry("dev/null", tar::EntryType::Char, "", b"", 0o666)
        .entry("fifo", tar::EntryType::Fifo, "", b"", 0o644)
        .file("ok", b"fine")
        .done();
    let (dir, r) = unpack_plain(&tar);
    let u = r.unwrap();
    assert_eq!(u.skipped, 2);
    assert!(!dir.path().join("dev/null").exists());
    assert!(!dir.path().join("fifo").exists());
    // 64 MiB of zeros compress to almost nothing; reading stops at the 1 MiB limit.
    let big = Tar::default().file("zeros", &vec![0u8; 64 << 20]).done();
    let zst = zstd::encode_all(&big[..], 3).unwrap();
    assert!(zst.len() < 1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let r = unpack(&zst[..], Compression::Zstd, dir.path(), LIMITS, None);
    assert!(matches!(r, Err(LayerError::TooLarge { .. })), "{r:?}");
    let many = (0..200)
        .fold(Tar::default(), |t, i| t.file(&format!("f{i}"), b""))
        .done();
    assert!(matches!(
        unpack_plain(&many).1,
        Err(LayerError::TooManyEntries { .. })
    ));
}

#[test]
fn a_wrong_diff_id_is_refused() {
    let tar = Tar::default().file("a", b"1").done();
    let dir = tempfile::tempdir().unwrap();
    let r = unpack(
        &tar[..],
        Compression::None,
        dir.path(),
        LIMITS,
        Some(&sha(b"other")),
    );
    assert!(matches!(r, Err(LayerError::DiffIdMismatch { .. })), "{r:?}");
}

#[test]
fn whiteouts_and_opaque_directories_apply_when_merging() {
    let lower = Tar::default()
        .file("a/b", b"lower b")
        .file("a/c", b"lower c")
        .file("d/e", b"lower e")
        .file("keep", b"lower keep")
        .link("etc", "/")
        .done();
    let upper = Tar::default()
        .file("a/.wh.b", b"")
        .file("d/.wh..wh..opq", b"")
        .file("d/f", b"upper f")
        .file("keep", b"upper keep")
        .file(".wh.gone", b"")
        // A whiteout below a lower symlink must not reach through it.
        .file("etc/.wh.victim", b"")
        .done();
    let (l, lu) = unpack_plain(&lower);
    let (u, uu) = unpack_plain(&upper);
    let (lu, uu) = (lu.unwrap(), uu.unwrap());
    assert!(lu.whiteouts.is_empty());
    assert_eq!(
        uu.whiteouts,
        vec![
            Whiteout::Path("a/b".into()),
            Whiteout::Opaque("d".into()),
            Whiteout::Path("gone".into()),
            Whiteout::Path("etc/victim".into()),
        ]
    );
    assert!(
        !u.path().join("a/.wh.b").exists(),
        "whiteouts stay out of the tree"
    );
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"must stay").unwrap();
    // Point the lower symlink at the outside directory for the merge.
    fs::remove_file(l.path().join("etc")).unwrap();
    symlink(outside.path(), l.path().join("etc")).unwrap();
    let root = tempfile::tempdir().unwrap();
    merge(
        &[(l.path(), &lu.whiteouts), (u.path(), &uu.whiteouts)],
        root.path(),
    )
    .unwrap();
    let r = root.path();
    assert!(!r.join("a/b").exists());
    assert_eq!(fs::read(r.join("a/c")).unwrap(), b"lower c");
    assert!(!r.join("d/e").exists(), "opaque");
    assert_eq!(fs::read(r.join("d/f")).unwrap(), b"upper f");
    assert_eq!(fs::read(r.join("keep")).unwrap(), b"upper keep");
    assert!(victim.exists(), "a whiteout went through a symlink");
    // Hard links: the root shares the layers' inodes.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(r.join("a/c")).unwrap().ino(),
        fs::metadata(l.path().join("a/c")).unwrap().ino()
    );
}

impl Tar {
    /// An extension entry (GNU long name or link, pax header) of a GNU header, declaring `size`
    /// bytes and holding `data`.
    fn extension(mut self, kind: tar::EntryType, size: u64, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
}

/// A pax record: `<length> <key>=<value>\n`, its length counting itself.
fn pax(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut n = body.len() + 1;
    while (n.to_string().len() + body.len()) != n {
        n += 1;
    }
    format!("{n}{body}").into_bytes()
}

#[test]
fn long_names_are_read_within_bounds() {
    let long = format!("{}/file", "d".repeat(200));
    let target = format!("{}/target", "t".repeat(150));
    let mut name = long.clone().into_bytes();
    name.push(0);
    let tar = Tar::default()
        .extension(tar::EntryType::GNULongName, name.len() as u64, &name)
        .file("placeholder", b"gnu")
        .extension(
            tar::EntryType::XHeader,
            pax("path", &target).len() as u64,
            &pax("path", &target),
        )
        .file("placeholder2", b"pax")
        .extension(
            tar::EntryType::GNULongLink,
            target.len() as u64,
            target.as_bytes(),
        )
        .link("l", "short")
        .done();
    let (dir, r) = unpack_plain(&tar);
    r.unwrap();
    assert_eq!(fs::read(dir.path().join(&long)).unwrap(), b"gnu");
    assert_eq!(fs::read(dir.path().join(&target)).unwrap(), b"pax");
    assert_eq!(
        fs::read_link(dir.path().join("l")).unwrap(),
        Path::new(&target)
    );
    assert!(!dir.path().join("placeholder").exists());

    // A long name declaring 8 GiB is refused before a byte of it is read (the tar crate would
    // have read it whole into memory), and so is a pax header of 2 MiB.
    let limits = LayerLimits {
        max_bytes: 16 << 30,
        ..LIMITS
    };
    for (kind, size) in [
        (tar::EntryType::GNULongName, 8u64 << 30),
        (tar::EntryType::GNULongLink, MAX_LONG_NAME + 1),
        (tar::EntryType::XHeader, 2 << 20),
        (tar::EntryType::XGlobalHeader, 2 << 20),
    ] {
        let tar = Tar::default().extension(kind, size, b"").done();
        let dir = tempfile::tempdir().unwrap();
        let r = unpack(&tar[..], Compression::None, dir.path(), limits, None);
        assert!(matches!(r, Err(LayerError::Corrupt(_))), "{kind:?}: {r:?}");
    }
    // A pax size the header does not agree with would read the stream out of step.
    let size = pax("size", "99");
    let tar = Tar::default()
        .extension(tar::EntryType::XHeader, size.len() as u64, &size)
        .file("f", b"x")
        .done();
    assert!(matches!(unpack_plain(&tar).1, Err(LayerError::Corrupt(_))));
}

#[test]
fn whiteouts_of_a_directory_itself_or_its_parent_are_refused() {
    for name in ["a/.wh..", "a/.wh...", ".wh..."] {
        let tar = Tar::default().dir("a").file(name, b"").done();
        let (_dir, r) = unpack_plain(&tar);
        assert!(matches!(r, Err(LayerError::UnsafePath(_))), "{name}: {r:?}");
    }
    // One stored before they were refused reaches nothing outside the image's root.
    let base = tempfile::tempdir().unwrap();
    let (root, sibling) = (base.path().join("root"), base.path().join("sibling"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&sibling).unwrap();
    let layer = tempfile::tempdir().unwrap();
    let whiteouts = [Whiteout::Path("..".into()), Whiteout::Opaque("a/..".into())];
    merge(&[(layer.path(), &whiteouts)], &root).unwrap();
    assert!(sibling.exists());
}

#[test]
fn directories_take_the_mode_of_their_last_entry() {
    let tar = Tar::default()
        .file("d/f", b"x")
        .entry("d", tar::EntryType::Directory, "", b"", 0o750)
        .done();
    let (lower, r) = unpack_plain(&tar);
    let lu = r.unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&lower.path().join("d")), 0o750);
    let upper = Tar::default()
        .entry("d", tar::EntryType::Directory, "", b"", 0o755)
        .done();
    let (upper, r) = unpack_plain(&upper);
    let uu = r.unwrap();
    let root = tempfile::tempdir().unwrap();
    merge(
        &[(lower.path(), &lu.whiteouts), (upper.path(), &uu.whiteouts)],
        root.path(),
    )
    .unwrap();
    assert_eq!(
        mode(&root.path().join("d")),
        0o755,
        "the upper layer's mode"
    );
}

#[test]
fn directories_made_for_deep_entries_count_as_entries() {
    let deep = format!("{}f", "d/".repeat(LIMITS.max_entries));
    let mut name = deep.into_bytes();
    name.push(0);
    let tar = Tar::default()
        .extension(tar::EntryType::GNULongName, name.len() as u64, &name)
        .file("placeholder", b"x")
        .done();
    let (_dir, r) = unpack_plain(&tar);
    assert!(matches!(r, Err(LayerError::TooManyEntries { .. })), "{r:?}");
}

#[test]
fn gzip_members_one_after_another_are_one_layer() {
    let tar = Tar::default().file("a", b"1").file("b", b"2").done();
    let (first, second) = tar.split_at(512 * 2);
    let mut gz = Vec::new();
    for part in [first, second] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).unwrap();
        gz.extend(e.finish().unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let u = unpack(
        &gz[..],
        Compression::Gzip,
        dir.path(),
        LIMITS,
        Some(&sha(&tar)),
    )
    .unwrap();
    assert_eq!(u.entries, 2);
    assert_eq!(fs::read(dir.path().join("b")).unwrap(), b"2");
}

/// An empty file (or whiteout) under a GNU long name.
fn long_named(tar: Tar, name: &str) -> Tar {
    let mut raw = name.as_bytes().to_vec();
    raw.push(0);
    tar.extension(tar::EntryType::GNULongName, raw.len() as u64, &raw)
        .file("placeholder", b"")
}

#[test]
fn a_whiteout_repeated_is_recorded_once() {
    let long = format!("{}/.wh.victim", "d".repeat(1000));
    let tar = (0..10_000)
        .fold(Tar::default(), |t, _| long_named(t, &long))
        .file(".wh.other", b"")
        .file("d/.wh..wh..opq", b"")
        .file("d/.wh..wh..opq", b"")
        .done();
    let limits = LayerLimits {
        max_bytes: 1 << 30,
        max_entries: 100_000,
        ..LIMITS
    };
    let dir = tempfile::tempdir().unwrap();
    let u = unpack(&tar[..], Compression::None, dir.path(), limits, None).unwrap();
    assert_eq!(u.whiteouts.len(), 3);
    assert_eq!(
        u.whiteouts,
        vec![
            Whiteout::Path(format!("{}/victim", "d".repeat(1000)).into()),
            Whiteout::Path("other".into()),
            Whiteout::Opaque("d".into()),
        ]
    );
}

#[test]
fn whiteouts_past_their_budget_are_refused() {
    let names: Vec<String> = (0..100).map(|i| format!("dir/.wh.gone{i:03}")).collect();
    let tar = names
        .iter()
        .fold(Tar::default(), |t, n| t.file(n, b""))
        .done();
    // Each costs its 11-byte path and 64 bytes besides: 100 of them, 7,500 bytes.
    let cost = |budget| {
        let dir = tempfile::tempdir().unwrap();
        let limits = LayerLimits {
            max_whiteout_bytes: budget,
            ..LIMITS
        };
        unpack(&tar[..], Compression::None, dir.path(), limits, None)
    };
    let u = cost(7_500).unwrap();
    assert_eq!(u.whiteouts.len(), 100);
    assert_eq!(whiteout_bytes(&u.whiteouts), 7_500);
    let r = cost(7_499);
    assert!(
        matches!(r, Err(LayerError::TooManyWhiteouts { limit: 7_499 })),
        "{r:?}"
    );
}

#[test]
fn paths_deeper_than_the_bound_are_refused() {
    let limits = LayerLimits {
        max_bytes: 1 << 20,
        max_entries: 10_000,
        ..LIMITS
    };
    let deep = |depth: usize| {
        let name = format!("{}f", "d/".repeat(depth - 1));
        long_named(Tar::default(), &name).done()
    };
    let dir = tempfile::tempdir().unwrap();
    let r = unpack(
        &deep(MAX_DEPTH)[..],
        Compression::None,
        dir.path(),
        limits,
        None,
    );
    assert!(r.is_ok(), "{r:?}");
    let dir = tempfile::tempdir().unwrap();
    let r = unpack(
        &deep(MAX_DEPTH + 1)[..],
        Compression::None,
        dir.path(),
        limits,
        None,
    );
    assert!(matches!(r, Err(LayerError::TooDeep { .. })), "{r:?}");
}

/// Set in the child process [`merging_a_deep_tree_holds_no_descriptor_per_level`] runs.
const FEW_FDS: &str = "LAMINA_TEST_LINK_TREE_FEW_FDS";

#[test]
fn merging_a_deep_tree_holds_no_descriptor_per_level() {
    if std::env::var_os(FEW_FDS).is_none() {
        // The descriptor limit is the process's: lowered only in a child running this test.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "image_layer::tests::merging_a_deep_tree_holds_no_descriptor_per_level",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(FEW_FDS, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let layer = tempfile::tempdir().unwrap();
    let chain = "d/".repeat(300);
    fs::create_dir_all(layer.path().join(&chain)).unwrap();
    fs::write(layer.path().join(&chain).join("f"), b"deep").unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut before = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // Only the soft limit is lowered, and raised again before the deep trees are removed
    // (which takes a descriptor per level).
    // SAFETY: a plain syscall into a valid struct.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut before) };
    assert_eq!(got, 0);
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: before.rlim_max,
    };
    // SAFETY: a plain syscall on a valid struct, in a process running this test alone.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let merged = merge(&[(layer.path(), &[])], root.path());
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &before) }, 0);
    merged.unwrap();
    assert_eq!(
        fs::read(root.path().join(&chain).join("f")).unwrap(),
        b"deep"
    );
}
