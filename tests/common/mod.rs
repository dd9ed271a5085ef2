//! Test harness: the real `castline` binary, real `ffmpeg` publishers, real HTTP.
#![allow(dead_code)]

pub mod cache;
pub mod cdn_proxy;
pub mod picture;
pub mod player;
pub mod relay;
pub mod rtmp_client;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    /// 0.0.0.0:0 in role origin (no ingest).
    pub rtmp: SocketAddr,
    /// None when the config turns SRT off.
    pub srt: Option<SocketAddr>,
    /// Role origin: where pushes are taken.
    pub push: Option<SocketAddr>,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    /// castline's log, when started with [`Server::start_logged`].
    log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Start castline on ports it picks itself, with `extra` TOML appended to
    /// a test config (short reconnect grace).
    pub fn start(extra: &str) -> Server {
        Server::start_with_env(extra, &[])
    }

    /// As [`Server::start`], with extra environment variables for castline.
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Server {
        Server::launch(extra, env, false)
    }

    /// As [`Server::start`], with castline's log kept for [`Server::log`].
    pub fn start_logged(extra: &str) -> Server {
        Server::launch(extra, &[], true)
    }

    /// Everything castline has logged so far (with [`Server::start_logged`]).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    fn launch(extra: &str, env: &[(&str, &str)], keep_log: bool) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("castline.toml");
        let base = "[ingest]\nreconnect_grace = 3.0\n";
        let text = if extra.contains("[ingest]") {
            extra.to_string()
        } else {
            format!("{base}{extra}")
        };
        std::fs::write(&cfg, text).expect("write config");
        Server::spawn_in(dir, env, keep_log)
    }

    /// Stop castline (SIGTERM, as Kubernetes does) and start it again on
    /// the same config and data dir, on new ports.
    pub fn restart(&mut self) {
        self.restart_after("-TERM");
    }

    /// As [`Server::restart`], stopped by `sig` (`-KILL`: a crash).
    pub fn restart_after(&mut self, sig: &str) {
        self.signal(sig);
        let start = Instant::now();
        while self.still_running() && start.elapsed() < Duration::from_secs(40) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!self.still_running(), "castline did not exit on SIGTERM");
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().expect("tempdir"));
        *self = Server::spawn_in(dir, &[], self.log.is_some());
    }

    /// Where castline keeps its sessions on disk.
    pub fn sessions_dir(&self) -> PathBuf {
        self._dir.path().join("sessions")
    }

    fn spawn_in(dir: tempfile::TempDir, env: &[(&str, &str)], keep_log: bool) -> Server {
        let cfg = dir.path().join("castline.toml");
        let log = keep_log.then(|| dir.path().join("castline.log"));
        let mut child = serve_command(&cfg)
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "info,srt_protocol=error,srt_tokio=error")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(match &log {
                Some(p) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .expect("log file"),
                ),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("start castline");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut next_line = || {
            lines
                .next()
                .expect("castline printed nothing")
                .expect("read stdout")
        };
        let addr = |line: String, what: &str| -> SocketAddr {
            let prefix = format!("{what} listening on ");
            line.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
                .parse()
                .expect("address")
        };
        // "WHAT listening on ADDR" lines, up to the admin port's.
        let mut ports = std::collections::HashMap::new();
        loop {
            let line = next_line();
            let what = line.split(' ').next().unwrap_or_default().to_string();
            let done = what == "admin";
            ports.insert(what.clone(), addr(line, &what));
            if done {
                break;
            }
        }
        let rtmp = ports
            .get("rtmp")
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (srt, push) = (ports.get("srt").copied(), ports.get("push").copied());
        let (http, admin) = (ports["http"], ports["admin"]);
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Server {
            child,
            rtmp,
            srt,
            push,
            http,
            admin,
            log,
            _dir: dir,
        }
    }

    /// castline's resident set size now, in bytes (Linux /proc).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("castline's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// The value of the Prometheus sample `name` (with its labels, if any).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let prefix = format!("{name} ");
        get(&format!("http://{}/metrics", self.admin))
            .text()
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }

    /// An `srt://` URL for ffmpeg with `streamid` (URL-encoded here) and
    /// extra query parameters (`&passphrase=...`).
    pub fn srt_url(&self, stream_id: &str, extra: &str) -> String {
        let srt = self.srt.expect("castline listens for SRT");
        let id: String = stream_id
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("srt://{srt}?streamid={id}{extra}")
    }

    /// The config file castline was started with.
    pub fn config(&self) -> PathBuf {
        self._dir.path().join("castline.toml")
    }

    /// A signed playback URL for `stream` from `castline sign` (the path it
    /// prints, on this server's address).
    pub fn signed_url(&self, stream: &str, ttl: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_castline"))
            .args(["sign", "--config"])
            .arg(self.config())
            .args(["--stream", stream, "--ttl", ttl])
            .output()
            .expect("castline sign");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let path = &url[url.find("/s/").expect("a signed path")..];
        self.url(path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Send castline a signal (`-TERM`, `-INT`).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    /// castline's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// `castline serve --config CFG` on loopback ports it picks itself.
pub fn serve_command(cfg: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_castline"));
    c.args(["serve", "--config"]).arg(cfg).args([
        "--rtmp-listen",
        "127.0.0.1:0",
        "--srt-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    c
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy)]
pub struct Publish {
    pub gop_frames: u32,
    pub seconds: u32,
    pub video: bool,
    pub audio: bool,
    /// WIDTHxHEIGHT of the test picture.
    pub size: &'static str,
    /// The publisher's x264 preset (a 720p source wants a cheap one here).
    pub preset: &'static str,
    pub bitrate: &'static str,
    /// Also write what is published to this FLV file (ffmpeg's tee muxer).
    pub tee: Option<&'static str>,
    /// The test picture's frame rate: a number or a fraction (`100/7`).
    pub fps: &'static str,
    /// x264's B-frames (OBS sends 2; GStreamer's zerolatency and many
    /// hardware encoders none, so their video is not sent ahead of its time).
    pub bframes: u32,
    /// The lavfi picture source: `testsrc2`, or e.g. `color=c=red`.
    pub picture: &'static str,
    /// Seconds after which the audio input ends while the video goes on.
    pub audio_ends: Option<&'static str>,
}

impl Default for Publish {
    fn default() -> Self {
        Publish {
            gop_frames: 30,
            seconds: 60,
            video: true,
            audio: true,
            size: "320x240",
            preset: "veryfast",
            bitrate: "400k",
            tee: None,
            fps: "30",
            bframes: 2,
            picture: "testsrc2",
            audio_ends: None,
        }
    }
}

/// ffmpeg publishing as OBS would: x264 with B-frames, AAC, FLV over RTMP
/// (or MPEG-TS over SRT for an `srt://` URL).
pub struct Publisher {
    pub child: Child,
}

impl Publisher {
    pub fn start(url: &str, p: Publish) -> Publisher {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error", "-re"]);
        if p.video {
            let sep = if p.picture.contains('=') { ':' } else { '=' };
            let src = format!("{}{sep}size={}:rate={}", p.picture, p.size, p.fps);
            cmd.args(["-f", "lavfi", "-i", &src]);
        }
        if p.audio {
            if let Some(t) = p.audio_ends {
                cmd.args(["-t", t]);
            }
            cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
        }
        let bframes = p.bframes.to_string();
        if p.video {
            let g = p.gop_frames.to_string();
            cmd.args([
                "-c:v",
                "libx264",
                "-preset",
                p.preset,
                "-profile:v",
                "high",
                "-bf",
                &bframes,
                "-g",
                &g,
                "-keyint_min",
                &g,
                "-sc_threshold",
                "0",
                "-b:v",
                p.bitrate,
            ]);
        }
        if p.audio {
            cmd.args(["-c:a", "aac", "-b:a", "64k"]);
        }
        cmd.args(["-t", &p.seconds.to_string()]);
        if p.audio_ends.is_some() {
            // Without audio the muxer would hold the video back for up to
            // 10 s (its default interleaving wait) instead of sending it.
            cmd.args(["-max_interleave_delta", "100000"]);
        }
        match p.tee {
            Some(file) => {
                let outputs = format!("[f=flv]{url}|[f=flv]{file}");
                // tee does not ask encoders for global headers; FLV needs them.
                cmd.args(["-flags", "+global_header", "-map", "0"]);
                if p.video && p.audio {
                    cmd.args(["-map", "1"]);
                }
                cmd.args(["-f", "tee", &outputs])
            }
            // An srt:// URL carries MPEG-TS (as OBS and hardware encoders send it).
            None if url.starts_with("srt://") => cmd.args(["-f", "mpegts", url]),
            None => cmd.args(["-f", "flv", url]),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ffmpeg");
        Publisher { child }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for ffmpeg to exit; returns (success, stderr).
    pub fn wait(mut self, limit: Duration) -> (bool, String) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (status.success(), err);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                return (false, "timed out".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A network drop: the publisher dies without unpublishing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn request(method: &str, url: &str) -> Reply {
    request_with(method, url, &[])
}

/// A request with extra headers (`Range`, `If-None-Match`, ...).
pub fn request_with(method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let start = Instant::now();
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or("").to_string();
            (n, v)
        })
        .collect();
    let mut body = Vec::new();
    resp.into_reader()
        .take(64 << 20)
        .read_to_end(&mut body)
        .expect("body");
    Reply {
        status,
        headers,
        body,
        elapsed: start.elapsed(),
    }
}

pub fn get(url: &str) -> Reply {
    request("GET", url)
}

/// Poll `url` until it answers 200 (or panic after `limit`).
pub fn wait_for(url: &str, limit: Duration) -> Reply {
    poll(limit, || {
        let r = get(url);
        if r.status == 200 {
            Ok(r)
        } else {
            Err(format!("{url} still {}", r.status))
        }
    })
}

/// The tests' one way to wait: call `check` every 200 ms until it gives
/// `Ok`, for at most `limit`; past it, panic with what its last `Err` said.
pub fn poll<T>(limit: Duration, check: impl FnMut() -> Result<T, String>) -> T {
    poll_every(limit, Duration::from_millis(200), check)
}

/// [`poll`], calling `check` every `every`.
pub fn poll_every<T>(
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(why) => assert!(start.elapsed() < limit, "after {limit:?}: {why}"),
        }
        std::thread::sleep(every);
    }
}

/// A media playlist, parsed just enough to check LL-HLS rules.
#[derive(Debug, Default, Clone)]
pub struct Media {
    pub version: u32,
    pub target_duration: f64,
    pub server_control: String,
    pub part_target: f64,
    pub media_sequence: u64,
    pub maps: Vec<String>,
    pub pdt: Vec<String>,
    /// msn → its EXT-X-PROGRAM-DATE-TIME, for every segment that has one
    /// (complete, or still only parts).
    pub dates: std::collections::BTreeMap<u64, String>,
    pub discontinuities: usize,
    /// The MSNs that follow an EXT-X-DISCONTINUITY.
    pub discontinuity_msns: Vec<u64>,
    /// (uri, duration) of complete segments.
    pub segments: Vec<(String, f64)>,
    /// (uri, duration, independent)
    pub parts: Vec<(String, f64, bool)>,
    pub preload_hint: Option<String>,
    pub endlist: bool,
    pub skip: Option<u64>,
    pub text: String,
}

pub fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=");
    line.split([':', ','])
        .find_map(|kv| kv.strip_prefix(key.as_str()))
        .map(|v| v.trim_matches('"'))
}

pub fn parse_media(text: &str) -> Media {
    let mut m = Media {
        text: text.to_string(),
        ..Default::default()
    };
    let mut extinf: Option<f64> = None;
    // Tags that apply to the next segment, whose MSN its first URI names.
    let mut date: Option<String> = None;
    let mut discontinuity = false;
    for line in text.lines() {
        let uri = if line.starts_with("#EXT-X-PART:") {
            attr(line, "URI")
        } else if !line.starts_with('#') && !line.is_empty() {
            Some(line)
        } else {
            None
        };
        if let Some(msn) = uri.map(msn_of) {
            if let Some(d) = date.take() {
                m.dates.insert(msn, d);
            }
            if std::mem::take(&mut discontinuity) {
                m.discontinuity_msns.push(msn);
            }
        }
        if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
            m.version = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            m.target_duration = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            m.server_control = v.to_string();
        } else if line.starts_with("#EXT-X-PART-INF:") {
            m.part_target = attr(line, "PART-TARGET").unwrap().parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            m.media_sequence = v.parse().unwrap();
        } else if line.starts_with("#EXT-X-MAP:") {
            m.maps.push(attr(line, "URI").unwrap().to_string());
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            m.pdt.push(v.to_string());
            date = Some(v.to_string());
        } else if line == "#EXT-X-DISCONTINUITY" {
            m.discontinuities += 1;
            discontinuity = true;
        } else if line.starts_with("#EXT-X-PART:") {
            let d = attr(line, "DURATION").unwrap().parse().unwrap();
            m.parts.push((
                attr(line, "URI").unwrap().to_string(),
                d,
                line.contains("INDEPENDENT=YES"),
            ));
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            m.preload_hint = attr(line, "URI").map(str::to_string);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            extinf = Some(v.trim_end_matches(',').parse().unwrap());
        } else if line == "#EXT-X-ENDLIST" {
            m.endlist = true;
        } else if line.starts_with("#EXT-X-SKIP:") {
            m.skip = attr(line, "SKIPPED-SEGMENTS").map(|v| v.parse().unwrap());
        } else if !line.starts_with('#') && !line.is_empty() {
            m.segments
                .push((line.to_string(), extinf.take().expect("EXTINF before URI")));
        }
    }
    m
}

/// Poll the media playlist `path` until it ends (ENDLIST), for up to 30 s.
pub fn wait_for_endlist(server: &Server, path: &str) -> Media {
    wait_for_endlist_within(server, path, Duration::from_secs(30))
}

/// Poll the media playlist `path` until it ends (ENDLIST), for up to `limit`.
pub fn wait_for_endlist_within(server: &Server, path: &str, limit: Duration) -> Media {
    poll(limit, || {
        let m = parse_media(&get(&server.url(path)).text());
        if m.endlist {
            Ok(m)
        } else {
            Err(format!("no ENDLIST: {}", m.text))
        }
    })
}

/// The msn of a segment or part URI like `epoch/12.m4s` or `epoch/12.3.m4s`.
/// `…/MSN.PART.m4s` → (MSN, PART).
pub fn part_of(uri: &str) -> (u64, u32) {
    let stem = uri.rsplit('/').next().unwrap().trim_end_matches(".m4s");
    let (m, p) = stem.split_once('.').expect("MSN.PART.m4s");
    (m.parse().unwrap(), p.parse().unwrap())
}

pub fn msn_of(uri: &str) -> u64 {
    uri.rsplit('/')
        .next()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Download init + every listed segment of a media playlist into one file.
pub fn download(server: &Server, stream: &str, rendition: &str, m: &Media, path: &PathBuf) {
    let base = server.url(&format!("/live/{stream}/{rendition}/"));
    let mut bytes = Vec::new();
    let mut current_map = None;
    // The playlist lists one MAP per init change; the download follows the first.
    if let Some(map) = m.maps.first() {
        bytes.extend(get(&format!("{base}{map}")).body);
        current_map = Some(map.clone());
    }
    assert!(current_map.is_some(), "playlist has no EXT-X-MAP");
    for (uri, _) in &m.segments {
        let r = get(&format!("{base}{uri}"));
        assert_eq!(r.status, 200, "{uri}");
        bytes.extend(r.body);
    }
    std::fs::write(path, bytes).unwrap();
}

/// The segments of `m` grouped under the EXT-X-MAP that applies to them,
/// in playlist order: (init URI, segment URIs).
pub fn map_groups(m: &Media) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut lines = m.text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:") {
            let uri = attr(rest, "URI").unwrap_or_default().to_string();
            groups.push((uri, Vec::new()));
        } else if line.starts_with("#EXTINF") {
            if let (Some(uri), Some(g)) = (lines.next(), groups.last_mut()) {
                g.1.push(uri.to_string());
            }
        }
    }
    groups.retain(|(_, segments)| !segments.is_empty());
    groups
}

/// Download init + segments of `m` into a temporary file (removed on drop) and
/// assert that ffmpeg decodes all of it without a single error. A playlist
/// whose init changes (a reconnect with other settings, the slate) is
/// decoded one init at a time; the file returned holds the first.
pub fn assert_decodes(
    server: &Server,
    stream: &str,
    rendition: &str,
    m: &Media,
) -> tempfile::TempPath {
    let base = server.url(&format!("/live/{stream}/{rendition}/"));
    let mut first = None;
    for (map, segments) in map_groups(m) {
        let path = tempfile::Builder::new()
            .suffix(".mp4")
            .tempfile()
            .expect("temp file")
            .into_temp_path();
        let mut bytes = get(&format!("{base}{map}")).body;
        for uri in &segments {
            let r = get(&format!("{base}{uri}"));
            assert_eq!(r.status, 200, "{uri}");
            bytes.extend(r.body);
        }
        std::fs::write(&path, bytes).unwrap();
        let errors = decode_errors(&path.to_path_buf());
        assert!(
            errors.is_empty(),
            "ffmpeg reported errors decoding what castline served for {stream}/{rendition} under {map}: {errors}"
        );
        first.get_or_insert(path);
    }
    first.expect("the playlist lists segments")
}

/// ffmpeg decodes the file fully; returns its stderr at `-v error` (empty when clean).
pub fn decode_errors(path: &PathBuf) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// ffprobe a value for each stream: e.g. ("codec_type", "start_time").
pub fn probe_streams(path: &PathBuf) -> Vec<(String, f64, f64)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,start_time,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((
                f.first()?.to_string(),
                f.get(1)?.parse().ok()?,
                f.get(2)?.parse().unwrap_or(0.0),
            ))
        })
        .collect()
}

/// Wait until the passthrough rendition lists at least `segments` complete segments.
pub fn wait_segments(server: &Server, stream: &str, segments: usize, limit: Duration) -> Media {
    wait_rendition(server, stream, "source", segments, limit)
}

/// Wait until a rendition's media playlist lists at least `segments` complete segments.
pub fn wait_rendition(
    server: &Server,
    stream: &str,
    rendition: &str,
    segments: usize,
    limit: Duration,
) -> Media {
    let url = server.url(&format!("/live/{stream}/{rendition}/index.m3u8"));
    wait_media_at(&url, segments, limit)
}

/// Wait until the media playlist at `url` lists at least `segments` complete
/// segments (or has ended).
pub fn wait_media_at(url: &str, segments: usize, limit: Duration) -> Media {
    poll(limit, || {
        let r = get(url);
        if r.status == 200 {
            let m = parse_media(&r.text());
            if m.segments.len() >= segments || m.endlist {
                return Ok(m);
            }
        }
        Err(format!("{url}: fewer than {segments} segments"))
    })
}

/// The first video frame of `init` + `segment`: (presentation time in
/// seconds, the packet is a sync sample, the decoded frame is a key I-frame).
pub fn first_video_frame(init: &[u8], segment: &[u8]) -> (f64, bool, bool) {
    let path = tempfile::Builder::new()
        .suffix(".mp4")
        .tempfile()
        .expect("temp file")
        .into_temp_path();
    let mut bytes = init.to_vec();
    bytes.extend_from_slice(segment);
    std::fs::write(&path, bytes).unwrap();
    let probe = |entries: &str| {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v",
                "-show_entries",
                entries,
            ])
            .args(["-read_intervals", "%+#1", "-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end_matches(',')
            .to_string()
    };
    let packet = probe("packet=pts_time,flags");
    let frame = probe("frame=key_frame,pict_type");
    let mut p = packet.split(',');
    let pts = p.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    let sync = p.next().is_some_and(|f| f.starts_with('K'));
    (pts, sync, frame == "1,I")
}

/// The decode timeline of fragmented MP4 media as castline wrote it: for
/// every moof in `media` (an init followed by segments or parts), its first
/// track's tfdt and the sum of its trun sample durations. (ffprobe's packet
/// dts and duration are its own reconstruction, not the boxes.)
pub fn fragment_timeline(media: &[u8]) -> Vec<(u64, u64)> {
    use mp4_atom::Decode;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= media.len() {
        let size = u32::from_be_bytes(media[at..at + 4].try_into().unwrap()) as usize;
        assert!(size >= 8 && at + size <= media.len(), "bad box at {at}");
        if &media[at + 4..at + 8] == b"moof" {
            let moof = mp4_atom::Moof::decode(&mut &media[at..at + size]).expect("moof");
            let traf = &moof.traf[0];
            let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
            let duration: u64 = traf
                .trun
                .iter()
                .flat_map(|t| t.samples.iter())
                .map(|e| e.duration.expect("explicit sample duration") as u64)
                .sum();
            out.push((tfdt, duration));
        }
        at += size;
    }
    out
}

/// Where a fragment does not start at the end of the one before:
/// (its tfdt, the previous one's end).
pub fn fragment_holes(timeline: &[(u64, u64)]) -> Vec<(u64, u64)> {
    timeline
        .windows(2)
        .filter(|w| w[1].0 != w[0].0 + w[0].1)
        .map(|w| (w[1].0, w[0].0 + w[0].1))
        .collect()
}

/// ffprobe's packets of one stream type ("a" or "v"): (pts, duration) in ticks.
pub fn packets(path: &std::path::Path, stream: &str) -> Vec<(i64, Option<i64>)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=pts,duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            let pts = f.next()?.parse().ok()?;
            Some((pts, f.next().and_then(|d| d.parse().ok())))
        })
        .collect()
}

/// castline serving TLS with a fresh self-signed certificate (under `dir`):
/// the server and the certificate to trust.
pub fn tls_server(dir: &std::path::Path) -> (Server, PathBuf) {
    let (cert, key) = test_certificate(dir);
    let server = Server::start(&format!(
        "[ingest]\nreconnect_grace = 3.0\n[origin]\ntls_cert = {:?}\ntls_key = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    ));
    (server, cert)
}

/// A self-signed certificate for 127.0.0.1 (openssl), valid for a day:
/// (certificate, key) under `dir`.
pub fn test_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl made no test certificate");
    (cert, key)
}

/// Wait until `rendition` lists its `n`th discontinuity and `past` segments
/// after it.
pub fn wait_discontinuities(
    server: &Server,
    stream: &str,
    rendition: &str,
    n: usize,
    past: u64,
) -> Media {
    poll(Duration::from_secs(30), || {
        let m = parse_media(
            &get(&server.url(&format!("/live/{stream}/{rendition}/index.m3u8"))).text(),
        );
        let last = m.discontinuity_msns.get(n - 1).copied();
        match (last, m.segments.last()) {
            (Some(d), Some((u, _))) if msn_of(u) >= d + past => Ok(m),
            _ => Err(format!(
                "waiting for discontinuity {n} and {past} segments:\n{}",
                m.text
            )),
        }
    })
}

/// DESIGN.md's one timeline, over media playlists of one stream read at
/// about the same moment: each segment at most TARGETDURATION (EXTINF
/// rounded, RFC 8216 4.4.3.1); MSNs named by position (no number skipped);
/// and over the MSNs every rendition lists, the same segments, the same
/// EXT-X-PROGRAM-DATE-TIME and the same discontinuities everywhere (a date
/// a player derives from EXTINFs may differ by up to one video `frame`,
/// seconds, and one AAC frame: each rendition's segment opens with its first
/// frame at or after the cut).
/// Returns how many MSNs every rendition lists.
pub fn assert_one_timeline(renditions: &[(&str, &Media)], frame: f64) -> usize {
    for (name, m) in renditions {
        for (uri, d) in &m.segments {
            assert!(
                d.round() <= m.target_duration,
                "{name}: {uri} lasts {d} s under TARGETDURATION {}:\n{}",
                m.target_duration,
                m.text
            );
        }
        let first = m.media_sequence + m.skip.unwrap_or(0);
        for (i, (uri, _)) in m.segments.iter().enumerate() {
            assert_eq!(
                msn_of(uri),
                first + i as u64,
                "{name}: segment {uri} is not numbered by its position (an MSN was skipped):\n{}",
                m.text
            );
        }
    }
    let complete = |m: &Media| -> Vec<u64> { m.segments.iter().map(|(u, _)| msn_of(u)).collect() };
    let lo = renditions
        .iter()
        .filter_map(|(_, m)| complete(m).first().copied())
        .max()
        .expect("segments listed");
    let hi = renditions
        .iter()
        .filter_map(|(_, m)| complete(m).last().copied())
        .min()
        .expect("segments listed");
    let (first_name, first) = renditions[0];
    for (name, m) in renditions {
        let listed: Vec<u64> = complete(m)
            .into_iter()
            .filter(|n| (lo..=hi).contains(n))
            .collect();
        assert_eq!(
            listed,
            (lo..=hi).collect::<Vec<_>>(),
            "{name} lists other segments than the rest:\n{}",
            m.text
        );
        let (dates, first_dates) = (implied_dates(m), implied_dates(first));
        for msn in lo..=hi {
            if let (Some(a), Some(b)) = (m.dates.get(&msn), first.dates.get(&msn)) {
                assert_eq!(
                    a, b,
                    "segment {msn}: PROGRAM-DATE-TIME differs between {first_name} and {name}:\n{}\n{}",
                    first.text, m.text
                );
            }
            // Where only one lists the tag: the date its EXTINFs imply, within a frame.
            let (a, b) = (dates[&msn], first_dates[&msn]);
            assert!(
                (a - b).abs() <= frame + 1024.0 / 48_000.0 + 0.001,
                "segment {msn} is dated {a} in {name} and {b} in {first_name}:\n{}\n{}",
                m.text,
                first.text
            );
        }
        let cuts = |m: &Media| -> Vec<u64> {
            m.discontinuity_msns
                .iter()
                .copied()
                .filter(|n| (lo..=hi).contains(n))
                .collect()
        };
        assert_eq!(
            cuts(m),
            cuts(first),
            "discontinuities differ between {first_name} and {name}:\n{}\n{}",
            first.text,
            m.text
        );
    }
    (hi + 1).saturating_sub(lo) as usize
}

/// msn → date (Unix seconds) of every complete segment: its own
/// EXT-X-PROGRAM-DATE-TIME, or the last one plus the EXTINFs since.
pub fn implied_dates(m: &Media) -> std::collections::BTreeMap<u64, f64> {
    let mut out = std::collections::BTreeMap::new();
    let mut next: Option<f64> = None;
    for (uri, d) in &m.segments {
        let msn = msn_of(uri);
        if let Some(text) = m.dates.get(&msn) {
            let t = humantime::parse_rfc3339(text)
                .unwrap_or_else(|e| panic!("PROGRAM-DATE-TIME {text}: {e}"));
            next = Some(
                t.duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64(),
            );
        }
        let at = next.expect("the first segment listed carries PROGRAM-DATE-TIME");
        out.insert(msn, at);
        next = Some(at + d);
    }
    out
}
