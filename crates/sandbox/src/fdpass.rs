//! Passing file descriptors over a Unix socket (`SCM_RIGHTS`): how the sandbox hands the Runtime
//! API listener, created inside its network namespace, to the server, how the server hands a
//! sandbox its disk-backed `/tmp` (a detached mount), and how the server hands the fork server the
//! descriptors of a sandbox to start (see `spawner.rs`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The most descriptors one message carries: a pidfd for each of a launch's companions, and
/// their output's read end.
const MAX_FDS: usize = crate::MAX_COMPANIONS + 1;

/// Room for [`MAX_FDS`] descriptors' control message, aligned as `cmsghdr` wants.
#[repr(C, align(8))]
struct Control([u8; 72]);

// A header (16 bytes) and the descriptors fit.
const _: () = assert!(16 + MAX_FDS * std::mem::size_of::<RawFd>() <= 72);

/// Sends `msg` with `fd` attached.
pub fn send_fd(sock: RawFd, msg: &[u8], fd: RawFd) -> io::Result<()> {
    send_fds(sock, msg, &[fd])
}

/// Sends `msg` with `fds` (at most [`MAX_FDS`]) attached.
pub fn send_fds(sock: RawFd, msg: &[u8], fds: &[RawFd]) -> io::Result<()> {
    assert!(
        fds.len() <= MAX_FDS,
        "{} descriptors in one message",
        fds.len()
    );
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr() as *mut _,
        iov_len: msg.len(),
    };
    let bytes = std::mem::size_of_val(fds) as u32;
    let mut control = Control([0; 72]);
    // SAFETY: msghdr is plain data; every pointer set below stays valid until sendmsg returns.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if !fds.is_empty() {
        hdr.msg_control = control.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is a pure computation.
        hdr.msg_controllen = unsafe { libc::CMSG_SPACE(bytes) } as _;
        // SAFETY: the control buffer holds CMSG_SPACE for MAX_FDS descriptors, so the first
        // header and its data fit inside it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, &fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), fd);
            }
        }
    }
    // SAFETY: `hdr` describes valid buffers.
    let n = unsafe { libc::sendmsg(sock, &hdr, libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Receives a message and, if one came with it, a file descriptor.
pub fn recv_fd(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let (n, fds) = recv_fds(sock, buf)?;
    Ok((n, fds.into_iter().next()))
}

/// Receives a message and the descriptors that came with it (close-on-exec), at most
/// [`MAX_FDS`].
pub fn recv_fds(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = Control([0; 72]);
    // SAFETY: as in `send_fds`.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: pure computation.
    hdr.msg_controllen =
        unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as _;
    // SAFETY: `hdr` describes valid buffers; MSG_CMSG_CLOEXEC keeps the fds out of other children.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled the control buffer; CMSG_FIRSTHDR returns null when it is empty,
    // and a header's length covers the descriptors after its data's start.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&hdr);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            let header = data.cast::<u8>().offset_from(cmsg.cast::<u8>()) as usize;
            let count = ((*cmsg).cmsg_len as usize - header) / std::mem::size_of::<RawFd>();
            for i in 0..count {
                fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
            }
        }
    }
    if hdr.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more descriptors than expected in one message",
        ));
    }
    Ok((n as usize, fds))
}
