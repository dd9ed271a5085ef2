//! The CDNs in front of the origin, and multi-CDN content steering (HLS
//! Content Steering, draft-pantos-hls-rfc8216bis 4.4.6.6 and 7): which CDNs
//! are up, which one a request came through, and the steering manifest a
//! player reloads every TTL to learn which pathway (CDN) to fetch from.
//!
//! How a player is steered (pure: [`priority`]):
//! - CDNs marked down are left out (unless every one is down: then all are
//!   listed, a wrong CDN is better than none);
//! - a player that names its pathway (`_HLS_pathway`) and whose measured
//!   throughput there (`_HLS_throughput`) can carry the stream's lowest
//!   variant stays on it: every switch costs the new CDN's cache a cold start;
//! - any other player is dealt a CDN by weight (a weighted round robin, so
//!   the shares hold exactly over every `sum(weights)` players), and the
//!   others follow by weight as fallbacks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::config::OriginConfig;
use crate::package::multivariant::Pathway;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SteeringError {
    #[error("no CDN {0:?} is configured")]
    UnknownCdn(String),
}

use crate::pathway_id::is_valid as is_pathway_id;

/// One CDN as the steering decision sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub weight: u32,
    pub up: bool,
}

/// The pathway order for one player: see the module comment. `floor_bps` is
/// the stream's lowest variant bandwidth (0: unknown); `draw` deals the
/// weighted choice (a counter: draw `n` picks the CDN whose share of
/// `0..sum(weights)` holds `n % sum`).
pub fn priority(
    cdns: &[Candidate],
    current: Option<&str>,
    throughput: Option<u64>,
    floor_bps: u64,
    draw: u64,
) -> Vec<String> {
    let mut usable: Vec<&Candidate> = cdns.iter().filter(|c| c.up).collect();
    if usable.is_empty() {
        usable = cdns.iter().collect();
    }
    // Fallback order: heaviest first, config order between equals.
    usable.sort_by_key(|c| std::cmp::Reverse(c.weight));
    let sticky = current.filter(|id| {
        usable.iter().any(|c| c.id == *id) && throughput.is_none_or(|t| t >= floor_bps)
    });
    let first = sticky.or_else(|| {
        let total: u64 = usable.iter().map(|c| u64::from(c.weight)).sum();
        if total == 0 {
            return usable.first().map(|c| c.id);
        }
        let mut n = draw % total;
        // Deal in config order, so the shares do not depend on the sort.
        cdns.iter()
            .filter(|c| usable.iter().any(|u| u.id == c.id))
            .find(|c| {
                let w = u64::from(c.weight);
                if n < w {
                    true
                } else {
                    n -= w;
                    false
                }
            })
            .map(|c| c.id)
    });
    let mut order: Vec<String> = first.into_iter().map(str::to_string).collect();
    order.extend(
        usable
            .iter()
            .filter(|c| Some(c.id) != first)
            .map(|c| c.id.to_string()),
    );
    order
}

/// What a steering request says about the player (`_HLS_pathway`,
/// `_HLS_throughput`); a value that does not parse is treated as absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SteeringQuery {
    pub pathway: Option<String>,
    pub throughput: Option<u64>,
}

pub fn parse_query(query: Option<&str>) -> SteeringQuery {
    let mut q = SteeringQuery::default();
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("_HLS_pathway", v)) if is_pathway_id(v) => q.pathway = Some(v.to_string()),
            Some(("_HLS_throughput", v)) if !v.is_empty() && v.len() <= 19 => {
                q.throughput = v.parse().ok();
            }
            _ => {}
        }
    }
    q
}

/// The steering manifest (JSON, VERSION 1). RELOAD-URI is relative, so a
/// signed playback URL's prefix carries over to every reload.
pub fn manifest(ttl: u64, order: &[String]) -> String {
    serde_json::json!({
        "VERSION": 1,
        "TTL": ttl,
        "RELOAD-URI": "steering.json",
        "PATHWAY-PRIORITY": order,
    })
    .to_string()
}

struct Cdn {
    id: String,
    base_url: String,
    weight: u32,
    up: AtomicBool,
}

/// The configured CDNs and their state, shared by the origin (steering
/// manifests, per-CDN counting) and the admin API (marking one down or up).
pub struct Cdns {
    list: Vec<Cdn>,
    header: http::HeaderName,
    ttl: u64,
    deals: AtomicU64,
}

/// The `cdn` label of a request that named no CDN, or one not configured.
pub const NO_CDN: &str = "none";
pub const OTHER_CDN: &str = "other";

impl Cdns {
    pub fn new(cfg: &OriginConfig) -> Arc<Cdns> {
        Arc::new(Cdns {
            list: cfg
                .cdn
                .iter()
                .map(|c| Cdn {
                    id: c.id.clone(),
                    base_url: c.base_url.trim_end_matches('/').to_string(),
                    weight: c.weight,
                    up: AtomicBool::new(true),
                })
                .collect(),
            header: http::HeaderName::from_bytes(cfg.cdn_header.as_bytes())
                .unwrap_or(http::HeaderName::from_static("x-castline-cdn")),
            ttl: cfg.steering_ttl,
            deals: AtomicU64::new(0),
        })
    }

    /// The pathways the multivariant offers: every CDN with a base URL.
    /// Empty: no steering, the multivariant keeps relative URIs.
    pub fn pathways(&self) -> Vec<Pathway> {
        self.list
            .iter()
            .filter(|c| !c.base_url.is_empty())
            .map(|c| Pathway {
                id: c.id.clone(),
                base: c.base_url.clone(),
            })
            .collect()
    }

    /// The `cdn` label for a request: the configured id its header names,
    /// [`OTHER_CDN`] for an unknown value, [`NO_CDN`] without the header.
    /// Bounded by the config, whatever clients send.
    pub fn label(&self, headers: &http::HeaderMap) -> &str {
        let Some(v) = headers.get(&self.header) else {
            return NO_CDN;
        };
        self.list
            .iter()
            .find(|c| c.id.as_bytes() == v.as_bytes())
            .map_or(OTHER_CDN, |c| c.id.as_str())
    }

    pub fn set_up(&self, id: &str, up: bool) -> Result<(), SteeringError> {
        let cdn = self
            .list
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| SteeringError::UnknownCdn(id.to_string()))?;
        if cdn.up.swap(up, Ordering::Relaxed) != up {
            tracing::warn!(
                cdn = id,
                up,
                "CDN marked {}",
                if up { "up" } else { "down" }
            );
        }
        Ok(())
    }

    /// Every CDN and its state, for `/api/v1/cdns`.
    pub fn status(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.list
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "id": c.id,
                        "base_url": c.base_url,
                        "weight": c.weight,
                        "up": c.up.load(Ordering::Relaxed),
                    })
                })
                .collect(),
        )
    }

    fn candidates(&self) -> Vec<Candidate<'_>> {
        self.list
            .iter()
            .filter(|c| !c.base_url.is_empty())
            .map(|c| Candidate {
                id: &c.id,
                weight: c.weight,
                up: c.up.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The pathway a new player starts on (the multivariant's PATHWAY-ID):
    /// dealt by weight among the CDNs that are up. New players are dealt
    /// here rather than by their first steering manifest, because a player
    /// (hls.js 1.7) that is told another pathway before it has chosen a
    /// level may not move until its next level switch.
    pub fn deal(&self) -> String {
        let draw = self.deals.fetch_add(1, Ordering::Relaxed);
        priority(&self.candidates(), None, None, 0, draw)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// The steering manifest for one request. `floor_bps`: the stream's
    /// lowest variant bandwidth.
    pub fn manifest(&self, query: &SteeringQuery, floor_bps: u64) -> Bytes {
        let order = priority(
            &self.candidates(),
            query.pathway.as_deref(),
            query.throughput,
            floor_bps,
            self.deals.fetch_add(1, Ordering::Relaxed),
        );
        Bytes::from(manifest(self.ttl, &order))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, weight: u32, up: bool) -> Candidate<'_> {
        Candidate { id, weight, up }
    }

    #[test]
    fn new_players_are_dealt_cdns_by_weight_and_the_rest_follow_heaviest_first() {
        let cdns = [c("a", 1, true), c("b", 3, true)];
        let firsts: Vec<String> = (0..8)
            .map(|n| priority(&cdns, None, None, 0, n).remove(0))
            .collect();
        assert_eq!(firsts, ["a", "b", "b", "b", "a", "b", "b", "b"]);
        assert_eq!(priority(&cdns, None, None, 0, 0), ["a", "b"]);
        assert_eq!(priority(&cdns, None, None, 0, 1), ["b", "a"]);
    }

    #[test]
    fn a_down_cdn_is_left_out_unless_every_cdn_is_down() {
        let cdns = [c("a", 5, false), c("b", 1, true)];
        for n in 0..6 {
            assert_eq!(priority(&cdns, Some("a"), None, 0, n), ["b"]);
        }
        let all_down = [c("a", 1, false), c("b", 2, false)];
        assert_eq!(priority(&all_down, None, None, 0, 0).len(), 2);
    }

    #[test]
    fn a_player_doing_well_stays_on_its_pathway_and_a_struggling_one_is_dealt_again() {
        let cdns = [c("a", 1, true), c("b", 1, true)];
        // Sticky whatever the deal says.
        assert_eq!(
            priority(&cdns, Some("b"), Some(5_000_000), 800_000, 0),
            ["b", "a"]
        );
        assert_eq!(priority(&cdns, Some("b"), None, 800_000, 0), ["b", "a"]);
        // Below the lowest variant: dealt by weight (draw 0 is "a").
        assert_eq!(
            priority(&cdns, Some("b"), Some(300_000), 800_000, 0),
            ["a", "b"]
        );
        // An unknown pathway is ignored.
        assert_eq!(priority(&cdns, Some("zz"), None, 0, 1), ["b", "a"]);
    }

    #[test]
    fn standby_cdns_of_weight_zero_are_never_dealt_but_take_over_when_alone() {
        let cdns = [c("main", 1, true), c("standby", 0, true)];
        for n in 0..4 {
            assert_eq!(priority(&cdns, None, None, 0, n), ["main", "standby"]);
        }
        let main_down = [c("main", 1, false), c("standby", 0, true)];
        assert_eq!(priority(&main_down, None, None, 0, 0), ["standby"]);
    }

    #[test]
    fn the_query_is_read_strictly() {
        assert_eq!(
            parse_query(Some("_HLS_pathway=cf&_HLS_throughput=1234567")),
            SteeringQuery {
                pathway: Some("cf".into()),
                throughput: Some(1_234_567)
            }
        );
        assert_eq!(
            parse_query(Some("_HLS_pathway=<x>&_HLS_throughput=-1&other=1")),
            SteeringQuery::default()
        );
        assert_eq!(parse_query(None), SteeringQuery::default());
    }

    #[test]
    fn the_manifest_is_version_one_json() {
        assert_eq!(
            manifest(300, &["b".into(), "a".into()]),
            r#"{"PATHWAY-PRIORITY":["b","a"],"RELOAD-URI":"steering.json","TTL":300,"VERSION":1}"#
        );
    }

    #[test]
    fn pathway_ids_follow_the_spec() {
        assert!(is_pathway_id("cloudfront.eu-1_a"));
        assert!(!is_pathway_id(""));
        assert!(!is_pathway_id("a b"));
        assert!(!is_pathway_id("é"));
        assert!(!is_pathway_id(&"x".repeat(33)));
    }
}
