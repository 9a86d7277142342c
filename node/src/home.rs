//! The node's home directory: its identity, its database and the address
//! and token of its control API. Secrets are written with mode 0600.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use meshwork_crdt::Signer;
use serde::{Deserialize, Serialize};

use crate::error::Context;
use crate::NodeError;

/// Paths inside a node's home directory.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

/// Who this device is.
#[derive(Clone)]
pub struct Identity {
    /// Signs roster and document changes.
    pub signer: Signer,
    /// The libp2p identity: the same key.
    pub keypair: Keypair,
    /// The display name chosen at `init`.
    pub name: String,
}

/// Where a running daemon's control API listens, for the CLI to find it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiInfo {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Bearer token.
    pub token: String,
    /// The daemon's process id.
    pub pid: u32,
}

#[derive(Serialize, Deserialize)]
struct Profile {
    name: String,
}

impl Home {
    /// A home at `root` (created on demand).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The home directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sled database directory.
    pub fn db(&self) -> PathBuf {
        self.root.join("db")
    }

    /// Where blob bytes live (sled holds only their metadata).
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The local search index (derived from the documents; rebuilt when
    /// missing).
    pub fn search(&self) -> PathBuf {
        self.root.join("search")
    }

    fn key_path(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    fn profile_path(&self) -> PathBuf {
        self.root.join("profile.json")
    }

    fn api_path(&self) -> PathBuf {
        self.root.join("api.json")
    }

    /// Whether `init` has run here.
    pub fn has_identity(&self) -> bool {
        self.key_path().exists()
    }

    /// Changes the display name kept in this home (what a workspace created
    /// here calls its first member).
    pub fn set_name(&self, name: &str) -> Result<(), NodeError> {
        meshwork_crdt::roster::check_display_name(name)
            .map_err(|e| NodeError::BadRequest(e.to_string()))?;
        let profile = serde_json::to_vec_pretty(&Profile { name: name.into() })?;
        write_private(&self.profile_path(), &profile)?;
        Ok(())
    }

    /// Creates this device's identity. Refuses to overwrite one.
    pub fn init(&self, name: &str) -> Result<Identity, NodeError> {
        meshwork_crdt::roster::check_display_name(name)
            .map_err(|e| NodeError::BadRequest(e.to_string()))?;
        if self.has_identity() {
            return Err(NodeError::Conflict(format!(
                "{} already holds an identity; use another --home for a second node",
                self.root.display()
            )));
        }
        fs::create_dir_all(&self.root)?;
        let secret: [u8; 32] = rand::random();
        write_private(&self.key_path(), hex::encode(secret).as_bytes())?;
        let profile = serde_json::to_vec_pretty(&Profile { name: name.into() })?;
        fs::write(self.profile_path(), profile)?;
        self.identity()
    }

    /// Loads this device's identity.
    pub fn identity(&self) -> Result<Identity, NodeError> {
        let raw = fs::read_to_string(self.key_path()).map_err(|_| {
            NodeError::NotFound(format!(
                "no identity in {}: run `meshwork init --name \"Your Name\"` first",
                self.root.display()
            ))
        })?;
        let secret: [u8; 32] = hex::decode(raw.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                NodeError::Internal(format!("{} is damaged", self.key_path().display()))
            })?;
        let profile: Profile = serde_json::from_slice(&fs::read(self.profile_path())?)?;
        let keypair = Keypair::ed25519_from_bytes(secret).context("the identity key is damaged")?;
        Ok(Identity {
            signer: Signer::from_secret(secret),
            keypair,
            name: profile.name,
        })
    }

    /// Records where the control API listens (mode 0600).
    pub fn write_api(&self, info: &ApiInfo) -> Result<(), NodeError> {
        write_private(&self.api_path(), &serde_json::to_vec_pretty(info)?)
    }

    /// Where a running daemon's API listens, if one wrote it.
    pub fn read_api(&self) -> Option<ApiInfo> {
        serde_json::from_slice(&fs::read(self.api_path()).ok()?).ok()
    }

    /// Forgets the API address at shutdown.
    pub fn clear_api(&self) {
        let _ = fs::remove_file(self.api_path());
    }
}

/// Writes a file only its owner may read, atomically (temp file + rename).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}
