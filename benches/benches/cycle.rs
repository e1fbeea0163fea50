//! Criterion micro-benches: one acquire+release cycle, uncontended, per
//! backend: baton's module, Lua and memory backends, and Redlock (`rslock`)
//! on one instance. The server is a `baton_harness` redis-server on 127.0.0.1
//! with the module loaded (the release build when there is one).
//!
//! ```text
//! cargo bench -p baton-benches --bench cycle
//! ```

use baton_benches::contenders::{Contender, Retry};
use baton_benches::setup::bench_module;
use baton_client::Backend;
use baton_harness::RedisServer;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn cycle(c: &mut Criterion) {
    let (module, _) = bench_module();
    let server = RedisServer::builder().module(module).start();
    let url = server.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let contenders = rt.block_on(async {
        anyhow::Ok(vec![
            Contender::baton("module", &url, Backend::Module, None).await?,
            Contender::baton("lua", &url, Backend::Lua, None).await?,
            Contender::baton("memory", &url, Backend::Memory, None).await?,
            Contender::redlock("rslock-1", std::slice::from_ref(&url), Retry::Default),
        ])
    });
    let contenders = contenders.expect("connect the contenders");

    let mut group = c.benchmark_group("acquire_release");
    group.throughput(Throughput::Elements(1));
    for contender in &contenders {
        group.bench_with_input(
            BenchmarkId::from_parameter(contender.name()),
            contender,
            |b, contender| {
                b.to_async(&rt).iter(|| async {
                    let held = contender
                        .try_acquire("bench:criterion")
                        .await
                        .expect("acquire")
                        .expect("uncontended key is granted");
                    contender.release(held).await.expect("release");
                });
            },
        );
    }
    group.finish();
    drop(server);
}

criterion_group!(benches, cycle);
criterion_main!(benches);
