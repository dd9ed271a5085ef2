//! The multivariant playlist: rendered (pure) from a typed list of the
//! stream's renditions — video variants and the audio group they share —
//! and written by one [`MultivariantWriter`] per stream.

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::store::catalog::{AudioRendition, Multivariant, Variant};
use crate::store::SessionEntry;

/// The GROUP-ID of the one audio rendition every variant refers to.
pub const AUDIO_GROUP: &str = "audio";

/// One CDN's copy of the stream (HLS Content Steering): its pathway id and
/// the base URL players reach it under.
#[derive(Debug, Clone, PartialEq)]
pub struct Pathway {
    pub id: String,
    pub base: String,
}

/// The multivariant playlist with relative URIs (no steering).
pub fn render(m: &Multivariant) -> String {
    let mut o = header(m);
    write_pathway(&mut o, m, None);
    o
}

/// The multivariant playlist with one copy of every variant and of the audio
/// rendition per pathway: absolute URIs under the pathway's base URL and
/// `path` (the multivariant's directory, e.g. `/live/NAME`, with a signed
/// URL's prefix when there is one), and an audio GROUP-ID per pathway (a
/// pathway's variants may only name that pathway's groups). `initial` is
/// the pathway to use until the steering manifest arrives.
pub fn render_steered(m: &Multivariant, pathways: &[Pathway], path: &str, initial: &str) -> String {
    let mut o = header(m);
    let _ = writeln!(
        o,
        "#EXT-X-CONTENT-STEERING:SERVER-URI=\"steering.json\",PATHWAY-ID=\"{initial}\""
    );
    for p in pathways {
        write_pathway(&mut o, m, Some((p, path)));
    }
    o
}

fn header(m: &Multivariant) -> String {
    let mut o = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
    if m.independent {
        o.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    o
}

fn write_pathway(o: &mut String, m: &Multivariant, pathway: Option<(&Pathway, &str)>) {
    let group = |g: &str| match pathway {
        Some((p, _)) => format!("{g}-{}", p.id),
        None => g.to_string(),
    };
    let uri = |u: &str| match pathway {
        Some((p, path)) => format!("{}{path}/{u}", p.base),
        None => u.to_string(),
    };
    for a in &m.audio {
        let _ = write!(
            o,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\",DEFAULT=YES,AUTOSELECT=YES",
            group(&a.group),
            a.name
        );
        if let Some(c) = a.channels {
            let _ = write!(o, ",CHANNELS=\"{c}\"");
        }
        if pathway.is_some() {
            let _ = write!(o, ",STABLE-RENDITION-ID=\"{}\"", a.name);
        }
        let _ = writeln!(o, ",URI=\"{}\"", uri(&a.uri));
    }
    let mut sorted: Vec<&Variant> = m.variants.iter().collect();
    sorted.sort_by_key(|v| std::cmp::Reverse(v.bandwidth));
    for v in sorted {
        let _ = write!(o, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
        // Measured over the segments so far: none yet (a ladder's playlists
        // appear with the first part), no claim.
        if v.average_bandwidth > 0 {
            let _ = write!(o, ",AVERAGE-BANDWIDTH={}", v.average_bandwidth);
        }
        let _ = write!(o, ",CODECS=\"{}\"", v.codecs);
        if let Some((w, h)) = v.resolution {
            let _ = write!(o, ",RESOLUTION={w}x{h}");
        }
        if let Some(f) = v.frame_rate {
            let _ = write!(o, ",FRAME-RATE={f:.3}");
        }
        if let Some(g) = &v.audio {
            let _ = write!(o, ",AUDIO=\"{}\"", group(g));
        }
        if let Some((p, _)) = pathway {
            // The rendition name is the variant's identity on every pathway.
            let stable = v.uri.split('/').next().unwrap_or(&v.uri);
            let _ = write!(o, ",PATHWAY-ID=\"{}\",STABLE-VARIANT-ID=\"{stable}\"", p.id);
        }
        let _ = writeln!(o, "\n{}", uri(&v.uri));
    }
}

/// Writes a stream's multivariant playlist from its renditions' descriptions
/// in the store. One per stream; every packager calls [`refresh`] when a
/// segment completes, and the lock keeps the renderings in order.
///
/// [`refresh`]: MultivariantWriter::refresh
pub struct MultivariantWriter {
    stream: Arc<SessionEntry>,
    video: Vec<String>,
    audio: Option<String>,
    lock: Mutex<()>,
}

impl MultivariantWriter {
    /// `video`: the video renditions' names; `audio`: the audio rendition's.
    pub fn new(stream: Arc<SessionEntry>, video: Vec<String>, audio: Option<String>) -> Self {
        MultivariantWriter {
            stream,
            video,
            audio,
            lock: Mutex::new(()),
        }
    }

    /// The playlist from what the renditions have described so far, or `None`
    /// until every rendition has (unless `partial`: then whatever is ready).
    pub fn build(&self, partial: bool) -> Option<Multivariant> {
        let meta = |name: &str| self.stream.find_rendition(name).and_then(|r| r.meta());
        let audio = match &self.audio {
            Some(name) => match meta(name) {
                Some(m) => Some((name.clone(), m)),
                None if partial => None,
                None => return None,
            },
            None => None,
        };
        let mut m = Multivariant {
            independent: self.stream.independent(),
            ..Multivariant::default()
        };
        if let Some((name, a)) = &audio {
            if self.video.is_empty() {
                // Audio only: the audio playlist is the one variant.
                m.variants.push(Variant {
                    uri: format!("{name}/index.m3u8"),
                    bandwidth: a.bandwidth,
                    average_bandwidth: a.average_bandwidth,
                    codecs: a.codecs.clone(),
                    resolution: None,
                    frame_rate: None,
                    audio: None,
                });
                return Some(m);
            }
            m.audio.push(AudioRendition {
                group: AUDIO_GROUP.into(),
                name: name.clone(),
                uri: format!("{name}/index.m3u8"),
                channels: a.channels,
            });
        }
        for name in &self.video {
            let Some(v) = meta(name) else {
                if partial {
                    continue;
                }
                return None;
            };
            let (codecs, bandwidth, average) = match &audio {
                Some((_, a)) => (
                    format!("{},{}", v.codecs, a.codecs),
                    v.bandwidth + a.bandwidth,
                    // Both measured, or no average: half a sum would
                    // understate it.
                    if v.average_bandwidth > 0 && a.average_bandwidth > 0 {
                        v.average_bandwidth + a.average_bandwidth
                    } else {
                        0
                    },
                ),
                None => (v.codecs.clone(), v.bandwidth, v.average_bandwidth),
            };
            m.variants.push(Variant {
                uri: format!("{name}/index.m3u8"),
                bandwidth,
                average_bandwidth: average,
                codecs,
                resolution: v.resolution,
                frame_rate: v.frame_rate,
                audio: audio.as_ref().map(|_| AUDIO_GROUP.to_string()),
            });
        }
        (!m.variants.is_empty()).then_some(m)
    }

    pub fn refresh(&self, partial: bool) {
        let _order = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = self.build(partial) {
            let text = Bytes::from(render(&m));
            self.stream.set_multivariant(Arc::new(m), text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(uri: &str, bandwidth: u64, res: (u32, u32), audio: bool) -> Variant {
        Variant {
            uri: uri.into(),
            bandwidth,
            average_bandwidth: bandwidth * 9 / 10,
            codecs: if audio {
                "avc1.64001f,mp4a.40.2".into()
            } else {
                "avc1.64001f".into()
            },
            resolution: Some(res),
            frame_rate: Some(30.0),
            audio: audio.then(|| AUDIO_GROUP.to_string()),
        }
    }

    #[test]
    fn renders_the_audio_group_and_variants_highest_bandwidth_first() {
        let m = Multivariant {
            independent: true,
            audio: vec![AudioRendition {
                group: AUDIO_GROUP.into(),
                name: "audio".into(),
                uri: "audio/index.m3u8".into(),
                channels: Some(2),
            }],
            variants: vec![
                variant("360p/index.m3u8", 900_000, (640, 360), true),
                variant("720p/index.m3u8", 3_300_000, (1280, 720), true),
            ],
        };
        assert_eq!(
            render(&m),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=3300000,AVERAGE-BANDWIDTH=2970000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\"\n\
720p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=810000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"audio\"\n\
360p/index.m3u8\n"
        );
    }

    #[test]
    fn an_average_not_yet_measured_is_left_out() {
        let mut v = variant("360p/index.m3u8", 900_000, (640, 360), false);
        v.average_bandwidth = 0;
        let m = Multivariant {
            independent: true,
            audio: vec![],
            variants: vec![v],
        };
        assert_eq!(
            render(&m),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS=\"avc1.64001f\",RESOLUTION=640x360,FRAME-RATE=30.000\n\
360p/index.m3u8\n"
        );
    }

    #[test]
    fn video_only_has_no_audio_attribute() {
        let m = Multivariant {
            independent: true,
            audio: vec![],
            variants: vec![variant("source/index.m3u8", 1_000_000, (320, 240), false)],
        };
        assert_eq!(
            render(&m),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-STREAM-INF:BANDWIDTH=1000000,AVERAGE-BANDWIDTH=900000,CODECS=\"avc1.64001f\",RESOLUTION=320x240,FRAME-RATE=30.000\n\
source/index.m3u8\n"
        );
    }

    #[test]
    fn steered_renders_every_variant_and_the_audio_group_once_per_pathway() {
        let m = Multivariant {
            independent: true,
            audio: vec![AudioRendition {
                group: AUDIO_GROUP.into(),
                name: "audio".into(),
                uri: "audio/index.m3u8".into(),
                channels: Some(2),
            }],
            variants: vec![variant("360p/index.m3u8", 900_000, (640, 360), true)],
        };
        let pathways = [
            Pathway {
                id: "cf".into(),
                base: "https://d1.cloudfront.net".into(),
            },
            Pathway {
                id: "fastly".into(),
                base: "https://x.global.ssl.fastly.net".into(),
            },
        ];
        assert_eq!(
            render_steered(&m, &pathways, "/s/99/SIG/live/game", "cf"),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-CONTENT-STEERING:SERVER-URI=\"steering.json\",PATHWAY-ID=\"cf\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio-cf\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",STABLE-RENDITION-ID=\"audio\",URI=\"https://d1.cloudfront.net/s/99/SIG/live/game/audio/index.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=810000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"audio-cf\",PATHWAY-ID=\"cf\",STABLE-VARIANT-ID=\"360p\"\n\
https://d1.cloudfront.net/s/99/SIG/live/game/360p/index.m3u8\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio-fastly\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",STABLE-RENDITION-ID=\"audio\",URI=\"https://x.global.ssl.fastly.net/s/99/SIG/live/game/audio/index.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=810000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"audio-fastly\",PATHWAY-ID=\"fastly\",STABLE-VARIANT-ID=\"360p\"\n\
https://x.global.ssl.fastly.net/s/99/SIG/live/game/360p/index.m3u8\n"
        );
        assert_eq!(m.floor_bandwidth(), 900_000);
    }
}
