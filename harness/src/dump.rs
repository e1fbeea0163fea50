//! `DUMP` payloads of lock keys, taken apart and put together, for tests that
//! feed `RESTORE` crafted or mutated values.
//!
//! A payload is the value as RDB serializes it, then the RDB version (2 bytes,
//! little endian) and a CRC-64 (Jones, reflected, 8 bytes little endian) of
//! everything before it. A lock value is: the module type byte and id, then
//! module opcodes for fence (unsigned), expiry (unsigned) and token (string),
//! a metadata flag (unsigned) and the metadata (string) when the flag is 1,
//! then the module EOF opcode. RESTORE checks the CRC before it parses, so a
//! mutation is only seen by the module when the CRC is recomputed.

/// RDB's module value opcodes.
pub const OPCODE_EOF: u8 = 0;
/// An unsigned integer follows.
pub const OPCODE_UINT: u8 = 2;
/// A string follows.
pub const OPCODE_STRING: u8 = 5;

/// Redis' CRC-64 (crc64.c: Jones polynomial, reflected, initial value 0).
pub fn crc64(bytes: &[u8]) -> u64 {
    const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut crc = 0u64;
    for &byte in bytes {
        crc ^= u64::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// The parts of a real DUMP that a crafted one reuses: the value header
/// (module type byte and id) and the RDB version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpFormat {
    header: Vec<u8>,
    rdb_version: [u8; 2],
}

impl DumpFormat {
    /// Takes the format apart from a DUMP of a lock key.
    ///
    /// # Panics
    ///
    /// When `dump` is not a module value payload.
    pub fn of(dump: &[u8]) -> DumpFormat {
        assert!(dump.len() > 20, "too short for a DUMP: {dump:?}");
        // Type byte 7 (module, version 2), then the 64-bit id as 0x81 + 8 bytes.
        assert_eq!(&dump[..2], &[7, 0x81], "not a module value: {dump:?}");
        let footer = dump.len() - 10;
        DumpFormat {
            header: dump[..10].to_vec(),
            rdb_version: [dump[footer], dump[footer + 1]],
        }
    }

    /// A lock value as the module saves it (encoding version 2), without
    /// metadata.
    pub fn lock(&self, fence: u64, expires_at: u64, token: &[u8]) -> Vec<u8> {
        self.lock_with_meta(fence, expires_at, token, None)
    }

    /// A lock value in encoding version 2: holder fields, then a metadata
    /// flag (unsigned 0 or 1) and, when 1, the metadata (string).
    pub fn lock_with_meta(
        &self,
        fence: u64,
        expires_at: u64,
        token: &[u8],
        meta: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut body = holder_fields(&self.header, fence, expires_at, token);
        body.push(OPCODE_UINT);
        push_len(&mut body, u64::from(meta.is_some()));
        if let Some(meta) = meta {
            body.push(OPCODE_STRING);
            push_len(&mut body, meta.len() as u64);
            body.extend_from_slice(meta);
        }
        body.push(OPCODE_EOF);
        self.seal(&body)
    }

    /// A lock value in encoding version 1, as modules before lock metadata
    /// saved it: the holder fields only.
    pub fn lock_v1(&self, fence: u64, expires_at: u64, token: &[u8]) -> Vec<u8> {
        let mut header = self.header.clone();
        // The module id's low 10 bits are the encoding version.
        let last = header.len() - 1;
        header[last - 1] &= !0x03;
        header[last] = 1;
        let mut body = holder_fields(&header, fence, expires_at, token);
        body.push(OPCODE_EOF);
        self.seal(&body)
    }

    /// `body` with this format's footer: RDB version and a valid CRC.
    pub fn seal(&self, body: &[u8]) -> Vec<u8> {
        let mut out = body.to_vec();
        out.extend_from_slice(&self.rdb_version);
        let crc = crc64(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}

/// A lock value's header and holder fields: fence, expiry, token.
fn holder_fields(header: &[u8], fence: u64, expires_at: u64, token: &[u8]) -> Vec<u8> {
    let mut body = header.to_vec();
    body.push(OPCODE_UINT);
    push_len(&mut body, fence);
    body.push(OPCODE_UINT);
    push_len(&mut body, expires_at);
    body.push(OPCODE_STRING);
    push_len(&mut body, token.len() as u64);
    body.extend_from_slice(token);
    body
}

/// The body of a payload: everything before the footer.
pub fn body(dump: &[u8]) -> &[u8] {
    &dump[..dump.len().saturating_sub(10)]
}

/// Appends an RDB length encoding of `n` (6, 14, 32 or 64 bits).
pub fn push_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_redis_check_value() {
        // crc64.c's own test: crc64(0, "123456789") == 0xe9c6d914c4b8d9ca.
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn lengths_use_the_shortest_encoding() {
        let enc = |n| {
            let mut v = Vec::new();
            push_len(&mut v, n);
            v
        };
        assert_eq!(enc(5), vec![5]);
        assert_eq!(enc(300), vec![0x41, 0x2c]);
        assert_eq!(enc(70_000), vec![0x80, 0, 1, 0x11, 0x70]);
        assert_eq!(enc(1 << 40)[0], 0x81);
    }
}
