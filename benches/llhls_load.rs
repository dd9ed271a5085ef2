//! `llhls-load`: N Low-Latency HLS players against one media playlist, for
//! load tests of the origin (and of caches in front of it).
//!
//! Each player does what hls.js does at the live edge: a blocking reload for
//! the next part (`_HLS_msn`/`_HLS_part`), then that part; optionally the
//! preload hint in parallel with the reload. It prints one JSON line:
//! delivery spread (first to last player holding a part), part age (from the
//! end of the part's media, by EXT-X-PROGRAM-DATE-TIME, to a player holding
//! it), answers by status, answers a cache served past their max-age,
//! transport errors, and players that fell behind.
//!
//! usage: llhls-load --url URL [--players N] [--seconds S] [--ramp S]
//!                   [--http2] [--preload]
//!
//! Run it as its own process: with the server in the same process, both
//! would share one runtime and one open-files limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Parser, Debug, Clone)]
#[command(about = "N LL-HLS players against one media playlist")]
struct Args {
    /// The media playlist, e.g. http://127.0.0.1:8080/live/game/360p/index.m3u8
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 100)]
    players: usize,
    /// How long every player plays, after the ramp.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Players start evenly over this many seconds.
    #[arg(long, default_value_t = 2.0)]
    ramp: f64,
    /// HTTP/2 with prior knowledge (one connection per player) instead of
    /// HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// With --http2: this many players share one connection, each its own
    /// streams on it (as a CDN edge multiplexes its viewers' requests to the
    /// origin); at most castline's 100 concurrent streams.
    #[arg(long, default_value_t = 1)]
    per_connection: usize,
    /// Ask for the preload hint beside each blocking reload, on a second
    /// HTTP/1.1 connection per player, and take the part from that answer
    /// (AVPlayer's way; hls.js 1.7 parses hints but does not fetch them).
    #[arg(long)]
    preload: bool,
    /// Always ask for the full playlist, never a delta update (players such
    /// as hls.js ask for `_HLS_skip=YES` where CAN-SKIP-UNTIL allows it).
    #[arg(long)]
    no_skip: bool,
}

/// A player more than this many parts behind the live edge fell behind.
const BEHIND_PARTS: usize = 5;

/// One part as a playlist lists it (borrowing the playlist's text: a
/// reload lists dozens, and a player fetches one).
#[derive(Debug, Clone)]
struct Part<'a> {
    msn: u64,
    idx: u32,
    uri: &'a str,
    /// Unix milliseconds at which the part's media ends.
    end_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct Playlist<'a> {
    parts: Vec<Part<'a>>,
    /// `PART-TARGET`, in milliseconds.
    part_target_ms: Option<f64>,
    hint: Option<(u64, u32, &'a str)>,
    /// The server takes delta updates (`CAN-SKIP-UNTIL`).
    can_skip: bool,
}

/// `.../MSN.PART.m4s` → (msn, part).
fn part_id(uri: &str) -> Option<(u64, u32)> {
    let file = uri.rsplit('/').next()?.strip_suffix(".m4s")?;
    let (m, p) = file.split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?))
}

/// The quoted value after `key` (written with its `="`, e.g. `URI="`).
fn quoted<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// The number after `key` (written with its `=`, e.g. `DURATION=`).
fn number(line: &str, key: &str) -> Option<f64> {
    let start = line.find(key)? + key.len();
    line[start..].split(',').next()?.parse().ok()
}

/// `2027-01-15T08:00:04.000Z` → Unix milliseconds (UTC only, as castline writes it).
fn date_ms(s: &str) -> Option<f64> {
    let (date, time) = s.trim().trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days as f64 * 24.0 + h) * 60.0 + min) * 60_000.0 + sec * 1000.0)
}

fn parse(text: &str) -> Playlist<'_> {
    let mut pl = Playlist::default();
    let mut clock: Option<f64> = None;
    let mut segment_has_parts = false;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            clock = date_ms(d);
        } else if line.starts_with("#EXT-X-PART:") {
            let dur = number(line, "DURATION=").unwrap_or(0.0);
            let (Some(uri), Some(end)) = (quoted(line, "URI=\""), clock.map(|c| c + dur * 1000.0))
            else {
                continue;
            };
            if let Some((msn, idx)) = part_id(uri) {
                pl.parts.push(Part {
                    msn,
                    idx,
                    uri,
                    end_ms: Some(end),
                });
            }
            clock = Some(end);
            segment_has_parts = true;
        } else if let Some(extinf) = line.strip_prefix("#EXTINF:") {
            // A segment without listed parts moves the clock by its duration;
            // one with parts has moved it already (its parts sum to it).
            let dur: f64 = extinf
                .split(',')
                .next()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0.0);
            if !segment_has_parts {
                clock = clock.map(|c| c + dur * 1000.0);
            }
            segment_has_parts = false;
        } else if line.starts_with("#EXT-X-PART-INF:") {
            pl.part_target_ms = number(line, "PART-TARGET=").map(|t| t * 1000.0);
        } else if line.starts_with("#EXT-X-SERVER-CONTROL:") {
            pl.can_skip = line.contains("CAN-SKIP-UNTIL=");
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            if let Some(uri) = quoted(line, "URI=\"") {
                if let Some((m, p)) = part_id(uri) {
                    pl.hint = Some((m, p, uri));
                }
            }
        }
    }
    pl
}

#[derive(Debug)]
enum Fetch {
    /// Status, body (empty for media: only its length is kept), body length,
    /// and what its headers say of its freshness.
    Status(StatusCode, Bytes, u64, Freshness),
    Transport(String),
}

/// What an answer says of its own freshness.
#[derive(Debug, Clone, Copy, Default)]
struct Freshness {
    /// A cache's `Age` beyond the answer's own `max-age`.
    past_max_age: bool,
    /// The answer's `max-age`, in seconds.
    max_age: Option<u64>,
}

fn freshness(headers: &http::HeaderMap) -> Freshness {
    let num = |v: &str| v.trim().parse::<u64>().ok();
    let age = headers
        .get("age")
        .and_then(|v| v.to_str().ok())
        .and_then(num);
    let max_age = headers
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .and_then(|cc| {
            cc.split(',')
                .find_map(|d| d.trim().strip_prefix("max-age=").and_then(num))
        });
    Freshness {
        past_max_age: matches!((age, max_age), (Some(a), Some(m)) if a > m),
        max_age,
    }
}

/// Slack for judging a plain playlist by its content: a cache's
/// whole-second clock (nginx's) may keep an object up to a second past
/// its `max-age`, plus scheduling on a shared machine.
const CONTENT_SLACK_MS: f64 = 1500.0;

/// A plain (non-blocking) playlist whose newest part ended longer ago than
/// its `max-age`, one part and [`CONTENT_SLACK_MS`] allow: a cache served it
/// past its max-age (for caches that send no `Age`, such as nginx).
fn older_than_max_age(pl: &Playlist<'_>, max_age: Option<u64>, now_ms: f64) -> bool {
    let (Some(max_age), Some(newest)) = (max_age, pl.parts.last().and_then(|p| p.end_ms)) else {
        return false;
    };
    let allowed = max_age as f64 * 1000.0 + pl.part_target_ms.unwrap_or(1000.0) + CONTENT_SLACK_MS;
    now_ms - newest > allowed
}

type H2Send = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// An HTTP/2 connection several players share (`--per-connection`), and
/// how many times it was dialled (its generation).
type SharedH2 = Arc<tokio::sync::Mutex<(u64, Option<H2Send>)>>;

/// A connect that takes longer fails (it would hold every player sharing it).
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP connection of a player, reopened when it closes.
struct Conn {
    authority: String,
    http2: bool,
    h1: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
    h2: Option<H2Send>,
    shared: Option<SharedH2>,
    /// The generation of the shared connection `h2` is.
    generation: u64,
}

impl Conn {
    fn new(authority: &str, http2: bool) -> Conn {
        Conn {
            authority: authority.to_string(),
            http2,
            h1: None,
            h2: None,
            shared: None,
            generation: 0,
        }
    }

    /// A player on `shared`: its requests are streams of that connection.
    fn on_shared(authority: &str, shared: SharedH2) -> Conn {
        Conn {
            shared: Some(shared),
            ..Conn::new(authority, true)
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        if let Some(shared) = self.shared.clone() {
            // The first player to find it closed reconnects it for all.
            let mut slot = shared.lock().await;
            if let Some(open) = slot.1.as_ref().filter(|s| !s.is_closed()) {
                self.h2 = Some(open.clone());
                self.generation = slot.0;
                return Ok(());
            }
            let dialed = self.dial().await;
            slot.0 += 1;
            slot.1 = self.h2.clone();
            self.generation = slot.0;
            return dialed;
        }
        self.dial().await
    }

    /// A request on this connection failed: the next one dials anew, and so
    /// do the players sharing it (a connection going away may not say it is
    /// closed yet).
    async fn drop_connection(&mut self) {
        self.h1 = None;
        self.h2 = None;
        if let Some(shared) = &self.shared {
            let mut slot = shared.lock().await;
            if slot.0 == self.generation {
                slot.1 = None;
            }
        }
    }

    async fn dial(&mut self) -> Result<(), String> {
        let connect = tokio::net::TcpStream::connect(&self.authority);
        let tcp = tokio::time::timeout(DIAL_TIMEOUT, connect)
            .await
            .map_err(|_| "connect: timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let io = TokioIo::new(tcp);
        if self.http2 {
            let handshake = hyper::client::conn::http2::handshake(TokioExecutor::new(), io);
            let (send, conn) = tokio::time::timeout(DIAL_TIMEOUT, handshake)
                .await
                .map_err(|_| "h2 handshake: timed out".to_string())?
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            self.h2 = Some(send);
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            self.h1 = Some(send);
        }
        Ok(())
    }

    /// GET `path`; `keep` collects the body (playlists), otherwise it is
    /// only counted (media: no copy into one buffer, as a player's demuxer
    /// would take the chunks as they come).
    async fn get(&mut self, path: &str, keep: bool) -> Fetch {
        for attempt in 0..2 {
            let closed = match (&self.h1, &self.h2) {
                (Some(s), _) => s.is_closed(),
                (_, Some(s)) => s.is_closed(),
                _ => true,
            };
            if closed {
                if let Err(e) = self.connect().await {
                    return Fetch::Transport(e);
                }
            }
            let req = Request::get(path)
                .header("host", &self.authority)
                .header("accept-encoding", "identity")
                .body(Empty::new());
            let Ok(req) = req else {
                return Fetch::Transport("bad request".into());
            };
            let sent = match (&mut self.h1, &mut self.h2) {
                (Some(s), _) => match s.ready().await {
                    Ok(()) => s.send_request(req).await,
                    Err(e) => Err(e),
                },
                (_, Some(s)) => s.send_request(req).await,
                _ => return Fetch::Transport("no connection".into()),
            };
            match sent {
                Ok(resp) => {
                    let status = resp.status();
                    let fresh = freshness(resp.headers());
                    let mut body = resp.into_body();
                    if keep {
                        return match body.collect().await {
                            Ok(b) => {
                                let b = b.to_bytes();
                                Fetch::Status(status, b.clone(), b.len() as u64, fresh)
                            }
                            Err(e) => Fetch::Transport(format!("body: {e}")),
                        };
                    }
                    let mut len = 0u64;
                    while let Some(frame) = body.frame().await {
                        match frame {
                            Ok(f) => len += f.data_ref().map_or(0, |d| d.len() as u64),
                            Err(e) => return Fetch::Transport(format!("body: {e}")),
                        }
                    }
                    return Fetch::Status(status, Bytes::new(), len, fresh);
                }
                // A keep-alive connection the server closed: once more on a new one.
                Err(_) if attempt == 0 => self.drop_connection().await,
                Err(e) => return Fetch::Transport(format!("request: {e}")),
            }
        }
        Fetch::Transport("unreachable".into())
    }
}

#[derive(Default)]
struct PlayerReport {
    /// (msn, part) → (Instant offset in µs, age in ms)
    received: Vec<((u64, u32), u64, Option<f64>)>,
    statuses: BTreeMap<u16, u64>,
    stale: u64,
    /// Plain playlists judged by their content, and those older than their
    /// max-age allows.
    plain_checked: u64,
    plain_too_old: u64,
    transport_errors: u64,
    first_transport_error: Option<String>,
    max_behind: usize,
    requests: u64,
    bytes: u64,
    /// From this player's start to its first part held, in ms: what a
    /// viewer waits for a picture (the join time), however many players
    /// start at once (`--ramp 0`).
    join_ms: Option<f64>,
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn join(dir: &str, uri: &str) -> String {
    format!("{dir}{uri}")
}

async fn player(
    args: Arc<Args>,
    base: Instant,
    authority: String,
    path: String,
    until: Instant,
    shared: Option<SharedH2>,
) -> PlayerReport {
    let joined = Instant::now();
    let mut r = PlayerReport::default();
    let dir = path[..path.rfind('/').map_or(0, |i| i + 1)].to_string();
    let mut conn = match shared {
        Some(s) => Conn::on_shared(&authority, s),
        None => Conn::new(&authority, args.http2),
    };
    let mut hint_conn = (args.preload && !args.http2).then(|| Conn::new(&authority, false));
    let note = |r: &mut PlayerReport, f: &Fetch| {
        r.requests += 1;
        match f {
            Fetch::Status(s, _, len, fresh) => {
                *r.statuses.entry(s.as_u16()).or_default() += 1;
                r.bytes += len;
                r.stale += u64::from(fresh.past_max_age);
            }
            Fetch::Transport(e) => {
                r.transport_errors += 1;
                r.first_transport_error.get_or_insert_with(|| e.clone());
            }
        }
    };
    // The live edge: the plain playlist's preload hint.
    let mut want: Option<(u64, u32)> = None;
    // The preload hint of the last playlist (--preload asks for it).
    let mut hint: Option<(u64, u32, String)> = None;
    let mut skip = false;
    while Instant::now() < until {
        let Some((m, p)) = want else {
            let f = conn.get(&path, true).await;
            note(&mut r, &f);
            match f {
                Fetch::Status(StatusCode::OK, b, _, fresh) => {
                    let pl = parse(std::str::from_utf8(&b).unwrap_or_default());
                    r.plain_checked += 1;
                    r.plain_too_old += u64::from(older_than_max_age(&pl, fresh.max_age, unix_ms()));
                    skip = pl.can_skip && !args.no_skip;
                    want = pl.hint.map(|(m, p, _)| (m, p));
                    hint = pl.hint.map(|(m, p, u)| (m, p, u.to_string()));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
            if want.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        };
        let delta = if skip { "&_HLS_skip=YES" } else { "" };
        let blocking = format!("{path}?_HLS_msn={m}&_HLS_part={p}{delta}");
        // With --preload, the part the last playlist hinted is asked for
        // beside the blocking reload that waits for it (as AVPlayer does):
        // both are answered when the part is complete.
        let (f, hinted) = match (&mut hint_conn, &hint) {
            (Some(hc), Some((hm, hp, uri))) if (*hm, *hp) == (m, p) => {
                let hint_path = join(&dir, uri);
                let timed_part = async {
                    let f = hc.get(&hint_path, false).await;
                    (f, base.elapsed().as_micros() as u64, unix_ms())
                };
                let (f, got) = tokio::join!(conn.get(&blocking, true), timed_part);
                note(&mut r, &got.0);
                (f, Some(got))
            }
            _ => (conn.get(&blocking, true).await, None),
        };
        note(&mut r, &f);
        let Fetch::Status(StatusCode::OK, body, ..) = f else {
            // An error answer or a failed connection: back off, then start
            // again from the live edge.
            want = None;
            hint = None;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let pl = parse(std::str::from_utf8(&body).unwrap_or_default());
        let Some(pos) = pl.parts.iter().position(|x| (x.msn, x.idx) == (m, p)) else {
            // Not listed: gone from the window (fell far behind) or a new
            // timeline; start again from the live edge.
            want = None;
            hint = None;
            continue;
        };
        let part = pl.parts[pos].clone();
        let behind = pl.parts.len() - 1 - pos;
        r.max_behind = r.max_behind.max(behind);
        let held = match hinted {
            Some((Fetch::Status(StatusCode::OK, ..), at, now_ms)) => Some((at, now_ms)),
            // No hint asked for, or its answer failed: the part as listed.
            _ => {
                let f = conn.get(&join(&dir, part.uri), false).await;
                note(&mut r, &f);
                matches!(f, Fetch::Status(StatusCode::OK, ..))
                    .then(|| (base.elapsed().as_micros() as u64, unix_ms()))
            }
        };
        if let Some((at, now_ms)) = held {
            r.join_ms
                .get_or_insert_with(|| joined.elapsed().as_secs_f64() * 1000.0);
            let age = part.end_ms.map(|end| now_ms - end);
            r.received.push(((m, p), at, age));
        }
        // A player at the edge asks for the next hint with the next reload;
        // one behind walks the listed parts first.
        hint = pl
            .hint
            .filter(|_| behind == 0)
            .map(|(m, p, u)| (m, p, u.to_string()));
        want = match pl.parts.get(pos + 1) {
            Some(next) => Some((next.msn, next.idx)),
            None => pl.hint.map(|(m, p, _)| (m, p)),
        };
    }
    r
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let url = args
        .url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--url must be http://"))?;
    let (authority, path) = url.split_at(url.find('/').unwrap_or(url.len()));
    let (authority, path) = (authority.to_string(), path.to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let reports = rt.block_on(async {
        let base = Instant::now();
        let ramp = Duration::from_secs_f64(args.ramp.max(0.0));
        let until = base + ramp + Duration::from_secs(args.seconds);
        let mut tasks = Vec::with_capacity(args.players);
        let per_connection = args.per_connection.clamp(1, 100);
        let mut shared: Option<SharedH2> = None;
        for i in 0..args.players {
            let start = base + ramp.mul_f64(i as f64 / args.players.max(1) as f64);
            let (args, authority, path) = (args.clone(), authority.clone(), path.clone());
            if args.http2 && per_connection > 1 && i % per_connection == 0 {
                shared = Some(SharedH2::default());
            }
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(start.into()).await;
                player(args, base, authority, path, until, shared).await
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.unwrap_or_default());
        }
        out
    });

    // Per part: first and last receipt. Spread counts the parts most players
    // held (during the ramp the late joiners have not arrived yet).
    let mut per_part: HashMap<(u64, u32), (u64, u64, usize)> = HashMap::new();
    let mut ages = Vec::new();
    for r in &reports {
        for (id, at, age) in &r.received {
            let e = per_part.entry(*id).or_insert((*at, *at, 0));
            e.0 = e.0.min(*at);
            e.1 = e.1.max(*at);
            e.2 += 1;
            if let Some(a) = age {
                ages.push(*a);
            }
        }
    }
    let full = (args.players as f64 * 0.9).ceil() as usize;
    let mut spreads: Vec<f64> = per_part
        .values()
        .filter(|(_, _, n)| *n >= full.max(1))
        .map(|(first, last, _)| (last - first) as f64 / 1000.0)
        .collect();
    spreads.sort_by(f64::total_cmp);
    ages.sort_by(f64::total_cmp);
    let mut joins: Vec<f64> = reports.iter().filter_map(|r| r.join_ms).collect();
    joins.sort_by(f64::total_cmp);
    let mut spreads_all: Vec<f64> = per_part
        .values()
        .map(|(first, last, _)| (last - first) as f64 / 1000.0)
        .collect();
    spreads_all.sort_by(f64::total_cmp);
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for r in &reports {
        for (s, n) in &r.statuses {
            *statuses.entry(*s).or_default() += n;
        }
    }
    let non_200: u64 = statuses
        .iter()
        .filter(|(s, _)| **s != 200)
        .map(|(_, n)| n)
        .sum();
    let failed = reports.iter().filter(|r| r.received.is_empty()).count();
    let behind = reports
        .iter()
        .filter(|r| r.max_behind > BEHIND_PARTS)
        .count();
    let elapsed = started.elapsed().as_secs_f64();
    let requests: u64 = reports.iter().map(|r| r.requests).sum();
    let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let summary = serde_json::json!({
        "players": args.players,
        "http2": args.http2,
        "players_per_connection": if args.http2 { args.per_connection.clamp(1, 100) } else { 1 },
        "preload": args.preload,
        "delta_playlists": !args.no_skip,
        "seconds": elapsed,
        "parts_measured": spreads.len(),
        "spread_ms": {
            "p50": percentile(&spreads, 0.5),
            "p99": percentile(&spreads, 0.99),
            "max": spreads.last().copied().unwrap_or(f64::NAN),
        },
        "spread_all_parts_ms": {
            "parts": spreads_all.len(),
            "p50": percentile(&spreads_all, 0.5),
            "p99": percentile(&spreads_all, 0.99),
        },
        "age_ms": { "p50": percentile(&ages, 0.5), "p99": percentile(&ages, 0.99) },
        "join_ms": {
            "p50": percentile(&joins, 0.5),
            "p99": percentile(&joins, 0.99),
            "max": joins.last().copied().unwrap_or(f64::NAN),
        },
        "statuses": statuses,
        "non_200": non_200,
        "served_past_max_age": reports.iter().map(|r| r.stale).sum::<u64>(),
        "plain_playlists_checked": reports.iter().map(|r| r.plain_checked).sum::<u64>(),
        "plain_playlists_older_than_max_age": reports.iter().map(|r| r.plain_too_old).sum::<u64>(),
        "transport_errors": reports.iter().map(|r| r.transport_errors).sum::<u64>(),
        "first_transport_error": reports.iter().find_map(|r| r.first_transport_error.clone()),
        "players_without_a_part": failed,
        "players_fell_behind": behind,
        "requests_per_second": requests as f64 / elapsed,
        "megabits_per_second": bytes as f64 * 8.0 / elapsed / 1e6,
    });
    println!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_get_their_media_end_from_the_program_date_time() {
        let pl = parse(
            "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-MAP:URI=\"e1/init1.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:04.000Z\n#EXTINF:1.00000,\ne1/4.m4s\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"e1/5.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"e1/5.1.m4s\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"e1/5.2.m4s\"\n",
        );
        let t0 = date_ms("2027-01-15T08:00:04.000Z").unwrap();
        assert_eq!(t0, 1_800_000_004_000.0);
        assert_eq!(pl.parts.len(), 2);
        assert_eq!((pl.parts[1].msn, pl.parts[1].idx), (5, 1));
        assert_eq!(pl.parts[0].end_ms, Some(t0 + 1200.0));
        assert_eq!(pl.parts[1].end_ms, Some(t0 + 1400.0));
        assert_eq!(pl.hint.map(|h| (h.0, h.1)), Some((5, 2)));
    }

    #[test]
    fn a_plain_playlist_is_too_old_when_its_newest_part_ended_past_max_age_and_slack() {
        let pl = parse(
            "#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=0.2\n\
             #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:04.000Z\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"e1/5.0.m4s\",INDEPENDENT=YES\n",
        );
        assert_eq!(pl.part_target_ms, Some(200.0));
        let end = date_ms("2027-01-15T08:00:04.200Z").unwrap();
        // max-age 1 s + one part 0.2 s + slack 1.5 s = 2.7 s allowed.
        assert!(!older_than_max_age(&pl, Some(1), end + 2_700.0));
        assert!(older_than_max_age(&pl, Some(1), end + 2_701.0));
        assert!(!older_than_max_age(&pl, None, end + 60_000.0));
    }

    #[test]
    fn an_answer_is_stale_only_when_its_age_passes_its_max_age() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = http::HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, http::HeaderValue::from_static(v));
            }
            m
        };
        let stale = |pairs| freshness(&h(pairs)).past_max_age;
        assert!(stale(&[
            ("age", "2"),
            ("cache-control", "public, max-age=1")
        ]));
        assert!(!stale(&[
            ("age", "1"),
            ("cache-control", "public, max-age=1")
        ]));
        assert!(!stale(&[("cache-control", "public, max-age=1")]));
        assert!(!stale(&[("age", "9"), ("cache-control", "no-store")]));
    }
}
