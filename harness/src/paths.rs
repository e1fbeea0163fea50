//! Where the baton module and the `redis-server` binary are.
//!
//! Both panic when the file is missing: a test suite that silently skipped
//! without a server would report green for code it never ran.

use std::env;
use std::path::{Path, PathBuf};

/// The baton module: `$BATON_MODULE`, else `libbaton.so` in the workspace's
/// debug target dir (`$CARGO_TARGET_DIR` when set).
///
/// # Panics
///
/// When the file does not exist.
pub fn module_path() -> PathBuf {
    let path = match env::var_os("BATON_MODULE") {
        Some(p) => PathBuf::from(p),
        None => target_dir().join("debug").join("libbaton.so"),
    };
    assert!(
        path.is_file(),
        "baton module not found at {}: build it with cargo build -p baton-module \
         (or point $BATON_MODULE at a libbaton.so)",
        path.display()
    );
    path
}

/// The `redis-server` binary: `$REDIS_SERVER`, else `redis-server` on `PATH`.
///
/// # Panics
///
/// When it cannot be found. Tests never skip for want of a server.
pub fn redis_server_bin() -> PathBuf {
    if let Some(p) = env::var_os("REDIS_SERVER") {
        let path = PathBuf::from(p);
        assert!(
            path.is_file(),
            "$REDIS_SERVER points at {}, which does not exist",
            path.display()
        );
        return path;
    }
    redis_server_on_path().unwrap_or_else(|| {
        panic!(
            "redis-server not found on PATH and $REDIS_SERVER is not set: \
             install Redis 7 (apt-get install redis-server); tests never skip"
        )
    })
}

/// `redis-server` on `PATH`, whatever `$REDIS_SERVER` says: the server for
/// tests that need a feature the `$REDIS_SERVER` build lacks (TLS, see
/// [`ServerBuilder::tls`](crate::ServerBuilder::tls)).
pub fn redis_server_on_path() -> Option<PathBuf> {
    env::var_os("PATH")
        .iter()
        .flat_map(env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

/// The cargo target dir: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("target"),
    }
}

/// The workspace root: this crate lives in `<workspace>/harness`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness crate has a parent dir")
        .to_path_buf()
}
