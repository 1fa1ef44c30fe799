//! Key logs in the NSS key log format (`SSLKEYLOGFILE`), which Wireshark and tshark read to
//! decrypt captured connections.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::Error;

/// A key log file, appended to by every connection of the configurations that share it.
pub(crate) struct KeyLogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl KeyLogFile {
    /// Opens `path` for appending, creating it (readable by its owner only on Unix).
    pub(crate) fn open(path: &Path) -> Result<Arc<KeyLogFile>, Error> {
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(|e| {
            Error::config(format!(
                "cannot open the key log file {}: {e}",
                path.display()
            ))
        })?;
        Ok(Arc::new(KeyLogFile {
            path: path.to_owned(),
            file: Mutex::new(file),
        }))
    }

    /// Appends one line (without its newline) in a single write, so that lines of
    /// connections logging at once do not interleave. A failed write is ignored: a key log
    /// is a debugging aid and must not fail the connection.
    pub(crate) fn line(&self, line: &str) {
        let mut text = String::with_capacity(line.len() + 1);
        text.push_str(line);
        text.push('\n');
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(text.as_bytes());
        }
    }
}

impl std::fmt::Debug for KeyLogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLogFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl rustls::KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let mut line =
            String::with_capacity(label.len() + 2 * (client_random.len() + secret.len()) + 2);
        line.push_str(label);
        for part in [client_random, secret] {
            line.push(' ');
            for byte in part {
                let _ = write!(line, "{byte:02x}");
            }
        }
        self.line(&line);
    }
}
