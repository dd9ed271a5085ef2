//! The first picture of a served segment, as RGB, for tests that must tell
//! which input (or the slate) a stream served.

use std::path::Path;
use std::process::Command;

use super::{attr, decode_errors, get, msn_of, Media, Server};

/// (init, segment) URIs of a media playlist, each segment with the MAP that
/// applies to it, and the MSNs that follow a discontinuity.
pub fn segments_with_maps(m: &Media) -> Vec<(String, String)> {
    let mut map = String::new();
    let mut out = Vec::new();
    for line in m.text.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:") {
            map = attr(rest, "URI").unwrap_or_default().to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((map.clone(), line.to_string()));
        }
    }
    out
}

/// The first picture of segment `msn` of a rendition, scaled to 70×30, as RGB.
pub fn picture(server: &Server, stream: &str, rendition: &str, m: &Media, msn: u64) -> Vec<u8> {
    let (map, uri) = segments_with_maps(m)
        .into_iter()
        .find(|(_, u)| msn_of(u) == msn)
        .unwrap_or_else(|| panic!("no segment {msn}:\n{}", m.text));
    let base = server.url(&format!("/live/{stream}/{rendition}/"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.mp4");
    let mut bytes = get(&format!("{base}{map}")).body;
    bytes.extend(get(&format!("{base}{uri}")).body);
    std::fs::write(&file, bytes).unwrap();
    assert_eq!(
        decode_errors(&file.to_path_buf()),
        "",
        "segment {msn} of {rendition}"
    );
    frame_rgb(&file)
}

fn frame_rgb(file: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-vf", "scale=70:30", "-f", "rawvideo"])
        .args(["-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert_eq!(
        out.stdout.len(),
        70 * 30 * 3,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn near(got: &[u8], want: (u8, u8, u8)) -> bool {
    let d = |a: u8, b: u8| (a as i32 - b as i32).abs() <= 40;
    d(got[0], want.0) && d(got[1], want.1) && d(got[2], want.2)
}
