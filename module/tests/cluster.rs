//! Cluster (SPEC §2 "Cluster"): a lock routes by its key's slot like any key.

use baton_harness::lock::{acquire, info, raw, release};
use baton_harness::RedisCluster;

#[test]
fn lock_commands_route_by_slot_and_other_nodes_answer_moved() {
    let cluster = RedisCluster::start(3);
    assert_eq!(cluster.urls().len(), 3);
    for key in [&b"order:1"[..], b"order:2", b"job:{x}:1", b"k"] {
        let owner = cluster.node_index_for(key);
        let slot = cluster.slot(key);
        let mut con = cluster.nodes()[owner].connection();
        let f = acquire(&mut con, key, b"t", 10_000).expect("the owner grants");
        assert!(f > 0);
        assert_eq!(info(&mut con, key).fence, f);
        for (i, node) in cluster.nodes().iter().enumerate() {
            if i == owner {
                continue;
            }
            let mut other = node.connection();
            for args in [
                vec![&b"LOCK.ACQUIRE"[..], key, b"t2", b"1000"],
                vec![b"LOCK.RELEASE", key, b"t"],
                vec![b"LOCK.EXTEND", key, b"t", b"1000"],
                vec![b"LOCK.FORCERELEASE", key],
                vec![b"LOCK.FENCE", key],
                vec![b"LOCK.INFO", key],
            ] {
                let err = raw(&mut other, &args)
                    .expect_err("a node that does not own the slot must redirect");
                assert_eq!(
                    err.code(),
                    Some("MOVED"),
                    "{}: {err:?}",
                    baton_harness::lock::show(&args)
                );
                let detail = err.detail().unwrap_or("");
                let want = format!("{slot} 127.0.0.1:{}", cluster.nodes()[owner].port());
                assert_eq!(detail, want, "MOVED target");
            }
        }
        assert_eq!(release(&mut con, key, b"t"), 1);
    }
    // LOCK.STATS takes no key: every node answers it.
    for node in cluster.nodes() {
        let _ = baton_harness::lock::stats(&mut node.connection());
    }
}
