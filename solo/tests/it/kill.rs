//! SIGKILL the `tandem-solo` binary, the application or both at random moments, 20 times,
//! while txs flow. The chain must resume every time with no gap, no duplicate height and the
//! same blocks and app hashes as an uninterrupted reference run of the same txs.
//!
//! Blocks are made only when txs wait (`create_empty_blocks = false`) and each tx is sent
//! after the previous one committed and the chain went idle again, so the block sequence is a
//! function of the txs: block 1, then per tx its block and the proof block that commits the
//! new app hash.

use std::{path::Path, process::Stdio, time::Duration};

use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tendermint::{block::Height, Hash};
use tendermint_rpc::{Client, HttpClient};
use tokio::process::{Child, Command};

use crate::{
    support::{abci_info_app_hash, eventually, write_home},
    testapp::TestApp,
};

const DEADLINE: Duration = Duration::from_mins(1);
const KILLS: usize = 20;
const MIN_TXS: usize = 30;

/// A port for a process this test restarts on it (see `tandem_testkit::restartable_port`).
pub(crate) fn free_port() -> u16 {
    tandem_testkit::restartable_port()
}

pub(crate) struct Solo {
    home: std::path::PathBuf,
    rpc: String,
    child: Option<Child>,
}

impl Solo {
    pub(crate) fn new(home: &Path, rpc_port: u16) -> Self {
        Self {
            home: home.to_path_buf(),
            rpc: format!("127.0.0.1:{rpc_port}"),
            child: None,
        }
    }

    pub(crate) fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_tandem-solo"))
            .arg("--home")
            .arg(&self.home)
            .arg("--rpc-laddr")
            .arg(format!("tcp://{}", self.rpc))
            // Warnings and errors (reconnects, a fatal stop) land in the test's captured output.
            .env("RUST_LOG", "warn")
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tandem-solo");
        self.child = Some(child);
    }

    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL tandem-solo");
        }
    }

    /// Sends SIGTERM and waits, with a deadline, for the exit status.
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("tandem-solo is running");
        let pid = child.id().expect("tandem-solo has a pid").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(DEADLINE, child.wait())
            .await
            .expect("tandem-solo did not exit after SIGTERM")
            .expect("wait for tandem-solo")
    }

    pub(crate) fn client(&self) -> HttpClient {
        HttpClient::new(format!("http://{}", self.rpc).as_str()).unwrap()
    }

    pub(crate) async fn wait_up(&self) {
        let client = self.client();
        eventually("tandem-solo RPC", DEADLINE, || async {
            client.status().await.ok()
        })
        .await;
    }
}

fn tx(i: usize) -> Vec<u8> {
    format!("key{i}=value{i}").into_bytes()
}

fn tx_hash(tx: &[u8]) -> Hash {
    Hash::Sha256(Sha256::digest(tx).into())
}

/// Sends tx `i` until it is committed and the proof block after it is made, tolerating a
/// node that is down or restarting.
async fn submit_until_committed(rpc: &str, i: usize) {
    let client = HttpClient::new(format!("http://{rpc}").as_str()).unwrap();
    send_until_committed(&client, i).await;
    settle(&client).await;
}

async fn send_until_committed(client: &HttpClient, i: usize) {
    send_tx_until_committed(client, &tx(i)).await;
}

/// Sends `tx` until it is committed, tolerating a node that is down or restarting.
pub(crate) async fn send_tx_until_committed(client: &HttpClient, tx: &[u8]) {
    let hash = tx_hash(tx);
    let start = tokio::time::Instant::now();
    loop {
        assert!(
            start.elapsed() < DEADLINE * 2,
            "tx {hash} was never committed"
        );
        if client.tx(hash, false).await.is_ok() {
            return;
        }
        let _ = client.broadcast_tx_sync(tx.to_vec()).await;
        let poll_until = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < poll_until {
            if client.tx(hash, false).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Heights 1..=latest: (block hash, app hash, txs), checking linkage and contiguity.
pub(crate) async fn chain(client: &HttpClient) -> Vec<(tendermint::AppHash, Vec<Vec<u8>>)> {
    let latest = client
        .status()
        .await
        .unwrap()
        .sync_info
        .latest_block_height
        .value();
    let mut out = Vec::new();
    let mut previous: Option<tendermint::block::Id> = None;
    for h in 1..=latest {
        let block = client.block(Height::try_from(h).unwrap()).await.unwrap();
        assert_eq!(block.block.header.height.value(), h, "no gap at {h}");
        assert_eq!(
            block.block.header.last_block_id,
            previous,
            "block {h} links to block {}",
            h - 1
        );
        previous = Some(block.block_id);
        out.push((block.block.header.app_hash, block.block.data));
    }
    out
}

/// Waits until the chain is idle: the last block is empty and its header commits the app's
/// current hash (`abci_info`, the state after that block).
async fn settle(client: &HttpClient) -> u64 {
    eventually("an idle chain", DEADLINE, || async {
        let app = client.abci_info().await.ok()?;
        let h = app.last_block_height;
        if h.value() == 0 {
            return None;
        }
        let block = client.block(h).await.ok()?;
        (block.block.header.height == h
            && block.block.header.app_hash.as_bytes() == abci_info_app_hash(&app)
            && block.block.data.is_empty())
        .then_some(h.value())
    })
    .await
}

async fn run_reference(txs: usize) -> Vec<(tendermint::AppHash, Vec<Vec<u8>>)> {
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_home(dir.path(), app.addr, Duration::from_millis(5), false);
    let mut solo = Solo::new(dir.path(), free_port());
    solo.start();
    solo.wait_up().await;
    settle(&solo.client()).await;
    for i in 0..txs {
        submit_until_committed(&solo.rpc, i).await;
    }
    let client = solo.client();
    settle(&client).await;
    let chain = chain(&client).await;
    solo.kill().await;
    app.stop().await;
    chain
}

/// SIGTERM as soon as the RPC answers is a clean shutdown (exit status 0), not the signal's
/// default kill, and after three of them the chain is still one linked sequence of blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_as_soon_as_the_rpc_answers_is_a_clean_shutdown() {
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_home(dir.path(), app.addr, Duration::from_millis(5), true);
    let mut solo = Solo::new(dir.path(), free_port());
    for _ in 0..3 {
        solo.start();
        solo.wait_up().await;
        let status = solo.terminate().await;
        assert!(status.success(), "tandem-solo exited with {status}");
    }
    solo.start();
    solo.wait_up().await;
    let client = solo.client();
    eventually("a block after the restarts", DEADLINE, || async {
        let h = client.status().await.ok()?.sync_info.latest_block_height;
        (h.value() >= 2).then_some(())
    })
    .await;
    chain(&client).await;
    solo.kill().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_host_app_or_both_twenty_times_keeps_one_chain() {
    let mut rng = seeded_rng();

    let app_port = free_port();
    let app_addr = format!("127.0.0.1:{app_port}");
    let mut app = InProcessApp {
        app: Some(TestApp::start_on(&app_addr).await),
        addr: app_addr.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    write_home(
        dir.path(),
        app_addr.parse().unwrap(),
        Duration::from_millis(5),
        false,
    );
    let mut solo = Solo::new(dir.path(), free_port());
    solo.start();
    solo.wait_up().await;

    settle(&solo.client()).await;
    let rpc = solo.rpc.clone();
    let (kinds, txs) = submit_while_killing(&mut rng, &mut solo, &mut app, move |i| {
        let rpc = rpc.clone();
        async move { submit_until_committed(&rpc, i).await }
    })
    .await;
    eprintln!("kills (host, app, both) = {kinds:?}, txs = {txs}");

    let client = solo.client();
    settle(&client).await;
    let killed = chain(&client).await;
    solo.kill().await;
    app.app.take().unwrap().stop().await;

    let reference = run_reference(txs).await;
    let shape = |chain: &[(tendermint::AppHash, Vec<Vec<u8>>)]| -> String {
        chain
            .iter()
            .map(|(_, txs)| {
                if txs.is_empty() {
                    '.'
                } else {
                    char::from(b'0' + u8::try_from(txs.len().min(9)).unwrap())
                }
            })
            .collect()
    };
    eprintln!(
        "killed:    {}\nreference: {}",
        shape(&killed),
        shape(&reference)
    );
    assert_eq!(
        killed.len(),
        reference.len(),
        "same number of blocks as the reference run"
    );
    for (h, (a, b)) in killed.iter().zip(&reference).enumerate() {
        assert_eq!(a, b, "block {} differs from the reference run", h + 1);
    }
}

/// The kill test's RNG: seeded from `TANDEM_KILL_SEED`, or at random with the seed printed.
pub(crate) fn seeded_rng() -> rand::rngs::StdRng {
    let seed: u64 = std::env::var("TANDEM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("kill test seed {seed} (set TANDEM_KILL_SEED to repeat)");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// An application the kill tests stop abruptly and start again on the same address.
pub(crate) trait Restartable {
    async fn restart(&mut self);
}

/// The in-process test app, stopped and started again on its address.
struct InProcessApp {
    app: Option<TestApp>,
    addr: String,
}

impl Restartable for InProcessApp {
    async fn restart(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        self.app = Some(TestApp::start_on(&self.addr).await);
    }
}

/// Sends tx 0, 1, … with `submit` (each call returns once its tx is committed) while
/// [`kill_at_random`] kills and restarts; returns the kills of each kind and how many txs were
/// sent (at least [`MIN_TXS`]).
pub(crate) async fn submit_while_killing<F, Fut>(
    rng: &mut rand::rngs::StdRng,
    solo: &mut Solo,
    app: &mut impl Restartable,
    submit: F,
) -> ([usize; 3], usize)
where
    F: Fn(usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let submitter = tokio::spawn(async move {
        let mut i = 0;
        while i < MIN_TXS || !*done_rx.borrow() {
            submit(i).await;
            i += 1;
        }
        i
    });
    let kinds = kill_at_random(rng, solo, app).await;
    done_tx.send(true).unwrap();
    let txs = tokio::time::timeout(DEADLINE * 4, submitter)
        .await
        .expect("the submitter finished after the kills")
        .unwrap();
    (kinds, txs)
}

/// Kills the host, the app or both at [`KILLS`] random moments 20 to 400 ms apart, restarting
/// what was killed each time; returns how many kills of each kind (host, app, both).
pub(crate) async fn kill_at_random(
    rng: &mut rand::rngs::StdRng,
    solo: &mut Solo,
    app: &mut impl Restartable,
) -> [usize; 3] {
    let mut kinds = [0_usize; 3];
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..400))).await;
        let kind = rng.gen_range(0..3);
        kinds[kind] += 1;
        match kind {
            0 => {
                solo.kill().await;
                solo.start();
            }
            1 => app.restart().await,
            _ => {
                solo.kill().await;
                app.restart().await;
                solo.start();
            }
        }
        solo.wait_up().await;
    }
    kinds
}
