//! Raw RESP2: a connection that sends any bytes as a command and reads the
//! reply exactly as the server framed it, and a parser for RESP files (AOF).
//!
//! The `redis` crate reads error lines as UTF-8 and turns a binary one into a
//! client-side parse error; the fuzz test needs to tell a server error from a
//! broken reply, so it speaks the protocol itself.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::RedisServer;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+...`
    Status(Vec<u8>),
    /// `-...`, the whole line without the `-`.
    Error(Vec<u8>),
    /// `:n`
    Int(i64),
    /// `$n` with its bytes, or `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` with its items, or `*-1`.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Null bulk or null array: RESP2's two spellings of null.
    pub fn is_null(&self) -> bool {
        matches!(self, Reply::Bulk(None) | Reply::Array(None))
    }
}

/// A plain TCP connection speaking RESP2.
#[derive(Debug)]
pub struct RawConnection {
    reader: BufReader<TcpStream>,
}

impl RawConnection {
    /// Connects to 127.0.0.1:`port`, with a read timeout so a blocked command
    /// fails instead of hanging.
    pub fn connect(port: u16, read_timeout: Duration) -> io::Result<RawConnection> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(read_timeout))?;
        stream.set_nodelay(true)?;
        Ok(RawConnection {
            reader: BufReader::new(stream),
        })
    }

    /// Sends `args` as one command and reads its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out)?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.reader)
    }
}

/// Every command or reply in a RESP byte stream, e.g. an AOF file.
pub fn parse_all(mut bytes: &[u8]) -> io::Result<Vec<Reply>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(read_reply(&mut bytes)?);
    }
    Ok(out)
}

/// Every command in `server`'s append-only files (`appendonlydir/*.aof`,
/// in name order), each as its arguments.
pub fn aof_commands(server: &RedisServer) -> Vec<Vec<Vec<u8>>> {
    let dir = server.dir().join("appendonlydir");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("an AOF dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "aof"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for cmd in parse_all(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display())) {
            let Reply::Array(Some(items)) = cmd else {
                continue;
            };
            let args = items.into_iter().map(|i| match i {
                Reply::Bulk(Some(b)) => b,
                other => panic!("AOF item {other:?}"),
            });
            out.push(args.collect());
        }
    }
    out
}

fn read_line(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(bad(format!("unterminated line {line:?}")));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

/// Reads one RESP2 value.
pub fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_first().ok_or_else(|| bad("empty line".into()))?;
    let int = |b: &[u8]| -> io::Result<i64> {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad integer {b:?}")))
    };
    Ok(match kind {
        b'+' => Reply::Status(rest.to_vec()),
        b'-' => Reply::Error(rest.to_vec()),
        b':' => Reply::Int(int(rest)?),
        b'$' => match int(rest)? {
            -1 => Reply::Bulk(None),
            n if n >= 0 => {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                if !buf.ends_with(b"\r\n") {
                    return Err(bad("bulk string not followed by CRLF".into()));
                }
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
            n => return Err(bad(format!("bulk length {n}"))),
        },
        b'*' => match int(rest)? {
            -1 => Reply::Array(None),
            n if n >= 0 => Reply::Array(Some(
                (0..n).map(|_| read_reply(r)).collect::<io::Result<_>>()?,
            )),
            n => return Err(bad(format!("array length {n}"))),
        },
        other => return Err(bad(format!("unknown reply type {:?}", *other as char))),
    })
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
