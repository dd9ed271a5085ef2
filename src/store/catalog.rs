//! What the store keeps of a stream's multivariant playlist besides its
//! rendered bytes: the stream's renditions as data (video variants and the
//! audio group they share), so the origin can render a steered copy per
//! request and a restart can serve an ended session again. The syntax is
//! the packager's ([`crate::package::multivariant`]).

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Variant {
    /// Path of the media playlist relative to the multivariant playlist.
    pub uri: String,
    /// Peak bits per second of any segment seen so far (audio included).
    pub bandwidth: u64,
    /// Mean bits per second over the segments so far (audio included); 0
    /// before any is measured, and then the attribute is left out.
    pub average_bandwidth: u64,
    /// Every codec of the variant, its audio group's included.
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    /// GROUP-ID of the audio rendition played with this variant.
    pub audio: Option<String>,
}

/// An `EXT-X-MEDIA:TYPE=AUDIO` rendition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AudioRendition {
    pub group: String,
    pub name: String,
    pub uri: String,
    pub channels: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Multivariant {
    pub audio: Vec<AudioRendition>,
    pub variants: Vec<Variant>,
    /// Every segment starts with an IDR (EXT-X-INDEPENDENT-SEGMENTS).
    pub independent: bool,
}

impl Multivariant {
    /// The lowest BANDWIDTH of any variant (0 without variants): what a
    /// player must sustain to play the stream at all.
    pub fn floor_bandwidth(&self) -> u64 {
        self.variants.iter().map(|v| v.bandwidth).min().unwrap_or(0)
    }
}
