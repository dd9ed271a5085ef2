//! ISO-BMFF writers for CMAF: the init segment (ftyp + moov with mvex) and one
//! chunk (moof + mdat). Pure functions of their inputs.

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{
    Atom, Audio, Avc1, Avcc, Dinf, Dref, Encode, Esds, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf, Moof,
    Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd, Traf, Trak,
    Trex, Trun, TrunEntry, Url, Visual, Vmhd,
};

use crate::media::{AacConfig, AvcConfig, MediaInfo, TrackKind, VIDEO_TIMESCALE};

#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    #[error("box encoding failed: {0}")]
    Encode(#[from] mp4_atom::Error),
    #[error("a stream needs at least one track")]
    NoTracks,
    #[error("mdat of {0} bytes is over 4 GiB")]
    TooLarge(usize),
}

/// sample_depends_on = 2 (depends on no other sample), is_non_sync = 0.
pub const FLAGS_SYNC: u32 = 0x0200_0000;
/// sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// Track ids in every init segment: video first, then audio.
pub fn track_id(info: &MediaInfo, kind: TrackKind) -> u32 {
    match kind {
        TrackKind::Video => 1,
        TrackKind::Audio => {
            if info.video.is_some() {
                2
            } else {
                1
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub duration: u32,
    /// PTS - DTS, signed (trun version 1).
    pub cts_offset: i32,
    pub sync: bool,
    pub data: Bytes,
}

/// The samples of one track within one chunk.
#[derive(Debug, Clone)]
pub struct TrackRun<'a> {
    pub track_id: u32,
    pub base_decode_time: u64,
    pub samples: &'a [Sample],
    /// Whether composition offsets are written (video) or not (audio).
    pub with_cts: bool,
}

/// One CMAF chunk: a moof with one traf per run, then one mdat holding the
/// runs' samples in order.
pub fn chunk(sequence: u32, runs: &[TrackRun<'_>]) -> Result<Bytes, BoxError> {
    let data_len: usize = runs
        .iter()
        .flat_map(|r| r.samples)
        .map(|s| s.data.len())
        .sum();
    let mdat_size = u32::try_from(data_len + 8).map_err(|_| BoxError::TooLarge(data_len))?;
    // The trun data offsets depend on the moof's own size: encode once to
    // learn it (offsets are fixed-width), then again with the real offsets.
    let mut moof = build_moof(sequence, runs, 0);
    let mut probe = Vec::new();
    moof.encode(&mut probe)?;
    moof = build_moof(sequence, runs, probe.len() as i32 + 8);
    let mut out = BytesMut::with_capacity(probe.len() + mdat_size as usize);
    moof.encode(&mut out)?;
    out.put_u32(mdat_size);
    out.put_slice(b"mdat");
    for s in runs.iter().flat_map(|r| r.samples) {
        out.put_slice(&s.data);
    }
    Ok(out.freeze())
}

fn build_moof(sequence: u32, runs: &[TrackRun<'_>], first_offset: i32) -> Moof {
    let mut offset = first_offset;
    let traf = runs
        .iter()
        .map(|run| {
            let entries: Vec<TrunEntry> = run
                .samples
                .iter()
                .map(|s| TrunEntry {
                    duration: Some(s.duration),
                    size: Some(s.data.len() as u32),
                    flags: Some(if s.sync { FLAGS_SYNC } else { FLAGS_NON_SYNC }),
                    cts: run.with_cts.then_some(s.cts_offset as i64),
                })
                .collect();
            let data_offset = offset;
            offset += run.samples.iter().map(|s| s.data.len() as i32).sum::<i32>();
            Traf {
                tfhd: Tfhd {
                    track_id: run.track_id,
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: run.base_decode_time,
                }),
                trun: vec![Trun {
                    data_offset: Some(data_offset),
                    samples: entries.into(),
                }],
                ..Default::default()
            }
        })
        .collect();
    Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf,
    }
}

/// The init segment for a stream's tracks.
pub fn init_segment(info: &MediaInfo) -> Result<Bytes, BoxError> {
    let mut trak = Vec::new();
    if let Some(v) = &info.video {
        trak.push(video_trak(track_id(info, TrackKind::Video), v)?);
    }
    if let Some(a) = &info.audio {
        trak.push(audio_trak(track_id(info, TrackKind::Audio), a));
    }
    if trak.is_empty() {
        return Err(BoxError::NoTracks);
    }
    let trex = trak
        .iter()
        .map(|t| Trex {
            track_id: t.tkhd.track_id,
            default_sample_description_index: 1,
            ..Default::default()
        })
        .collect();
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: trak.len() as u32 + 1,
            ..Default::default()
        },
        mvex: None,
        trak,
        ..Default::default()
    };
    let mvex = Mvex {
        trex,
        ..Default::default()
    };
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
    };
    let mut out = BytesMut::new();
    ftyp.encode(&mut out)?;
    // mp4-atom writes mvex before the traks; ISO/IEC 14496-12 and CMAF place
    // it after them, so the moov is written without it and mvex appended.
    let moov_at = out.len();
    moov.encode(&mut out)?;
    mvex.encode(&mut out)?;
    let size = u32::try_from(out.len() - moov_at).map_err(|_| BoxError::TooLarge(out.len()))?;
    out[moov_at..moov_at + 4].copy_from_slice(&size.to_be_bytes());
    Ok(out.freeze())
}

fn dinf() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![Url {
                location: String::new(),
            }
            .into()],
        },
    }
}

fn empty_stbl(stsd: Stsd) -> Stbl {
    Stbl {
        stsd,
        stts: Stts::default(),
        stsc: Stsc::default(),
        stsz: Stsz::default(),
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

fn video_trak(id: u32, v: &AvcConfig) -> Result<Trak, BoxError> {
    // The avcC bytes from the publisher, kept verbatim (with any High-profile extension).
    let avcc = Avcc::decode_body(&mut &v.record[..])?;
    let width = u16::try_from(v.width).unwrap_or(u16::MAX);
    let height = u16::try_from(v.height).unwrap_or(u16::MAX);
    let avc1 = Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width,
            height,
            ..Default::default()
        },
        avcc,
        btrt: None,
        colr: None,
        pasp: None,
        taic: None,
        fiel: None,
        spatial: None,
    };
    Ok(Trak {
        tkhd: Tkhd {
            track_id: id,
            enabled: true,
            in_movie: true,
            width: width.into(),
            height: height.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: VIDEO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "castline video".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: dinf(),
                stbl: empty_stbl(Stsd {
                    codecs: vec![avc1.into()],
                }),
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

fn audio_trak(id: u32, a: &AacConfig) -> Trak {
    let esds = Esds {
        es_desc: mp4_atom::esds::EsDescriptor {
            es_id: id as u16,
            dec_config: mp4_atom::esds::DecoderConfig {
                object_type_indication: 0x40,
                stream_type: 5,
                dec_specific: Some(mp4_atom::esds::DecoderSpecific {
                    profile: a.object_type,
                    freq_index: a.frequency_index,
                    chan_conf: a.channels,
                    raw: a.asc.to_vec(),
                }),
                ..Default::default()
            },
            ..Default::default()
        },
    };
    let mp4a = Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: a.channels.max(1) as u16,
            sample_size: 16,
            sample_rate: (a.sample_rate.min(u16::MAX as u32) as u16).into(),
        },
        esds,
        btrt: None,
        taic: None,
    };
    Trak {
        tkhd: Tkhd {
            track_id: id,
            alternate_group: 1,
            enabled: true,
            in_movie: true,
            volume: 1.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: a.sample_rate,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"soun".into(),
                name: "castline audio".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: dinf(),
                stbl: empty_stbl(Stsd {
                    codecs: vec![mp4a.into()],
                }),
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::avc::tests::AVCC_320X240;
    use mp4_atom::Decode;

    #[test]
    fn chunk_bytes_are_exact() {
        let samples = [Sample {
            duration: 3000,
            cts_offset: -3000,
            sync: true,
            data: Bytes::from_static(&[0xaa, 0xbb, 0xcc]),
        }];
        let run = TrackRun {
            track_id: 1,
            base_decode_time: 3000,
            samples: &samples,
            with_cts: true,
        };
        let got = chunk(7, &[run]).unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            0, 0, 0, 0x68, b'm', b'o', b'o', b'f',
            0, 0, 0, 0x10, b'm', b'f', b'h', b'd', 0, 0, 0, 0, 0, 0, 0, 7,
            0, 0, 0, 0x50, b't', b'r', b'a', b'f',
            0, 0, 0, 0x10, b't', b'f', b'h', b'd', 0, 2, 0, 0, 0, 0, 0, 1,
            0, 0, 0, 0x14, b't', b'f', b'd', b't', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b, 0xb8,
            // trun v1: data offset, first-sample flags, then duration, size, signed offset
            0, 0, 0, 0x24, b't', b'r', b'u', b'n', 1, 0, 0x0b, 0x05, 0, 0, 0, 1, 0, 0, 0, 0x70,
            0x02, 0, 0, 0, 0, 0, 0x0b, 0xb8, 0, 0, 0, 3, 0xff, 0xff, 0xf4, 0x48,
            0, 0, 0, 0x0b, b'm', b'd', b'a', b't', 0xaa, 0xbb, 0xcc,
        ];
        assert_eq!(&got[..], want);
    }

    #[test]
    fn two_track_chunk_offsets_point_at_each_runs_data() {
        let v = [Sample {
            duration: 3000,
            cts_offset: 0,
            sync: true,
            data: Bytes::from_static(b"VVVV"),
        }];
        let a = [
            Sample {
                duration: 1024,
                cts_offset: 0,
                sync: true,
                data: Bytes::from_static(b"AA"),
            },
            Sample {
                duration: 1024,
                cts_offset: 0,
                sync: true,
                data: Bytes::from_static(b"BB"),
            },
        ];
        let got = chunk(
            1,
            &[
                TrackRun {
                    track_id: 1,
                    base_decode_time: 0,
                    samples: &v,
                    with_cts: true,
                },
                TrackRun {
                    track_id: 2,
                    base_decode_time: 0,
                    samples: &a,
                    with_cts: false,
                },
            ],
        )
        .unwrap();
        let moof = Moof::decode(&mut &got[..]).unwrap();
        let off = |i: usize| moof.traf[i].trun[0].data_offset.unwrap() as usize;
        assert_eq!(&got[off(0)..off(0) + 4], b"VVVV");
        assert_eq!(&got[off(1)..off(1) + 4], b"AABB");
        assert_eq!(got.len(), off(1) + 4);
    }

    #[test]
    fn init_segment_round_trips_with_both_sample_entries() {
        let info = MediaInfo {
            video: Some(AvcConfig::parse(Bytes::from_static(AVCC_320X240)).unwrap()),
            audio: Some(AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap()),
            declared_bitrate: None,
        };
        let init = init_segment(&info).unwrap();
        let mut buf = &init[..];
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        assert_eq!(ftyp.major_brand, b"iso6".into());
        let moov = Moov::decode(&mut buf).unwrap();
        assert_eq!(moov.trak.len(), 2);
        assert_eq!(moov.mvex.as_ref().unwrap().trex.len(), 2);
        assert_eq!(moov.trak[0].mdia.mdhd.timescale, 90_000);
        assert_eq!(moov.trak[1].mdia.mdhd.timescale, 48_000);
        assert!(buf.is_empty());
        assert!(matches!(
            init_segment(&MediaInfo {
                video: None,
                audio: None,
                declared_bitrate: None
            }),
            Err(BoxError::NoTracks)
        ));
    }

    /// The four-character types of the boxes directly inside `body`.
    fn children(mut body: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while body.len() >= 8 {
            let size = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
            out.push(String::from_utf8_lossy(&body[4..8]).into_owned());
            body = &body[size.min(body.len())..];
        }
        out
    }

    #[test]
    fn a_video_rendition_init_has_one_track_and_mvex_after_it() {
        let info = MediaInfo {
            video: Some(AvcConfig::parse(Bytes::from_static(AVCC_320X240)).unwrap()),
            audio: None,
            declared_bitrate: None,
        };
        let init = init_segment(&info).unwrap();
        let top = children(&init);
        assert_eq!(top, vec!["ftyp", "moov"]);
        let ftyp_len = u32::from_be_bytes(init[..4].try_into().unwrap()) as usize;
        assert_eq!(
            children(&init[ftyp_len + 8..]),
            vec!["mvhd", "trak", "mvex"]
        );
        let moov = Moov::decode(&mut &init[ftyp_len..]).unwrap();
        assert_eq!(moov.trak.len(), 1);
        assert_eq!(moov.trak[0].tkhd.track_id, 1);
    }
}
