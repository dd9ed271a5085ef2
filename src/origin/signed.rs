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
/// on (docker/cdn/cloudfront/signed-url-function.js): `/s/EXPIRY/SIG/EDGE`,
/// where EDGE, the hex HMAC-SHA256 of `edge:/s/EXPIRY/SIG` under the same
/// key, proves that whoever wrote it holds the key (the edge function), not
/// a viewer who holds a token. The origin checks the token as if it led the
/// path.
pub const TOKEN_HEADER: &str = "x-castline-token";

/// How long past its expiry the origin still takes a token the edge
/// checked: the two clocks and a miss's round trip differ by seconds, and a
/// refusal there would be one viewer's 403 under a key everyone shares.
pub const EDGE_GRACE_SECS: u64 = 30;

/// The [`TOKEN_HEADER`] value the edge sends for `token` (`/s/EXPIRY/SIG`).
pub fn edge_header(key: &[u8], token: &str) -> String {
    format!(
        "{token}/{}",
        hex(&edge_mac(key, token).finalize().into_bytes())
    )
}

fn edge_mac(key: &[u8], token: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"edge:");
    mac.update(token.as_bytes());
    mac
}

/// The token (`/s/EXPIRY/SIG`) of a [`TOKEN_HEADER`] value whose edge proof
/// checks out under `key`; `None` for anything else, a viewer's own header
/// included.
pub fn edge_token<'a>(key: &[u8], value: &'a str) -> Option<&'a str> {
    let (token, proof) = value.rsplit_once('/')?;
    let rest = token.strip_prefix("/s/")?;
    let (expiry, sig) = rest.split_once('/')?;
    let digits = (1..=19).contains(&expiry.len()) && expiry.bytes().all(|b| b.is_ascii_digit());
    let hex_sig = sig.len() == 64 && sig.bytes().all(|b| b.is_ascii_hexdigit());
    if !(digits && hex_sig) {
        return None;
    }
    // verify_slice compares in constant time.
    let proof = decode_hex(proof)?;
    edge_mac(key, token).verify_slice(&proof).ok()?;
    Some(token)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature of `stream` until `expiry`.
pub fn sign(key: &[u8], stream: &str, expiry: u64) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{stream}:{expiry}").as_bytes());
    hex(&mac.finalize().into_bytes())
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
    fn an_edge_header_is_taken_only_with_its_proof() {
        let key = b"k";
        let token = format!("/s/1800000000/{}", super::sign(key, "game", 1_800_000_000));
        let header = super::edge_header(key, &token);
        assert_eq!(super::edge_token(key, &header), Some(token.as_str()));
        // A viewer holds the token but not the key: no proof it can write.
        assert_eq!(super::edge_token(key, &token), None);
        assert_eq!(
            super::edge_token(key, &format!("{token}/{}", "ab".repeat(32))),
            None
        );
        assert_eq!(super::edge_token(b"other", &header), None);
        let other = super::edge_header(key, "/s/1800000000/abc");
        assert_eq!(super::edge_token(key, &other), None, "not a token's shape");
        assert_eq!(super::edge_token(key, ""), None);
    }
}
