//! `SEM.INFO key`: a map of `limit`, `used`, `holders`, `waiters` and
//! `fence` (the last fence issued on the key; 0 once it is forgotten). A
//! lease whose time has passed counts as gone.

use crate::commands::acquire::fence_reply;
use crate::sem_type::SemValue;
use crate::{ffi, keyspace};
use baton_core::wire::SEM_INFO_FIELDS;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, name] = &args[..] else {
        return Err(RedisError::WrongArity);
    };
    let now = ffi::now_ms();
    let values = keyspace::read(ctx, name, |sem: Option<&SemValue>| {
        let Some(sem) = sem else {
            return [0; 5];
        };
        let live = || sem.leases().filter(|(_, l)| l.expires_at > now);
        let used: u64 = live().map(|(_, l)| u64::from(l.permits)).sum();
        [
            i64::from(sem.limit()),
            i64::try_from(used).unwrap_or(i64::MAX),
            i64::try_from(live().count()).unwrap_or(i64::MAX),
            i64::try_from(sem.waiters()).unwrap_or(i64::MAX),
            fence_reply(sem.last_fence()),
        ]
    })?;
    let fields: Vec<(&str, i64)> = SEM_INFO_FIELDS.into_iter().zip(values).collect();
    ffi::reply_map(ctx.get_raw(), &fields);
    Ok(RedisValue::NoReply)
}
