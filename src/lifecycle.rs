//! Who owns what when castline stops: the tokens that tell listeners to stop
//! accepting and open connections to finish their answer and close, and the
//! tracker of every connection task, so shutdown can wait for them instead
//! of cutting them when the runtime drops.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Lifecycle {
    /// Cancelled: listeners stop accepting.
    pub accept: CancellationToken,
    /// Cancelled: every open connection finishes the answers in flight (held
    /// blocking requests included) and closes.
    pub close: CancellationToken,
    /// Every connection task.
    pub tasks: TaskTracker,
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        Lifecycle::default()
    }
}
