#!/usr/bin/env node
// Headless-Chromium LL-HLS playback checker for castline.
//
// usage: node play.mjs <multivariant-url> <seconds> [start-level]
//   start-level: hls.js startLevel (0 = the lowest bitrate; ABR then climbs).
//   PLAYER=shaka: Shaka Player (npm shaka-player) instead of hls.js.
//
// Serves a tiny page (plus the player from node_modules) on 127.0.0.1:<random>,
// opens it in /usr/bin/chromium through playwright-core, plays <url> with
// hls.js (or Shaka) in low-latency mode for <seconds>, then prints ONE line of JSON:
//   {"started":bool,"currentTime":n,"fatalErrors":[...],"nonFatalErrors":[...],
//    "partsLoaded":n,"latency":n, ...extra diagnostics}
// Exit codes: 0 ok (started && playedSeconds >= seconds*0.5 && no fatal errors),
//             1 check failed, 2 hard timeout / usage / setup error (then the
//             JSON line is {"started":false,"setupError":"..."}).
// Diagnostics go to stderr only; stdout carries just the JSON line.
// PLAYER_IGNORE_TLS_ERRORS=1 accepts a self-signed origin certificate.

import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HLS_JS = path.join(HERE, "node_modules", "hls.js", "dist", "hls.min.js");
const SHAKA_JS = path.join(HERE, "node_modules", "shaka-player", "dist", "shaka-player.compiled.js");
const PLAYER = process.env.PLAYER || "hlsjs";
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const MAX_ERRORS_KEPT = 50;

function die(code, msg) {
  process.stderr.write(`play.mjs: ${msg}\n`);
  process.exit(code);
}

const [srcUrl, secondsArg, startLevelArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
if (!srcUrl || !Number.isFinite(seconds) || seconds <= 0) {
  die(2, "usage: node play.mjs <multivariant-url> <seconds>");
}
if (PLAYER !== "hlsjs" && PLAYER !== "shaka") die(2, `PLAYER=${PLAYER}: hlsjs or shaka`);
// PLAYER_DEBUG with Shaka: its debug build, which can log (see the page).
const PLAYER_JS = PLAYER !== "shaka" ? HLS_JS
  : process.env.PLAYER_DEBUG ? SHAKA_JS.replace(".compiled.js", ".compiled.debug.js") : SHAKA_JS;
if (!fs.existsSync(PLAYER_JS)) die(2, `missing ${PLAYER_JS}; run npm install in ${HERE}`);

// Chromium's first start on a fresh machine pages in its whole binary and
// builds its caches: give it a minute, apart from the playback time.
const LAUNCH_TIMEOUT_S = 60;
// Hard overall timeout: whatever hangs (browser launch, page, close), we leave.
const HARD_TIMEOUT_S = seconds + LAUNCH_TIMEOUT_S + 30;
const hardTimer = setTimeout(() => {
  setupFailure(`hard timeout after ${HARD_TIMEOUT_S}s (playback check did not complete)`);
  process.exit(2);
}, HARD_TIMEOUT_S * 1000);

// A failure of the harness itself (browser launch, page load, hang) still
// prints one JSON line, so the caller reports it instead of guessing.
let printed = false;
function setupFailure(msg) {
  process.stderr.write(`play.mjs: ${msg}\n`);
  if (!printed) {
    printed = true;
    process.stdout.write(JSON.stringify({ started: false, setupError: msg }) + "\n");
  }
}

// The video element's events, the same for every player page (which defines
// S, video and stallInfo()): start, stalls after the start (the first 20, with
// the page's stallInfo()), the time spent stalled, the furthest playhead, errors.
const VIDEO_EVENTS = `
  S.stalledMs = 0; S.waitingSince = null;
  video.addEventListener("playing", function () {
    S.playingEvents++;
    if (S.firstPlayingTime === null) { S.firstPlayingTime = video.currentTime; S.startedAt = performance.now() / 1000; }
    if (S.waitingSince !== null) { S.stalledMs += performance.now() - S.waitingSince; S.waitingSince = null; }
  });
  video.addEventListener("waiting", function () {
    S.waitingEvents++;
    if (S.firstPlayingTime === null) return;
    S.stallsAfterStart++;
    if (S.waitingSince === null) S.waitingSince = performance.now();
    if (S.stalls.length < 20) {
      var o = stallInfo();
      o.t = Math.round(performance.now()) / 1000; o.currentTime = video.currentTime;
      S.stalls.push(o);
    }
  });
  video.addEventListener("timeupdate", function () {
    if (video.currentTime > S.maxCurrentTime) S.maxCurrentTime = video.currentTime;
  });
  video.addEventListener("error", function () {
    var e = video.error;
    S.mediaError = e ? { code: e.code, message: e.message } : { code: null };
  });
`;

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>castline player check</title></head>
<body>
<video id="v" muted playsinline autoplay></video>
<script>
// Each SourceBuffer hls.js makes, by MIME type, so a stall can show the
// ranges of each track (the element's ranges are their intersection).
window.__sourceBuffers = [];
(function () {
  var add = MediaSource.prototype.addSourceBuffer;
  MediaSource.prototype.addSourceBuffer = function (type) {
    var sb = add.call(this, type);
    window.__sourceBuffers.push({ type: type, sb: sb });
    return sb;
  };
})();
</script>
<script src="/hls.min.js"></script>
<script>
(function () {
  var S = window.__S = {
    hlsVersion: (window.Hls && Hls.version) || null,
    supported: false,
    playingEvents: 0,
    firstPlayingTime: null,     // video.currentTime at first 'playing'
    maxCurrentTime: 0,
    fatalErrors: [], nonFatalErrors: [], nonFatalCount: 0,
    fragsLoaded: 0, partsLoaded: 0,
    levels: null, mediaError: null, playRejected: null, waitingEvents: 0,
    stallsAfterStart: 0, stalls: [], levelSwitches: [], bufferedLevels: [], audioTracks: 0,
    // Content steering: host of each loaded fragment or part (counts, and
    // the order in which hosts took over), steering manifests loaded.
    fragHosts: {}, hostOrder: [], steeringLoads: 0,
  };
  function errInfo(d) {
    var o = { type: d.type, details: d.details, fatal: !!d.fatal };
    if (d.reason) o.reason = String(d.reason);
    if (d.error && d.error.message) o.error = String(d.error.message);
    if (d.err && d.err.message) o.error = String(d.err.message);
    var url = (d.part && d.part.url) || (d.frag && d.frag.url) || d.url ||
              (d.context && d.context.url);
    if (url) o.url = url;
    if (d.frag && d.frag.sn !== undefined) o.sn = d.frag.sn;
    if (d.part && d.part.index !== undefined) o.part = d.part.index;
    if (d.response && d.response.code !== undefined) o.httpCode = d.response.code;
    if (d.mimeType) o.mimeType = d.mimeType;
    if (d.sourceBufferName) o.sourceBuffer = d.sourceBufferName;
    if (d.buffer !== undefined) o.buffer = d.buffer;
    o.t = Math.round(performance.now()) / 1000;
    return o;
  }
  var src = new URLSearchParams(location.search).get("src");
  var video = document.getElementById("v");
  video.muted = true;
  // Where each stall after the start happened: how much was buffered ahead
  // of the playhead, and hls.js's latency then.
  function stallInfo() {
    var ahead = null, b = video.buffered;
    for (var i = 0; i < b.length; i++) {
      if (b.start(i) <= video.currentTime + 0.05 && video.currentTime <= b.end(i)) ahead = b.end(i) - video.currentTime;
    }
    return { bufferedAhead: ahead, latency: window.__hls ? window.__hls.latency : null, buffered: buffers() };
  }
  // The ranges in each SourceBuffer, keyed by its MIME type's first word.
  function buffers() {
    var out = {};
    window.__sourceBuffers.forEach(function (e) {
      var r = [];
      try {
        for (var i = 0; i < e.sb.buffered.length; i++) r.push([Math.round(e.sb.buffered.start(i) * 1000) / 1000, Math.round(e.sb.buffered.end(i) * 1000) / 1000]);
      } catch (err) { r = String(err); }
      out[e.type.split(/[/;]/)[0]] = r;
    });
    return out;
  }
  ${VIDEO_EVENTS}
  if (!window.Hls || !Hls.isSupported()) {
    S.fatalErrors.push({ type: "setup", details: window.Hls ? "Hls.isSupported() == false" : "hls.js not loaded", fatal: true });
    return;
  }
  S.supported = true;
  var params = new URLSearchParams(location.search);
  var config = { lowLatencyMode: true };
  if (params.get("debug") !== null) config.debug = true;
  // config=JSON (PLAYER_HLS_CONFIG): more hls.js settings, e.g. {"maxLiveSyncPlaybackRate":1.5}.
  if (params.get("config") !== null) Object.assign(config, JSON.parse(params.get("config")));
  if (params.get("startLevel") !== null) {
    // Really start there: no bandwidth test fragment that could switch away first.
    config.startLevel = Number(params.get("startLevel"));
    config.testBandwidth = false;
  }
  var hls = window.__hls = new Hls(config);
  // cap=N: ABR never above level N (PLAYER_LEVEL_CAP; the browser then decodes less).
  if (params.get("cap") !== null) hls.autoLevelCapping = Number(params.get("cap"));
  hls.on(Hls.Events.LEVEL_SWITCHED, function (ev, d) { S.levelSwitches.push(d.level); });
  hls.on(Hls.Events.FRAG_BUFFERED, function (ev, d) {
    var l = d.frag && d.frag.type === "main" ? d.frag.level : undefined;
    if (l !== undefined && S.bufferedLevels.indexOf(l) < 0) S.bufferedLevels.push(l);
  });
  hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, function (ev, d) {
    S.audioTracks = (d.audioTracks || []).length;
  });
  hls.on(Hls.Events.ERROR, function (ev, d) {
    var o = errInfo(d);
    if (d.fatal) { S.fatalErrors.push(o); return; }
    S.nonFatalCount++;
    if (S.nonFatalErrors.length < ${MAX_ERRORS_KEPT}) S.nonFatalErrors.push(o);
  });
  hls.on(Hls.Events.FRAG_LOADED, function (ev, d) {
    S.fragsLoaded++;
    if (d.part) S.partsLoaded++;
    var url = (d.part && d.part.url) || (d.frag && d.frag.url);
    if (url) {
      var host = new URL(url).host;
      S.fragHosts[host] = (S.fragHosts[host] || 0) + 1;
      if (S.hostOrder[S.hostOrder.length - 1] !== host) S.hostOrder.push(host);
    }
  });
  hls.on(Hls.Events.STEERING_MANIFEST_LOADED, function (ev, d) {
    S.steeringLoads++;
    var p = d.steeringManifest && d.steeringManifest["PATHWAY-PRIORITY"];
    S.steeringLast = (p || []).join(",") + " @ " + d.url;
  });
  hls.on(Hls.Events.MANIFEST_PARSED, function (ev, d) {
    S.levels = (d.levels || []).map(function (l) {
      return { bitrate: l.bitrate, width: l.width, height: l.height,
               codecs: [l.videoCodec, l.audioCodec].filter(Boolean).join(",") };
    });
    var p = video.play();
    if (p && p.catch) p.catch(function (e) { S.playRejected = String(e && e.message || e); });
  });
  hls.loadSource(src);
  hls.attachMedia(video);
  var p = video.play();
  if (p && p.catch) p.catch(function (e) { /* retried after MANIFEST_PARSED */ });
})();
</script>
</body></html>`;


// The same checks with Shaka Player: the same __S fields, plus Shaka's own
// view (its stall and gap-jump counters, live latency, buffered ranges per
// SourceBuffer at each waiting and gap jump) in __shakaSnap().
const SHAKA_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>castline player check (Shaka)</title></head>
<body>
<video id="v" muted playsinline autoplay></video>
<script src="/shaka.js"></script>
<script>
(function () {
  var S = window.__S = {
    hlsVersion: null, shakaVersion: (window.shaka && shaka.Player.version) || null,
    supported: false, playingEvents: 0, firstPlayingTime: null, maxCurrentTime: 0,
    fatalErrors: [], nonFatalErrors: [], nonFatalCount: 0,
    fragsLoaded: 0, partsLoaded: 0, levels: null, mediaError: null, playRejected: null,
    waitingEvents: 0, stallsAfterStart: 0, stalls: [], levelSwitches: [], bufferedLevels: [],
    audioTracks: 0, fragHosts: {}, hostOrder: [], steeringLoads: 0, gaps: [], startedAt: null,
  };
  var video = document.getElementById("v");
  video.muted = true;
  var player = null;
  function ranges(list) {
    return (list || []).map(function (r) { return [Math.round(r.start * 1000) / 1000, Math.round(r.end * 1000) / 1000]; });
  }
  function buffers() {
    if (!player) return null;
    var b = player.getBufferedInfo();
    return { audio: ranges(b.audio), video: ranges(b.video) };
  }
  // Where each stall after the start happened: the ranges in each SourceBuffer.
  function stallInfo() { return { buffered: buffers() }; }
  ${VIDEO_EVENTS}
  if (!window.shaka) { S.fatalErrors.push({ type: "setup", details: "shaka not loaded", fatal: true }); return; }
  shaka.polyfill.installAll();
  if (new URLSearchParams(location.search).get("debug") !== null && shaka.log && shaka.log.setLevel) {
    shaka.log.setLevel(shaka.log.Level[new URLSearchParams(location.search).get("level") || "V1"]);
  }
  if (!shaka.Player.isBrowserSupported()) { S.fatalErrors.push({ type: "setup", details: "browser not supported", fatal: true }); return; }
  S.supported = true;
  player = window.__shaka = new shaka.Player();
  var config = { streaming: { lowLatencyMode: true } };
  var params = new URLSearchParams(location.search);
  // config=JSON (PLAYER_SHAKA_CONFIG): more Shaka settings.
  if (params.get("config") !== null) config = Object.assign(config, JSON.parse(params.get("config")));
  player.configure(config);
  player.addEventListener("error", function (ev) {
    var d = ev.detail || {};
    var o = { type: "shaka", details: String(d.code), category: d.category, fatal: d.severity === 2,
              data: JSON.stringify(d.data || []).slice(0, 300), t: Math.round(performance.now()) / 1000 };
    if (o.fatal) { S.fatalErrors.push(o); return; }
    S.nonFatalCount++;
    if (S.nonFatalErrors.length < ${MAX_ERRORS_KEPT}) S.nonFatalErrors.push(o);
  });
  player.addEventListener("gapjumped", function () {
    if (S.gaps.length < 40) S.gaps.push({ t: Math.round(performance.now()) / 1000, currentTime: video.currentTime, buffered: buffers() });
  });
  player.addEventListener("adaptation", function () {
    var v = player.getVariantTracks().filter(function (t) { return t.active; })[0];
    if (v) { S.levelSwitches.push(v.height); if (S.bufferedLevels.indexOf(v.height) < 0) S.bufferedLevels.push(v.height); }
  });
  player.getNetworkingEngine().registerResponseFilter(function (type, response) {
    if (type === shaka.net.NetworkingEngine.RequestType.SEGMENT) {
      S.fragsLoaded++;
      if (/\\.\\d+\\.m4s/.test(response.uri)) S.partsLoaded++;
      var host = new URL(response.uri).host;
      S.fragHosts[host] = (S.fragHosts[host] || 0) + 1;
      if (S.hostOrder[S.hostOrder.length - 1] !== host) S.hostOrder.push(host);
    }
  });
  var src = params.get("src");
  player.attach(video).then(function () { return player.load(src); }).then(function () {
    S.levels = player.getVariantTracks().map(function (t) {
      return { bitrate: t.bandwidth, width: t.width, height: t.height, codecs: t.codecs };
    });
    S.audioTracks = player.getAudioTracks ? player.getAudioTracks().length : 0;
    var first = player.getVariantTracks().filter(function (t) { return t.active; })[0];
    if (first && S.levelSwitches.length === 0) { S.levelSwitches.push(first.height); S.bufferedLevels.push(first.height); }
    // switchAt=S (PLAYER_SWITCH_AT): S seconds after the start, switch to the
    // tallest rung by hand (Shaka's own ABR, measuring blocked part requests,
    // may take long to climb), keeping what is buffered.
    var switchAt = params.get("switchAt");
    if (switchAt !== null) {
      setTimeout(function () {
        var top = player.getVariantTracks().sort(function (a, b) { return b.height - a.height; })[0];
        player.configure({ abr: { enabled: false } });
        player.selectVariantTrack(top, false);
        S.levelSwitches.push(top.height);
        if (S.bufferedLevels.indexOf(top.height) < 0) S.bufferedLevels.push(top.height);
      }, Number(switchAt) * 1000);
    }
    var p = video.play();
    if (p && p.catch) p.catch(function (e) { S.playRejected = String(e && e.message || e); });
  }).catch(function (e) {
    S.fatalErrors.push({ type: "load", details: String(e && (e.code || e.message) || e), fatal: true,
                         data: JSON.stringify(e && e.data || []).slice(0, 300) });
  });
  window.__shakaSnap = function () {
    var st = player.getStats();
    var range = player.seekRange();
    return { gapsJumped: st.gapsJumped, stallsDetected: st.stallsDetected, bufferingTime: st.bufferingTime,
             playTime: st.playTime, liveLatency: st.liveLatency, edgeLatency: range.end - video.currentTime,
             height: st.height, buffered: buffers() };
  };
})();
</script>
</body></html>`;

const server = http.createServer((req, res) => {
  const u = new URL(req.url, "http://127.0.0.1");
  if (u.pathname === "/") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    res.end(PLAYER === "shaka" ? SHAKA_PAGE : PAGE);
  } else if (u.pathname === "/hls.min.js" || u.pathname === "/shaka.js") {
    res.writeHead(200, { "content-type": "application/javascript", "cache-control": "no-store" });
    fs.createReadStream(PLAYER_JS).pipe(res);
  } else if (u.pathname === "/favicon.ico") {
    res.writeHead(204);
    res.end();
  } else {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found");
  }
});

function snapshotInPage() {
  const S = window.__S || {};
  const v = document.getElementById("v");
  const h = window.__hls;
  const num = (x) => (typeof x === "number" && Number.isFinite(x) ? x : null);
  return {
    S,
    currentTime: v ? v.currentTime : 0,
    paused: v ? v.paused : true,
    readyState: v ? v.readyState : 0,
    buffered: v ? Array.from({ length: v.buffered.length }, (_, i) => [v.buffered.start(i), v.buffered.end(i)]) : [],
    // hls.js: the ranges of each SourceBuffer (by MIME type), not just their intersection.
    sourceBuffers: (window.__sourceBuffers || []).map((e) => ({
      type: e.type.split(/[/;]/)[0],
      buffered: Array.from({ length: e.sb.buffered.length }, (_, i) => [e.sb.buffered.start(i), e.sb.buffered.end(i)]),
    })),
    latency: h ? num(h.latency) : null,
    // The protocol of every media request (h2, http/1.1), from Resource Timing.
    protocols: Array.from(new Set(performance.getEntriesByType("resource")
      .filter((e) => e.name.indexOf("/live/") >= 0).map((e) => e.nextHopProtocol))),
    targetLatency: h ? num(h.targetLatency) : null,
    drift: h ? num(h.drift) : null,
    playbackRate: v ? v.playbackRate : null,
    // hls.js's latency is edge + age - currentTime, from its newest level playlist.
    edge: h && h.latestLevelDetails ? num(h.latestLevelDetails.edge) : null,
    age: h && h.latestLevelDetails ? num(h.latestLevelDetails.age) : null,
    level: h ? h.currentLevel : null,
    // Wall clock minus the EXT-X-PROGRAM-DATE-TIME of the frame on screen
    // (castline anchors PDT at the first frame's arrival): the delay behind
    // the publisher, which hls.js's own latency (edge-relative) cannot see.
    pdtLatency: h && h.playingDate ? num((Date.now() - h.playingDate.getTime()) / 1000)
      : window.__shaka && window.__shaka.getPlayheadTimeAsDate() ? num((Date.now() - window.__shaka.getPlayheadTimeAsDate().getTime()) / 1000) : null,
    // Time stalled after the start, a stall still going on included.
    stalledSeconds: S.firstPlayingTime === null ? 0 : ((S.stalledMs || 0) + (S.waitingSince !== null && S.waitingSince !== undefined ? performance.now() - S.waitingSince : 0)) / 1000,
    pageSeconds: performance.now() / 1000,
    shaka: window.__shakaSnap ? window.__shakaSnap() : null,
  };
}

let context = null;
let userDataDir = null;
let t0 = Date.now();
let exitCode = 2;

async function main() {
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const port = server.address().port;
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "castline-player-"));
  const launchStart = Date.now();
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
      "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
    timeout: LAUNCH_TIMEOUT_S * 1000,
    ignoreHTTPSErrors: process.env.PLAYER_IGNORE_TLS_ERRORS === "1",
  });
  const page = context.pages()[0] || (await context.newPage());
  // PLAYER_DEBUG=<regex>: hls.js debug logging, the lines matching it on stderr.
  const debugFilter = process.env.PLAYER_DEBUG ? new RegExp(process.env.PLAYER_DEBUG, "i") : null;
  page.on("console", (m) => {
    if (debugFilter && debugFilter.test(m.text())) {
      process.stderr.write(`[hls ${((Date.now() - t0) / 1000).toFixed(3)}] ${m.text()}\n`);
    } else if (m.type() === "error" || m.type() === "warning") {
      process.stderr.write(`[page ${m.type()}] ${m.text()}\n`);
    }
  });
  page.on("pageerror", (e) => process.stderr.write(`[page exception] ${e.message}\n`));
  page.on("response", (r) => {
    if (r.status() >= 400) process.stderr.write(`[http ${r.status()}] ${r.request().method()} ${r.url()}\n`);
  });
  page.on("requestfailed", (r) => {
    process.stderr.write(`[request failed] ${r.url()}: ${r.failure() && r.failure().errorText}\n`);
  });
  page.on("crash", () => process.stderr.write("[page crashed]\n"));
  // PLAYER_TRACE=1: every media request and when its answer finished, on stderr.
  if (process.env.PLAYER_TRACE) {
    page.on("requestfinished", async (r) => {
      if (r.url().indexOf("/live/") >= 0) {
        const at = ((Date.now() - t0) / 1000).toFixed(3);
        // allHeaders(): headers() leaves out what the page's fetch set (Range).
        const range = (await r.allHeaders().catch(() => ({})))["range"];
        const answer = await r.response().catch(() => null);
        const got = answer ? (await answer.allHeaders().catch(() => ({})))["content-range"] : null;
        process.stderr.write(`[trace ${at}] ${r.url().replace(/^https?:\/\/[^/]+/, "")}${range ? " " + range : ""}${got ? " -> " + got : ""}\n`);
      }
    });
  }

  let pageUrl = `http://127.0.0.1:${port}/?src=${encodeURIComponent(srcUrl)}`;
  if (startLevelArg !== undefined) pageUrl += `&startLevel=${encodeURIComponent(startLevelArg)}`;
  if (debugFilter) pageUrl += "&debug=1" + (process.env.PLAYER_LOG_LEVEL ? `&level=${process.env.PLAYER_LOG_LEVEL}` : "");
  const playerConfig = PLAYER === "shaka" ? process.env.PLAYER_SHAKA_CONFIG : process.env.PLAYER_HLS_CONFIG;
  if (playerConfig) pageUrl += `&config=${encodeURIComponent(playerConfig)}`;
  if (process.env.PLAYER_SWITCH_AT) pageUrl += `&switchAt=${encodeURIComponent(process.env.PLAYER_SWITCH_AT)}`;
  if (process.env.PLAYER_LEVEL_CAP) pageUrl += `&cap=${encodeURIComponent(process.env.PLAYER_LEVEL_CAP)}`;
  process.stderr.write(`chromium started in ${Date.now() - launchStart} ms\n`);
  // PLAYER_SETTLE_S: let the browser's own start-up work finish before
  // playing (on a shared 2-core machine it starves the server under test).
  const settle = Number(process.env.PLAYER_SETTLE_S || 0);
  if (settle > 0) await new Promise((r) => setTimeout(r, settle * 1000));
  t0 = Date.now();
  await page.goto(pageUrl, { waitUntil: "load", timeout: 15000 });

  // Poll once a second (also gives a progress trace on stderr).
  const deadline = t0 + seconds * 1000;
  let snap = null;
  // Wall clock minus the playhead's PROGRAM-DATE-TIME, once a second after the start.
  const behindSamples = [];
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
    snap = await page.evaluate(snapshotInPage);
    const S = snap.S;
    if (S.firstPlayingTime !== null && snap.pdtLatency != null) behindSamples.push(Math.round(snap.pdtLatency * 1000) / 1000);
    process.stderr.write(
      `t=${((Date.now() - t0) / 1000).toFixed(1)}s ct=${snap.currentTime.toFixed(2)} rs=${snap.readyState}` +
      ` paused=${snap.paused} frags=${S.fragsLoaded} parts=${S.partsLoaded}` +
      ` lat=${snap.latency == null ? "-" : snap.latency.toFixed(2)} rate=${snap.playbackRate}` +
      ` edge=${snap.edge == null ? "-" : snap.edge.toFixed(2)} age=${snap.age == null ? "-" : snap.age.toFixed(2)} level=${snap.level}` +
      ` pdtlat=${snap.pdtLatency == null ? "-" : snap.pdtLatency.toFixed(2)}` +
      (snap.shaka ? ` shaka: gaps=${snap.shaka.gapsJumped} stalls=${snap.shaka.stallsDetected} lat=${Number(snap.shaka.edgeLatency).toFixed(2)} h=${snap.shaka.height}` : "") +
      ` err=${S.fatalErrors.length}F/${S.nonFatalCount}nf\n`,
    );
  }
  snap = await page.evaluate(snapshotInPage);
  const S = snap.S;
  const started = S.playingEvents > 0 && S.firstPlayingTime !== null &&
                  Math.max(snap.currentTime, S.maxCurrentTime) > S.firstPlayingTime + 0.1;
  const round = (x) => (x == null ? null : Math.round(x * 1000) / 1000);
  const result = {
    started,
    currentTime: round(snap.currentTime),
    fatalErrors: S.fatalErrors,
    nonFatalErrors: S.nonFatalErrors,
    partsLoaded: S.partsLoaded,
    latency: round(snap.latency),
    // extra diagnostics
    targetLatency: round(snap.targetLatency),
    pdtLatency: round(snap.pdtLatency),
    playedSeconds: S.firstPlayingTime === null ? 0 : round(snap.currentTime - S.firstPlayingTime),
    nonFatalErrorCount: S.nonFatalCount,
    fragsLoaded: S.fragsLoaded,
    waitingEvents: S.waitingEvents,
    buffered: snap.buffered.map(([a, b]) => [round(a), round(b)]),
    sourceBuffers: (snap.sourceBuffers || []).map((e) => ({ type: e.type, buffered: e.buffered.map(([a, b]) => [round(a), round(b)]) })),
    levels: S.levels,
    levelSwitches: S.levelSwitches,
    bufferedLevels: S.bufferedLevels,
    stallsAfterStart: S.stallsAfterStart,
    stalls: S.stalls,
    audioTracks: S.audioTracks,
    fragHosts: S.fragHosts,
    hostOrder: S.hostOrder,
    steeringLoads: S.steeringLoads,
    protocols: snap.protocols,
    steeringLast: S.steeringLast || null,
    mediaError: S.mediaError,
    playRejected: S.playRejected,
    hlsVersion: S.hlsVersion,
    player: PLAYER,
    // Shaka's own view (null with hls.js): its counters, latency behind the
    // live edge, the buffered ranges at each gap it jumped, start-up time.
    shaka: snap.shaka ? {
      version: S.shakaVersion,
      gapsJumped: snap.shaka.gapsJumped,
      stallsDetected: snap.shaka.stallsDetected,
      bufferingTime: round(snap.shaka.bufferingTime),
      playTime: round(snap.shaka.playTime),
      liveLatency: round(snap.shaka.liveLatency),
      edgeLatency: round(snap.shaka.edgeLatency),
      height: snap.shaka.height,
      gaps: S.gaps,
      buffered: snap.shaka.buffered,
    } : null,
    startupSeconds: S.startedAt == null ? null : round(S.startedAt),
    // Behind the publisher (wall clock - PDT of the playhead), sampled once a second.
    behindSamples,
    stalledSeconds: round(snap.stalledSeconds),
    // Time stalled over time since the start.
    rebufferRatio: S.startedAt == null ? null : round(snap.stalledSeconds / Math.max(0.001, snap.pageSeconds - S.startedAt)),
  };
  printed = true;
  process.stdout.write(JSON.stringify(result) + "\n");
  exitCode = started && result.playedSeconds >= seconds * 0.5 && S.fatalErrors.length === 0 ? 0 : 1;
}

async function cleanup() {
  const closing = (async () => {
    try { if (context) await context.close(); } catch {}
    try { server.close(); } catch {}
  })();
  await Promise.race([closing, new Promise((r) => setTimeout(r, 5000))]);
  try { if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true }); } catch {}
}

main()
  .catch((e) => {
    setupFailure(`error: ${e && e.stack || e}`);
    exitCode = 2;
  })
  .finally(async () => {
    await cleanup();
    clearTimeout(hardTimer);
    process.exit(exitCode);
  });
