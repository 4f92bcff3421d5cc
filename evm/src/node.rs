//! The running node: the chain behind the Engine API server and the public RPC server.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use alloy_genesis::Genesis;
use alloy_rpc_types_engine::JwtSecret;
use jsonrpsee::server::{Server, ServerConfig, ServerHandle};

use crate::{
    chain::{Chain, ChainError},
    engine_api,
    eth_api::{self, EthContext},
    forwarder::{Forwarder, RollupId},
    jwt::JwtLayer,
    metrics::Metrics,
};

/// Largest Engine API request (a payload with thousands of transactions).
const MAX_ENGINE_REQUEST: u32 = 64 * 1024 * 1024;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The genesis.
    pub genesis: Genesis,
    /// Where blocks and forkchoice are persisted (memory only when `None`).
    pub datadir: Option<PathBuf>,
    /// The Engine API JWT secret.
    pub jwt_secret: JwtSecret,
    /// Engine API listen address.
    pub engine_addr: SocketAddr,
    /// Public RPC listen address.
    pub rpc_addr: SocketAddr,
    /// Forwarder URL and rollup id, if transactions are forwarded.
    pub forwarder: Option<(String, RollupId)>,
    /// Where to serve Prometheus metrics on `GET /metrics` (not served when `None`).
    pub metrics_addr: Option<SocketAddr>,
}

/// Errors of starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The chain could not be opened.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A server could not bind.
    #[error("failed to bind {what} on {addr}: {source}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The forwarder configuration is unusable.
    #[error("{0}")]
    Forwarder(String),
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    engine_addr: SocketAddr,
    rpc_addr: SocketAddr,
    engine: ServerHandle,
    rpc: ServerHandle,
    genesis_hash: alloy_primitives::B256,
    metrics: Option<MetricsServer>,
}

/// The running `/metrics` server.
#[derive(Debug)]
struct MetricsServer {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl NodeHandle {
    /// Bound Engine API address.
    pub fn engine_addr(&self) -> SocketAddr {
        self.engine_addr
    }

    /// Bound public RPC address.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// Bound metrics address, when metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr)
    }

    /// The genesis block hash.
    pub fn genesis_hash(&self) -> alloy_primitives::B256 {
        self.genesis_hash
    }

    /// Stops both servers and waits until they are down.
    pub async fn shutdown(self) {
        let _ = self.engine.stop();
        let _ = self.rpc.stop();
        self.engine.stopped().await;
        self.rpc.stopped().await;
        if let Some(metrics) = self.metrics {
            let _ = metrics.stop.send(());
            let _ = metrics.task.await;
        }
    }

    /// Resolves when either server stops.
    pub async fn stopped(&self) {
        tokio::select! {
            () = self.engine.clone().stopped() => {}
            () = self.rpc.clone().stopped() => {}
        }
    }
}

/// Opens the chain and starts both servers.
pub async fn start(config: Config) -> Result<NodeHandle, NodeError> {
    let chain = Chain::open(&config.genesis, config.datadir.as_deref())?;
    let genesis_hash = chain.genesis_hash();
    tracing::info!(chain_id = chain.chain_id(), %genesis_hash, "chain opened");
    let metrics = match config.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Bind {
                    what: "metrics",
                    addr,
                    source,
                })?;
            let bound = listener.local_addr().map_err(|source| NodeError::Bind {
                what: "metrics",
                addr,
                source,
            })?;
            Some((listener, bound, Arc::new(Metrics::new())))
        }
        None => None,
    };
    let mut chain = chain;
    if let Some((_, _, m)) = &metrics {
        chain.set_metrics(m.clone());
    }
    let chain = Arc::new(Mutex::new(chain));
    let forwarder = config
        .forwarder
        .as_ref()
        .map(|(url, rollup_id)| Forwarder::new(url, *rollup_id))
        .transpose()
        .map_err(NodeError::Forwarder)?;

    let engine_config = ServerConfig::builder()
        .max_request_body_size(MAX_ENGINE_REQUEST)
        .max_response_body_size(MAX_ENGINE_REQUEST)
        .build();
    let engine_server = Server::builder()
        .set_config(engine_config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(JwtLayer::new(config.jwt_secret)))
        .build(config.engine_addr)
        .await
        .map_err(|source| NodeError::Bind {
            what: "Engine API",
            addr: config.engine_addr,
            source,
        })?;
    let engine_addr = engine_server
        .local_addr()
        .map_err(|source| NodeError::Bind {
            what: "Engine API",
            addr: config.engine_addr,
            source,
        })?;
    let rpc_server = Server::builder()
        .build(config.rpc_addr)
        .await
        .map_err(|source| NodeError::Bind {
            what: "public RPC",
            addr: config.rpc_addr,
            source,
        })?;
    let rpc_addr = rpc_server.local_addr().map_err(|source| NodeError::Bind {
        what: "public RPC",
        addr: config.rpc_addr,
        source,
    })?;

    let engine = engine_server.start(engine_api::module(engine_api::EngineContext {
        chain: chain.clone(),
        metrics: metrics.as_ref().map(|(_, _, m)| m.clone()),
    }));
    let rpc = rpc_server.start(eth_api::module(EthContext { chain, forwarder }));
    let metrics = metrics.map(|(listener, addr, m)| {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(crate::metrics::serve(listener, m, async move {
            let _ = stopped.await;
        }));
        tracing::info!(metrics_addr = %addr, "metrics listening");
        MetricsServer { addr, stop, task }
    });
    tracing::info!(%engine_addr, %rpc_addr, "servers listening");
    Ok(NodeHandle {
        engine_addr,
        rpc_addr,
        engine,
        rpc,
        genesis_hash,
        metrics,
    })
}
