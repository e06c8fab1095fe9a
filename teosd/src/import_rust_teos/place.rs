//! All or nothing on disk: files are written under temporary names next to where they belong, then
//! put in place together; if anything fails before that, or while it happens, every file and
//! directory this import created is removed again.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Suffix of the temporary name of a file being imported.
const TEMP_SUFFIX: &str = ".import-tmp";

/// Files staged for an import and what has been created so far. Dropped without [`Placement::commit`]
/// (an error, a panic), it removes everything it created.
#[derive(Default)]
pub struct Placement {
    /// Directories created by this import, outermost first.
    created_dirs: Vec<PathBuf>,
    /// `(temporary, final)` paths, put in place in this order.
    staged: Vec<(PathBuf, PathBuf)>,
    /// Final paths already put in place (removed again if a later one fails).
    placed: Vec<PathBuf>,
    committed: bool,
}

impl Placement {
    /// Creates `dir` and its missing parents, remembering which ones this import created.
    ///
    /// Errors: as [`fs::create_dir`].
    pub fn create_dir(&mut self, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut current = Some(dir);
        while let Some(d) = current.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            missing.push(d.to_path_buf());
            current = d.parent();
        }
        for d in missing.into_iter().rev() {
            fs::create_dir(&d)?;
            self.created_dirs.push(d);
        }
        Ok(())
    }

    /// The temporary name of `target` (`<target>.import-tmp`), removed first if a failed import left
    /// it behind.
    ///
    /// Errors: it exists and cannot be removed.
    pub fn temp_path(target: &Path) -> io::Result<PathBuf> {
        let mut name = OsString::from(target.as_os_str());
        name.push(TEMP_SUFFIX);
        let temp = PathBuf::from(name);
        match fs::remove_file(&temp) {
            Ok(()) => Ok(temp),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(temp),
            Err(e) => Err(e),
        }
    }

    /// Copies `from` to the temporary name of `to` with permission bits `mode`, synced to disk.
    ///
    /// Errors: reading `from`, writing the copy.
    pub fn stage_copy(&mut self, from: &Path, to: &Path, mode: u32) -> io::Result<()> {
        let temp = Self::temp_path(to)?;
        let bytes = fs::read(from)?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        self.staged.push((temp.clone(), to.to_path_buf()));
        let mut file = options.open(&temp)?;
        io::Write::write_all(&mut file, &bytes)?;
        file.sync_all()
    }

    /// Stages a file the caller wrote at [`Placement::temp_path`]`(to)` (synced to disk).
    pub fn stage_written(&mut self, temp: PathBuf, to: &Path) {
        self.staged.push((temp, to.to_path_buf()));
    }

    /// Puts every staged file in place, in the order staged (so the one staged last, the database,
    /// marks a finished import), and syncs their directories. A file is linked to its final name,
    /// which fails rather than replace a file that appeared meanwhile.
    ///
    /// Errors: the first that failed; everything created is then removed.
    pub fn commit(mut self) -> io::Result<()> {
        let staged = std::mem::take(&mut self.staged);
        for (temp, target) in &staged {
            if let Err(e) = fs::hard_link(temp, target) {
                self.staged = staged.clone();
                return Err(io::Error::new(
                    e.kind(),
                    format!("placing {}: {e}", target.display()),
                ));
            }
            self.placed.push(target.clone());
        }
        for (temp, target) in &staged {
            fs::remove_file(temp)?;
            if let Some(dir) = target.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for path in self.placed.iter().rev() {
            let _ = fs::remove_file(path);
        }
        for (temp, _) in &self.staged {
            let _ = fs::remove_file(temp);
        }
        for dir in self.created_dirs.iter().rev() {
            let _ = fs::remove_dir(dir); // only if empty
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_placement_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("source");
        fs::write(&source, b"x").unwrap();
        let target_dir = root.path().join("a/b");
        {
            let mut placement = Placement::default();
            placement.create_dir(&target_dir).unwrap();
            placement
                .stage_copy(&source, &target_dir.join("f"), 0o600)
                .unwrap();
        }
        assert!(!root.path().join("a").exists());
    }

    #[test]
    fn a_commit_places_every_file_and_refuses_to_replace_one() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("source");
        fs::write(&source, b"x").unwrap();
        let mut placement = Placement::default();
        placement
            .stage_copy(&source, &root.path().join("f"), 0o600)
            .unwrap();
        placement.commit().unwrap();
        assert_eq!(fs::read(root.path().join("f")).unwrap(), b"x");
        assert!(!root.path().join("f.import-tmp").exists());

        let mut placement = Placement::default();
        placement
            .stage_copy(&source, &root.path().join("g"), 0o600)
            .unwrap();
        placement
            .stage_copy(&source, &root.path().join("f"), 0o600)
            .unwrap();
        assert!(placement.commit().is_err());
        assert!(!root.path().join("g").exists(), "rolled back");
        assert!(!root.path().join("g.import-tmp").exists());
    }
}
