//! A running `tandemd`: the application with its ABCI, gRPC and metrics servers.
//!
//! The `tandemd` binary runs one [`Daemon`] until a signal or until one of its servers stops;
//! `tandem devnet` runs one in the same process as its consensus host.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use eyre::WrapErr as _;
use futures::{future::BoxFuture, stream::FuturesUnordered, FutureExt as _, StreamExt as _};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::{
    config::Config,
    grpc::{GrpcConfig, GrpcServer},
    metrics::{Metrics, MetricsServer},
    server::{error_chain, AbciServer, ListenAddr, ServerConfig, ServerError},
    App, AppConfig,
};

/// One of the daemon's servers stopped; this says which and how.
#[derive(Debug)]
pub enum Stopped {
    /// The ABCI server.
    Abci(Result<(), ServerError>),
    /// The gRPC server.
    Grpc(eyre::Result<()>),
    /// The metrics server.
    Metrics(eyre::Result<()>),
}

impl Stopped {
    /// The application failed on a consensus call (and answered nothing wrong).
    pub fn is_application_fault(&self) -> bool {
        matches!(self, Self::Abci(Err(ServerError::Application { .. })))
    }

    /// The server failed rather than stopping on request.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::Abci(Err(_)) | Self::Grpc(Err(_)) | Self::Metrics(Err(_))
        )
    }

    /// Logs the stop: info when clean, error with the cause when not.
    pub fn log(&self) {
        match self {
            Self::Abci(Ok(())) => info!("ABCI server stopped"),
            Self::Grpc(Ok(())) => info!("gRPC server stopped"),
            Self::Metrics(Ok(())) => info!("metrics server stopped"),
            Self::Abci(Err(e)) => error!(error = %error_chain(e), "ABCI server failed"),
            Self::Grpc(Err(e)) => error!(error = ?e, "gRPC server failed"),
            Self::Metrics(Err(e)) => error!(error = ?e, "metrics server failed"),
        }
    }
}

/// The application and its three servers, running on the current tokio runtime.
pub struct Daemon {
    app: App,
    cancel: CancellationToken,
    abci_addr: ListenAddr,
    grpc_addr: SocketAddr,
    metrics_addr: SocketAddr,
    services: FuturesUnordered<BoxFuture<'static, Stopped>>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("abci_addr", &self.abci_addr)
            .field("grpc_addr", &self.grpc_addr)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

/// Why a daemon did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state in the data directory could not be opened.
    #[error("failed to open the application state in {data_dir}: {message}")]
    Open {
        /// The data directory.
        data_dir: PathBuf,
        /// The cause, with its chain.
        message: String,
    },
    /// A server could not start (most often: its port is taken).
    #[error("{0:?}")]
    Serve(eyre::Report),
}

impl Daemon {
    /// Opens the state in `data_dir` and starts the servers at the addresses of `config`.
    pub async fn start(config: &Config, data_dir: PathBuf) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::new());
        let mut app_config = AppConfig::new(data_dir.clone());
        app_config.metrics = Some(metrics.clone());
        let app = App::open(app_config).await.map_err(|e| StartError::Open {
            data_dir,
            message: error_chain(&e),
        })?;
        metrics.set_height(app.latest_block_height());
        let cancel = CancellationToken::new();
        match Self::spawn(config, app.clone(), metrics, cancel.clone()).await {
            Ok(daemon) => Ok(daemon),
            Err(e) => {
                cancel.cancel();
                app.shutdown().await;
                Err(StartError::Serve(e))
            }
        }
    }

    async fn spawn(
        config: &Config,
        app: App,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> eyre::Result<Self> {
        let metrics_server = MetricsServer::spawn(config.metrics_listen, metrics, &cancel)
            .await
            .wrap_err_with(|| {
                format!(
                    "failed to bind the metrics listener on {}",
                    config.metrics_listen
                )
            })?;
        let grpc = GrpcServer::spawn(
            &GrpcConfig {
                listen: config.grpc_listen,
                cometbft_rpc: config.cometbft_rpc.clone(),
            },
            Arc::new(app.clone()),
            &cancel,
        )
        .await
        .wrap_err("failed to start the gRPC server")?;
        let abci = AbciServer::spawn(
            &config.abci_listen,
            app.clone(),
            ServerConfig {
                max_frame_bytes: config.abci_max_frame_bytes,
                // The application records its own phase latencies.
                metrics: None,
            },
            &cancel,
        )
        .await
        .wrap_err_with(|| format!("failed to bind the ABCI listener on {}", config.abci_listen))?;
        let (abci_addr, grpc_addr, metrics_addr) = (
            abci.local_addr().clone(),
            *grpc.local_addr(),
            *metrics_server.local_addr(),
        );
        info!(abci = %abci_addr, grpc = %grpc_addr, metrics = %metrics_addr, "tandemd is running");
        let services: FuturesUnordered<BoxFuture<'static, Stopped>> = FuturesUnordered::new();
        services.push(abci.wait().map(Stopped::Abci).boxed());
        services.push(grpc.wait().map(Stopped::Grpc).boxed());
        services.push(
            metrics_server
                .wait()
                .map(|r| Stopped::Metrics(r.wrap_err("metrics server failed")))
                .boxed(),
        );
        Ok(Self {
            app,
            cancel,
            abci_addr,
            grpc_addr,
            metrics_addr,
            services,
        })
    }

    /// The application (for in-process callers; the servers hold clones).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The address the ABCI server bound.
    pub fn abci_addr(&self) -> &ListenAddr {
        &self.abci_addr
    }

    /// The address the gRPC server bound.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The address the metrics server bound.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Waits until one of the servers stops on its own; `None` once all have stopped.
    pub fn next_stop(&mut self) -> impl Future<Output = Option<Stopped>> + '_ {
        self.services.next()
    }

    /// Asks every server to stop, waits up to `grace` for them, then closes the state.
    /// Returns how each remaining server stopped, and whether all of them did in time.
    pub async fn shutdown(mut self, grace: Duration) -> (Vec<Stopped>, bool) {
        self.cancel.cancel();
        let mut stopped = Vec::new();
        let drained = tokio::time::timeout(grace, async {
            while let Some(stop) = self.services.next().await {
                stopped.push(stop);
            }
        })
        .await
        .is_ok();
        self.services.clear();
        self.app.shutdown().await;
        (stopped, drained)
    }
}
