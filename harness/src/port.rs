//! Free loopback ports.
//!
//! Bind port 0, read the port the kernel chose, close it. Another process may
//! take it before redis-server binds it, so callers retry on "Address already
//! in use".

use std::net::TcpListener;

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}
