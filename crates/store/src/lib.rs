//! The durable store: SQLite metadata, content-addressed code on disk, and the zip extractor.
//!
//! Synchronous by design: callers on an async runtime use `spawn_blocking`. One [`Store`] owns one
//! SQLite connection (behind a mutex: SQLite serialises writers anyway) and the code directory.
//!
//! Invariants:
//! - A function row is committed only after its code is durably on disk, so no half-created
//!   function is ever visible, and an acknowledged write survives kill -9 (WAL, `synchronous=FULL`).
//! - Code on disk that no row references is garbage: it is collected at open and after deletes,
//!   under a lock that excludes any upload between its write and its commit. Code an execution
//!   environment runs from is pinned ([`Store::pin`]) and never collected while pinned.

pub mod archive;
pub mod code;
mod concurrency;
mod db;
pub mod ec2;
mod error;
mod events;
mod functions;
mod http;
pub mod image_layer;
pub mod images;
mod layers;
mod log_groups;
mod logs;
pub mod metric_hist;
mod metrics;
mod policies;
mod registry;
mod sns;
mod usage;
mod versions;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::Connection;

pub use archive::{ArchiveError, ExtractLimits};
pub use code::{CodeDir, CodeError, StoredCode};
pub use ec2::Ec2Error;
pub use error::StoreError;
pub use events::{EventInvokeConfig, Lease, NewEvent, QueueSize, QueuedEvent, Settle};
pub use functions::{FunctionKey, FunctionRecord, NewFunction, version_order};
pub use http::{ApiRow, FunctionUrl, UrlChange};
pub use images::{BlobError, ImagePlan, Images, LayerRef, Package};
pub use layers::{LayerVersion, NewLayerVersion};
pub use log_groups::{
    LogGroupRow, LogPosition, LogScan, LogStreamRow, MAX_SCAN_BYTES, ScanResult, StreamFilter,
};
pub use logs::{LogEvent, NewLogEvent};
pub use metric_hist::{Histogram, MetricSlot};
pub use metrics::{MINUTE_MS, MINUTES_KEPT_MS, MetricRow, QUARTER_MS, SLOTS_KEPT_MS, SweepReport};
pub use policies::StoredPolicy;
pub use registry::{ImageRecord, NewImage, Repository};
pub use sns::{
    Delivery, NewDelivery, NewSubscription, SettleDelivery, SubscriptionRecord, TopicKey,
    TopicRecord,
};
pub use usage::{FunctionUsage, UsageRecord};
pub use versions::AliasRecord;

/// How long a collection waits for a moment without uploads before it queues for one.
const COLLECTION_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The metadata database and the code directory of one server.
pub struct Store {
    conn: Mutex<Connection>,
    code: CodeDir,
    images: Images,
    /// Held shared by uploads from code write to row commit, exclusively by garbage collection
    /// (which never queues for it: see [`Store::collect_garbage`]).
    gc: RwLock<()>,
    /// A collection waits for uploads to end; others asked for meanwhile are its.
    collection_waiting: std::sync::atomic::AtomicBool,
    /// Packages (hex SHA-256) in use by execution environments, with their pin counts.
    pins: Arc<Mutex<HashMap<String, usize>>>,
    data_dir: PathBuf,
    /// Stops the background checkpointer.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Keeps packages from being collected while it lives.
#[derive(Debug)]
pub struct CodePin {
    pins: Arc<Mutex<HashMap<String, usize>>>,
    packages: Vec<String>,
}

impl Drop for CodePin {
    fn drop(&mut self) {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        for p in &self.packages {
            if let Some(n) = pins.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(p);
                }
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`, migrates it, and removes the leftovers
    /// of any write that a crash interrupted.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| {
            StoreError::Code(CodeError::Io {
                path: data_dir.to_path_buf(),
                source,
            })
        })?;
        // Absolute from here on: sandboxes mount code by path after changing directory.
        let data_dir = &data_dir.canonicalize().map_err(|source| {
            StoreError::Code(CodeError::Io {
                path: data_dir.to_path_buf(),
                source,
            })
        })?;
        let conn = db::open(&data_dir.join("lamina.db"))?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        db::spawn_checkpointer(&data_dir.join("lamina.db"), stop.clone())?;
        let code = CodeDir::open(&data_dir.join("code"))?;
        let images = Images::open(&data_dir.join("images"))?;
        let store = Self {
            conn: Mutex::new(conn),
            code,
            images,
            gc: RwLock::new(()),
            collection_waiting: Default::default(),
            pins: Arc::default(),
            data_dir: data_dir.to_path_buf(),
            stop,
        };
        let removed = store.collect_garbage()?;
        if removed > 0 {
            tracing::info!(removed, "removed code left behind by an interrupted write");
        }
        Ok(store)
    }

    /// The directory this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The code directory, for readers of stored packages.
    pub fn code(&self) -> &CodeDir {
        &self.code
    }

    /// Removes code that no function version references and no environment has pinned.
    /// Returns how many items went.
    ///
    /// It waits for the uploads under way (an image's unpack may take minutes) without queueing
    /// for the lock, which would hold every new upload of every account behind them; a
    /// collection asked for while another waits is left to that one, which reads what to keep
    /// once it runs.
    pub fn collect_garbage(&self) -> Result<usize, StoreError> {
        use std::sync::TryLockError;
        use std::sync::atomic::Ordering;
        let mut waiting = None;
        let _exclusive = loop {
            match self.gc.try_write() {
                Ok(g) => break g,
                Err(TryLockError::Poisoned(e)) => break e.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
            match waiting {
                None if self.collection_waiting.swap(true, Ordering::AcqRel) => return Ok(0),
                None => waiting = Some(std::time::Instant::now()),
                // Uploads that always overlap would starve it, and their garbage would fill the
                // disk: after a while it queues, and new uploads wait for the ones under way.
                Some(since) if since.elapsed() >= COLLECTION_PATIENCE => {
                    break self.gc.write().unwrap_or_else(|e| e.into_inner());
                }
                Some(_) => {}
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        if waiting.is_some() {
            self.collection_waiting.store(false, Ordering::Release);
        }
        let mut keep: HashSet<String> = {
            let conn = self.conn();
            // A deleted layer version's code stays while a function version uses it.
            let mut stmt = conn.prepare(
                "SELECT code_sha256 FROM function_versions
                 UNION SELECT code_sha256 FROM layer_versions WHERE deleted = 0
                 UNION SELECT json_extract(l.value, '$.sha256_hex')
                    FROM function_versions v, json_each(v.spec, '$.layer_code') l",
            )?;
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?
        };
        // Pins are read and the code removed under the pins' lock: a pin is either seen here, or
        // made after the removal (and then finds its code gone).
        let pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        keep.extend(pins.keys().cloned());
        let removed = self.code.retain(&keep)?;
        drop(pins);
        let blobs = self.referenced_blobs()?;
        Ok(removed + self.images.collect(&blobs)?)
    }

    /// Pins packages (hex SHA-256) against collection for as long as the pin lives. `None` if
    /// one of them is no longer on disk (its function changed or went away and it was collected).
    /// Blocking: it may wait for a collection in progress.
    pub fn pin(&self, packages: &[String]) -> Option<CodePin> {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        if !packages.iter().all(|p| self.code.tree_path(p).is_dir()) {
            return None;
        }
        for p in packages {
            *pins.entry(p.clone()).or_default() += 1;
        }
        Some(CodePin {
            pins: self.pins.clone(),
            packages: packages.to_vec(),
        })
    }

    /// Runs `f` with commits that do not wait for the disk (`synchronous=NORMAL`), for writes
    /// no caller was told of and that a power loss may take without losing anything promised:
    /// leases (released at start anyway), settlements (the attempt runs again, billed once),
    /// function log lines and usage records (written after their invocation answered).
    ///
    /// Such a commit survives kill -9 (it is in the WAL, in the page cache). The WAL is appended
    /// in order, so the next commit that waits for the disk syncs it too, and so does the
    /// checkpointer within about 200 ms.
    fn unsynced<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        // Set per use, never from a cached statement: SQLite applies this pragma when it
        // compiles it.
        conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        let done = f(&mut conn);
        let restored = conn.execute_batch("PRAGMA synchronous = FULL");
        if let Err(e) = &restored {
            tracing::error!(error = %e, "restoring full durability failed");
        }
        let done = done?;
        restored?;
        Ok(done)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back
        // on drop), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_collection_waiting_for_an_upload_holds_no_other_upload_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        // An upload under way (an image's unpack, say).
        let upload = store.gc.read().unwrap();
        let s = store.clone();
        let collector = std::thread::spawn(move || s.collect_garbage().unwrap());
        let asked = Instant::now();
        while !store.collection_waiting.load(Ordering::Acquire) {
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "the collection waits"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Another account's upload starts meanwhile; a second collection is the first's.
        assert!(
            store.gc.try_read().is_ok(),
            "an upload is held behind the collection"
        );
        assert_eq!(store.collect_garbage().unwrap(), 0);
        drop(upload);
        collector.join().unwrap();
        assert!(!store.collection_waiting.load(Ordering::Acquire));
    }
}
