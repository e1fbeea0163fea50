//! `SEM.ACQUIRE key token ttl-ms LIMIT n [PERMITS p] [WAIT timeout-ms]`:
//! grant a lease of `p` permits, renew the token's lease, refuse, or queue
//! the caller (strict FIFO) and block it on the server.

use crate::commands::acquire::fence_reply;
use crate::commands::{arg_error, bytes};
use crate::effects::Write;
use crate::node::{KeyRef, Kind};
use crate::sem_type::SemValue;
use crate::waiting;
use baton_core::{args, wire, Request, SemAcquire, Waiter};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, name, token, ttl, rest @ ..] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    let token = args::token(token).map_err(arg_error)?;
    let ttl = args::ttl_ms(ttl).map_err(arg_error)?;
    let opts = args::sem_options(rest).map_err(arg_error)?;

    let write = Write::<SemValue>::begin(ctx, &args[1])?;
    let outcome = write
        .run(Some(opts.limit), |change| {
            change.acquire(token, opts.permits, opts.limit, ttl)
        })?
        .unwrap_or(SemAcquire::Busy);
    match outcome {
        SemAcquire::Granted { fence } | SemAcquire::Renewed { fence } => {
            Ok(RedisValue::Integer(fence_reply(fence)))
        }
        SemAcquire::AlreadyWaiting => Err(RedisError::Str(wire::ALREADY_WAITING)),
        SemAcquire::OtherLimit { limit } => {
            Err(RedisError::String(wire::other_limit(limit, opts.limit)))
        }
        SemAcquire::OtherPermits { held } => {
            Err(RedisError::String(wire::other_permits(held, opts.permits)))
        }
        SemAcquire::TooMany => Err(arg_error(baton_core::ArgError::Permits)),
        SemAcquire::Busy if opts.wait == 0 || waiting::cannot_block(ctx.get_raw()) => {
            Ok(RedisValue::Null)
        }
        SemAcquire::Busy => {
            let at = KeyRef {
                db: write.scope.db,
                key: (*name).into(),
            };
            waiting::block(ctx, at, Kind::Sem, opts.wait, |id| {
                let waiter = Waiter {
                    id,
                    token: token.into(),
                    ttl,
                    meta: None,
                    payload: Request {
                        permits: opts.permits,
                        payload: (),
                    },
                };
                write
                    .key
                    .value()
                    .is_some_and(|sem| sem.enqueue(waiter).is_ok())
            });
            Ok(RedisValue::NoReply)
        }
    }
}
