//! Adding a blob from a stream: data, hash and outboard in one pass.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use super::{read_full, sync_dir, BlobStore};
use crate::error::IoContext;
use crate::tree::{TreeHasher, MAX_BLOB_SIZE};
use crate::{BlobError, BlobHash};

impl BlobStore {
    /// A writer that adds a blob to the store: hashing, outboard and data
    /// file in one pass; the blob appears when it
    /// [finishes](Import::finish). [`seal`](crate::seal) uses it.
    pub fn import_writer(&self) -> Result<Import<'_>, BlobError> {
        let stem = format!("import-{:016x}", rand::random::<u64>());
        let data_path = self.partial_dir.join(format!("{stem}.tmp"));
        let outboard_path = self.partial_dir.join(format!("{stem}.obao.tmp"));
        let data = File::create(&data_path).at("create", &data_path)?;
        let outboard = match File::create(&outboard_path) {
            Ok(file) => file,
            Err(e) => {
                let _ = fs::remove_file(&data_path);
                return Err(BlobError::io("create", &outboard_path, e));
            }
        };
        Ok(Import {
            store: self,
            data,
            hasher: Some(TreeHasher::new(BufWriter::with_capacity(
                64 * 1024,
                outboard,
            ))),
            data_path,
            outboard_path,
            size: 0,
        })
    }

    /// Adds the bytes of `reader`, as they are, as a blob; returns its hash
    /// and size. (Files are added with [`seal`](crate::seal).)
    pub fn import(&self, mut reader: impl Read) -> Result<(BlobHash, u64), BlobError> {
        let mut import = self.import_writer()?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = read_full(&mut reader, &mut buf).map_err(BlobError::Input)?;
            import.write(&buf[..n])?;
            if n < buf.len() {
                return import.finish();
            }
        }
    }
}

/// A blob being added; see [`BlobStore::import_writer`]. Dropped unfinished,
/// it leaves nothing behind.
pub struct Import<'a> {
    store: &'a BlobStore,
    data: File,
    hasher: Option<TreeHasher<BufWriter<File>>>,
    data_path: PathBuf,
    outboard_path: PathBuf,
    size: u64,
}

impl Import<'_> {
    /// Appends bytes to the blob.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        let size = self.size + bytes.len() as u64;
        if size > MAX_BLOB_SIZE {
            return Err(BlobError::TooLarge {
                size,
                max: MAX_BLOB_SIZE,
            });
        }
        let Some(hasher) = self.hasher.as_mut() else {
            return Err(BlobError::io(
                "write",
                &self.data_path,
                io::Error::other("import finished"),
            ));
        };
        hasher.update(bytes).at("write", &self.outboard_path)?;
        self.data.write_all(bytes).at("write", &self.data_path)?;
        self.size = size;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// True if nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Syncs the blob and moves it into the store; returns its hash and size.
    pub fn finish(mut self) -> Result<(BlobHash, u64), BlobError> {
        let Some(hasher) = self.hasher.take() else {
            return Err(BlobError::io(
                "write",
                &self.data_path,
                io::Error::other("import finished"),
            ));
        };
        let (hash, outboard) = hasher.finish().at("write", &self.outboard_path)?;
        let outboard = outboard
            .into_inner()
            .map_err(|e| BlobError::io("write", &self.outboard_path, e.into_error()))?;
        let store = self.store;
        if store.has(&hash)? {
            // Same bytes, already there.
            return Ok((hash, self.size));
        }
        self.data.sync_data().at("sync", &self.data_path)?;
        outboard.sync_data().at("sync", &self.outboard_path)?;
        // A download of the same blob is now pointless.
        store.discard_partial(&hash)?;
        let final_outboard = store.outboard_path(&hash);
        fs::rename(&self.outboard_path, &final_outboard).at("rename into", &final_outboard)?;
        let final_data = store.data_path(&hash);
        fs::rename(&self.data_path, &final_data).at("rename into", &final_data)?;
        sync_dir(&store.dir)?;
        self.data_path = PathBuf::new();
        Ok((hash, self.size))
    }
}

impl Drop for Import<'_> {
    fn drop(&mut self) {
        if !self.data_path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.data_path);
            let _ = fs::remove_file(&self.outboard_path);
        }
    }
}
