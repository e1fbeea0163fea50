//! `LOCK.ACQUIRE key token ttl-ms [WAIT timeout-ms] [META value]`: grant,
//! renew, refuse, or queue the caller and block it on the server. `META`
//! is stored with the holder (a renewal may replace it).

use super::{arg_error, bytes};
use crate::effects::Write;
use crate::lock_type::LockValue;
use crate::node::{KeyRef, Kind};
use crate::waiting;
use baton_core::{args, wire, Acquire, Waiter};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, name, token, ttl, rest @ ..] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    let token = args::token(token).map_err(arg_error)?;
    let ttl = args::ttl_ms(ttl).map_err(arg_error)?;
    let opts = args::lock_options(rest).map_err(arg_error)?;
    let wait = opts.wait;

    let write = Write::<LockValue>::begin(ctx, &args[1])?;
    let outcome = write
        .run(true, |change| change.acquire_with(token, ttl, opts.meta))?
        .unwrap_or(Acquire::Busy);
    match outcome {
        Acquire::Granted { fence } | Acquire::Renewed { fence } => {
            Ok(RedisValue::Integer(fence_reply(fence)))
        }
        Acquire::AlreadyWaiting => Err(RedisError::Str(wire::ALREADY_WAITING)),
        Acquire::Busy if wait == 0 || waiting::cannot_block(ctx.get_raw()) => Ok(RedisValue::Null),
        Acquire::Busy => {
            let lock_ref = KeyRef {
                db: write.scope.db,
                key: (*name).into(),
            };
            waiting::block(ctx, lock_ref, Kind::Lock, wait, |id| {
                let waiter = Waiter {
                    id,
                    token: token.into(),
                    ttl,
                    meta: opts.meta.map(Into::into),
                    payload: (),
                };
                write.key.lock().is_some_and(|l| l.enqueue(waiter).is_ok())
            });
            Ok(RedisValue::NoReply)
        }
    }
}

/// Fences fit an i64 reply: they count grants from 1.
pub fn fence_reply(fence: u64) -> i64 {
    i64::try_from(fence).unwrap_or(i64::MAX)
}
