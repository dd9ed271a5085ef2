# Fastly VCL for a service whose origin is castline (Low-Latency HLS).
#
# NOT RUN HERE: Fastly's VCL dialect only compiles on Fastly, so this file
# has not been executed by castline's tests. It applies the same policy as
# docker/cdn/varnish/castline.vcl, which was tested against a real castline.
#
# Use it as the service's custom VCL (it keeps Fastly's #FASTLY macros), or
# paste the body of each subroutine into a VCL snippet of that type (recv,
# hash, miss, pass, fetch). The hash part only matters with signed URLs.
#
# Backend settings (not expressible here): first byte timeout >= 10 s (the
# origin holds blocking playlists and preload-hinted parts up to 3 target
# durations), between bytes timeout 10 s, keep-alive time < 10 s (castline
# closes an idle HTTP/1.1 connection after about 10 s). Turn on shielding so
# that one POP, not every POP, fetches each blocking playlist from the origin.
#
# The three rules: the key is the path + _HLS_msn/_HLS_part/_HLS_skip only;
# identical blocking requests collapse (Fastly's request collapsing, on unless
# something passes); playlists are never served stale.
#
# Castline must list this service as [[origin.cdn]] id = "fastly".

# Signed URLs (origin.signing_key): with the key here, tokens are checked at
# the edge and kept out of the cache key; empty: tokens stay in the key and
# only the origin checks them. (Or make this an Edge Dictionary of the same
# name, which keeps the key out of the VCL.)
table castline_config {
  "signing_key": "",
}

sub vcl_recv {
  declare local var.key STRING;
  declare local var.expiry STRING;
  declare local var.sig STRING;
  declare local var.stream STRING;
#FASTLY recv
  # A viewer's own token header never reaches the origin (this VCL forwards
  # the token on the path).
  unset req.http.x-castline-token;

  # Only GET and HEAD are cached; OPTIONS (CORS preflight) goes through.
  if (req.method != "GET" && req.method != "HEAD") {
    return(pass);
  }

  # The origin reads no cookies.
  unset req.http.Cookie;

  # Content steering answers one player (_HLS_pathway, _HLS_throughput;
  # private, no-store): forwarded with its query string, never cached.
  if (req.url.path ~ "^(/s/[^/]+/[^/]+)?/live/[^/]+/steering\.json$") {
    return(pass);
  }

  # Only the LL-HLS delivery directives, sorted: players' cache-busters do
  # not fragment the cache and identical blocking requests share one key.
  set req.url = querystring.sort(querystring.filter_except(req.url,
    "_HLS_msn" + querystring.filtersep() + "_HLS_part" + querystring.filtersep() + "_HLS_skip"));

  # One gzip variant of each playlist, whatever the browser's exact header.
  if (req.http.Accept-Encoding ~ "gzip") {
    set req.http.Accept-Encoding = "gzip";
  } else {
    unset req.http.Accept-Encoding;
  }

  # Signed URL: /s/EXPIRY/SIG/live/STREAM/..., SIG = hex HMAC-SHA256 of
  # "STREAM:EXPIRY". Checked here when the key is configured.
  unset req.http.X-Castline-Signed;
  set var.key = table.lookup(castline_config, "signing_key", "");
  # With the key, every playback URL is signed: an unsigned one must not
  # look up what signed ones cached under the path after their token.
  if (var.key != "" && req.url.path !~ "^/s/") {
    error 403 "Signed URLs only";
  }
  if (var.key != "" && req.url.path ~ "^/s/") {
    if (req.url.path ~ "^/s/([0-9]{1,19})/([0-9A-Fa-f]{64})/live/([^/]+)/") {
      set var.expiry = re.group.1;
      set var.sig = std.tolower(re.group.2);
      set var.stream = re.group.3;
    } else {
      error 403 "Bad signed URL";
    }
    if (!digest.secure_is_equal("0x" + var.sig,
          digest.hmac_sha256(var.key, var.stream + ":" + var.expiry))) {
      error 403 "Bad signature";
    }
    if (time.is_after(now, std.integer2time(std.atoi(var.expiry)))) {
      error 403 "Expired";
    }
    # Valid: cache on the path after the token (vcl_hash); the origin still
    # gets the full URL and checks it again on a miss.
    set req.http.X-Castline-Signed = "1";
  }

  return(lookup);
}

sub vcl_hash {
#FASTLY hash
  if (req.http.X-Castline-Signed == "1") {
    set req.hash += "signed:";
    set req.hash += regsub(req.url, "^/s/[^/]+/[^/]+/", "/");
  } else {
    set req.hash += req.url;
  }
  set req.hash += req.http.host;
  set req.hash += req.vcl.generation;
  return(hash);
}

sub vcl_miss {
#FASTLY miss
  # The origin counts requests and egress per CDN by this header.
  set bereq.http.x-castline-cdn = "fastly";
  # With origin.cdn_secret set, the origin answers 403 without it:
  # set bereq.http.x-castline-cdn-secret = "CHANGE-ME";
  unset bereq.http.X-Castline-Signed;
  return(fetch);
}

sub vcl_pass {
#FASTLY pass
  set bereq.http.x-castline-cdn = "fastly";
  # set bereq.http.x-castline-cdn-secret = "CHANGE-ME";
  unset bereq.http.X-Castline-Signed;
  return(pass);
}

sub vcl_fetch {
#FASTLY fetch

  # Surrogate-Key (castline-STREAM castline-STREAM-RENDITION) is left as
  # the origin sent it: Fastly indexes it for purges and strips it from
  # client responses.

  # Errors (404 no-cache, 400/403/503 no-store): 1 s, never stale, so a
  # burst of players or the requests collapsed on a blocking request that
  # timed out share one answer, and nobody waits on it.
  # A token checked here that the origin refuses (it expired between the two
  # checks): that viewer's answer only, never shared under the token-less key.
  if (beresp.status == 403 && req.http.X-Castline-Signed == "1") {
    set beresp.ttl = 0s;
    return(pass);
  }
  if (beresp.status >= 400) {
    set beresp.cacheable = true;
    set beresp.ttl = 1s;
    set beresp.stale_while_revalidate = 0s;
    set beresp.stale_if_error = 0s;
    return(deliver);
  }

  # Per-viewer answers (a steered multivariant for a signed URL says
  # private, no-store): never shared; a short hit-for-pass.
  if (beresp.http.Cache-Control ~ "(?i)(private|no-store|no-cache)") {
    set beresp.ttl = 1s;
    return(pass);
  }

  if (req.url.path ~ "\.m3u8$") {
    # Playlists live exactly their max-age (1 s live, 6 target durations
    # blocking, 2 s multivariant): never stale, not even on origin errors.
    set beresp.stale_while_revalidate = 0s;
    set beresp.stale_if_error = 0s;
  } else {
    # Immutable media: a part is sent on to every collapsed client as it
    # arrives (streaming miss), not after the whole object is in.
    set beresp.do_stream = true;
  }
  return(deliver);
}

sub vcl_hit {
#FASTLY hit
  return(deliver);
}

sub vcl_deliver {
#FASTLY deliver
  return(deliver);
}

sub vcl_error {
#FASTLY error
  return(deliver);
}

sub vcl_log {
#FASTLY log
}
