//! A session taken over from a lost ingest pod: where each rendition's
//! segment left open by that pod ends.

use super::Remote;
use crate::publish::wire::SessionKey;

/// Each rendition's segment left open by the lost pod ends with the parts
/// the origin has, the audio's first brought up to the video's end; the
/// next pod's media begins at MSN `at`.
pub(super) fn end_lost_pods_segments(remote: &mut Remote, key: &SessionKey, at: u64) {
    bring_the_audio_up(remote, key);
    for r in remote.renditions.values_mut() {
        r.close_open_segment((at, 0));
    }
}

/// A lost ingest pod pushed each rendition's parts as they were made, so at
/// its loss the audio may end short of the video (by a part, or the
/// segment end the video had reached). A player buffers the two side by
/// side and places the next pod's media where the video ends: the audio
/// would have a hole there, which hls.js does not jump (it stays stalled
/// in front of it). So the audio is brought up to the furthest video
/// rendition's end with AAC silence, appended as parts (a live playlist
/// may grow at its end; nothing served is changed). Audio other than
/// AAC-LC is left short (logged).
fn bring_the_audio_up(remote: &mut Remote, key: &SessionKey) {
    let Some(audio) = remote.plan.audio.clone() else {
        return;
    };
    let lead = remote
        .renditions
        .iter()
        .filter(|(name, _)| **name != audio)
        .filter_map(|(_, r)| Some((r.timeline_end()?, r)))
        .max_by_key(|(end, _)| *end);
    let Some((end, starts)) = lead.map(|(end, r)| (end, r.segment_starts())) else {
        return;
    };
    let Some(r) = remote.renditions.get_mut(&audio) else {
        return;
    };
    if r.timeline_end().is_none_or(|e| e >= end) {
        return;
    }
    match r.fill_with_silence(&starts, end) {
        Ok(seconds) if seconds > 0.0 => {
            tracing::info!(stream = %key.stream, epoch = %key.epoch, seconds, "the lost pod's audio ended short of its video: brought up with silence")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(stream = %key.stream, epoch = %key.epoch, error = %e, "the lost pod's audio ended short of its video and is left so: players may stall where the next pod's media begins")
        }
    }
}
