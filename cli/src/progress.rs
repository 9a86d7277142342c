//! The progress bar of a share or a fetch, on stderr.

use std::path::Path;

/// A progress bar on stderr when it is a terminal; nothing otherwise.
pub(crate) fn bar(what: &str) -> Bar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return Bar(None);
    }
    // Hidden until the first report says how much there is: a bar of
    // length 0 draws as full.
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    Bar(Some(bar))
}

pub(crate) struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    pub(crate) fn update(&self, done: u64, total: u64) {
        if let Some(b) = &self.0 {
            if b.is_hidden() && total > 0 {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            b.set_length(total);
            b.set_position(done);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// A path's last component, for a progress line that fits a terminal.
pub(crate) fn short_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `done` of `total` as the same share of `size`.
pub(crate) fn scale(done: u64, total: u64, size: u64) -> u64 {
    if total == 0 {
        return 0;
    }
    u64::try_from(u128::from(done.min(total)) * u128::from(size) / u128::from(total))
        .unwrap_or(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_the_files_own_size_not_its_ciphertext() {
        let (size, blob) = (50 << 20, (50 << 20) + 12_800);
        assert_eq!(scale(blob, blob, size), size);
        assert_eq!(scale(0, blob, size), 0);
        assert!(scale(blob / 2, blob, size) <= size / 2);
        assert_eq!(scale(5, 0, size), 0);
    }

    #[test]
    fn a_progress_line_names_the_file_not_its_whole_path() {
        let p = Path::new("/very/long/path/to/Q3 report.xlsx");
        assert_eq!(short_name(p), "Q3 report.xlsx");
    }
}
