//! Signed playback URLs (pure): `/s/EXPIRY/SIG/live/STREAM/...`, where SIG is
//! HMAC-SHA256 over `STREAM:EXPIRY` (EXPIRY in Unix seconds), hex. The token
//! is a path prefix, so the relative URIs of playlists (rendered once for
//! every viewer) inherit it; a CDN keeps it out of its cache key by
//! validating or stripping that prefix.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("this origin serves signed URLs only (/s/EXPIRY/SIG/live/...)")]
    Missing,
    #[error("the signed URL has expired")]
    Expired,
    #[error("the signed URL's signature does not match")]
    BadSignature,
}

/// The header in which a CDN that checked a signed URL at its edge, and took
/// the token off the path to keep it out of its cache key, passes the token
/// on (`/s/EXPIRY/SIG`; docker/cdn/cloudfront/signed-url-function.js). The
/// origin checks it as if it led the path.
pub const TOKEN_HEADER: &str = "x-castline-token";

/// A [`TOKEN_HEADER`] value that has a token's shape (`/s/DIGITS/HEX`, no
/// more): anything else is not put in front of a path.
pub fn token_prefix(value: &str) -> Option<&str> {
    let rest = value.strip_prefix("/s/")?;
    let (expiry, sig) = rest.split_once('/')?;
    let digits = (1..=19).contains(&expiry.len()) && expiry.bytes().all(|b| b.is_ascii_digit());
    let hex = sig.len() == 64 && sig.bytes().all(|b| b.is_ascii_hexdigit());
    (digits && hex).then_some(value)
}

/// The signature of `stream` until `expiry`.
pub fn sign(key: &[u8], stream: &str, expiry: u64) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{stream}:{expiry}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The path a signed URL names, once its token checks out at `now`.
pub fn verify<'a>(key: &[u8], path: &'a str, now: u64) -> Result<&'a str, TokenError> {
    let rest = path.strip_prefix("/s/").ok_or(TokenError::Missing)?;
    let mut it = rest.splitn(3, '/');
    let (Some(expiry), Some(sig), Some(inner)) = (it.next(), it.next(), it.next()) else {
        return Err(TokenError::Missing);
    };
    let inner = &path[path.len() - inner.len() - 1..];
    let stream = inner
        .strip_prefix("/live/")
        .and_then(|p| p.split('/').next())
        .ok_or(TokenError::Missing)?;
    let expiry: u64 = expiry.parse().map_err(|_| TokenError::BadSignature)?;
    let sig = decode_hex(sig).ok_or(TokenError::BadSignature)?;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{stream}:{expiry}").as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    if now > expiry {
        return Err(TokenError::Expired);
    }
    Ok(inner)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"k3y";

    #[test]
    fn a_signed_path_verifies_until_it_expires() {
        let sig = sign(KEY, "final", 1000);
        let path = format!("/s/1000/{sig}/live/final/720p/index.m3u8");
        assert_eq!(verify(KEY, &path, 999), Ok("/live/final/720p/index.m3u8"));
        assert_eq!(verify(KEY, &path, 1000), Ok("/live/final/720p/index.m3u8"));
        assert_eq!(verify(KEY, &path, 1001), Err(TokenError::Expired));
    }

    #[test]
    fn tampering_is_caught() {
        let sig = sign(KEY, "final", 1000);
        // Another stream, a later expiry, another key, a broken signature.
        let other = format!("/s/1000/{sig}/live/other/index.m3u8");
        assert_eq!(verify(KEY, &other, 0), Err(TokenError::BadSignature));
        let later = format!("/s/2000/{sig}/live/final/index.m3u8");
        assert_eq!(verify(KEY, &later, 0), Err(TokenError::BadSignature));
        let path = format!("/s/1000/{sig}/live/final/index.m3u8");
        assert_eq!(verify(b"other", &path, 0), Err(TokenError::BadSignature));
        assert_eq!(
            verify(KEY, "/s/1000/zz/live/final/index.m3u8", 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(KEY, "/live/final/index.m3u8", 0),
            Err(TokenError::Missing)
        );
        assert_eq!(verify(KEY, "/s/1000", 0), Err(TokenError::Missing));
    }

    #[test]
    fn a_token_header_is_taken_only_in_a_tokens_shape() {
        let sig = "ab".repeat(32);
        let ok = format!("/s/1800000000/{sig}");
        assert_eq!(super::token_prefix(&ok), Some(ok.as_str()));
        for bad in [
            format!("/s/1800000000/{sig}/live/other"),
            format!("/s/18x/{sig}"),
            format!("s/1800000000/{sig}"),
            "/s/1800000000/abc".to_string(),
            String::new(),
        ] {
            assert_eq!(super::token_prefix(&bad), None, "{bad}");
        }
    }
}
