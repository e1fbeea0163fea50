//! `LOCK.STATS`: the node-wide counters as a map, O(1).

use crate::{ffi, stats};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 1 {
        return Err(RedisError::WrongArity);
    }
    let fields = stats::all().map(|(name, value)| (name, i64::try_from(value).unwrap_or(i64::MAX)));
    ffi::reply_map(ctx.get_raw(), &fields);
    Ok(RedisValue::NoReply)
}
