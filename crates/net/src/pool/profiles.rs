//! The VPC profiles the firewall holds: their ids, when each was last used, and the security
//! group and NAT chains they refer to.

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::{Duration, Instant};

use crate::{SecurityGroup, VpcProfile};

/// At most this many profiles (each a pair of chains, and a rule every sandbox's packets pass)
/// in all, and per VPC (each combination of subnets and security groups is one).
pub(super) const MAX_PROFILES: usize = 4096;
pub(super) const MAX_PROFILES_PER_VPC: usize = 64;
/// And per account, whatever its regions and VPCs: one account cannot take them all.
pub(super) const MAX_PROFILES_PER_ACCOUNT: usize = 256;

/// Profiles whose namespace was taken within this long keep one ready, up to
/// [`MAX_SPARE_PROFILES`] of the most recent: an account cycling through profiles holds no more
/// of the pool than that.
const SPARE_WINDOW: Duration = Duration::from_secs(600);
pub(super) const MAX_SPARE_PROFILES: usize = 16;

#[derive(Default)]
pub(super) struct Profiles {
    pub(super) ids: HashMap<VpcProfile, u16>,
    pub(super) used: HashMap<u16, Instant>,
    /// The id of a profile whose chains are being made: no other profile takes it, and no
    /// chain it may refer to is collected meanwhile.
    pub(super) pending: Option<u16>,
    /// Profiles collected whose chains are not removed yet (the firewall refused it once):
    /// their ids stay taken and their chains' references count, until a collection removes
    /// them.
    pub(super) unforgotten: HashMap<u16, VpcProfile>,
    /// Security groups and VPCs with a chain of their own (made with a profile or by an
    /// update): collected once no profile refers to them, so that the firewall holds the
    /// chains of groups in use, not of every group ever used.
    groups: HashSet<String>,
    vpcs: HashSet<String>,
    /// Security groups' rules and VPCs' NAT states an update could not apply (the firewall
    /// refused its transaction), applied again at the next collection unless a later update
    /// applied them first.
    unapplied_groups: HashMap<String, SecurityGroup>,
    unapplied_nat: HashMap<String, bool>,
}

impl Profiles {
    /// Whether another profile like `key` may be made, or why not.
    pub(super) fn room_for(&self, key: &VpcProfile) -> io::Result<()> {
        // Ids are 16 bits, 0 the default's.
        if self.ids.len() + self.unforgotten.len() >= MAX_PROFILES.min(u16::MAX as usize - 1) {
            return Err(io::Error::other(format!(
                "this server keeps at most {MAX_PROFILES} combinations of VPC subnets and security groups"
            )));
        }
        if self.ids.keys().filter(|p| p.account == key.account).count() >= MAX_PROFILES_PER_ACCOUNT
        {
            return Err(io::Error::other(format!(
                "account {} uses {MAX_PROFILES_PER_ACCOUNT} combinations of VPC subnets and security groups, the most one account may",
                key.account
            )));
        }
        if self.ids.keys().filter(|p| p.vpc_id == key.vpc_id).count() >= MAX_PROFILES_PER_VPC {
            return Err(io::Error::other(format!(
                "VPC {} is used with {MAX_PROFILES_PER_VPC} combinations of subnets and security groups, the most one VPC may be",
                key.vpc_id
            )));
        }
        Ok(())
    }

    /// The lowest id no profile has (0 is the default's).
    pub(super) fn free_id(&self) -> u16 {
        let taken: HashSet<u16> = self
            .ids
            .values()
            .copied()
            .chain(self.pending)
            .chain(self.unforgotten.keys().copied())
            .collect();
        (1..u16::MAX)
            .find(|i| !taken.contains(i))
            .expect("room_for bounds the profiles")
    }

    /// The profiles that keep a namespace ready, most recently used first.
    pub(super) fn recent(&self) -> Vec<u16> {
        let mut recent: Vec<(Instant, u16)> = self
            .used
            .iter()
            .filter(|(_, at)| at.elapsed() < SPARE_WINDOW)
            .map(|(id, at)| (*at, *id))
            .collect();
        recent.sort_unstable_by(|a, b| b.cmp(a));
        recent.truncate(MAX_SPARE_PROFILES);
        recent.into_iter().map(|(_, id)| id).collect()
    }

    /// Notes that the chains of `groups` and of `vpcs`' NAT state were made.
    pub(super) fn chains_made<'a>(
        &mut self,
        groups: impl IntoIterator<Item = &'a String>,
        vpcs: impl IntoIterator<Item = &'a String>,
    ) {
        self.groups.extend(groups.into_iter().cloned());
        self.vpcs.extend(vpcs.into_iter().cloned());
    }

    /// The groups and VPCs whose chains no profile refers to; none while a profile is being
    /// made, whose chains may refer to any of them already.
    pub(super) fn unreferenced(&self) -> (Vec<String>, Vec<String>) {
        if self.pending.is_some() {
            return (Vec::new(), Vec::new());
        }
        let (referenced_groups, referenced_vpcs) = self.referenced();
        let mut groups = self.groups.clone();
        let mut vpcs = self.vpcs.clone();
        groups.retain(|g| !referenced_groups.contains(g));
        vpcs.retain(|v| !referenced_vpcs.contains(v));
        (groups.into_iter().collect(), vpcs.into_iter().collect())
    }

    /// Notes what an update applied (`true`) or could not apply.
    pub(super) fn updated(&mut self, groups: &[SecurityGroup], nat: &[(String, bool)], ok: bool) {
        for g in groups {
            match ok {
                true => self.unapplied_groups.remove(&g.id),
                false => self.unapplied_groups.insert(g.id.clone(), g.clone()),
            };
        }
        for (vpc, on) in nat {
            match ok {
                true => self.unapplied_nat.remove(vpc),
                false => self.unapplied_nat.insert(vpc.clone(), *on),
            };
        }
        if ok {
            self.chains_made(groups.iter().map(|g| &g.id), nat.iter().map(|(v, _)| v));
        }
    }

    /// What updates could not apply, to be applied again; those no profile refers to any more
    /// are dropped (a profile made later writes them from the store).
    pub(super) fn unapplied(&mut self) -> (Vec<SecurityGroup>, Vec<(String, bool)>) {
        let (groups, vpcs) = self.referenced();
        self.unapplied_groups.retain(|id, _| groups.contains(id));
        self.unapplied_nat.retain(|vpc, _| vpcs.contains(vpc));
        (
            self.unapplied_groups.values().cloned().collect(),
            self.unapplied_nat
                .iter()
                .map(|(v, on)| (v.clone(), *on))
                .collect(),
        )
    }

    /// The groups and VPCs whose chains profiles refer to (collected ones whose chains are not
    /// removed yet included).
    fn referenced(&self) -> (HashSet<String>, HashSet<String>) {
        let mut groups = HashSet::new();
        let mut vpcs = HashSet::new();
        for p in self.ids.keys().chain(self.unforgotten.values()) {
            groups.extend(p.security_groups.iter().cloned());
            vpcs.insert(p.vpc_id.clone());
        }
        (groups, vpcs)
    }

    /// Notes that the chains of collected profiles `ids` are removed.
    pub(super) fn forgotten(&mut self, ids: &[u16]) {
        for id in ids {
            self.unforgotten.remove(id);
        }
    }

    /// Notes that the chains of `groups` and `vpcs` are gone.
    pub(super) fn chains_gone(&mut self, groups: &[String], vpcs: &[String]) {
        for g in groups {
            self.groups.remove(g);
        }
        for v in vpcs {
            self.vpcs.remove(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_whose_chains_remain_keeps_its_id_and_its_references() {
        let key = VpcProfile {
            account: "111111111111".into(),
            vpc_id: "vpc-1".into(),
            cidrs: vec![],
            interfaces: vec![],
            security_groups: vec!["sg-1".into()],
            nat: false,
        };
        let mut p = Profiles::default();
        p.chains_made(&key.security_groups, [&key.vpc_id]);
        p.unforgotten.insert(1, key);
        assert_eq!(p.free_id(), 2, "its chains still stand under id 1");
        assert_eq!(
            p.unreferenced(),
            (vec![], vec![]),
            "its chains still jump to them"
        );
        p.unforgotten.clear();
        assert_eq!(
            p.unreferenced(),
            (vec!["sg-1".to_string()], vec!["vpc-1".to_string()])
        );
        assert_eq!(p.free_id(), 1);
    }
}
