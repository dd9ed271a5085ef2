// CloudFront Function (runtime cloudfront-js-2.0), viewer request: checks a
// castline signed playback URL at the edge and keeps its token out of the
// cache key.
//
// A signed URL is /s/EXPIRY/SIG/live/STREAM/..., SIG the hex HMAC-SHA256 of
// "STREAM:EXPIRY" under castline's origin.signing_key (`castline sign`). A
// CloudFront cache key always holds the whole path, so this function takes
// the token off the path (every viewer of a stream then shares one cached
// object) and hands it to the origin in the x-castline-token header, which
// the origin request policy forwards and the cache policy leaves out, with an
// HMAC of its own ("edge:" + token) that only a holder of the key can write.
// castline checks both again on every miss (with origin.cdn_checks_tokens =
// true, and only on requests that carry the CDN secret, which CloudFront adds
// as an origin custom header). A missing, tampered or expired token is
// answered 403 here and never reaches the cache.
//
// Deploy: replace CHANGE-ME with origin.signing_key (or read it from a
// KeyValueStore), publish the function, and associate it with every
// behavior of the distribution as its viewer-request function.

var crypto = require('crypto');

var SIGNING_KEY = 'CHANGE-ME';
var SIGNED = /^\/s\/([0-9]{1,19})\/([0-9A-Fa-f]{64})(\/live\/([^\/]+)\/.*)$/;

function forbidden(why) {
    return {
        statusCode: 403,
        statusDescription: 'Forbidden',
        headers: {
            'content-type': { value: 'text/plain; charset=utf-8' },
            'cache-control': { value: 'no-store' },
            'access-control-allow-origin': { value: '*' }
        },
        body: { encoding: 'text', data: why + '\n' }
    };
}

// Compared in constant time: the same work whatever the first difference.
function sameText(a, b) {
    if (a.length !== b.length) {
        return false;
    }
    var diff = 0;
    for (var i = 0; i < a.length; i++) {
        diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return diff === 0;
}

function handler(event) {
    var request = event.request;
    // Only this function puts a token in that header, never a viewer.
    delete request.headers['x-castline-token'];
    // A CORS preflight carries no credentials (castline answers it unsigned).
    if (request.method === 'OPTIONS') {
        return request;
    }
    var m = SIGNED.exec(request.uri);
    if (!m) {
        return forbidden('a signed URL is /s/EXPIRY/SIG/live/STREAM/...');
    }
    var expiry = m[1];
    var sig = m[2].toLowerCase();
    var stream = m[4];
    var want = crypto.createHmac('sha256', SIGNING_KEY)
        .update(stream + ':' + expiry)
        .digest('hex');
    if (!sameText(sig, want)) {
        return forbidden('bad signature');
    }
    if (Math.floor(Date.now() / 1000) > Number(expiry)) {
        return forbidden('expired');
    }
    // The token, and proof that this function (which holds the key) wrote
    // it: a viewer who holds a token cannot make one.
    var token = '/s/' + expiry + '/' + sig;
    var proof = crypto.createHmac('sha256', SIGNING_KEY).update('edge:' + token).digest('hex');
    request.headers['x-castline-token'] = { value: token + '/' + proof };
    request.uri = m[3];
    return request;
}
