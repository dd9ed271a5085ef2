use super::*;
use bytes::Bytes;
use std::time::{Duration, Instant, SystemTime};

/// The tier and bytes of `s` (memory reads are ready at once).
fn contents(s: Option<Stored>) -> Option<(Tier, Vec<u8>)> {
    let s = s?;
    let bytes = futures::executor::block_on(object::read_all(&*s)).ok()?;
    Some((s.tier(), bytes.concat()))
}

pub(super) fn pls(s: &'static str) -> Playlists {
    Playlists {
        full: Bytes::from_static(s.as_bytes()),
        delta: Bytes::from_static(s.as_bytes()),
        ..Default::default()
    }
}

#[tokio::test]
async fn parts_complete_into_segments_and_wake_waiters() {
    let store = Store::new();
    let r = store.open_stream("a").rendition("source");
    let mut rx = r.subscribe();
    r.apply(Update {
        part: Some((0, 0, Bytes::from_static(b"p0"))),
        playlists: Some((SnapshotKey::Part(0, 0), pls("one"))),
        ..Default::default()
    });
    rx.changed().await.unwrap();
    r.apply(Update {
        part: Some((0, 1, Bytes::from_static(b"p1"))),
        segment_complete: Some((0, Duration::from_secs(1))),
        playlists: Some((SnapshotKey::Part(0, 1), pls("two"))),
        ..Default::default()
    });
    assert_eq!(
        contents(r.segment(0)),
        Some((Tier::Memory, b"p0p1".to_vec()))
    );
    assert_eq!(r.progress().last_part, Some((0, 1)));
    assert_eq!(
        &r.playlists(Some(SnapshotKey::Part(0, 0))).unwrap().full[..],
        b"one"
    );
    assert_eq!(&r.playlists(None).unwrap().full[..], b"two");
    r.apply(Update {
        first_msn: 1,
        ..Default::default()
    });
    assert!(r.segment(0).is_some(), "unlisted, still servable for 1 s");
}

#[test]
fn a_parts_rendering_is_one_allocation_handed_to_every_lookup_for_it() {
    let store = Store::new();
    let r = store.open_stream("a").rendition("source");
    let rendered = Bytes::from(b"#EXTM3U\n...0.0\n".to_vec());
    r.apply(Update {
        part: Some((0, 0, Bytes::from_static(b"p0"))),
        playlists: Some((
            SnapshotKey::Part(0, 0),
            Playlists {
                full: rendered.clone(),
                ..Default::default()
            },
        )),
        ..Default::default()
    });
    // A later part renders anew; the waiters of 0.0 still get 0.0's.
    r.apply(Update {
        part: Some((0, 1, Bytes::from_static(b"p1"))),
        playlists: Some((SnapshotKey::Part(0, 1), pls("later"))),
        ..Default::default()
    });
    // What each request held for 0.0 looks up when it wakes.
    let waiters: Vec<Bytes> = (0..3)
        .map(|_| r.playlists(Some(SnapshotKey::Part(0, 0))).unwrap().full)
        .collect();
    for w in &waiters {
        assert_eq!(w.as_ptr(), rendered.as_ptr(), "one allocation, no copy");
        assert_eq!(w.len(), rendered.len());
    }
    assert_eq!(&r.playlists(None).unwrap().full[..], b"later");
}

/// Segment `msn` of rendition `r`: two parts of 100 bytes of `msn`.
pub(super) fn segment_of(r: &Rendition, msn: u64, text: &'static str) {
    for idx in 0..2 {
        r.apply(Update {
            part: Some((msn, idx, Bytes::from(vec![msn as u8 + idx as u8; 100]))),
            segment_complete: (idx == 1).then_some((msn, Duration::from_secs(1))),
            playlists: Some((SnapshotKey::Part(msn, idx), pls(text))),
            target_duration: Duration::from_secs(1),
            ..Default::default()
        });
    }
}

pub(super) async fn bytes_of(s: Option<Stored>) -> Vec<u8> {
    let s = s.expect("stored");
    object::read_all(&*s).await.expect("readable").concat()
}

#[tokio::test]
async fn past_the_disk_budget_the_oldest_vod_goes_and_live_segments_stay_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::open(dir.path().to_path_buf(), Duration::from_secs(3), 1_000).unwrap();
    let store = Store::with_disk(8, Budget::default(), Some(disk.clone()));
    let old = store.open_stream("old");
    let r = old.rendition("v");
    for msn in 0..6 {
        segment_of(&r, msn, "x");
    }
    store.end_session(&old).await;
    assert_eq!(disk.bytes(), 1_200, "the VOD is on disk");
    let live = store.open_stream("live");
    let lr = live.rendition("v");
    for msn in 0..6 {
        segment_of(&lr, msn, "x");
    }
    disk.run(|_| ()).await.unwrap();
    assert!(
        lr.segment(0).map(|s| s.tier()) == Some(Tier::Memory),
        "nothing more goes to a full disk"
    );
    let old_epoch = old.epoch().to_string();
    assert_eq!(
        live.disk_pressure(),
        Some(("old".into(), old_epoch.clone()))
    );
    disk.run(|_| ()).await.unwrap();
    assert_eq!(disk.bytes(), 0);
    assert!(store.session("old", &old_epoch).is_none());
    assert_eq!(live.disk_pressure(), None, "within the budget again");
    segment_of(&lr, 6, "x");
    disk.run(|_| ()).await.unwrap();
    assert!(
        lr.segment(0).map(|s| s.tier()) == Some(Tier::Disk),
        "spilling again"
    );
}

#[tokio::test]
async fn under_memory_pressure_a_vod_on_disk_gives_up_its_memory_before_any_is_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::open(dir.path().to_path_buf(), Duration::from_secs(60), u64::MAX).unwrap();
    let budget = Budget {
        total: 1_500,
        per_stream: usize::MAX,
    };
    let store = Store::with_disk(8, budget, Some(disk.clone()));
    let vod = store.open_stream("vod");
    let r = vod.rendition("v");
    for msn in 0..5 {
        segment_of(&r, msn, "x");
    }
    store.end_session(&vod).await;
    assert_eq!(store.bytes(), 1_000, "kept in memory within its window");
    let live = store.open_stream("live");
    let _lr = hold(&live, 900);
    assert_eq!(
        live.pressure(),
        (None, None),
        "memory freed, nothing evicted"
    );
    assert_eq!(store.bytes(), 900);
    assert!(
        store.session("vod", vod.epoch()).is_some(),
        "the VOD is still served"
    );
    assert_eq!(bytes_of(r.segment(4)).await, {
        let mut v = vec![4u8; 100];
        v.extend([5u8; 100]);
        v
    });
}

#[tokio::test]
async fn a_pushed_session_ended_here_and_pushed_again_starts_fresh_under_its_epoch() {
    let store = Store::new();
    let first = store.open_pushed("s", "e1");
    assert!(Arc::ptr_eq(&first, &store.open_pushed("s", "e1")));
    store.end_session(&first).await;
    let again = store.open_pushed("s", "e1");
    assert!(!Arc::ptr_eq(&first, &again), "a fresh entry");
    assert_eq!(again.epoch(), "e1");
    assert!(again.ended_at().is_none());
    // The ended session's VOD timer leaves the live one.
    let stop = tokio_util::sync::CancellationToken::new();
    store.expire_after("s", "e1", Duration::ZERO, &stop).await;
    assert!(store.session("s", "e1").is_some());
}

#[test]
fn a_republished_stream_gets_a_new_epoch() {
    let store = Store::new();
    let a = store.open_stream("a").epoch().to_string();
    let b = store.open_stream("a").epoch().to_string();
    assert_ne!(a, b);
    store.remove("a", &a);
    assert!(
        store.stream("a").is_some(),
        "removing a stale epoch keeps the new entry"
    );
    store.remove("a", &b);
    assert!(store.stream("a").is_none());
}

#[tokio::test]
async fn a_crashed_session_deleted_at_restart_never_lends_its_epoch_to_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let disk = Disk::open(dir.path().to_path_buf(), Duration::from_secs(3), 1 << 30);
        Store::with_disk(8, Budget::default(), Some(disk.unwrap()))
    };
    // A session that was live when castline stopped, written while the
    // clock ran an hour ahead of the one it has now: no manifest.
    let ahead = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000;
    let crashed = epoch::encode(ahead);
    std::fs::create_dir_all(dir.path().join("game").join(&crashed)).unwrap();
    let store = open();
    assert!(store.restore(Duration::from_secs(60)).is_empty());
    assert!(
        !dir.path().join("game").join(&crashed).exists(),
        "deleted at start"
    );
    let fresh = store.open_stream("game").epoch().to_string();
    assert!(
        epoch::decode(&fresh) > Some(ahead),
        "{fresh} reissues or precedes {crashed}"
    );
    // And the next restart remembers it without the directory.
    let again = open().open_stream("game").epoch().to_string();
    assert!(epoch::decode(&again) > epoch::decode(&fresh));
}

#[test]
fn an_ended_session_stays_servable_under_its_epoch_after_the_name_goes_live_again() {
    let store = Store::new();
    let old = store.open_stream("a");
    old.rendition("v").apply(Update {
        part: Some((0, 0, Bytes::from_static(b"old"))),
        ..Default::default()
    });
    store.ended(&old);
    let new = store.open_stream("a");
    assert_eq!(store.stream("a").unwrap().epoch(), new.epoch());
    let kept = store.session("a", old.epoch()).expect("old session kept");
    assert_eq!(
        contents(kept.find_rendition("v").unwrap().part(0, 0)),
        Some((Tier::Memory, b"old".to_vec()))
    );
    assert!(store.session("a", "nope").is_none());
    store.remove("a", old.epoch());
    assert!(store.session("a", old.epoch()).is_none());
    assert!(store.stream("a").is_some(), "the live session is untouched");
}

#[test]
fn past_the_vod_limit_the_oldest_ended_session_goes_first() {
    let store = Store::with_vod_limit(2);
    let entries: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| store.open_stream(n))
        .collect();
    assert!(store.ended(&entries[0]).is_empty());
    assert!(store.ended(&entries[1]).is_empty());
    let evicted = store.ended(&entries[2]);
    assert_eq!(
        evicted,
        vec![("a".to_string(), entries[0].epoch().to_string())]
    );
    assert!(store.stream("a").is_none());
    assert!(store.stream("b").is_some() && store.stream("c").is_some());
    assert_eq!(store.vod_sessions(), 2);
}

#[test]
fn the_store_counts_the_media_bytes_it_holds_and_frees() {
    let store = Store::new();
    let e = store.open_stream("a");
    let r = e.rendition("v");
    r.apply(Update {
        init: Some((1, Bytes::from(vec![0; 100]))),
        part: Some((0, 0, Bytes::from(vec![0; 1000]))),
        ..Default::default()
    });
    assert_eq!(store.bytes(), 1100);
    // A complete segment is its parts: no second copy.
    // Its playlist lists it and a target duration (2 s) for the next one:
    // the longest playlist is 3 s.
    r.apply(Update {
        segment_complete: Some((0, Duration::from_secs(1))),
        target_duration: Duration::from_secs(2),
        ..Default::default()
    });
    assert_eq!(store.bytes(), 1100);
    // Unlisted, the segment stays servable for its 1 s plus the longest
    // playlist's 3 s (RFC 8216 6.2.2), then its bytes are freed.
    let t = Instant::now();
    let unlisted = || Update {
        first_msn: 1,
        target_duration: Duration::from_secs(2),
        ..Default::default()
    };
    r.apply_at(unlisted(), t);
    r.apply_at(unlisted(), t + Duration::from_millis(3990));
    assert_eq!(
        store.bytes(),
        1100,
        "kept while a player may still reach it"
    );
    assert!(r.segment(0).is_some() && r.part(0, 0).is_some());
    r.apply_at(unlisted(), t + Duration::from_secs(4));
    assert_eq!(store.bytes(), 100, "then freed");
    assert!(r.segment(0).is_none());
    drop(r);
    store.remove("a", e.epoch());
    drop(e);
    assert_eq!(store.bytes(), 0, "a removed stream frees everything");
}

fn hold(e: &SessionEntry, bytes: usize) -> Arc<Rendition> {
    let r = e.rendition("v");
    r.apply(Update {
        part: Some((0, 0, Bytes::from(vec![0; bytes]))),
        ..Default::default()
    });
    r
}

#[test]
fn a_stream_over_its_budget_is_pressed_to_shorten_its_window() {
    let budget = Budget {
        total: 10_000,
        per_stream: 1_000,
    };
    let store = Store::with_limits(8, budget);
    let (small, big) = (store.open_stream("small"), store.open_stream("big"));
    let _r = (hold(&small, 900), hold(&big, 1_001));
    assert_eq!(small.pressure(), (None, None));
    assert_eq!(big.pressure(), (Some(Pressure::Stream), None));
}

#[test]
fn a_stream_found_over_its_budget_frees_what_it_unlists_at_once() {
    let budget = Budget {
        total: 10_000,
        per_stream: 1_000,
    };
    let store = Store::with_limits(8, budget);
    let e = store.open_stream("big");
    let r = hold(&e, 1_001);
    r.apply(Update {
        segment_complete: Some((0, Duration::from_secs(1))),
        target_duration: Duration::from_secs(2),
        ..Default::default()
    });
    let unlisted = Update {
        first_msn: 1,
        target_duration: Duration::from_secs(2),
        ..Default::default()
    };
    // Within budget when last looked at: kept for its retention time.
    r.apply(unlisted);
    assert!(r.segment(0).is_some(), "kept while a player may reach it");
    // Found over it: what is unlisted goes at the next change.
    assert_eq!(e.pressure(), (Some(Pressure::Stream), None));
    r.apply(Update {
        first_msn: 1,
        target_duration: Duration::from_secs(2),
        ..Default::default()
    });
    assert!(r.segment(0).is_none(), "freed at once");
    assert_eq!(store.bytes(), 0);
}

#[test]
fn past_the_memory_budget_the_oldest_vod_goes_before_any_live_window_shrinks() {
    let budget = Budget {
        total: 2_500,
        per_stream: 10_000,
    };
    let store = Store::with_limits(8, budget);
    let (old, newer) = (store.open_stream("old"), store.open_stream("newer"));
    let live = store.open_stream("live");
    drop((hold(&old, 1_000), hold(&newer, 1_000)));
    let _live_media = hold(&live, 1_000);
    assert!(store.ended(&old).is_empty() && store.ended(&newer).is_empty());
    let old_epoch = old.epoch().to_string();
    drop((old, newer));
    // 3,000 bytes held: the oldest VOD is evicted, the live window stays.
    assert_eq!(
        live.pressure(),
        (None, Some(("old".to_string(), old_epoch)))
    );
    assert_eq!(store.bytes(), 2_000);
    assert_eq!(live.pressure(), (None, None), "within the budget again");
    // Over it with no VOD left to go: the live stream gives way.
    let _more = store.open_stream("more");
    let _more_media = hold(&_more, 1_000);
    assert!(live.pressure().1.is_some(), "the last VOD goes first");
    let _extra = hold(&store.open_stream("extra"), 1_000);
    assert_eq!(live.pressure(), (Some(Pressure::Memory), None));
}
