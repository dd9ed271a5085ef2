#
# Varnish 7.1 (VCL 4.1) in front of castline's HTTP origin (Low-Latency HLS).
#
#   varnishd -C -f castline.vcl                       # compile check
#   varnishd -F -a :6081 -f castline.vcl -s malloc,1g \
#            -p backend_idle_timeout=8                # run
#
# backend_idle_timeout: castline closes an idle HTTP/1.1 connection after
# about 10 s; with Varnish's default of 60 s a fetch can be sent on a
# connection at the moment the origin closes it.
#
# The three rules that matter (see docker/cdn/README.md):
#   1. the cache key is the path plus _HLS_msn, _HLS_part, _HLS_skip only;
#   2. identical blocking requests collapse into one origin fetch (Varnish's
#      waiting list does it, as long as nothing below turns them into passes);
#   3. a playlist is never served past its max-age (grace 0 on playlists).
#
# Castline must list this cache as [[origin.cdn]] id = "varnish" (base_url
# may stay empty): otherwise its metrics count these requests as cdn="other".
#
vcl 4.1;

import directors;
import std;

# An origin that answers is up: castline answers "/" with 404 at once.
probe castline_up {
    .url = "/";
    .expected_response = 404;
    .interval = 1s;
    .timeout = 500ms;
    .window = 3;
    .threshold = 2;
    .initial = 2;
}

# One backend per castline origin. With the two tiers (README, "Two tiers")
# any origin serves any stream: list every origin pod's address (or one
# Service address) here and add each to the director in vcl_init.
backend castline {
    .host = "127.0.0.1";
    .port = "8080";
    .probe = castline_up;
    .connect_timeout = 2s;
    # The origin holds a blocking playlist or a preload-hinted part until it
    # exists, at most 3 target durations, before the first byte: stay above
    # that (raise it if hls.segment_duration is over 4 s).
    .first_byte_timeout = 15s;
    .between_bytes_timeout = 15s;
}

# Who may BAN by Surrogate-Key (the purge API of this cache).
acl castline_purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_init {
    new origins = directors.round_robin();
    origins.add_backend(castline);
}

sub vcl_recv {
    set req.backend_hint = origins.backend();

    # Only a CDN that checked a signed URL may pass its token in this header
    # (CloudFront's function); a viewer's own never reaches the origin.
    unset req.http.x-castline-token;

    # BAN with "Surrogate-Key: castline-STREAM" (or castline-STREAM-RENDITION)
    # drops every object the origin tagged with that key.
    if (req.method == "BAN") {
        if (client.ip !~ castline_purgers) {
            return (synth(405, "Not allowed"));
        }
        if (req.http.Surrogate-Key !~ "^[A-Za-z0-9._-]+$") {
            return (synth(400, "Give one Surrogate-Key"));
        }
        ban("obj.http.Surrogate-Key ~ (^|\s)" + req.http.Surrogate-Key + "(\s|$)");
        return (synth(200, "Banned"));
    }

    # Only GET and HEAD are cacheable; OPTIONS (CORS preflight) goes through.
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }

    # The origin reads no cookies; a cookie must not split or bypass the cache.
    unset req.http.Cookie;

    # Content steering answers one player (it reads _HLS_pathway and
    # _HLS_throughput, and says private, no-store): forward it untouched,
    # query included, and never store it.
    if (req.url ~ "^(/s/[^/]+/[^/]+)?/live/[^/]+/steering\.json(\?|$)") {
        return (pass);
    }

    # Keep only the LL-HLS delivery directives, in one fixed order, so that a
    # player's cache-buster (or any reordering) does not fragment the cache
    # and identical blocking requests share one key. The origin gets the same
    # normalised URL (it ignores every other parameter anyway).
    call castline_directives;

    call castline_range;

    # Signed URLs (/s/EXPIRY/SIG/live/...) stay in the key: Varnish cannot
    # check the HMAC itself, so every cached object is only ever served to
    # the token the origin accepted for it.
    return (hash);
}

sub castline_directives {
    set req.http.X-Castline-Q = "";
    if (req.url ~ "[?&]_HLS_msn=") {
        set req.http.X-Castline-Q = req.http.X-Castline-Q + "&_HLS_msn=" +
            regsub(req.url, "^.*[?&]_HLS_msn=([^&]*).*$", "\1");
    }
    if (req.url ~ "[?&]_HLS_part=") {
        set req.http.X-Castline-Q = req.http.X-Castline-Q + "&_HLS_part=" +
            regsub(req.url, "^.*[?&]_HLS_part=([^&]*).*$", "\1");
    }
    if (req.url ~ "[?&]_HLS_skip=") {
        set req.http.X-Castline-Q = req.http.X-Castline-Q + "&_HLS_skip=" +
            regsub(req.url, "^.*[?&]_HLS_skip=([^&]*).*$", "\1");
    }
    set req.url = regsub(req.url, "\?.*$", "");
    if (req.http.X-Castline-Q != "") {
        set req.url = req.url + "?" + regsub(req.http.X-Castline-Q, "^&", "");
    }
    unset req.http.X-Castline-Q;
}

# With hls.part_addressing = "byteranges" a part is a byte range of its
# segment, asked for while the segment is still being written (a listed
# part's range, or the preload hint's open range). Varnish would fetch the
# whole segment for it and could answer the range only once the segment is
# complete, a second later. So a single byte range of a media object is its
# own cache object: kept in the key, forwarded to the origin (which answers
# 206 as soon as those bytes exist, streaming an open range as it grows) and
# collapsed like any other request. Anything else (several ranges, a suffix)
# is dropped: the whole object is served.
sub castline_range {
    unset req.http.X-Castline-Range;
    if (req.http.Range && req.url ~ "\.(m4s|mp4)(\?|$)" &&
        req.http.Range ~ "^bytes=[0-9]{1,16}-[0-9]{0,16}$") {
        set req.http.X-Castline-Range = req.http.Range;
        # Varnish must not cut a range out of the 206 it stores.
        unset req.http.Range;
    }
}

sub vcl_hash {
    # One origin behind this cache, whose answers do not depend on Host:
    # every host name shares the objects. (Accept-Encoding is handled by
    # Varnish's gzip support: one gzip copy, gunzipped for the few clients
    # that do not take it.)
    hash_data(req.url);
    if (req.http.X-Castline-Range) {
        hash_data(req.http.X-Castline-Range);
    }
    return (lookup);
}

sub vcl_backend_fetch {
    # The origin counts requests and egress per CDN by this header.
    set bereq.http.x-castline-cdn = "varnish";
    # A keyed byte range (castline_range) is asked of the origin as such.
    if (bereq.http.X-Castline-Range) {
        set bereq.http.Range = bereq.http.X-Castline-Range;
        unset bereq.http.X-Castline-Range;
    }
    # With origin.cdn_secret set, the origin answers 403 without it:
    # set bereq.http.x-castline-cdn-secret = "CHANGE-ME";
    return (fetch);
}

# An origin that fails before answering (killed, restarting): the fetch is
# tried once more, on the director's next origin.
sub vcl_backend_error {
    if (bereq.retries < 1) {
        return (retry);
    }
}

sub vcl_backend_response {
    # Passes (steering.json, non-GET): nothing to decide, nothing stored.
    if (bereq.uncacheable) {
        return (deliver);
    }

    # Errors (404 no-cache, 400/403/503 no-store): kept 1 s and never served
    # stale. Long enough that a burst of players (or the requests waiting on
    # a blocking request that timed out with 503) get the one answer instead
    # of each going to the origin; short enough that nobody waits on it. The
    # built-in VCL would instead make them hit-for-miss for 120 s, which also
    # stops collapsing on that URL for two minutes.
    # A keyed byte range: Varnish stores no 206 by itself; it lives as long
    # as the origin says its object does. Varnish 7.1 refuses a
    # Content-Range whose length is unknown ("bytes 100-199/*", what the
    # origin says of a segment still being written, RFC 9110 14.4), so the
    # header is carried under another name and given back in vcl_deliver.
    if (beresp.status == 206 && bereq.http.Range) {
        set beresp.ttl = std.duration(regsub(beresp.http.Cache-Control,
            "^.*max-age=([0-9]+).*$", "\1s"), 0s);
        set beresp.http.X-Castline-Content-Range = beresp.http.Content-Range;
        unset beresp.http.Content-Range;
    }

    if (beresp.status >= 400) {
        set beresp.ttl = 1s;
        set beresp.grace = 0s;
        set beresp.keep = 0s;
        return (deliver);
    }

    # Per-viewer answers (a steered multivariant for a signed URL says
    # private, no-store): never shared. A short hit-for-miss, not the
    # built-in 120 s.
    if (beresp.http.Cache-Control ~ "(?i)(private|no-store|no-cache)" || beresp.ttl <= 0s) {
        set beresp.uncacheable = true;
        set beresp.ttl = 1s;
        set beresp.grace = 0s;
        return (deliver);
    }

    if (bereq.url ~ "\.m3u8(\?|$)") {
        # Playlists live exactly their max-age (1 s live, 6 target durations
        # for a blocking answer, 2 s multivariant): the default 10 s of grace
        # would hand players a playlist seconds behind the live edge.
        set beresp.grace = 0s;
        set beresp.keep = 0s;
    } else {
        # Media is immutable: keep the origin's year. Stream the bytes to
        # every waiting client as they arrive (the default, said here because
        # parts must not be buffered).
        set beresp.do_stream = true;
    }
    return (deliver);
}

sub vcl_deliver {
    # For debugging: whether this answer came from the cache. (Age is set by
    # Varnish itself; the origin exposes it to players through CORS.)
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    # The purge tags are for this cache only.
    unset resp.http.Surrogate-Key;
    if (resp.http.X-Castline-Content-Range) {
        set resp.http.Content-Range = resp.http.X-Castline-Content-Range;
        unset resp.http.X-Castline-Content-Range;
    }
    return (deliver);
}
