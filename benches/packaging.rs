//! CMAF chunk writing and LL-HLS playlist rendering: the per-part work.
use std::collections::VecDeque;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use castline::package::boxes::{chunk, Sample, TrackRun};
use castline::package::playlist::{
    render, Form, MediaPlaylist, PartEntry, RenditionReport, SegmentEntry,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn part_samples() -> (Vec<Sample>, Vec<Sample>) {
    // One 200 ms part at 30 fps and ~3 Mbit/s, with 48 kHz AAC.
    let video = (0..6)
        .map(|i| Sample {
            duration: 3000,
            cts_offset: 6000,
            sync: i == 0,
            data: Bytes::from(vec![0u8; if i == 0 { 40_000 } else { 8_000 }]),
        })
        .collect();
    let audio = (0..10)
        .map(|_| Sample {
            duration: 1024,
            cts_offset: 0,
            sync: true,
            data: Bytes::from(vec![0u8; 380]),
        })
        .collect();
    (video, audio)
}

fn playlist(segments: u64) -> MediaPlaylist {
    let mut pl = MediaPlaylist::new("mwt5m4jo".into(), 1, 0.2);
    pl.segments = (0..segments)
        .map(|msn| SegmentEntry {
            msn,
            discontinuity: false,
            init_id: 1,
            program_date_time: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + msn),
            parts: (0..5)
                .map(|i| PartEntry {
                    duration: 0.2,
                    independent: i == 0,
                    size: 14_000,
                })
                .collect(),
            duration: Some(1.0),
        })
        .collect::<VecDeque<_>>();
    pl.preload_hint = Some((segments, 0));
    pl
}

fn bench(c: &mut Criterion) {
    let (video, audio) = part_samples();
    let bytes: usize = video.iter().chain(&audio).map(|s| s.data.len()).sum();
    let mut g = c.benchmark_group("cmaf");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("chunk_200ms_av", |b| {
        b.iter(|| {
            chunk(
                1,
                &[
                    TrackRun {
                        track_id: 1,
                        base_decode_time: 90_000,
                        samples: &video,
                        with_cts: true,
                    },
                    TrackRun {
                        track_id: 2,
                        base_decode_time: 48_000,
                        samples: &audio,
                        with_cts: false,
                    },
                ],
            )
            .unwrap()
        })
    });
    g.finish();

    let reports = [RenditionReport {
        rendition: "720p".into(),
        last_msn: 300,
        last_part: Some(2),
    }];
    let mut g = c.benchmark_group("playlist");
    for (name, segs) in [("live_edge_10s", 10u64), ("dvr_5min", 300)] {
        let pl = playlist(segs);
        g.bench_function(format!("full_{name}"), |b| {
            b.iter(|| render(&pl, &reports, Form::Full))
        });
        g.bench_function(format!("delta_{name}"), |b| {
            b.iter(|| render(&pl, &reports, Form::Delta))
        });
        let text = render(&pl, &reports, Form::Full);
        // As the packager does: the thread's compressor, reused.
        g.bench_function(format!("gzip_full_{name}"), |b| {
            b.iter(|| castline::gzip::gzip(text.as_bytes()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
