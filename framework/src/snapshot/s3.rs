//! The snapshot store on S3-compatible object storage: the same layout as the directory store
//! under a bucket prefix, large files in multipart uploads, every request retried by the
//! client with back-off.

use std::future::Future;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};

use super::location::S3Settings;
use super::store::{StoredFile, REFRESH_AFTER};
use super::{paths, SnapshotError, SnapshotStore};

/// Files up to this size go in one request; larger ones in parts of [`PART_SIZE`].
const SINGLE_PUT_MAX: u64 = 32 << 20;
/// The part size of multipart uploads.
const PART_SIZE: usize = 16 << 20;
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// How long one request may take before it is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A snapshot store in an S3 bucket, under a key prefix.
#[derive(Debug)]
pub struct S3Store {
    client: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
}

/// The runtime every S3 store's requests run on: stream threads and the `eddy` tool are
/// synchronous, so each call hands its request to this runtime and waits for the answer.
fn runtime() -> Result<&'static tokio::runtime::Runtime, SnapshotError> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("eddy-s3")
        .enable_all()
        .build()
        .map_err(|e| SnapshotError::io("the S3 client runtime", "", e))?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Runs `request` on the S3 runtime and waits for it, from any thread (also one inside
/// another runtime, where blocking on a future directly would panic).
fn wait<T: Send + 'static>(
    request: impl Future<Output = Result<T, SnapshotError>> + Send + 'static,
) -> Result<T, SnapshotError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(request.await);
    });
    rx.recv().map_err(|_| SnapshotError::Io {
        path: "the S3 client runtime".to_owned(),
        message: "the request was dropped".to_owned(),
        source: None,
    })?
}

impl S3Store {
    /// A store in `bucket` under `prefix` (may be empty), reached with `settings`.
    ///
    /// # Errors
    /// The client cannot be built from the settings.
    pub fn open(bucket: &str, prefix: &str, settings: &S3Settings) -> Result<Self, SnapshotError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig::default())
            .with_client_options(ClientOptions::new().with_timeout(REQUEST_TIMEOUT));
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let client = builder.build().map_err(|e| SnapshotError::Unavailable {
            store: super::StoreLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            }
            .to_string(),
            message: "building the S3 client".to_owned(),
            source: Some(e.into()),
        })?;
        Ok(S3Store {
            client: Arc::new(client),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The object path of `key` (plain names only: keys come from ids callers provide).
    fn path(&self, key: &str) -> Result<ObjectPath, SnapshotError> {
        let plain = !key.is_empty()
            && key
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains(['\\', '\0']));
        if !plain {
            return Err(SnapshotError::invalid(
                format!("snapshot store key `{key}`"),
                "not a relative path of plain names".to_owned(),
            ));
        }
        let full = if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        };
        ObjectPath::parse(&full)
            .map_err(|e| SnapshotError::undecodable(format!("snapshot store key `{key}`"), e))
    }

    /// The folder `prefix` (the store's root for `""`).
    fn folder(&self, prefix: &str) -> Result<Option<ObjectPath>, SnapshotError> {
        if prefix.is_empty() {
            return Ok((!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str())));
        }
        self.path(prefix).map(Some)
    }

    fn failed(&self, what: &str, key: &str) -> impl Fn(object_store::Error) -> SnapshotError {
        let store = self.describe();
        let what = format!("{what} {key}");
        move |e| SnapshotError::Unavailable {
            store: store.clone(),
            message: what.clone(),
            source: Some(e.into()),
        }
    }
}

/// True for the error S3 answers about an absent key.
fn absent(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

fn local_io(path: &Path, what: &str) -> impl Fn(std::io::Error) -> SnapshotError {
    let path = path.display().to_string();
    let what = what.to_owned();
    move |e| SnapshotError::io(&path, what.as_str(), e)
}

/// Uploads the file at `local` to `to`: one request when small, else parts in parallel.
async fn upload_file(
    client: Arc<AmazonS3>,
    to: ObjectPath,
    local: std::path::PathBuf,
    failed: impl Fn(object_store::Error) -> SnapshotError,
) -> Result<(), SnapshotError> {
    let read = local_io(&local, "reading");
    let size = std::fs::metadata(&local).map_err(&read)?.len();
    if size <= SINGLE_PUT_MAX {
        let bytes = std::fs::read(&local).map_err(&read)?;
        client
            .put(&to, PutPayload::from(bytes))
            .await
            .map_err(&failed)?;
        return Ok(());
    }
    let upload = client.put_multipart(&to).await.map_err(&failed)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut file = std::fs::File::open(&local).map_err(&read)?;
    let mut buf = vec![0_u8; PART_SIZE];
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(read(e));
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
            let _ = writer.abort().await;
            return Err(failed(e));
        }
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(&failed)?;
    Ok(())
}

impl SnapshotStore for S3Store {
    fn put_file(&self, blob: &str, local: &Path) -> Result<bool, SnapshotError> {
        super::files::check_blob_name(blob)?;
        let to = self.path(&paths::file(blob))?;
        let client = Arc::clone(&self.client);
        let failed = self.failed("storing file", blob);
        let local = local.to_path_buf();
        wait(async move {
            match client.head(&to).await {
                Ok(meta) => {
                    let age = age_of(meta.last_modified.timestamp_millis());
                    if age <= REFRESH_AFTER {
                        return Ok(false);
                    }
                    // S3 has no "touch": a reused old file is written again so garbage
                    // collection sees it as recent (at most once per REFRESH_AFTER).
                    upload_file(client, to, local, failed).await?;
                    Ok(false)
                }
                Err(e) if absent(&e) => {
                    upload_file(client, to, local, failed).await?;
                    Ok(true)
                }
                Err(e) => Err(failed(e)),
            }
        })
    }

    fn get_file(&self, blob: &str, local: &Path) -> Result<(), SnapshotError> {
        super::files::check_blob_name(blob)?;
        let from = self.path(&paths::file(blob))?;
        let client = Arc::clone(&self.client);
        let failed = self.failed("fetching file", blob);
        let missing = format!(
            "file {}/{} (blob {blob})",
            self.describe(),
            paths::file(blob)
        );
        let local = local.to_path_buf();
        wait(async move {
            let result = match client.get(&from).await {
                Ok(result) => result,
                Err(e) if absent(&e) => return Err(SnapshotError::Missing(missing)),
                Err(e) => return Err(failed(e)),
            };
            if let Some(parent) = local.parent() {
                std::fs::create_dir_all(parent).map_err(local_io(parent, "creating"))?;
            }
            let tmp = local.with_extension(format!("tmp-{}", std::process::id()));
            let write = local_io(&tmp, "writing");
            let mut file = std::fs::File::create(&tmp).map_err(&write)?;
            let mut stream = result.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(&failed)?;
                file.write_all(&chunk).map_err(&write)?;
            }
            file.sync_all().map_err(&write)?;
            std::fs::rename(&tmp, &local).map_err(local_io(&local, "renaming"))
        })
    }

    fn put_document(&self, key: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
        let to = self.path(key)?;
        let client = Arc::clone(&self.client);
        let failed = self.failed("writing", key);
        let payload = PutPayload::from(bytes.to_vec());
        wait(async move {
            client.put(&to, payload).await.map_err(failed)?;
            Ok(())
        })
    }

    fn get_document(&self, key: &str) -> Result<Option<Vec<u8>>, SnapshotError> {
        let from = self.path(key)?;
        let client = Arc::clone(&self.client);
        let failed = self.failed("reading", key);
        wait(async move {
            match client.get(&from).await {
                Ok(result) => Ok(Some(result.bytes().await.map_err(&failed)?.to_vec())),
                Err(e) if absent(&e) => Ok(None),
                Err(e) => Err(failed(e)),
            }
        })
    }

    fn delete_document(&self, key: &str) -> Result<(), SnapshotError> {
        let path = self.path(key)?;
        let client = Arc::clone(&self.client);
        let failed = self.failed("removing", key);
        wait(async move {
            match client.delete(&path).await {
                Ok(()) => Ok(()),
                Err(e) if absent(&e) => Ok(()),
                Err(e) => Err(failed(e)),
            }
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, SnapshotError> {
        let folder = self.folder(prefix)?;
        let client = Arc::clone(&self.client);
        let failed = self.failed("listing", prefix);
        wait(async move {
            let listed = client
                .list_with_delimiter(folder.as_ref())
                .await
                .map_err(failed)?;
            let mut names: Vec<String> = listed
                .common_prefixes
                .iter()
                .chain(listed.objects.iter().map(|o| &o.location))
                .filter_map(|p| p.filename().map(str::to_owned))
                .collect();
            names.sort();
            names.dedup();
            Ok(names)
        })
    }

    fn list_files(&self) -> Result<Vec<StoredFile>, SnapshotError> {
        let folder = self.path(paths::FILES)?;
        let client = Arc::clone(&self.client);
        let failed = self.failed("listing", paths::FILES);
        wait(async move {
            let mut stream = client.list(Some(&folder));
            let mut files = Vec::new();
            while let Some(meta) = stream.next().await {
                let meta = meta.map_err(&failed)?;
                let Some(name) = meta.location.filename() else {
                    continue;
                };
                files.push(StoredFile {
                    name: name.to_owned(),
                    size: meta.size,
                    modified_ms: meta.last_modified.timestamp_millis(),
                });
            }
            files.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(files)
        })
    }

    fn delete_file(&self, name: &str) -> Result<(), SnapshotError> {
        super::files::check_stored_name(name)?;
        self.delete_document(&paths::file(name))
    }

    fn location(&self) -> super::StoreLocation {
        super::StoreLocation::S3 {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
        }
    }
}

/// How long ago `modified_ms` was (zero when it lies in the future).
fn age_of(modified_ms: i64) -> Duration {
    let now = crate::record::wall_clock_ms();
    Duration::from_millis(u64::try_from(now.saturating_sub(modified_ms)).unwrap_or(0))
}
