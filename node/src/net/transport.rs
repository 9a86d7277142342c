//! Builds the swarm: TCP, then the workspace's pre-shared key (libp2p pnet:
//! outsiders cannot finish a handshake), then noise and yamux.

use std::time::Duration;

use libp2p::core::upgrade::Version;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::{identity::Keypair, noise, tcp, yamux, Swarm, Transport};

use super::behaviour::Behaviour;
use crate::NodeError;

/// The pre-shared network key of a workspace, derived from its secret.
pub fn psk(secret: &[u8; 32]) -> PreSharedKey {
    PreSharedKey::new(blake3::derive_key("meshwork pnet key v1", secret))
}

pub(crate) fn build_swarm(
    key: Keypair,
    secret: &[u8; 32],
    mdns: bool,
) -> Result<Swarm<Behaviour>, NodeError> {
    let psk = psk(secret);
    let err = |e: String| NodeError::Internal(format!("cannot start networking: {e}"));
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            type BoxError = Box<dyn std::error::Error + Send + Sync>;
            let noise = noise::Config::new(key).map_err(|e| Box::new(e) as BoxError)?;
            Ok::<_, BoxError>(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .timeout(Duration::from_secs(20)),
            )
        })
        .map_err(|e| err(e.to_string()))?
        .with_behaviour(|key| Behaviour::new(key, mdns).map_err(Into::into))
        .map_err(|e| err(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}
