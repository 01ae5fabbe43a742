//! A lease: an environment's network namespace, given back to the network thread when dropped.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::Sender;

use super::Request;

/// An environment's network: a namespace whose `eth0` is up with `address`. Dropping it ends the
/// lease: its counters are read, and the pair goes with the namespace's last process.
pub struct Lease {
    /// Kept until the network thread has read the interface's counters.
    pub(super) netns: Option<OwnedFd>,
    pub address: Ipv4Addr,
    pub(super) name: String,
    pub(super) index: u32,
    pub(super) owner: String,
    pub(super) tx: Sender<Request>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("interface", &self.name)
            .field("address", &self.address)
            .finish()
    }
}

impl Lease {
    /// The namespace, for `setns`.
    pub fn netns(&self) -> BorrowedFd<'_> {
        self.netns.as_ref().expect("held until drop").as_fd()
    }

    /// The host side's name.
    pub fn interface(&self) -> &str {
        &self.name
    }

    /// Gives the lease to `owner` (a lease taken ahead of time, for a sandbox made before its
    /// function was known): its traffic is counted as theirs.
    pub fn assign(&mut self, owner: &str) {
        owner.clone_into(&mut self.owner);
        let _ = self.tx.send(Request::Assign {
            name: self.name.clone(),
            owner: owner.to_owned(),
        });
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.tx.send(Request::Release {
            netns: self.netns.take(),
            name: std::mem::take(&mut self.name),
            index: self.index,
            owner: std::mem::take(&mut self.owner),
        });
    }
}
