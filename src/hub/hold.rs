//! A claim held until the live publisher's takeover time has passed.

use std::sync::Arc;
use std::time::Instant;

use super::{Hub, HubError, HubStream, Input, Publisher};

/// What [`Hub::claim_or_hold`] gives.
pub enum Claimed {
    Now(Publisher),
    /// Ask again with [`Hold::take`] at [`Hold::until`].
    Held(Hold),
}

/// A claim waiting for the live publisher's takeover time to pass. It holds
/// the stream's one waiting place until taken or dropped.
pub struct Hold {
    pub(super) hub: Arc<Hub>,
    pub(super) stream: Arc<HubStream>,
    pub(super) input: Input,
    pub(super) until: Instant,
}

impl Hold {
    /// When to [`Hold::take`].
    pub fn until(&self) -> Instant {
        self.until
    }

    /// Claim again: taken over if the live publisher stayed silent for the
    /// takeover time, refused if it spoke again (or the server drains).
    pub fn take(self) -> Result<Publisher, HubError> {
        let (hub, name, input) = (self.hub.clone(), self.stream.name.clone(), self.input);
        drop(self); // frees the stream's waiting place
        match hub.claim_inner(&name, input, false) {
            Ok(Claimed::Now(p)) => Ok(p),
            Ok(Claimed::Held(_)) | Err(HubError::AlreadyLive(_)) => {
                Err(HubError::StillSending(name))
            }
            Err(e) => Err(e),
        }
    }

    /// Wait for [`Hold::until`], then [`Hold::take`].
    pub async fn wait(self) -> Result<Publisher, HubError> {
        tokio::time::sleep_until(self.until.into()).await;
        self.take()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut st = self.stream.state.lock().unwrap_or_else(|e| e.into_inner());
        st.inputs[self.input.index()].held = false;
    }
}
