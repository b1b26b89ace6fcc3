//! Writing the artifact folder atomically: everything is written and compiled in a temporary
//! sibling folder, which replaces `OUT/` by rename only when all of it succeeded; on any error
//! the temporary folder is removed and `OUT/` is left as it was.

use std::path::{Path, PathBuf};

/// Errors writing the folder.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} exists and is not an artifact folder of petasos (no plan.json); refusing to replace it")]
    NotArtifact(PathBuf),
}

/// Marker file that identifies an artifact folder.
pub const MARKER: &str = "plan.json";

/// A temporary folder next to `out`, removed on drop unless committed.
pub struct Staging {
    pub dir: PathBuf,
    out: PathBuf,
    committed: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Staging {
    /// Creates `.NAME.tmpPID` next to `out` (checking first that `out`, if it exists, may be
    /// replaced: an empty folder or a previous artifact).
    pub fn new(out: &Path) -> Result<Staging, ArtifactError> {
        check_replaceable(out)?;
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let name = out
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let dir = parent.join(format!(".{name}.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        Ok(Staging {
            dir,
            out: out.to_path_buf(),
            committed: false,
        })
    }

    /// Writes one file into the staging folder.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ArtifactError> {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).map_err(io(&p))
    }

    /// Replaces `out` with the staging folder.
    pub fn commit(mut self) -> Result<(), ArtifactError> {
        check_replaceable(&self.out)?;
        let old = self.dir.with_extension("old");
        if self.out.exists() {
            std::fs::rename(&self.out, &old).map_err(io(&self.out))?;
        }
        if let Err(e) = std::fs::rename(&self.dir, &self.out) {
            let _ = std::fs::rename(&old, &self.out);
            return Err(io(&self.out)(e));
        }
        self.committed = true;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `out` may be replaced: it does not exist, is an empty folder, or holds the marker.
fn check_replaceable(out: &Path) -> Result<(), ArtifactError> {
    if !out.exists() {
        return Ok(());
    }
    if out.is_dir() {
        let empty = std::fs::read_dir(out).map_err(io(out))?.next().is_none();
        if empty || out.join(MARKER).is_file() {
            return Ok(());
        }
    }
    Err(ArtifactError::NotArtifact(out.to_path_buf()))
}
