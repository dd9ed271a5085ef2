//! The multivariant playlist, built from the list of a stream's renditions.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Path of the media playlist relative to the multivariant playlist.
    pub uri: String,
    /// Peak bits per second of any segment seen so far.
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

pub fn render(variants: &[Variant]) -> String {
    let mut o = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut sorted: Vec<&Variant> = variants.iter().collect();
    sorted.sort_by_key(|v| std::cmp::Reverse(v.bandwidth));
    for v in sorted {
        let _ = write!(
            o,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
            v.bandwidth, v.average_bandwidth, v.codecs
        );
        if let Some((w, h)) = v.resolution {
            let _ = write!(o, ",RESOLUTION={w}x{h}");
        }
        if let Some(f) = v.frame_rate {
            let _ = write!(o, ",FRAME-RATE={f:.3}");
        }
        let _ = writeln!(o, "\n{}", v.uri);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_exact_text_highest_bandwidth_first() {
        let v = [
            Variant {
                uri: "360p/index.m3u8".into(),
                bandwidth: 900_000,
                average_bandwidth: 800_000,
                codecs: "avc1.64001e,mp4a.40.2".into(),
                resolution: Some((640, 360)),
                frame_rate: Some(30.0),
            },
            Variant {
                uri: "source/index.m3u8".into(),
                bandwidth: 3_000_000,
                average_bandwidth: 2_500_000,
                codecs: "avc1.64001f,mp4a.40.2".into(),
                resolution: Some((1280, 720)),
                frame_rate: Some(29.97),
            },
        ];
        assert_eq!(
            render(&v),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2500000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970\n\
source/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000\n\
360p/index.m3u8\n"
        );
    }

    #[test]
    fn audio_only_has_no_resolution() {
        let v = [Variant {
            uri: "source/index.m3u8".into(),
            bandwidth: 130_000,
            average_bandwidth: 128_000,
            codecs: "mp4a.40.2".into(),
            resolution: None,
            frame_rate: None,
        }];
        assert!(render(&v).contains("CODECS=\"mp4a.40.2\"\nsource/index.m3u8\n"));
    }
}
