//! The control loop's side of the API: the calls that change the volume map run here, between
//! probe rounds, so a create competes with failover for the same free slots.

use outage_lab_ebs_events::VolumeState;
use outage_lab_ebs_events::wire::ReplicaRole;

use super::{CallError, Command, VolumeView};
use crate::{Control, Volume, placement};

impl Control {
    /// Carries out one API command and answers it.
    pub(crate) async fn command(&mut self, command: Command) {
        match command {
            Command::Create { customer, reply } => {
                let result = self.create_volume(customer).await;
                let _ = reply.send(result);
            }
            Command::Attach {
                customer,
                volume,
                instance,
                reply,
            } => {
                let _ = reply.send(self.attach_volume(&customer, &volume, instance));
            }
        }
    }

    /// Places a new volume for `customer` on the two least-loaded healthy servers with a free
    /// slot (the failover's own choice, made twice).
    async fn create_volume(&mut self, customer: String) -> Result<VolumeView, CallError> {
        let healthy = self.healthy();
        let mut load = self.load();
        let slots = self.config.slots_per_server;
        let primary =
            placement::choose_target(&load, &healthy, &[], slots).ok_or(CallError::NoCapacity)?;
        *load.entry(primary).or_insert(0) += 1;
        let mirror = placement::choose_target(&load, &healthy, &[primary], slots)
            .ok_or(CallError::NoCapacity)?;
        let id = format!("v{:04}", self.volumes.len());
        let blocks = vec![0_u64; self.config.blocks_per_volume as usize];
        for (server, role, forward_to) in [
            (mirror, ReplicaRole::Mirror, None),
            (
                primary,
                ReplicaRole::Primary,
                Some(self.servers[mirror].addr),
            ),
        ] {
            let sent = self
                .replica_put(server, &id, role, forward_to, blocks.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => return Err(self.place_failed(&id, server, r.status().to_string())),
                Err(e) => return Err(self.place_failed(&id, server, e.to_string())),
            }
        }
        (self.volumes).push(Volume::placed(id, vec![primary, mirror], Some(customer)));
        let i = self.volumes.len() - 1;
        self.announce(i, "created");
        self.publish();
        Ok(self
            .view(&self.volumes[i])
            .expect("the new volume has an owner"))
    }

    fn place_failed(&self, id: &str, server: usize, detail: String) -> CallError {
        CallError::Place(format!("{id} on {}: {detail}", self.servers[server].id))
    }

    fn attach_volume(
        &mut self,
        customer: &str,
        volume: &str,
        instance: String,
    ) -> Result<VolumeView, CallError> {
        let i = self
            .volumes
            .iter()
            .position(|v| v.id == volume)
            .ok_or_else(|| CallError::UnknownVolume(volume.to_owned()))?;
        let v = &mut self.volumes[i];
        if v.owner.as_deref() != Some(customer) {
            return Err(CallError::NotOwner {
                volume: volume.to_owned(),
                customer: customer.to_owned(),
            });
        }
        if v.state == VolumeState::Stuck {
            return Err(CallError::Stuck(volume.to_owned()));
        }
        v.attached_to = Some(instance);
        self.publish();
        Ok(self.view(&self.volumes[i]).expect("owned"))
    }

    /// A volume as its owner sees it; `None` for volumes nobody owns.
    pub(crate) fn view(&self, v: &Volume) -> Option<VolumeView> {
        Some(VolumeView {
            volume: v.id.clone(),
            customer: v.owner.clone()?,
            state: v.state.to_string(),
            replicas: v
                .replicas
                .iter()
                .map(|&s| self.servers[s].id.clone())
                .collect(),
            attached_to: v.attached_to.clone(),
        })
    }
}
