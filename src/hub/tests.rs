//! The hub's claims, grace, takeover, inputs and bounds, without sockets.

use super::*;

type Subscribers = Arc<Mutex<Vec<broadcast::Receiver<HubEvent>>>>;

fn hub(grace_ms: u64) -> (Arc<Hub>, Subscribers) {
    let subs = Arc::new(Mutex::new(Vec::new()));
    let s2 = subs.clone();
    let hub = Hub::new(
        HubLimits {
            grace: Duration::from_millis(grace_ms),
            takeover_after: Duration::from_millis(100),
            max_queue_bytes: 10_000,
        },
        Box::new(move |s| s2.lock().unwrap().push(s.subscribe())),
    );
    (hub, subs)
}

#[tokio::test]
async fn second_publisher_is_refused_and_first_is_untouched() {
    let (hub, subs) = hub(50);
    assert_eq!(hub.check_claim("a", Input::Primary), Ok(()));
    let p1 = hub.claim("a").unwrap();
    assert_eq!(
        hub.check_claim("a", Input::Primary),
        Ok(()),
        "may wait for the takeover time"
    );
    assert_eq!(
        hub.claim("a").err(),
        Some(HubError::AlreadyLive("a".into()))
    );
    p1.send_tracks(MediaInfo {
        video: None,
        audio: None,
        declared_bitrate: None,
    });
    let mut rx = subs.lock().unwrap().pop().unwrap();
    assert!(matches!(rx.recv().await, Ok(HubEvent::Tracks(..))));
    assert_eq!(hub.open_stream_names(), vec!["a".to_string()]);
}

#[tokio::test]
async fn reconnect_within_grace_continues_the_same_stream() {
    let (hub, subs) = hub(200);
    let p1 = hub.claim("a").unwrap();
    drop(p1);
    let p2 = hub.claim("a").unwrap();
    assert_eq!(subs.lock().unwrap().len(), 1, "no new stream was created");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hub.open_stream_names(),
        vec!["a".to_string()],
        "stale grace timer must not end it"
    );
    p2.finish();
    let mut rx = subs.lock().unwrap().pop().unwrap();
    assert!(matches!(rx.recv().await, Ok(HubEvent::End)));
    assert!(hub.open_stream_names().is_empty());
}

#[tokio::test]
async fn drop_without_reconnect_ends_after_grace() {
    let (hub, subs) = hub(50);
    drop(hub.claim("a").unwrap());
    let mut rx = subs.lock().unwrap().pop().unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap();
    assert!(matches!(ev, Ok(HubEvent::End)));
    // A new publish after the end is a new stream.
    let _p = hub.claim("a").unwrap();
    assert_eq!(subs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_silent_live_publisher_is_taken_over_and_told_so() {
    let (hub, subs) = hub(5000);
    let mut p1 = hub.claim("a").unwrap();
    // Still sending: protected.
    p1.send_tracks(MediaInfo {
        video: None,
        audio: None,
        declared_bitrate: None,
    });
    assert!(hub.claim("a").is_err());
    // Silent past the takeover time (100 ms here): taken over.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let p2 = hub.claim("a").unwrap();
    tokio::time::timeout(Duration::from_secs(1), p1.taken_over())
        .await
        .expect("the old publisher is told");
    assert_eq!(subs.lock().unwrap().len(), 1, "the same stream continues");
    // The old publisher going away does not end or free the stream.
    drop(p1);
    assert!(hub.claim("a").is_err(), "p2 is live");
    p2.finish();
}

#[tokio::test]
async fn a_held_claim_takes_over_once_the_live_publisher_stayed_silent() {
    let (hub, subs) = hub(5000);
    let mut p1 = hub.claim("a").unwrap();
    let Ok(Claimed::Held(hold)) = hub.claim_or_hold("a", Input::Primary) else {
        panic!("the claim is held")
    };
    // One waits; the next is refused at once, in the handshake too.
    assert!(matches!(
        hub.claim_or_hold("a", Input::Primary),
        Err(HubError::TakeoverPending(_))
    ));
    assert_eq!(
        hub.check_claim("a", Input::Primary),
        Err(HubError::TakeoverPending("a".into()))
    );
    let p2 = tokio::time::timeout(Duration::from_secs(1), hold.wait())
        .await
        .expect("waits the takeover time, no more")
        .expect("takes over");
    tokio::time::timeout(Duration::from_secs(1), p1.taken_over())
        .await
        .expect("the old publisher is told");
    assert_eq!(subs.lock().unwrap().len(), 1, "the same stream continues");
    assert_eq!(
        hub.check_claim("a", Input::Primary),
        Ok(()),
        "the waiting place is free"
    );
    p2.finish();
}

#[tokio::test]
async fn a_held_claim_is_refused_when_the_live_publisher_speaks_again() {
    let (hub, _subs) = hub(5000);
    let p1 = hub.claim("a").unwrap();
    let Ok(Claimed::Held(hold)) = hub.claim_or_hold("a", Input::Primary) else {
        panic!("the claim is held")
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    p1.send_tracks(MediaInfo {
        video: None,
        audio: None,
        declared_bitrate: None,
    });
    assert_eq!(
        hold.wait().await.err(),
        Some(HubError::StillSending("a".into()))
    );
    // A dropped hold frees the waiting place too.
    let Ok(Claimed::Held(hold)) = hub.claim_or_hold("a", Input::Primary) else {
        panic!("the claim is held")
    };
    drop(hold);
    assert!(matches!(
        hub.claim_or_hold("a", Input::Primary),
        Ok(Claimed::Held(_))
    ));
}

fn no_tracks() -> MediaInfo {
    MediaInfo {
        video: None,
        audio: None,
        declared_bitrate: None,
    }
}

fn claim_backup(hub: &Arc<Hub>, name: &str) -> Result<Publisher, HubError> {
    match hub.claim_or_hold(name, Input::Backup)? {
        Claimed::Now(p) => Ok(p),
        Claimed::Held(_) => Err(HubError::AlreadyLive(name.into())),
    }
}

#[tokio::test]
async fn a_backup_joins_a_live_stream_and_its_events_are_marked_as_the_backup() {
    let (hub, subs) = hub(5000);
    assert_eq!(
        claim_backup(&hub, "a").err(),
        Some(HubError::NoPrimary("a".into())),
        "no backup for a stream nobody publishes"
    );
    assert_eq!(
        hub.check_claim("a", Input::Backup),
        Err(HubError::NoPrimary("a".into()))
    );
    let primary = hub.claim("a").unwrap();
    let backup = claim_backup(&hub, "a").unwrap();
    assert_eq!(backup.input(), Input::Backup);
    assert!(!backup.resumes());
    // A second backup while the first sends: refused (held, here at once).
    backup.send_tracks(no_tracks());
    assert!(matches!(
        hub.claim_or_hold("a", Input::Backup),
        Ok(Claimed::Held(_))
    ));
    primary.send_tracks(no_tracks());
    let mut rx = subs.lock().unwrap().pop().unwrap();
    assert!(matches!(
        rx.recv().await,
        Ok(HubEvent::Tracks(Input::Backup, _))
    ));
    assert!(matches!(
        rx.recv().await,
        Ok(HubEvent::Tracks(Input::Primary, _))
    ));
    let st = &hub.states()[0];
    assert!(st.live && st.backup_live);
}

#[tokio::test]
async fn the_stream_lives_while_either_input_does_and_ends_with_the_primary_unpublish() {
    let (hub, subs) = hub(50);
    let primary = hub.claim("a").unwrap();
    let backup = claim_backup(&hub, "a").unwrap();
    // The primary drops: past its grace the backup carries the stream.
    drop(primary);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(hub.open_stream_names(), ["a"]);
    let mut rx = subs.lock().unwrap().pop().unwrap();
    assert!(!ended(&mut rx));
    // The backup drops too: the stream ends after its grace.
    drop(backup);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(ended(&mut rx));
    assert!(hub.open_stream_names().is_empty());

    // A deliberate unpublish of the primary ends it at once and tells
    // the backup to close; a backup's unpublish does not end it.
    let primary = hub.claim("b").unwrap();
    claim_backup(&hub, "b").unwrap().finish();
    assert_eq!(hub.open_stream_names(), ["b"]);
    let mut backup = claim_backup(&hub, "b").unwrap();
    primary.finish();
    assert!(hub.open_stream_names().is_empty());
    tokio::time::timeout(Duration::from_secs(1), backup.taken_over())
        .await
        .expect("the backup is told to close");
}

#[tokio::test]
async fn a_publisher_whose_frames_would_overfill_the_queue_budget_is_refused() {
    let (hub, _subs) = hub(50);
    let mut p = hub.claim("a").unwrap();
    let frame = |n: usize| AccessUnit {
        track: crate::media::TrackKind::Video,
        dts: 0,
        pts: 0,
        keyframe: true,
        data: bytes::Bytes::from(vec![0u8; n]),
        received: std::time::Instant::now(),
    };
    // 9 KB within the 10 KB budget, then one more frame past it.
    for _ in 0..9 {
        p.send_media(frame(1000)).unwrap();
    }
    assert!(matches!(
        p.send_media(frame(2000)),
        Err(HubError::QueueBytes { limit: 10_000, .. })
    ));
    // Small frames long after do not add up: only the last QUEUE_EVENTS count.
    let mut q = hub.claim("b").unwrap();
    for _ in 0..(QUEUE_EVENTS * 3) {
        q.send_media(frame(9)).unwrap();
    }
}

fn ended(rx: &mut broadcast::Receiver<HubEvent>) -> bool {
    std::iter::from_fn(|| rx.try_recv().ok()).any(|e| matches!(e, HubEvent::End))
}

#[tokio::test]
async fn draining_refuses_new_publishers_and_ends_streams_without_grace() {
    let (hub, subs) = hub(60_000);
    let live = hub.claim("live").unwrap();
    let waiting = hub.claim("waiting").unwrap();
    drop(waiting); // a network drop: waits a minute for a reconnect
    assert_eq!(hub.open_streams(), 2);
    hub.start_draining();
    assert_eq!(hub.claim("new").err(), Some(HubError::Draining));
    assert_eq!(
        hub.check_claim("new", Input::Primary),
        Err(HubError::Draining)
    );
    assert_eq!(hub.claim("waiting").err(), Some(HubError::Draining));
    // The stream waiting for its publisher ended at once.
    assert_eq!(hub.open_stream_names(), ["live"]);
    assert!(ended(&mut subs.lock().unwrap()[1]));
    // The live one goes on until its publisher drops: then no grace.
    assert!(!ended(&mut subs.lock().unwrap()[0]));
    let mut live = live;
    let kicked = tokio::time::timeout(Duration::from_millis(50), live.taken_over()).await;
    assert!(kicked.is_err(), "not disconnected before the drain timeout");
    hub.close_publishers();
    tokio::time::timeout(Duration::from_secs(1), live.taken_over())
        .await
        .expect("told to disconnect");
    let closed = tokio::spawn({
        let hub = hub.clone();
        async move { hub.all_closed().await }
    });
    tokio::task::yield_now().await;
    assert!(!closed.is_finished(), "a stream is still open");
    drop(live);
    assert!(ended(&mut subs.lock().unwrap()[0]));
    assert_eq!(hub.open_streams(), 0);
    tokio::time::timeout(Duration::from_secs(1), closed)
        .await
        .expect("all_closed resolves when the last stream ends")
        .unwrap();
}

#[tokio::test]
async fn a_stream_refused_as_live_elsewhere_ends_and_tells_its_publishers_why() {
    let streams: Arc<Mutex<Vec<Arc<HubStream>>>> = Arc::default();
    let s2 = streams.clone();
    let h = Hub::new(
        HubLimits {
            grace: Duration::from_secs(10),
            takeover_after: Duration::from_millis(100),
            max_queue_bytes: 10_000,
        },
        Box::new(move |s| s2.lock().unwrap().push(s.clone())),
    );
    let mut primary = h.claim("a").unwrap();
    let mut backup = claim_backup(&h, "a").unwrap();
    let mut rx = streams.lock().unwrap()[0].subscribe();
    streams.lock().unwrap()[0].refuse_live_elsewhere();
    assert!(h.open_stream_names().is_empty(), "ended at once, no grace");
    assert!(ended(&mut rx));
    for p in [&mut primary, &mut backup] {
        let why = tokio::time::timeout(Duration::from_secs(1), p.taken_over())
            .await
            .expect("told to close");
        assert_eq!(why, Kick::LiveElsewhere);
    }
    // A takeover says so too.
    let (hub, _subs) = hub(50);
    let mut old = hub.claim("b").unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _new = hub.claim("b").unwrap();
    let why = tokio::time::timeout(Duration::from_secs(1), old.taken_over())
        .await
        .unwrap();
    assert_eq!(why, Kick::Closed);
}
