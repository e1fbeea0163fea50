//! Fuzzes the argument parsers with arbitrary bytes: they never panic, accept
//! exactly the values the protocol allows, and name the argument they reject.

use baton_core::args::{self, ArgError, MAX_MS, MAX_TOKEN_LEN};
use proptest::prelude::*;

fn word() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24),
        Just(b"WAIT".to_vec()),
        Just(b"wait".to_vec()),
        Just(b"0".to_vec()),
        Just(b"2147483647".to_vec()),
        Just(b"2147483648".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        (0u64..=u64::MAX).prop_map(|n| n.to_string().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn ttl_accepts_exactly_the_decimal_range(bytes in word()) {
        let expected = std::str::from_utf8(&bytes)
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty())
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|v| (1..=MAX_MS).contains(v));
        prop_assert_eq!(args::ttl_ms(&bytes).ok(), expected);
        if expected.is_none() {
            prop_assert_eq!(args::ttl_ms(&bytes), Err(ArgError::Ttl));
        }
    }

    #[test]
    fn token_accepts_1_to_256_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let ok = (1..=MAX_TOKEN_LEN).contains(&bytes.len());
        prop_assert_eq!(args::token(&bytes).is_ok(), ok);
    }

    #[test]
    fn options_never_panic_and_errors_are_printable_ascii(rest in proptest::collection::vec(word(), 0..5)) {
        let rest: Vec<&[u8]> = rest.iter().map(Vec::as_slice).collect();
        match args::lock_options(&rest) {
            Ok(opts) => {
                prop_assert!(opts.wait <= MAX_MS);
                prop_assert!(rest.len().is_multiple_of(2) && rest.len() <= 4);
            }
            Err(error) => {
                let text = error.to_string();
                prop_assert!(text.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{:?}", text);
            }
        }
    }
}
