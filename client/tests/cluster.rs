//! The lock essentials of SPEC §2–4 (and a semaphore's, §6) on a 3-shard
//! Redis Cluster, for the Lua backend (plain Redis Cluster) and the module
//! backend (the module loaded on every node). Each scenario runs on three keys at once, one served by
//! each shard, and checks on the shard itself that the lock lives there.
//!
//! One cluster per backend (forming one takes a while); the scenarios run
//! one after the other on their own keys.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_client::{Backend, Client};
use baton_harness::{RedisCluster, RedisServer};
use common::{eventually, granted, opts};
use futures_util::future::join_all;
use tokio::time::timeout;

mod common;

struct Env {
    cluster: RedisCluster,
    client: Client,
    kind: Backend,
}

impl Env {
    /// A 3-shard cluster and a client built from the first node's URL alone,
    /// with `Backend::Auto` and cluster detection: both must pick right.
    async fn start(kind: Backend) -> Env {
        let cluster = match kind {
            Backend::Module => RedisCluster::start(3),
            _ => RedisCluster::start_with(3, || RedisServer::builder().without_module()),
        };
        let client = Client::builder(cluster.urls()[0].clone())
            .build()
            .await
            .expect("client");
        assert!(client.is_cluster(), "cluster detected from one seed");
        assert_eq!(client.backend_kind(), kind, "Auto picks {kind:?}");
        Env {
            cluster,
            client,
            kind,
        }
    }

    /// One key per shard, in node order: `prefix:N` for the first N that
    /// lands on each node.
    fn spread(&self, prefix: &str) -> Vec<String> {
        let n = self.cluster.nodes().len();
        let mut keys: Vec<Option<String>> = vec![None; n];
        for i in 0.. {
            let k = format!("{prefix}:{i}");
            let node = self.cluster.node_index_for(k.as_bytes());
            keys[node].get_or_insert(k);
            if keys.iter().all(Option::is_some) {
                break;
            }
        }
        keys.into_iter().map(Option::unwrap).collect()
    }

    /// The Redis key that exists while `key` is held: the lock key itself
    /// (module) or its holder hash (Lua, `baton:{key}`, same slot).
    fn held_key(&self, key: &str) -> String {
        match self.kind {
            Backend::Module => key.to_owned(),
            _ => format!("baton:{{{key}}}"),
        }
    }

    /// Whether `key` is held, asked directly of the shard that serves it.
    fn held_on_its_shard(&self, key: &str) -> bool {
        let node = self.cluster.node_for(key.as_bytes());
        baton_harness::lock::exists(&mut node.connection(), self.held_key(key).as_bytes())
    }

    /// Runs `f` on every key at once.
    async fn on_each<'a, F, Fut>(&'a self, keys: &'a [String], f: F)
    where
        F: Fn(&'a Client, &'a str) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        join_all(keys.iter().map(|k| f(&self.client, k))).await;
    }
}

/// Locks on all three shards: granted, busy for others, stored on the shard
/// that serves the key, and gone from it after release.
async fn locks_on_every_shard(env: &Env) {
    let keys = env.spread("spread");
    let mut guards = Vec::new();
    for k in &keys {
        let g = env.client.lock(k, &opts(10_000)).await.unwrap();
        assert!(g.fence() > 0);
        assert_eq!(env.client.fence(k).await.unwrap(), g.fence());
        assert!(env
            .client
            .try_lock(k, &opts(10_000))
            .await
            .unwrap()
            .is_none());
        assert!(env.held_on_its_shard(k), "{k} is held on its own shard");
        guards.push(g);
    }
    if env.kind == Backend::Module {
        // Summed over the primaries; each primary holds one of them.
        assert_eq!(env.client.stats().await.unwrap().held, 3);
        for node in env.cluster.nodes() {
            let held = baton_harness::lock::stats(&mut node.connection())["held"];
            assert_eq!(held, 1, "one lock per shard");
        }
    }
    for (k, g) in keys.iter().zip(guards) {
        assert!(g.release().await.unwrap());
        assert!(!env.held_on_its_shard(k));
    }
}

async fn fences_increase(env: &Env) {
    let keys = env.spread("fences");
    env.on_each(&keys, async |c, k| {
        let mut last = 0;
        for _ in 0..4 {
            let g = c.lock(k, &opts(10_000)).await.unwrap();
            assert!(g.fence() > last, "{k}: {} after {last}", g.fence());
            last = g.fence();
            assert!(g.release().await.unwrap());
        }
    })
    .await;
}

/// Two waiters queue behind a holder and get the lock in arrival order.
async fn fifo_hand_off(env: &Env) {
    let keys = env.spread("fifo");
    env.on_each(&keys, async |c, k| {
        let holder = c.lock(k, &opts(10_000)).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..2u64 {
            let (c2, k2, order) = (c.clone(), k.to_owned(), order.clone());
            tasks.push(tokio::spawn(async move {
                let g = c2
                    .lock(&k2, &opts(10_000).wait(Duration::from_secs(10)))
                    .await
                    .unwrap();
                order.lock().unwrap().push((i, g.fence()));
                assert!(g.release().await.unwrap());
            }));
            eventually(Duration::from_secs(5), "waiter queued", || async {
                c.info(k).await.unwrap().waiters == i + 1
            })
            .await;
        }
        assert!(
            c.try_lock(k, &opts(10_000)).await.unwrap().is_none(),
            "no barging"
        );
        let holder_fence = holder.fence();
        assert!(holder.release().await.unwrap());
        for t in tasks {
            timeout(Duration::from_secs(10), t).await.unwrap().unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.iter().map(|o| o.0).collect::<Vec<_>>(), [0, 1], "{k}");
        assert!(
            holder_fence < order[0].1 && order[0].1 < order[1].1,
            "{k}: {order:?}"
        );
    })
    .await;
}

/// A holder without watchdog expires; the waiter gets the lock soon after.
async fn expiry_hands_off(env: &Env) {
    let keys = env.spread("expiry");
    env.on_each(&keys, async |c, k| {
        let g = common::expiry_hands_off(c, k, Duration::from_millis(200)).await;
        assert!(g.release().await.unwrap());
    })
    .await;
}

/// A cancelled wait leaves the queue on the key's own shard (for the module:
/// its waiting connection is killed on that node).
async fn cancelled_wait_leaves_the_queue(env: &Env) {
    let keys = env.spread("cancel");
    env.on_each(&keys, async |c, k| {
        let holder = c.lock(k, &opts(10_000)).await.unwrap();
        let long = opts(10_000).wait(Duration::from_secs(30));
        let waiting = c.lock(k, &long);
        assert!(timeout(Duration::from_millis(300), waiting).await.is_err());
        eventually(
            Duration::from_secs(5),
            "cancelled waiter left the queue",
            || async { c.info(k).await.unwrap().waiters == 0 },
        )
        .await;
        assert!(holder.release().await.unwrap());
        let g = c.try_lock(k, &opts(10_000)).await.unwrap();
        assert!(g.is_some(), "{k} is free after the cancelled wait");
    })
    .await;
}

async fn watchdog_keeps_the_lock(env: &Env) {
    let keys = env.spread("watchdog");
    env.on_each(&keys, async |c, k| {
        let g = c.lock(k, &opts(200)).await.unwrap();
        // The point is time passing: 5x the ttl.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert!(!g.is_lost(), "{k}");
        assert!(c.info(k).await.unwrap().held);
        assert!(g.release().await.unwrap());
    })
    .await;
}

async fn force_release_hands_off(env: &Env) {
    let keys = env.spread("force");
    env.on_each(&keys, async |c, k| {
        let holder = c.lock(k, &opts(2_000)).await.unwrap();
        let (c2, k2) = (c.clone(), k.to_owned());
        let waiter = tokio::spawn(async move {
            c2.lock(&k2, &opts(10_000).wait(Duration::from_secs(10)))
                .await
        });
        eventually(Duration::from_secs(5), "waiter queued", || async {
            c.info(k).await.unwrap().waiters == 1
        })
        .await;
        assert!(c.force_release(k).await.unwrap());
        let g = timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(g.fence() > holder.fence());
        timeout(Duration::from_millis(2_000), holder.lost())
            .await
            .expect("lost within the ttl");
        assert!(!holder.release().await.unwrap());
        assert!(g.release().await.unwrap());
    })
    .await;
}

/// A semaphore on each shard: a lease there, a request that waits on that
/// node (the module: blocked there; Lua: woken by the broadcast hand-off)
/// and is granted on release; its state lives on the shard of its key.
async fn semaphores_on_every_shard(env: &Env) {
    let keys = env.spread("sem");
    env.on_each(&keys, async |c, k| {
        let sem = c.semaphore(k, 2);
        let holder = sem.acquire(2, &opts(10_000)).await.unwrap();
        let stored = match env.kind {
            Backend::Module => k.to_owned(),
            _ => format!("baton:sem:{{{k}}}"),
        };
        let node = env.cluster.node_for(k.as_bytes());
        assert!(
            baton_harness::lock::exists(&mut node.connection(), stored.as_bytes()),
            "{k} lives on its own shard"
        );
        let waiter = tokio::spawn({
            let sem = sem.clone();
            async move {
                sem.acquire(1, &opts(10_000).wait(Duration::from_secs(10)))
                    .await
            }
        });
        eventually(Duration::from_secs(5), "request queued", || async {
            sem.info().await.unwrap().waiters == 1
        })
        .await;
        assert!(sem.try_acquire(1, &opts(10_000)).await.unwrap().is_none());
        let holder_fence = holder.fence();
        assert!(holder.release().await.unwrap());
        let g = granted(waiter).await.unwrap();
        assert!(g.fence() > holder_fence, "{k}");
        assert!(g.release().await.unwrap());
    })
    .await;
}

/// Scripts are cached per node: flushing every node's cache is repaired on
/// each node by the next call.
async fn lua_survives_script_flush_on_every_node(env: &Env) {
    for node in env.cluster.nodes() {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut node.connection())
            .unwrap();
    }
    let keys = env.spread("flush");
    env.on_each(&keys, async |c, k| {
        let g = c.lock(k, &opts(5_000)).await.unwrap();
        assert!(g.release().await.unwrap());
    })
    .await;
}

/// Moves the (empty) slot of `key` to another node behind the client's back,
/// so its slot table is stale: a server-side wait must follow the `MOVED`
/// reply to the new owner.
async fn module_wait_follows_moved(env: &Env) {
    let key = env.spread("moved").remove(0);
    let slot = env.cluster.slot(key.as_bytes());
    let nodes = env.cluster.nodes();
    let from = env.cluster.node_index_for(key.as_bytes());
    let to = (from + 1) % nodes.len();
    let id = |i: usize| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut nodes[i].connection())
            .unwrap()
    };
    let setslot = |on: usize, args: &[&str]| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(args)
            .query(&mut nodes[on].connection())
            .unwrap();
    };
    let (from_id, to_id) = (id(from), id(to));
    setslot(to, &["IMPORTING", &from_id]);
    setslot(from, &["MIGRATING", &to_id]);
    for i in std::iter::once(to).chain((0..nodes.len()).filter(|&i| i != to)) {
        setslot(i, &["NODE", &to_id]);
    }
    let c = &env.client;
    let holder = c.lock(&key, &opts(10_000)).await.unwrap();
    assert!(
        baton_harness::lock::exists(&mut nodes[to].connection(), key.as_bytes()),
        "the lock lives on the slot's new owner"
    );
    let (c2, k2) = (c.clone(), key.clone());
    let waiter = tokio::spawn(async move {
        c2.lock(&k2, &opts(10_000).wait(Duration::from_secs(10)))
            .await
    });
    eventually(
        Duration::from_secs(5),
        "redirected waiter queued",
        || async {
            assert!(!waiter.is_finished(), "the waiter ended early");
            c.info(&key).await.unwrap().waiters == 1
        },
    )
    .await;
    let holder_fence = holder.fence();
    assert!(holder.release().await.unwrap());
    let g = timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(g.fence() > holder_fence);
    assert!(g.release().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_backend_on_a_plain_redis_cluster() {
    let env = Env::start(Backend::Lua).await;
    locks_on_every_shard(&env).await;
    fences_increase(&env).await;
    fifo_hand_off(&env).await;
    expiry_hands_off(&env).await;
    cancelled_wait_leaves_the_queue(&env).await;
    watchdog_keeps_the_lock(&env).await;
    force_release_hands_off(&env).await;
    semaphores_on_every_shard(&env).await;
    lua_survives_script_flush_on_every_node(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_backend_on_a_cluster_with_the_module() {
    let env = Env::start(Backend::Module).await;
    locks_on_every_shard(&env).await;
    fences_increase(&env).await;
    fifo_hand_off(&env).await;
    expiry_hands_off(&env).await;
    cancelled_wait_leaves_the_queue(&env).await;
    watchdog_keeps_the_lock(&env).await;
    force_release_hands_off(&env).await;
    semaphores_on_every_shard(&env).await;
    module_wait_follows_moved(&env).await;
}

#[tokio::test]
async fn cluster_mode_can_be_forced_off_and_on() {
    let single = RedisServer::builder().without_module().start();
    let c = Client::builder(single.url()).build().await.unwrap();
    assert!(!c.is_cluster(), "a single node is detected as such");
    let cluster = RedisCluster::start_with(1, || RedisServer::builder().without_module());
    let c = Client::builder(cluster.urls()[0].clone())
        .cluster(true)
        .backend(Backend::Lua)
        .build()
        .await
        .unwrap();
    assert!(c.is_cluster());
    let g = c.lock("forced", &opts(5_000)).await.unwrap();
    assert!(g.release().await.unwrap());
}
