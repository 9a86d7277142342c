//! Writing a file's plaintext while its blob arrives.
//!
//! `get` does not wait for the whole blob before it decrypts: the download
//! tells a reader on a blocking thread about each piece it has written
//! ([`super::download::Watch`]), and the reader opens every chunk as soon
//! as it and all before it are on disk
//! ([`meshwork_blobs::open_growing`]), reading it back from the page cache.
//! The plaintext is written alongside the transfer instead of in a second
//! pass over the finished blob, which once took as long as the transfer,
//! and synced behind its writes ([`meshwork_blobs::flushing`]).
//!
//! Nor does `get` wait for the blob to be durable. The store syncs a
//! download at most every few seconds (`DOWNLOAD_SYNC_INTERVAL`), and a
//! watched download ends with every piece written but the blob not yet
//! synced into place: on a fast link the disk takes the plaintext alone,
//! and the blob, with this node's record as its holder, follows once `get`
//! has its file (`Node::keep`).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;

use meshwork_blobs::{Arrived, BlobError, BlobHash, FileKey};

use super::files::{blob_hash, FileInfo, Progress};
use super::Node;
use crate::error::Context;
use crate::NodeError;

/// A blob being fetched, as its reader sees it.
pub(super) struct Growing {
    data: File,
    path: PathBuf,
    hash: BlobHash,
    size: u64,
    arrived: mpsc::Receiver<Arrived>,
}

impl Growing {
    /// Decrypts the blob into `out` as it arrives; returns the plaintext
    /// size. Fails with [`BlobError::Incomplete`] if the fetch stops first.
    pub(super) fn open_into(self, key: &FileKey, out: impl Write) -> Result<u64, BlobError> {
        meshwork_blobs::open_growing(
            &self.data,
            &self.path,
            &self.hash,
            self.size,
            key,
            self.arrived,
            out,
        )
    }
}

impl Node {
    /// Fetches the blob of `info` unless it is here and, meanwhile, runs
    /// `open` on a blocking thread with the blob as it grows. A failed fetch
    /// is the error (its reader then stops with `Incomplete`); else `open`'s
    /// result.
    pub(super) async fn fetch_opening<T: Send + 'static>(
        &self,
        info: &FileInfo,
        progress: Option<Progress>,
        open: impl FnOnce(Growing) -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let hash = blob_hash(info)?;
        let size = info.entry.blob_size;
        let blobs = self.shared.blobs.clone();
        let (data, path) = tokio::task::spawn_blocking(move || {
            blobs
                .prepare(&hash, size)
                .context("cannot prepare the blob's file")?;
            Ok::<_, NodeError>(blobs.data_file(&hash)?)
        })
        .await
        .context("a background task failed")??;
        let (watch, arrived) = mpsc::channel();
        let growing = Growing {
            data,
            path,
            hash,
            size,
            arrived,
        };
        let reader = tokio::task::spawn_blocking(move || open(growing));
        // The watch goes with the fetch: once it is over, the reader has
        // heard all it will.
        let fetched = self.fetch_blob(info, progress, Some(watch)).await;
        let opened = reader.await.context("a background task failed")?;
        fetched?;
        opened
    }
}
