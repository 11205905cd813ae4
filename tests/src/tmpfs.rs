//! A small tmpfs of the test's own (mounted as root): a disk that fills up, and gets room
//! again, under a coordinator's data directory or a probe's spool.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
    filler: PathBuf,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed (the full-disk tests need root, as .ci/run runs them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` at `path` (created if needed).
    pub fn mount(path: &Path, bytes: u64) -> Self {
        std::fs::create_dir_all(path).expect("create the mount point");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes},mode=0700"))
            .arg("tmpfs")
            .arg(path));
        Self {
            path: path.to_owned(),
            filler: path.join("zz-filler"),
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills it to the last byte with a file of its own: every write after fails (ENOSPC).
    /// Returns how many bytes that took.
    pub fn fill(&self) -> u64 {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .expect("open the filler");
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // The last partial pages too.
        for _ in 0..64 {
            if f.write(&[0u8; 512]).is_err() {
                break;
            }
            written += 512;
        }
        written
    }

    /// Gives the room back: removes the filler.
    pub fn free(&self) {
        std::fs::remove_file(&self.filler).expect("remove the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process the test left behind may still hold a file in it.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
