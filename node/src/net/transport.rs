//! Builds the swarm: TCP, then noise — whose handshake hashes in the
//! workspace's network key as its prologue, so that a node without the key
//! cannot finish it — then yamux.

use std::time::Duration;

use libp2p::core::upgrade::Version;
use libp2p::{identity::Keypair, noise, tcp, yamux, Swarm, Transport};

use super::behaviour::Behaviour;
use super::NetConfig;
use crate::NodeError;

/// How long a connection may take to be dialled or accepted and upgraded
/// (TCP, noise, yamux) before it is given up.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The network key of a workspace, derived from its secret: the prologue
/// of every noise handshake between its nodes. Both ends must hash in the
/// same prologue, or the handshake's authenticated messages fail.
pub fn network_key(secret: &[u8; 32]) -> Vec<u8> {
    blake3::derive_key("meshwork network key v1", secret).to_vec()
}

pub(crate) fn build_swarm(
    key: Keypair,
    secret: &[u8; 32],
    cfg: &NetConfig,
) -> Result<Swarm<Behaviour>, NodeError> {
    let prologue = network_key(secret);
    let err = |e: String| NodeError::Internal(format!("cannot start networking: {e}"));
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            type BoxError = Box<dyn std::error::Error + Send + Sync>;
            let noise = noise::Config::new(key)
                .map_err(|e| Box::new(e) as BoxError)?
                .with_prologue(prologue);
            Ok::<_, BoxError>(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default()),
            )
        })
        .map_err(|e| err(e.to_string()))?
        .with_behaviour(|key| Behaviour::new(key, cfg).map_err(Into::into))
        .map_err(|e| err(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        // The builder wraps the transport in this timeout; one of our own
        // inside it (there was one, of 20 s) would never fire.
        .with_connection_timeout(CONNECTION_TIMEOUT)
        .build();
    Ok(swarm)
}
