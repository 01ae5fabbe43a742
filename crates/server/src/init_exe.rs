//! The sandboxes' first process: `lamina-init` (crates/init), built by this crate's build script
//! as a small static binary and carried inside it.
//!
//! At the first start it is written once into a sealed memfd, which every sandbox then executes
//! through `/proc/self/fd/N`. Nothing is written to disk, and the seals (no write, no resize)
//! mean that nobody, root included, can change what later sandboxes run. Two copies run per
//! sandbox, so its size matters: about 100 KiB each, where the server's own binary re-executed
//! as `lamina sandbox-init` held about 600 KiB each, mostly its relocated data.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;

use rustix::fs::{MemfdFlags, SealFlags};

static BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lamina-init"));

/// The memfd, kept open for the life of the process (every server in it shares one).
static INSTALLED: OnceLock<Result<OwnedFd, String>> = OnceLock::new();

/// The path that executes `lamina-init`; an error says why it cannot be had.
pub fn path() -> Result<PathBuf, String> {
    let fd = INSTALLED.get_or_init(|| install().map_err(|e| e.to_string()));
    match fd {
        Ok(fd) => Ok(PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))),
        Err(e) => Err(e.clone()),
    }
}

fn install() -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(
        "lamina-init",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    // Above the standard descriptors: a server started with one of them closed would get it,
    // and a child's stdio would then replace the binary before its exec.
    let fd = rustix::io::fcntl_dupfd_cloexec(&fd, 3)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(BINARY)?;
    rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(0o555))?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )?;
    Ok(file.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_installed_sealed_and_cannot_be_changed() {
        let path = path().expect("memfd_create works on every supported kernel");
        assert_eq!(std::fs::read(&path).unwrap(), BINARY);
        assert!(BINARY.starts_with(b"\x7fELF"));
        // Sealed against writes: even this process, which made it, cannot change it.
        let fd = INSTALLED.get().unwrap().as_ref().unwrap();
        let mut f = std::fs::File::from(fd.try_clone().unwrap());
        assert!(f.write_all(b"x").is_err());
        assert!(rustix::fs::ftruncate(&f, 0).is_err());
    }

    #[test]
    fn the_binary_is_static_and_small() {
        // No program interpreter: it runs without the host's dynamic loader or libraries.
        let elf = BINARY;
        let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
        let phentsize = u16::from_le_bytes(elf[54..56].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes(elf[56..58].try_into().unwrap()) as usize;
        let interp = (0..phnum).any(|i| {
            let at = phoff + i * phentsize;
            u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
        });
        assert!(!interp, "lamina-init must be linked statically");
        assert!(elf.len() < 4 << 20, "lamina-init is {} bytes", elf.len());
    }
}
