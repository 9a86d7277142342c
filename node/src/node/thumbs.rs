//! Thumbnails of the images in my departments' libraries (issue 17), made
//! here: the file's plaintext is read like a preview's, scaled by
//! [`crate::thumbnail`] on a blocking thread (at most [`AT_ONCE`] at a
//! time), and what came of it — the thumbnail, or why the image gets none —
//! is kept in the store by blob hash, so that the next request costs a
//! lookup. Anything but the four image types is refused before a byte is
//! read: nothing is decoded or kept for it.

use futures::{Stream, StreamExt};
use meshwork_blobs::BlobHash;

use super::files::{blob_hash, FileInfo};
use super::Node;
use crate::error::Context;
use crate::store::{KeptThumbnail, ThumbnailBound, ThumbnailsKept};
use crate::thumbnail::{self, Thumbnail};
use crate::NodeError;

/// What the store keeps at most. A photo's 320-pixel JPEG takes 20 to 35
/// KiB: the thumbnails of a thousand photos or more.
pub const KEEP_THUMBNAILS: ThumbnailBound = ThumbnailBound {
    count: 4096,
    bytes: 32 << 20,
};

/// Thumbnails made at once, at most: each holds an image's plaintext and
/// its pixels ([`thumbnail::MAX_SOURCE`] and [`thumbnail::MAX_DECODED`] at
/// worst), and keeps a core busy.
pub(super) const AT_ONCE: usize = 2;

impl Node {
    /// A thumbnail of image file `id` (an id, or a name only one file has)
    /// of one of my departments: kept from before, or made now. A
    /// [`NodeError::BadRequest`] when the file is not a PNG, JPEG, WebP or
    /// GIF of at most [`thumbnail::MAX_SOURCE`], or not a valid one of the
    /// type it declares.
    pub async fn thumbnail(&self, id: &str) -> Result<Thumbnail, NodeError> {
        let (_, info) = self.file(id)?;
        let format = image_format(&info)?;
        let blob = blob_hash(&info)?;
        if let Some(kept) = self.shared.store.thumbnail(blob.as_bytes())? {
            return kept.map_err(NodeError::BadRequest);
        }
        let _turn = self
            .thumbnailing
            .acquire()
            .await
            .context("waiting to make a thumbnail")?;
        // Another request may have made it while this one waited.
        if let Some(kept) = self.shared.store.thumbnail(blob.as_bytes())? {
            return kept.map_err(NodeError::BadRequest);
        }
        let (info, plaintext) = self.read_file(&info.entry.id).await?;
        let bytes = gather(&info, plaintext).await?;
        let name = info.entry.name.clone();
        let made = tokio::task::spawn_blocking(move || thumbnail::make(&bytes, format, &name))
            .await
            .context("a thumbnail task failed")?;
        let kept: KeptThumbnail = match made {
            Ok(t) => Ok(t),
            // The image's own fault: the same next time.
            Err(NodeError::BadRequest(why)) => Err(why),
            Err(e) => return Err(e),
        };
        self.keep_thumbnail(blob, &kept).await?;
        kept.map_err(NodeError::BadRequest)
    }

    /// How many thumbnails (and refusals) this node keeps, and their bytes.
    pub fn thumbnails_kept(&self) -> Result<ThumbnailsKept, NodeError> {
        self.shared.store.thumbnails_kept()
    }

    /// Keeps `kept` for `blob` while the blob is here. A pin pass that
    /// collects the blob forgets its thumbnail after deleting it; looking
    /// for the blob after keeping catches a pass that deleted it before.
    async fn keep_thumbnail(&self, blob: BlobHash, kept: &KeptThumbnail) -> Result<(), NodeError> {
        let store = &self.shared.store;
        store.keep_thumbnail(blob.as_bytes(), kept, KEEP_THUMBNAILS)?;
        if !self.have(blob).await? {
            store.forget_thumbnail(blob.as_bytes())?;
        }
        Ok(())
    }
}

/// The decoder for `info`'s declared type, if it is an image the web app
/// shows (a preview or a thumbnail): one of the four types, not a folder,
/// at most [`thumbnail::MAX_SOURCE`].
pub(crate) fn image_format(info: &FileInfo) -> Result<image::ImageFormat, NodeError> {
    let name = &info.entry.name;
    let format = thumbnail::format_of(&info.entry.media_type)
        .filter(|_| info.entry.entries.is_none())
        .ok_or_else(|| {
            NodeError::BadRequest(format!(
                "{name:?} is not an image this app shows (PNG, JPEG, WebP or GIF)"
            ))
        })?;
    if info.entry.size > thumbnail::MAX_SOURCE {
        return Err(NodeError::BadRequest(format!(
            "{name:?} is larger than a preview ({}): download it",
            crate::disk::human_size(thumbnail::MAX_SOURCE)
        )));
    }
    Ok(format)
}

/// A file's plaintext, whole, in memory (at most its record's size).
async fn gather(
    info: &FileInfo,
    plaintext: impl Stream<Item = std::io::Result<Vec<u8>>>,
) -> Result<Vec<u8>, NodeError> {
    let size = usize::try_from(info.entry.size).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(size.min(thumbnail::MAX_SOURCE as usize));
    let mut plaintext = std::pin::pin!(plaintext);
    while let Some(piece) = plaintext.next().await {
        let piece = piece.context(format!("reading {:?}", info.entry.name))?;
        if bytes.len() + piece.len() > size {
            return Err(NodeError::Internal(format!(
                "{:?} is longer than its record says",
                info.entry.name
            )));
        }
        bytes.extend(piece);
    }
    Ok(bytes)
}
