//! A file writer that hands what it wrote to the disk as it goes.
//!
//! A file written whole and then synced waits, at its end, for the disk to
//! take every byte: for a 1 GiB `get` that was more than a second after the
//! last piece had arrived (the kernel starts writing dirty pages back on its
//! own only past a tenth or so of the memory). [`Flushing`] asks a thread of
//! its own to sync the file every [`FLUSH_EVERY`] bytes while the writes go
//! on, so the disk works alongside the transfer and the final sync finds
//! little left. The writer never waits for those syncs: a sync still running
//! when the next one is due simply covers more.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc;
use std::thread;

/// Bytes written between two background syncs.
pub const FLUSH_EVERY: u64 = 32 << 20;
/// The write buffer in front of the file.
const BUFFER: usize = 1 << 20;

/// A buffered writer to a file that syncs in the background as it grows.
/// Call [`finish`](Self::finish) to sync the rest and get the file back.
pub struct Flushing {
    out: BufWriter<File>,
    since_flush: u64,
    flusher: Flusher,
}

impl Flushing {
    /// Writes to `file`, syncing behind the writes every [`FLUSH_EVERY`] bytes.
    pub fn new(file: File) -> io::Result<Self> {
        let flusher = Flusher::start(&file)?;
        Ok(Self {
            out: BufWriter::with_capacity(BUFFER, file),
            since_flush: 0,
            flusher,
        })
    }

    /// Writes out the buffer, waits for the background syncs, and syncs the
    /// file (data and metadata): once this returns, every byte is durable.
    pub fn finish(self) -> io::Result<File> {
        let Self { out, flusher, .. } = self;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        // A background sync that failed says why; the last one would too.
        flusher.stop()?;
        file.sync_all()?;
        Ok(file)
    }
}

impl Write for Flushing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.since_flush += n as u64;
        if self.since_flush >= FLUSH_EVERY {
            self.out.flush()?;
            self.flusher.nudge();
            self.since_flush = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A thread that syncs one file's data when nudged.
struct Flusher {
    wake: mpsc::SyncSender<()>,
    thread: thread::JoinHandle<io::Result<()>>,
}

impl Flusher {
    fn start(file: &File) -> io::Result<Self> {
        let file = file.try_clone()?;
        // One nudge may wait while a sync runs; more would add nothing.
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = thread::Builder::new()
            .name("meshwork-flush".into())
            .spawn(move || {
                for () in woken {
                    file.sync_data()?;
                }
                Ok(())
            })?;
        Ok(Self { wake, thread })
    }

    /// Asks for a sync of what is written so far; never waits.
    fn nudge(&self) {
        // Full: a sync is due already and will cover these bytes too.
        // Disconnected: the thread stopped on an error, which `stop` reports.
        let _ = self.wake.try_send(());
    }

    /// Waits for the syncs asked for; the first error, if one failed.
    fn stop(self) -> io::Result<()> {
        drop(self.wake);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the thread syncing the file panicked")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_everything_across_many_background_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut out = Flushing::new(File::create(&path).unwrap()).unwrap();
        // Odd-sized writes over several flush points.
        let block: Vec<u8> = (0..777_777u32).map(|i| (i % 251) as u8).collect();
        let mut expected = Vec::new();
        while (expected.len() as u64) < 3 * FLUSH_EVERY + 12_345 {
            out.write_all(&block).unwrap();
            expected.extend_from_slice(&block);
        }
        drop(out.finish().unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn an_empty_file_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        let out = Flushing::new(File::create(&path).unwrap()).unwrap();
        drop(out.finish().unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
