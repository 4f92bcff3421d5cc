//! The handle that each of `tandemd`'s servers (ABCI, gRPC, metrics) returns when it starts.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server running on its own task: the address it bound, a way to ask it to stop, and its
/// task to wait for. `E` is how it can fail while serving.
#[derive(Debug)]
pub struct Service<A, E> {
    name: &'static str,
    local_addr: A,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), E>>,
}

/// A server's task panicked; `E` of every [`Service`] can hold this.
#[derive(Debug, thiserror::Error)]
#[error("the {0} server task panicked")]
pub struct Panicked(pub &'static str);

impl From<Panicked> for std::io::Error {
    fn from(panicked: Panicked) -> Self {
        Self::other(panicked)
    }
}

impl<A, E> Service<A, E> {
    /// A handle for the server `name` that bound `local_addr`, runs as `task`, and stops when
    /// `cancel` is cancelled.
    pub(crate) fn new(
        name: &'static str,
        local_addr: A,
        cancel: CancellationToken,
        task: JoinHandle<Result<(), E>>,
    ) -> Self {
        Self {
            name,
            local_addr,
            cancel,
            task,
        }
    }

    /// The address actually bound (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> &A {
        &self.local_addr
    }

    /// Asks the server to stop. Requests being handled are completed and answered first.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// Waits until the server has stopped; an error means it failed while serving or its task
    /// panicked.
    pub async fn wait(self) -> Result<(), E>
    where
        E: From<Panicked>,
    {
        self.task.await.map_err(|_| Panicked(self.name))?
    }
}
