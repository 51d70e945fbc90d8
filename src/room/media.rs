//! What the control plane needs of the media plane, as two small traits: a [`MediaWorker`]
//! that takes [`WorkerCommand`]s for the rooms placed on it, and a [`MediaPool`] that places
//! new rooms on workers. The real implementations are [`crate::sfu::WorkerHandle`] and
//! [`crate::sfu::MediaPlane`]; actor tests use fakes, so a room can be tested without sockets.
//!
//! Only a [`RoomActor`](super::RoomActor) commands a worker: peers ask their room.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::sfu::messages::Reply;
use crate::sfu::{MediaError, MediaPlane, WorkerCommand, WorkerHandle};

/// One media worker as a room sees it.
pub trait MediaWorker: Send + Sync + fmt::Debug {
    /// Queues a command (requests carry their own reply channel).
    fn send(&self, cmd: WorkerCommand) -> Result<(), MediaError>;
    /// How long a request waits for the worker's reply (`requestTimeout`).
    fn request_timeout(&self) -> Duration;
    /// The worker's index, for logs.
    fn index(&self) -> usize;
}

/// A shared handle on a worker.
pub type Worker = Arc<dyn MediaWorker>;

/// Sends the request built by `make` and waits for the reply, up to the worker's
/// `request_timeout`.
pub async fn request<T>(
    worker: &dyn MediaWorker,
    make: impl FnOnce(Reply<T>) -> WorkerCommand,
) -> Result<T, MediaError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    worker.send(make(tx))?;
    match tokio::time::timeout(worker.request_timeout(), rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(MediaError::WorkerGone),
        Err(_) => Err(MediaError::Timeout),
    }
}

/// Places rooms on workers.
pub trait MediaPool: Send + Sync {
    /// The worker a new room goes to.
    fn assign(&self) -> Worker;
}

impl MediaWorker for WorkerHandle {
    fn send(&self, cmd: WorkerCommand) -> Result<(), MediaError> {
        WorkerHandle::send(self, cmd)
    }

    fn request_timeout(&self) -> Duration {
        WorkerHandle::request_timeout(self)
    }

    fn index(&self) -> usize {
        WorkerHandle::index(self)
    }
}

impl MediaPool for MediaPlane {
    fn assign(&self) -> Worker {
        Arc::new(MediaPlane::assign(self))
    }
}
