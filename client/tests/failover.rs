//! The client across failovers (SPEC §9 "Failover", §4): with a
//! `redis+sentinel://` URL it finds the primary through Sentinel and
//! follows a promotion for short commands, waits and the watchdog; in a
//! Redis Cluster its waits and watchdog follow `CLUSTER FAILOVER`. A durable
//! lock survives the promotion; a lock the new primary does not have is
//! reported lost in time; a waiter whose primary fails either waits on at
//! the new primary or gets an error, never a hang.
//!
//! The harness is blocking, so these tests run on a multi-thread runtime
//! and call it through `block_in_place`.

use std::time::Duration;

use baton_client::{Backend, Client, Error, LockOptions};
use baton_harness::{RedisCluster, SentinelGroup};
use common::{eventually, opts};
use tokio::task::block_in_place;
use tokio::time::{timeout, Instant};

mod common;

const SECOND: Duration = Duration::from_secs(1);

async fn sentinel_client(group: &SentinelGroup, backend: Backend) -> Client {
    Client::builder(group.url())
        .backend(backend)
        .build()
        .await
        .expect("client through Sentinel")
}

/// Kills the primary the Sentinels name and waits for its successor.
fn kill_primary(group: &mut SentinelGroup) -> usize {
    let old = group.primary_index();
    let port = group.servers()[old].port();
    group.servers_mut()[old].kill();
    group.wait_for_new_primary(port)
}

/// A `lock(key)` waiting up to `wait` on a task of its own, once the server
/// counts it in the queue; the task returns the outcome and how long it took.
async fn queued_waiter(
    client: &Client,
    key: &str,
    wait: Duration,
) -> tokio::task::JoinHandle<(baton_client::Result<baton_client::LockGuard>, Duration)> {
    let before = client.info(key).await.unwrap().waiters;
    let task = {
        let (client, key) = (client.clone(), key.to_owned());
        tokio::spawn(async move {
            let started = Instant::now();
            let reply = client.lock(&key, &LockOptions::new().wait(wait)).await;
            (reply, started.elapsed())
        })
    };
    eventually(5 * SECOND, "the waiter is queued", || async {
        client.info(key).await.is_ok_and(|i| i.waiters > before)
    })
    .await;
    task
}

/// Waits until the primary the Sentinels name has a replica in sync.
fn wait_for_a_replica(group: &SentinelGroup) {
    let primary = group.primary();
    let replica = group
        .servers()
        .iter()
        .filter(|s| s.is_running() && s.port() != primary.port())
        .find(|s| {
            baton_harness::wait_until(20 * SECOND, || {
                baton_harness::replication::info_field(s, "replication", "master_port")
                    .is_some_and(|p| p == primary.port().to_string())
            })
        })
        .expect("a replica follows the new primary");
    baton_harness::wait_for_sync(primary, replica);
}

/// `f` until it succeeds, at most `within`: the first command after a
/// failover may fail once on a connection to the old primary.
async fn retried<T, F, Fut>(within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = baton_client::Result<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("retrying after: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("still failing after {within:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_url_finds_the_primary_for_module_and_lua() {
    let group = block_in_place(|| SentinelGroup::start(1));
    for backend in [Backend::Module, Backend::Lua] {
        let client = sentinel_client(&group, backend).await;
        assert_eq!(client.backend_kind(), backend);
        let guard = client.lock("k", &opts(10_000)).await.unwrap();
        assert!(client.info("k").await.unwrap().held, "{backend:?}");
        let keys: i64 = redis::cmd("DBSIZE")
            .query(&mut group.primary().connection())
            .unwrap();
        assert!(keys > 0, "{backend:?}: the lock is on the primary");
        assert!(guard.release().await.unwrap());
    }
}

#[test]
fn a_bad_sentinel_url_is_an_invalid_option() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let built = rt.block_on(Client::builder("redis+sentinel://127.0.0.1:1").build());
    assert!(matches!(built, Err(Error::InvalidOptions(_))), "{built:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_durable_lock_and_its_watchdog_survive_a_sentinel_failover() {
    // Two replicas: one takes over after each of the two failovers.
    let mut group = block_in_place(|| SentinelGroup::start(2));
    for backend in [Backend::Module, Backend::Lua] {
        let client = sentinel_client(&group, backend).await;
        let key = format!("durable-{backend:?}");
        // The replica left after a failover streams from the new primary
        // only once the Sentinels have reconfigured it: wait for that.
        block_in_place(|| wait_for_a_replica(&group));
        let guard = client
            .lock(&key, &opts(4_000).durable(1, SECOND))
            .await
            .unwrap();
        block_in_place(|| kill_primary(&mut group));
        // Past the ttl the watchdog has extended on the new primary.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            !guard.is_lost(),
            "{backend:?}: the durable lock was reported lost"
        );
        assert_eq!(client.fence(&key).await.unwrap(), guard.fence());
        let intruder = client.try_lock(&key, &opts(1_000)).await.unwrap();
        assert!(
            intruder.is_none(),
            "{backend:?}: granted twice after failover"
        );
        assert!(
            guard.release().await.unwrap(),
            "{backend:?}: released on the new primary"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_the_new_primary_lacks_is_reported_lost_in_time() {
    // The replica never hears of the grant: frozen, its link is cut (a
    // frozen process would still find the grant in its socket buffer), the
    // lock is taken, and the primary dies before the replica can catch up.
    let mut group = block_in_place(|| SentinelGroup::start(1));
    let client = sentinel_client(&group, Backend::Module).await;
    let primary = group.primary_index();
    let replica = 1 - primary;
    group.servers()[replica].freeze();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut group.servers()[primary].connection())
        .unwrap();
    let guard = client.lock("k", &opts(20_000)).await.unwrap();
    let taken = Instant::now();
    group.servers_mut()[primary].kill();
    group.servers()[replica].resume();
    let port = group.servers()[primary].port();
    block_in_place(|| group.wait_for_new_primary(port));
    timeout(15 * SECOND, guard.lost())
        .await
        .expect("the watchdog reports the loss");
    assert!(
        taken.elapsed() < Duration::from_secs(19),
        "lost only at the ttl ({:?}): the new primary's refusal was not heard",
        taken.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_follows_a_sentinel_failover_to_the_new_primary() {
    let mut group = block_in_place(|| SentinelGroup::start(2));
    let client = sentinel_client(&group, Backend::Module).await;
    let holder = client
        .lock("k", &opts(3_000).watchdog(false).durable(2, SECOND))
        .await
        .unwrap();
    let waiter = queued_waiter(&client, "k", Duration::from_secs(30)).await;
    block_in_place(|| kill_primary(&mut group));
    // The holder's replicated lock expires on the new primary, which hands
    // it to the waiter that re-queued there.
    let (granted, _) = timeout(30 * SECOND, waiter)
        .await
        .expect("the waiter ended")
        .unwrap();
    let granted = granted.expect("the waiter is granted on the new primary");
    assert!(granted.fence() > holder.fence());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_on_a_frozen_primary_ends_after_its_wait() {
    let group = block_in_place(|| SentinelGroup::start(1));
    let client = sentinel_client(&group, Backend::Module).await;
    let _holder = client.lock("k", &opts(60_000)).await.unwrap();
    let waiter = queued_waiter(&client, "k", Duration::from_secs(2)).await;
    let frozen = &group.servers()[group.primary_index()];
    frozen.freeze();
    let (reply, took) = timeout(20 * SECOND, waiter)
        .await
        .expect("the waiter did not hang")
        .unwrap();
    frozen.resume();
    assert!(reply.is_err(), "no grant from a frozen primary: {reply:?}");
    assert!(took < 10 * SECOND, "ended after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waits_and_the_watchdog_follow_a_cluster_failover() {
    let mut cluster = block_in_place(|| RedisCluster::start(1));
    block_in_place(|| cluster.add_replica(0));
    let client = Client::builder(cluster.urls()[0].clone())
        .build()
        .await
        .unwrap();
    assert!(client.is_cluster());
    let guard = client
        .lock("held", &opts(3_000).durable(1, SECOND))
        .await
        .unwrap();
    let holder = client
        .lock("k", &opts(3_000).watchdog(false).durable(1, SECOND))
        .await
        .unwrap();
    let waiter = queued_waiter(&client, "k", Duration::from_secs(30)).await;
    let replica = &cluster.replicas()[0];
    let _: () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .query(&mut replica.connection())
        .unwrap();
    block_in_place(|| {
        baton_harness::assert_eventually(20 * SECOND, "the replica takes over", || {
            baton_harness::replication::info_field(replica, "replication", "role").as_deref()
                == Some("master")
        })
    });
    let (granted, _) = timeout(30 * SECOND, waiter)
        .await
        .expect("the waiter ended")
        .unwrap();
    let granted = granted.expect("the waiter is granted on the new primary");
    assert!(granted.fence() > holder.fence());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!guard.is_lost(), "the watchdog did not follow the failover");
    assert!(retried(5 * SECOND, || guard.extend(3 * SECOND)).await);
    assert!(guard.release().await.unwrap());
}

/// A cluster primary killed for good: once its replica took over, durable
/// acquires and module waits on its slots go to the new primary, although
/// the dead node never answers with a `MOVED` that would correct the
/// client's slot table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durable_acquires_and_waits_leave_a_primary_that_stays_down() {
    let quick = || baton_harness::RedisServer::builder().cluster_node_timeout(SECOND);
    let mut cluster = block_in_place(|| RedisCluster::start_with(3, quick));
    block_in_place(|| {
        cluster.add_replica_with(0, quick());
        cluster.add_replica_with(0, quick());
    });
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| cluster.node_index_for(k.as_bytes()) == 0)
        .expect("a key of node 0");
    let client = Client::builder(cluster.urls()[1].clone())
        .build()
        .await
        .unwrap();
    // A second client for the wait, so that its slot table is still the
    // old one when it waits.
    let watcher = Client::builder(cluster.urls()[2].clone())
        .build()
        .await
        .unwrap();
    let durable = opts(3_000).durable(1, SECOND);
    // Both clients' slot tables name node 0 for the key.
    for c in [&client, &watcher] {
        assert!(c
            .lock(&key, &durable)
            .await
            .unwrap()
            .release()
            .await
            .unwrap());
    }

    block_in_place(|| cluster.nodes_mut()[0].kill());
    let promoted = block_in_place(|| {
        let deadline = std::time::Instant::now() + 30 * SECOND;
        loop {
            let primary = cluster.replicas().iter().position(|r| {
                baton_harness::replication::info_field(r, "replication", "role").as_deref()
                    == Some("master")
            });
            if let Some(i) = primary {
                break i;
            }
            assert!(std::time::Instant::now() < deadline, "no replica took over");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let other = 1 - promoted;
    block_in_place(|| {
        baton_harness::assert_eventually(20 * SECOND, "the other replica follows", || {
            baton_harness::replication::info_field(
                &cluster.replicas()[other],
                "replication",
                "master_link_status",
            )
            .as_deref()
                == Some("up")
        })
    });

    let guard = retried(10 * SECOND, || client.lock(&key, &durable)).await;
    let waiter = queued_waiter(&watcher, &key, 30 * SECOND).await;
    let fence = guard.fence();
    assert!(guard.release().await.unwrap());
    let (granted, _) = timeout(10 * SECOND, waiter)
        .await
        .expect("the waiter ended")
        .unwrap();
    assert!(granted.expect("granted on the new primary").fence() > fence);
}

/// After a `CLUSTER FAILOVER` the old primary, now a replica, answers a
/// durable check (the EXTEND and `WAIT` pipelined) with `MOVED`: the check
/// follows it to the new primary instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_durable_check_follows_a_moved_out_of_its_pipeline() {
    let mut cluster = block_in_place(|| RedisCluster::start(1));
    block_in_place(|| cluster.add_replica(0));
    let client = Client::builder(cluster.urls()[0].clone())
        .build()
        .await
        .unwrap();
    let durable = opts(3_000).durable(1, SECOND);
    // The client's slot table names node 0.
    assert!(client
        .lock("k", &durable)
        .await
        .unwrap()
        .release()
        .await
        .unwrap());
    let replica = &cluster.replicas()[0];
    let _: () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .query(&mut replica.connection())
        .unwrap();
    block_in_place(|| {
        let role = |s| baton_harness::replication::info_field(s, "replication", "role");
        baton_harness::assert_eventually(20 * SECOND, "the old primary follows", || {
            role(replica).as_deref() == Some("master")
                && role(&cluster.nodes()[0]).as_deref() == Some("slave")
                && baton_harness::replication::info_field(
                    &cluster.nodes()[0],
                    "replication",
                    "master_link_status",
                )
                .as_deref()
                    == Some("up")
        })
    });
    let guard = client
        .lock("k", &durable)
        .await
        .expect("durable on the new primary");
    assert!(guard.release().await.unwrap());
}

/// `SENTINEL FAILOVER`: the old primary lives on as a replica; the next
/// durable acquire is granted and confirmed on the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_durable_check_leaves_a_demoted_sentinel_primary() {
    let group = block_in_place(|| SentinelGroup::start(1));
    let client = sentinel_client(&group, Backend::Module).await;
    let durable = opts(3_000).durable(1, SECOND);
    assert!(client
        .lock("k", &durable)
        .await
        .unwrap()
        .release()
        .await
        .unwrap());
    let old = group.primary().port();
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(baton_harness::sentinel::SERVICE)
        .query(&mut group.sentinels()[0].connection())
        .unwrap();
    block_in_place(|| {
        group.wait_for_new_primary(old);
        wait_for_a_replica(&group);
    });
    let guard = retried(10 * SECOND, || client.lock("k", &durable)).await;
    assert!(guard.release().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_asked_while_the_sentinel_primary_is_down_waits_for_its_successor() {
    let mut group = block_in_place(|| SentinelGroup::start(1));
    block_in_place(|| wait_for_a_replica(&group));
    for backend in [Backend::Module, Backend::Lua] {
        let client = sentinel_client(&group, backend).await;
        let key = format!("asked-in-the-gap-{backend:?}");
        // Down, and the Sentinels still name it: no primary for a while.
        let old = group.primary_index();
        let port = group.servers()[old].port();
        group.servers_mut()[old].kill();
        let taken = Instant::now();
        let granted = client
            .lock(&key, &opts(10_000).wait(Duration::from_secs(40)))
            .await;
        let granted = granted.unwrap_or_else(|e| {
            panic!("{backend:?}: a lock with time left fails in the failover gap: {e}")
        });
        assert!(granted.fence() > 0, "{backend:?}");
        assert!(taken.elapsed() < Duration::from_secs(40), "{backend:?}");
        block_in_place(|| group.wait_for_new_primary(port));
        let info = retried(10 * SECOND, || client.info(&key)).await;
        assert!(info.held, "{backend:?}: held on the successor");
        assert!(granted.release().await.unwrap(), "{backend:?}");
        // The killed node back, as a replica of the successor.
        block_in_place(|| {
            group.servers_mut()[old].respawn();
            wait_for_a_replica(&group);
        });
    }
}
