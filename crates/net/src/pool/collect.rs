//! The network thread's collection: profiles no environment has used for a while, with their
//! chains, and updates the firewall refused, applied again.

use std::collections::HashSet;
use std::time::Instant;

use super::{Worker, update_batch};
use crate::{VpcProfile, rules};

impl Worker {
    /// Forgets the profiles idle for [`PROFILE_IDLE`](super::PROFILE_IDLE) that no lease or interface still cooling
    /// belongs to, and removes their chains and any namespace ready for them.
    pub(super) fn collect(&mut self) {
        self.collected = Instant::now();
        self.apply_unapplied();
        let of = |name: &str| {
            name.get(rules::PREFIX.len()..rules::PREFIX.len() + 4)
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())
        };
        // Indexes whose interfaces are gone are free; the others still hold their profiles. A
        // bounded number per pass: each is a netlink request, and starts wait meanwhile.
        for _ in 0..self.cooling.len().min(1024) {
            match self.cooled() {
                Some(index) => self.free.push(index),
                None => break,
            }
        }
        let mut held: HashSet<u16> = self.owners.keys().filter_map(|n| of(n)).collect();
        held.extend(self.cooling.iter().filter_map(|(_, _, n)| of(n)));
        let (gone, kept): (Vec<u16>, Vec<u16>) = {
            let mut profiles = self.shared.profiles();
            let mut gone: Vec<u16> = profiles
                .used
                .iter()
                .filter(|(id, at)| at.elapsed() >= self.shared.profile_idle && !held.contains(id))
                .map(|(id, _)| *id)
                .collect();
            // Until their chains are removed, the collected profiles keep their ids and what
            // their chains refer to (`unforgotten`).
            let collected: Vec<(VpcProfile, u16)> = profiles
                .ids
                .iter()
                .filter(|(_, id)| gone.contains(id))
                .map(|(key, id)| (key.clone(), *id))
                .collect();
            profiles.ids.retain(|_, id| !gone.contains(id));
            for id in &gone {
                profiles.used.remove(id);
            }
            profiles
                .unforgotten
                .extend(collected.into_iter().map(|(key, id)| (id, key)));
            // Not the pending one: its chains are not made yet (they are made, with its rule,
            // and noted as made in one step on this thread).
            let kept: Vec<u16> = profiles.ids.values().copied().collect();
            // With those whose chains could not be removed before.
            gone = profiles.unforgotten.keys().copied().collect();
            if gone.is_empty() {
                drop(profiles);
                self.collect_chains();
                return;
            }
            (gone, kept)
        };
        self.forget_ready_of(|p| gone.contains(&p));
        if self
            .host
            .apply(&rules::forget_profiles(&gone, &kept))
            .is_ok()
        {
            self.shared.profiles().forgotten(&gone);
        } else {
            // One profile the firewall refuses must not keep the others: each alone.
            for id in &gone {
                match self.host.apply(&rules::forget_profiles(&[*id], &kept)) {
                    Ok(()) => self.shared.profiles().forgotten(&[*id]),
                    Err(e) => tracing::warn!(
                        error = %e,
                        profile = id,
                        "removing the chains of an unused VPC profile failed; tried again later"
                    ),
                }
            }
        }
        self.collect_chains();
    }

    /// Applies again what updates could not apply (before the chains no profile refers to go,
    /// so that those it makes go with them).
    fn apply_unapplied(&mut self) {
        let (groups, nat) = self.shared.profiles().unapplied();
        if groups.is_empty() && nat.is_empty() {
            return;
        }
        if self.host.apply(&update_batch(&groups, &nat)).is_ok() {
            self.shared.profiles().updated(&groups, &nat, true);
            return;
        }
        // One change the firewall refuses must not keep the others: each alone.
        for g in &groups {
            match self.host.apply(&update_batch(std::slice::from_ref(g), &[])) {
                Ok(()) => self
                    .shared
                    .profiles()
                    .updated(std::slice::from_ref(g), &[], true),
                Err(e) => {
                    tracing::error!(error = %e, group = %g.id, "applying a security group's change failed again; running environments keep its earlier rules until it succeeds")
                }
            }
        }
        for n in &nat {
            match self.host.apply(&update_batch(&[], std::slice::from_ref(n))) {
                Ok(()) => self
                    .shared
                    .profiles()
                    .updated(&[], std::slice::from_ref(n), true),
                Err(e) => {
                    tracing::error!(error = %e, vpc = %n.0, "applying a VPC's NAT change failed again; running environments keep its earlier state until it succeeds")
                }
            }
        }
    }

    /// Removes the chains of security groups and VPCs no profile refers to any more, in a
    /// transaction of their own: one that fails leaves them noted, to be tried again.
    fn collect_chains(&mut self) {
        let (groups, vpcs) = self.shared.profiles().unreferenced();
        if groups.is_empty() && vpcs.is_empty() {
            return;
        }
        if self
            .host
            .apply(&rules::forget_chains(&groups, &vpcs))
            .is_ok()
        {
            self.shared.profiles().chains_gone(&groups, &vpcs);
            return;
        }
        // One chain the firewall still holds must not keep the others: each alone.
        let one = std::slice::from_ref;
        for g in &groups {
            match self.host.apply(&rules::forget_chains(one(g), &[])) {
                Ok(()) => self.shared.profiles().chains_gone(one(g), &[]),
                Err(e) => {
                    tracing::warn!(error = %e, group = %g, "removing a security group's chain failed")
                }
            }
        }
        for v in &vpcs {
            match self.host.apply(&rules::forget_chains(&[], one(v))) {
                Ok(()) => self.shared.profiles().chains_gone(&[], one(v)),
                Err(e) => tracing::warn!(error = %e, vpc = %v, "removing a VPC's NAT chain failed"),
            }
        }
    }
}
