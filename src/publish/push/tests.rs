use bytes::Bytes;

use super::*;

#[test]
fn a_session_fed_elsewhere_is_continued_once_silent_for_takeover_after_and_refused_if_never() {
    let after = Duration::from_secs(2);
    let held = |silent_ms| Resume {
        epoch: "e".into(),
        next_msn: 40,
        next_init: 2,
        silent_ms,
    };
    assert_eq!(claim(None, after, false), Claim::Fresh);
    assert_eq!(claim(None, after, true), Claim::Fresh);
    assert_eq!(claim(Some(held(1999)), after, false), Claim::Wait);
    assert_eq!(
        claim(Some(held(1999)), after, true),
        Claim::Refuse(held(1999))
    );
    assert_eq!(
        claim(Some(held(2000)), after, false),
        Claim::Continue(held(2000))
    );
    assert_eq!(
        claim(Some(held(9000)), after, true),
        Claim::Continue(held(9000))
    );
}

fn item(key: &SessionKey, m: Message) -> Arc<Item> {
    Arc::new(Item::new(key, &m))
}

#[test]
fn a_journal_keeps_the_start_the_inits_and_the_last_segments_of_each_rendition() {
    let key = SessionKey {
        stream: "s".into(),
        epoch: "e".into(),
    };
    let plan = SessionPlan {
        video: vec!["v".into()],
        audio: Some("a".into()),
        target_duration: 1,
        part_target: Duration::from_millis(500),
        continues_at: None,
    };
    let mut j = Journal::default();
    // What record says the bytes changed by, summed.
    let mut change = 0;
    change += j.record(item(&key, Message::Start(plan)), false, None, 2);
    for r in ["v", "a"] {
        let init = Message::Init {
            rendition: r.into(),
            id: 0,
            data: Bytes::new(),
        };
        change += j.record(item(&key, init), false, None, 2);
    }
    for msn in 0..4 {
        for r in ["v", "a"] {
            let meta = PartMeta {
                discontinuity: false,
                init_id: 0,
                date_ns: 0,
                duration: 1.0,
                independent: true,
                next: (msn + 1, 0),
            };
            let part = Message::Part {
                rendition: r.into(),
                msn,
                index: 0,
                meta,
                data: Bytes::from(vec![0u8; 100]),
            };
            change += j.record(item(&key, part), false, None, 2);
            let end = Message::SegmentEnd {
                rendition: r.into(),
                msn,
                meta: SegmentMeta {
                    duration: 1.0,
                    meta: None,
                    next: (msn + 1, 0),
                },
            };
            change += j.record(item(&key, end), false, Some((r.into(), msn)), 2);
        }
    }
    let paths: Vec<&str> = j.items.iter().map(|i| i.request.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/push/v1/s/e/session",
            "/push/v1/s/e/r/v/init/0",
            "/push/v1/s/e/r/a/init/0",
            "/push/v1/s/e/r/v/part/2/0",
            "/push/v1/s/e/r/v/segment/2",
            "/push/v1/s/e/r/a/part/2/0",
            "/push/v1/s/e/r/a/segment/2",
            "/push/v1/s/e/r/v/part/3/0",
            "/push/v1/s/e/r/v/segment/3",
            "/push/v1/s/e/r/a/part/3/0",
            "/push/v1/s/e/r/a/segment/3",
        ]
    );
    let held: usize = j.items.iter().map(|i| i.request.body.len()).sum();
    assert_eq!(j.bytes, held);
    assert!(held >= 400, "four parts of 100 bytes are held");
    assert_eq!(change, held as isize);
    change += j.record(item(&key, Message::End), true, None, 2);
    let paths: Vec<&str> = j.items.iter().map(|i| i.request.path.as_str()).collect();
    assert_eq!(paths, ["/push/v1/s/e/end"]);
    assert_eq!(j.bytes, 0);
    assert_eq!(change, 0);
    assert!(j.ended.is_some());
}
