//! The credentials shippers send to Elasticsearch, checked against the
//! source's one token: `Authorization: Bearer TOKEN` (the clients'
//! `bearer_auth`), `ApiKey TOKEN` (the clients'
//! `api_key`; also `ApiKey base64(ID:TOKEN)`, as Filebeat's `api_key: ID:TOKEN`
//! sends it) and `Basic base64(USER:TOKEN)` (any user, the token as the
//! password: Fluent Bit's `HTTP_User`/`HTTP_Passwd`, Vector's `basic`,
//! Filebeat's `username`/`password`).

use crate::secure::Token;

/// Whether the `Authorization` header value carries `token`.
pub(crate) fn authorized(value: Option<&[u8]>, token: &Token) -> bool {
    let Some(value) = value else {
        return false;
    };
    let value = value.trim_ascii();
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        return false;
    };
    let (scheme, credential) = value.split_at(space);
    let credential = credential.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return token.matches(credential);
    }
    if scheme.eq_ignore_ascii_case(b"apikey") {
        if token.matches(credential) {
            return true;
        }
        return base64(credential)
            .and_then(|d| after_colon(&d).map(|k| token.matches(k)))
            .unwrap_or(false);
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        return base64(credential)
            .and_then(|d| after_colon(&d).map(|p| token.matches(p)))
            .unwrap_or(false);
    }
    false
}

fn after_colon(b: &[u8]) -> Option<&[u8]> {
    let colon = b.iter().position(|c| *c == b':')?;
    Some(&b[colon + 1..])
}

/// Decodes standard base64 (padding optional); `None` when it is not.
fn base64(text: &[u8]) -> Option<Vec<u8>> {
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").expect("write");
        crate::secure::Secret::File(path).load().expect("token")
    }

    #[test]
    fn bearer_api_key_and_basic_carry_the_token() {
        let t = token();
        for ok in [
            "Bearer s3cret",
            "bearer  s3cret ",
            "ApiKey s3cret",
            // base64("id:s3cret")
            "ApiKey aWQ6czNjcmV0",
            // base64("elastic:s3cret")
            "Basic ZWxhc3RpYzpzM2NyZXQ=",
        ] {
            assert!(authorized(Some(ok.as_bytes()), &t), "{ok}");
        }
        for bad in [
            "Bearer nope",
            "Basic czNjcmV0",
            "Basic !!!",
            "Digest s3cret",
            "s3cret",
            "",
        ] {
            assert!(!authorized(Some(bad.as_bytes()), &t), "{bad}");
        }
        assert!(!authorized(None, &t));
        assert_eq!(base64(b"aGVsbG8").as_deref(), Some(&b"hello"[..]));
    }
}
