//! The composed libp2p behaviour: one field per protocol.

use std::time::Duration;

use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    gossipsub, identify, identity::Keypair, mdns, ping, request_response, StreamProtocol,
};

use super::NetConfig;
use crate::wire::{
    BlobRequest, BlobResponse, JoinRequest, JoinResponse, PageRequest, PageResponse, SyncRequest,
    SyncResponse,
};

/// Protocol name of the document sync protocol.
pub const SYNC_PROTOCOL: &str = "/meshwork/sync/1";
/// Protocol name of the join protocol.
pub const JOIN_PROTOCOL: &str = "/meshwork/join/1";
/// Protocol name of the one-piece blob protocol (audits; downloads use
/// [`super::PIECES_PROTOCOL`]).
pub const BLOB_PROTOCOL: &str = "/meshwork/blob/1";

/// Protocol name of a feed's first page, ahead of its history.
pub const PAGE_PROTOCOL: &str = "/meshwork/page/1";

/// The largest first page taken: [`meshwork_crdt::feed::page::PAGE_BUDGET`]
/// and the post that crosses it, with room for the encoding.
const MAX_PAGE_MESSAGE: u64 = 4 << 20;

/// The largest sync message taken, either way (see
/// [`meshwork_crdt::signed::SYNC_BUDGET`]).
const MAX_SYNC_MESSAGE: u64 = 16 << 20;

/// Every protocol a Meshwork node speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    pub join: request_response::cbor::Behaviour<JoinRequest, JoinResponse>,
    pub blob: request_response::cbor::Behaviour<BlobRequest, BlobResponse>,
    pub page: request_response::cbor::Behaviour<PageRequest, PageResponse>,
    /// Raw streams: the piece protocol (`super::pieces`).
    pub stream: libp2p_stream::Behaviour,
}

impl Behaviour {
    pub(crate) fn new(key: &Keypair, cfg: &NetConfig) -> Result<Self, String> {
        let peer_id = key.public().to_peer_id();
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .heartbeat_interval(Duration::from_millis(500))
            .max_transmit_size(1 << 20)
            .message_id_fn(|m| {
                gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
            })
            .build()
            .map_err(|e| e.to_string())?;
        let gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(|e| e.to_string())?;
        let mdns = if cfg.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let rr_config =
            request_response::Config::default().with_request_timeout(Duration::from_secs(30));
        Ok(Self {
            identify: identify::Behaviour::new(identify::Config::new(
                "/meshwork/1.0.0".into(),
                key.public(),
            )),
            // A failed ping closes nothing by itself: the event loop closes
            // the connection (`PING_INTERVAL` states the bound).
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(cfg.ping_interval)
                    .with_timeout(cfg.ping_timeout),
            ),
            mdns: mdns.into(),
            gossipsub,
            // A sync message carries up to `SYNC_BUDGET` (4 MiB) of
            // changes, plus its bloom filter and heads, either way: the
            // codec's defaults (1 MiB requests) would refuse a push of a
            // long history.
            sync: request_response::Behaviour::with_codec(
                request_response::cbor::codec::Codec::default()
                    .set_request_size_maximum(MAX_SYNC_MESSAGE)
                    .set_response_size_maximum(MAX_SYNC_MESSAGE),
                [(
                    StreamProtocol::new(SYNC_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                rr_config.clone(),
            ),
            join: request_response::cbor::Behaviour::new(
                [(
                    StreamProtocol::new(JOIN_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                rr_config.clone(),
            ),
            page: request_response::Behaviour::with_codec(
                request_response::cbor::codec::Codec::default()
                    .set_response_size_maximum(MAX_PAGE_MESSAGE),
                [(
                    StreamProtocol::new(PAGE_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                rr_config.clone(),
            ),
            // Many pieces in flight per peer keep the pipe full.
            blob: request_response::cbor::Behaviour::new(
                [(
                    StreamProtocol::new(BLOB_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                // A slow link must not time pieces out: 16 × 256 KiB in
                // flight per holder take 2 minutes at 4 Mbit/s.
                rr_config
                    .with_request_timeout(Duration::from_secs(300))
                    .with_max_concurrent_streams(256),
            ),
            stream: libp2p_stream::Behaviour::new(),
        })
    }
}
