//! Environments' networks: the default egress, or a VPC's profile, from `lamina-net`'s pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lamina_net::{Lease, NetConfig, Network, SecurityGroup, VpcProfile};

/// A function's VPC attachment, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VpcAttachment {
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

/// Turns a VPC attachment into what the network layer enforces, and reads security groups'
/// rules; the server implements it with the store. Called when an environment starts (never
/// on a warm invoke) and when the EC2 API changes a group.
pub trait VpcResolver: Send + Sync {
    fn resolve(
        &self,
        account: &str,
        region: &str,
        vpc: &VpcAttachment,
    ) -> Result<(VpcProfile, Vec<SecurityGroup>), String>;
}

/// How environments get a network.
#[derive(Clone)]
pub struct NetSettings {
    pub pool: ipnet::Ipv4Net,
    /// Namespaces kept ready for the default egress.
    pub spare: usize,
    /// Connections one environment may have tracked at once.
    pub connections: u32,
    pub vpcs: Arc<dyn VpcResolver>,
}

/// Whose environment a lease is for.
#[derive(Default)]
pub(crate) struct Tenant {
    pub(crate) account: String,
    pub(crate) region: String,
    pub(crate) function_arn: String,
    pub(crate) vpc: Option<VpcAttachment>,
}

impl std::fmt::Debug for NetSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetSettings")
            .field("pool", &self.pool)
            .field("spare", &self.spare)
            .finish()
    }
}

type Attached = HashMap<u16, (String, String, VpcAttachment)>;

/// The running network layer and what resolves VPCs for it.
#[derive(Clone)]
pub(crate) struct Networking {
    pub(crate) network: Network,
    pub(crate) vpcs: Arc<dyn VpcResolver>,
    /// An attachment environments of each VPC profile were started with, with its account and
    /// region: what a refresh resolves again. One per profile id, so that attachments are
    /// bounded by the profiles (however many ways a tenant words the same one).
    attached: Arc<Mutex<Attached>>,
    /// Held from reading a VPC's groups and NAT state to applying them, by a start that makes
    /// a profile and by a refresh: otherwise a start could apply rules read before a change
    /// after the refresh that followed it, and bring revoked rules back.
    applying: Arc<Mutex<()>>,
    /// The `/etc/resolv.conf` sandboxes see.
    pub(crate) resolv_conf: String,
}

impl Networking {
    /// Starts the layer on this host: the firewall table, forwarding, the pool's thread.
    /// Returns it with the resolvers sandboxes use, or why there is no network.
    pub(crate) fn start(s: &NetSettings) -> Result<(Self, lamina_net::dns::Resolvers), String> {
        let resolvers = lamina_net::dns::detect();
        let config = NetConfig {
            pool: s.pool,
            spare: s.spare,
            resolvers: resolvers.servers.clone(),
            connections: s.connections,
        };
        let network = Network::start(config, || {
            Ok(Box::new(lamina_net::host::LinuxHost::new()?) as Box<dyn lamina_net::host::Host>)
        })
        .map_err(|e| e.to_string())?;
        Ok((
            Self {
                network,
                vpcs: s.vpcs.clone(),
                attached: Arc::default(),
                applying: Arc::default(),
                resolv_conf: resolvers.file(),
            },
            resolvers,
        ))
    }

    /// A namespace for an environment of `who` (blocking: call it off the runtime's workers).
    pub(crate) fn lease(&self, who: &Tenant) -> Result<Lease, String> {
        let id = match &who.vpc {
            Some(a) => {
                let (p, _) = self.vpcs.resolve(&who.account, &who.region, a)?;
                let attached = (who.account.clone(), who.region.clone(), a.clone());
                match self.network.known(&p) {
                    Some(id) => {
                        self.attached().insert(id, attached);
                        id
                    }
                    None => {
                        // Read again under the lock: what is applied is what the store holds
                        // after any refresh before it, and a refresh after it sees the
                        // attachment.
                        let _applying = self.applying.lock().unwrap_or_else(|e| e.into_inner());
                        let (p, g) = self.vpcs.resolve(&who.account, &who.region, a)?;
                        let id = self
                            .network
                            .profile(Some(&p), || g)
                            .map_err(|e| format!("setting up the function's VPC profile: {e}"))?;
                        self.attached().insert(id, attached);
                        id
                    }
                }
            }
            None => 0,
        };
        self.network
            .take(id, &who.function_arn)
            .map_err(|e| e.to_string())
    }

    fn attached(&self) -> std::sync::MutexGuard<'_, Attached> {
        self.attached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the security groups and NAT gateways that environments use, after the EC2 API
    /// changed them, and applies them at once.
    pub(crate) fn refresh(&self, account: &str, region: &str) {
        // The attachments too are read under the lock: a start that made a profile meanwhile
        // has added its own.
        let _applying = self.applying.lock().unwrap_or_else(|e| e.into_inner());
        let attachments: Vec<(u16, VpcAttachment)> = self
            .attached()
            .iter()
            .filter(|(_, (a, r, _))| a == account && r == region)
            .map(|(id, (_, _, v))| (*id, v.clone()))
            .collect();
        let mut groups: Vec<SecurityGroup> = Vec::new();
        let mut nat: Vec<(String, bool)> = Vec::new();
        let (in_use, vpcs) = self.network.in_use();
        for (id, a) in attachments {
            // Groups and NAT state no profile refers to any more have no chain to update.
            let live = match self.vpcs.resolve(account, region, &a) {
                Ok((p, g)) => {
                    let before = groups.len();
                    groups.extend(g.into_iter().filter(|g| in_use.contains(&g.id)));
                    let nat_used = vpcs.contains(&p.vpc_id);
                    if nat_used {
                        nat.push((p.vpc_id, p.nat));
                    }
                    nat_used || groups.len() > before
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a VPC attachment no longer resolves");
                    false
                }
            };
            // An attachment that updates nothing is forgotten (a start with it notes it again),
            // so that attachments are bounded by the profiles in use.
            if !live {
                let mut attached = self.attached();
                if attached.get(&id).is_some_and(|(_, _, v)| *v == a) {
                    attached.remove(&id);
                }
            }
        }
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        groups.dedup_by(|a, b| a.id == b.id);
        nat.sort();
        nat.dedup();
        if let Err(e) = self.network.update(&groups, &nat) {
            tracing::error!(
                error = %e,
                "applying security group and NAT gateway changes failed; tried again within a minute"
            );
        }
    }
}
