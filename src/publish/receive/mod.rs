//! Role `origin`: pushes applied to this process's store, each through a
//! [`LocalRendition`] of its own, so an origin builds its playlists with the
//! code role `all` uses, and two origins given the same pushes serve the
//! same bytes.
//!
//! Pushes are idempotent: an object the store already has, sent again with
//! the same bytes (a resync), is taken as a duplicate and changes nothing;
//! different bytes under a name already served are refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::local::{LocalRendition, LocalSession};
use super::wire::{Message, Resume, SessionKey, SessionPlan};
use super::{Event, Publish};
use crate::metrics::{Metrics, ReasonLabel, StreamLabel};
use crate::package::packager::PackagerConfig;
use crate::package::segmenter::{Part, SegmentStart};
use crate::store::Store;
use crate::stream_name;

mod takeover;

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Stored,
    /// The store already had it, byte for byte (or it has left the window).
    Duplicate,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    /// The session never started here (or ended): the pusher resyncs.
    #[error("no such live session")]
    UnknownSession,
    #[error("the session has no rendition {0:?}")]
    UnknownRendition(String),
    #[error("different bytes under a name already served")]
    Conflict,
    #[error("a different plan for a session already started")]
    PlanConflict,
    /// Media from before a takeover that the new ingest pod's session
    /// continues (the old pod still pushes).
    #[error("another ingest pod has taken this session over")]
    Superseded,
    #[error("invalid session plan: {0}")]
    Plan(&'static str),
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::UnknownSession => "unknown_session",
            Refused::UnknownRendition(_) => "unknown_rendition",
            Refused::Conflict | Refused::PlanConflict => "conflict",
            Refused::Superseded => "superseded",
            Refused::Plan(_) => "invalid_plan",
        }
    }
}

/// One pushed session and its renditions.
struct Remote {
    session: LocalSession,
    plan: SessionPlan,
    renditions: HashMap<String, LocalRendition>,
    last: Instant,
}

pub struct Receiver {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// This origin's own policy (DVR window, VOD time, part addressing);
    /// the timing comes with each session's plan.
    policy: PackagerConfig,
    sessions: Mutex<HashMap<SessionKey, Remote>>,
    /// Ended sessions' VOD timers.
    tasks: TaskTracker,
    stop_vod: CancellationToken,
}

/// Renditions one session may have.
const MAX_RENDITIONS: usize = 16;

impl Receiver {
    pub fn new(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        policy: PackagerConfig,
        tasks: TaskTracker,
        stop_vod: CancellationToken,
    ) -> Receiver {
        Receiver {
            store,
            metrics,
            policy,
            sessions: Mutex::default(),
            tasks,
            stop_vod,
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Remote>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply one push.
    pub fn take(&self, key: SessionKey, m: Message) -> Result<Taken, Refused> {
        let mut sessions = self.sessions();
        if let Message::Start(plan) = m {
            return self.start(&mut sessions, key, plan);
        }
        let Some(remote) = sessions.get_mut(&key) else {
            // An end sent again after the session ended here is nothing new.
            return match m {
                Message::End => Ok(Taken::Duplicate),
                _ => Err(Refused::UnknownSession),
            };
        };
        remote.last = Instant::now();
        self.metrics
            .push_last_timestamp
            .get_or_create(&StreamLabel {
                stream: key.stream.clone(),
            })
            .set(unix_now());
        let taken = match m {
            Message::Start(_) => unreachable!("handled above"),
            Message::Dependent => {
                remote.session.entry().mark_dependent();
                Taken::Stored
            }
            Message::End => {
                if let Some(remote) = sessions.remove(&key) {
                    self.end(&key, remote);
                }
                self.metrics.pushed_streams.set(sessions.len() as i64);
                Taken::Stored
            }
            Message::Init {
                rendition,
                id,
                data,
            } => {
                let r = rendition_of(remote, &rendition)?;
                match r.rendition().init(id) {
                    Some(had) if had == data => Taken::Duplicate,
                    Some(_) => return Err(Refused::Conflict),
                    None => {
                        r.publish(Event::Init { id, data });
                        Taken::Stored
                    }
                }
            }
            Message::Part {
                rendition,
                msn,
                index,
                meta,
                data,
            } => {
                let continues_at = remote.plan.continues_at;
                let r = rendition_of(remote, &rendition)?;
                if msn < r.media_sequence() {
                    return Ok(Taken::Duplicate);
                }
                if r.rendition().has_part(msn, index) {
                    let had = r
                        .rendition()
                        .parts_from(msn, index as usize)
                        .and_then(|(parts, _)| parts.into_iter().next());
                    // Only on disk: not read back to compare. Other bytes
                    // from before a takeover are a lost pod's, still
                    // pushing a part the takeover filled with silence.
                    return match had {
                        Some(had) if had != data && continues_at.is_some_and(|at| msn < at) => {
                            Err(Refused::Superseded)
                        }
                        Some(had) if had != data => Err(Refused::Conflict),
                        _ => Ok(Taken::Duplicate),
                    };
                }
                if continues_at.is_some_and(|at| msn < at) {
                    return Err(Refused::Superseded);
                }
                r.publish(Event::Part {
                    part: Part {
                        segment: SegmentStart {
                            msn,
                            discontinuity: meta.discontinuity,
                            init_id: meta.init_id,
                            program_date_time: super::wire::date(meta.date_ns),
                        },
                        index,
                        duration: meta.duration,
                        independent: meta.independent,
                        data,
                        received: Instant::now(),
                    },
                    next: meta.next,
                });
                Taken::Stored
            }
            Message::SegmentEnd {
                rendition,
                msn,
                meta,
            } => {
                let continues_at = remote.plan.continues_at;
                let r = rendition_of(remote, &rendition)?;
                if msn < r.media_sequence() || r.rendition().has_segment(msn) {
                    return Ok(Taken::Duplicate);
                }
                if continues_at.is_some_and(|at| msn < at) {
                    return Err(Refused::Superseded);
                }
                r.publish(Event::SegmentEnd {
                    msn,
                    duration: meta.duration,
                    meta: meta.meta,
                    next: meta.next,
                });
                Taken::Stored
            }
            Message::RenditionEnd { rendition } => {
                let r = rendition_of(remote, &rendition)?;
                if r.rendition().progress().ended {
                    return Ok(Taken::Duplicate);
                }
                r.publish(Event::End);
                Taken::Stored
            }
        };
        Ok(taken)
    }

    fn start(
        &self,
        sessions: &mut HashMap<SessionKey, Remote>,
        key: SessionKey,
        plan: SessionPlan,
    ) -> Result<Taken, Refused> {
        if let Some(remote) = sessions.get_mut(&key) {
            if remote.plan == plan {
                return Ok(Taken::Duplicate);
            }
            let at = plan.continues_at.ok_or(Refused::PlanConflict)?;
            let same = SessionPlan {
                continues_at: remote.plan.continues_at,
                ..plan.clone()
            };
            if same != remote.plan || at < next_msn(remote) {
                return Err(Refused::PlanConflict);
            }
            // Another ingest pod takes the session over at MSN `at`: each
            // rendition's segment left open by the lost one ends with the
            // parts it has, the audio's brought up to the video's end.
            tracing::info!(stream = %key.stream, epoch = %key.epoch, msn = at, "another ingest pod continues a pushed session");
            takeover::end_lost_pods_segments(remote, &key, at);
            remote.plan = plan;
            remote.last = Instant::now();
            return Ok(Taken::Stored);
        }
        check_plan(&plan)?;
        // Epochs are issued from the clock (`store::epoch`): a session older
        // than the one live here comes from a pod that was replaced (its
        // journal, resent), and must not end the live one.
        if sessions
            .keys()
            .any(|k| k.stream == key.stream && epoch_order(&k.epoch) > epoch_order(&key.epoch))
        {
            return Err(Refused::Superseded);
        }
        let cfg = PackagerConfig {
            target_duration: plan.target_duration,
            segmenter: crate::package::segmenter::SegmenterConfig {
                part_target: plan.part_target,
                ..self.policy.segmenter
            },
            ..self.policy
        };
        let entry = self.store.open_pushed(&key.stream, &key.epoch);
        let session = LocalSession::open(self.store.clone(), entry, &plan, self.metrics.clone());
        let renditions = plan
            .video
            .iter()
            .chain(plan.audio.iter())
            .map(|name| (name.clone(), session.rendition(name, cfg)))
            .collect();
        tracing::info!(stream = %key.stream, epoch = %key.epoch, "a pushed session starts");
        // A newer session of the name replaces an older one still open here
        // (its end was lost): that one ends now.
        let older: Vec<SessionKey> = sessions
            .keys()
            .filter(|k| k.stream == key.stream)
            .cloned()
            .collect();
        for k in older {
            if let Some(old) = sessions.remove(&k) {
                self.end(&k, old);
            }
        }
        sessions.insert(
            key,
            Remote {
                session,
                plan,
                renditions,
                last: Instant::now(),
            },
        );
        self.metrics.pushed_streams.set(sessions.len() as i64);
        Ok(Taken::Stored)
    }

    /// A session ends: every rendition not ended yet ends (its own end may
    /// have been lost to a resync), and it is kept as VOD by this origin's
    /// policy.
    fn end(&self, key: &SessionKey, mut remote: Remote) {
        for r in remote.renditions.values_mut() {
            if !r.rendition().progress().ended {
                r.publish(Event::End);
            }
        }
        self.metrics.push_last_timestamp.remove(&StreamLabel {
            stream: key.stream.clone(),
        });
        tracing::info!(stream = %key.stream, epoch = %key.epoch, "a pushed session ended");
        drop(remote.renditions);
        let (keep, stop) = (self.policy.vod_keep, self.stop_vod.clone());
        let session = remote.session;
        self.tasks
            .spawn(async move { session.end(keep, &stop).await });
    }

    /// Where the live session of `stream` would continue, if there is one.
    pub fn resume(&self, stream: &str) -> Option<Resume> {
        let sessions = self.sessions();
        let (key, remote) = sessions.iter().find(|(k, _)| k.stream == stream)?;
        Some(Resume {
            epoch: key.epoch.clone(),
            next_msn: next_msn(remote),
            next_init: remote
                .renditions
                .values()
                .filter_map(|r| r.rendition().last_init())
                .max()
                .map_or(0, |id| id + 1),
            silent_ms: remote.last.elapsed().as_millis() as u64,
        })
    }

    /// End every session that has had no push for `silent`: its ingest pod
    /// is gone and nobody took the stream over.
    pub fn end_silent(&self, silent: Duration) {
        let mut sessions = self.sessions();
        let gone: Vec<SessionKey> = sessions
            .iter()
            .filter(|(_, r)| r.last.elapsed() >= silent)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(remote) = sessions.remove(&k) {
                tracing::warn!(stream = %k.stream, epoch = %k.epoch, ?silent, "no push for a pushed session: it ends");
                self.end(&k, remote);
            }
        }
        self.metrics.pushed_streams.set(sessions.len() as i64);
    }

    /// This process was paused (stopped, starved of CPU): the time it did
    /// not run is no pusher's silence.
    pub fn paused(&self) {
        let now = Instant::now();
        for r in self.sessions().values_mut() {
            r.last = now;
        }
    }

    pub fn count_refused(&self, reason: &'static str) {
        self.metrics
            .pushes_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn count_taken(&self, taken: Taken) {
        let reason = match taken {
            Taken::Stored => "stored",
            Taken::Duplicate => "duplicate",
        };
        self.metrics
            .pushes_received
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }
}

/// Epochs in the order they were issued: base-36 clock readings, so a
/// longer one is later, and among equal lengths the text sorts by time.
fn epoch_order(epoch: &str) -> (usize, &str) {
    (epoch.len(), epoch)
}

/// One past the newest MSN any of the session's renditions has begun.
fn next_msn(remote: &Remote) -> u64 {
    remote
        .renditions
        .values()
        .filter_map(|r| r.rendition().progress().last_part)
        .map(|(msn, _)| msn + 1)
        .max()
        .unwrap_or(0)
}

fn rendition_of<'a>(remote: &'a mut Remote, name: &str) -> Result<&'a mut LocalRendition, Refused> {
    remote
        .renditions
        .get_mut(name)
        .ok_or_else(|| Refused::UnknownRendition(name.to_string()))
}

/// A plan an origin can serve: a few renditions with valid names, and the
/// timing castline's own config allows.
fn check_plan(plan: &SessionPlan) -> Result<(), Refused> {
    let names: Vec<&String> = plan.video.iter().chain(plan.audio.iter()).collect();
    if names.is_empty() || names.len() > MAX_RENDITIONS {
        return Err(Refused::Plan("1 to 16 renditions"));
    }
    if !names.iter().all(|n| stream_name::is_valid(n)) {
        return Err(Refused::Plan(
            "a rendition name breaks the stream-name rule",
        ));
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != names.len() {
        return Err(Refused::Plan("a rendition named twice"));
    }
    if !(1..=30).contains(&plan.target_duration) {
        return Err(Refused::Plan("target duration outside 1..=30 s"));
    }
    if !(Duration::from_millis(50)..=Duration::from_secs(2)).contains(&plan.part_target) {
        return Err(Refused::Plan("part target outside 0.05..=2 s"));
    }
    Ok(())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
