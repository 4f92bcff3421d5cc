//! Block building and validation (5,000 ETH transfers, 2,000 ERC-20 transfers) against the
//! ceiling of raw revm execution of the same transactions, and one Engine API cycle on an empty
//! block through the real authenticated HTTP server.
#![expect(
    missing_docs,
    reason = "criterion_group! generates undocumented public items"
)]

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use alloy_consensus::{SignableTransaction as _, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718 as _;
use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{address, keccak256, Address, Bytes, TxKind, B256, U256};
use alloy_rpc_types_engine::{Claims, ExecutionPayloadV3, ForkchoiceState, PayloadAttributes};
use alloy_signer::SignerSync as _;
use alloy_signer_local::PrivateKeySigner;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use revm::{
    context::TxEnv,
    database::{CacheDB, EmptyDB},
    primitives::hardfork::SpecId,
    state::{AccountInfo, Bytecode},
    Context, ExecuteCommitEvm as _, MainBuilder as _, MainContext as _,
};
use tandem_evm::{genesis::dev_genesis, Chain, OpPayloadAttributes};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

const TOKEN: Address = address!("00000000000000000000000000000000000070ce");
const TRANSFER_TOPIC: B256 =
    alloy_primitives::b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
const BEACON_ROOT: B256 = B256::repeat_byte(0x22);

/// A minimal ERC-20 `transfer(address,uint256)`: balances at `keccak(pad(owner) ++ pad(0))`,
/// reverts on a wrong selector or short balance, emits `Transfer`, returns true.
fn token_runtime() -> Bytes {
    let mut code = vec![
        0x60, 0x00, 0x35, 0x60, 0xe0, 0x1c, 0x63, 0xa9, 0x05, 0x9c, 0xbb, 0x14, 0x60, 0x13, 0x57,
        0x60, 0x00, 0x80, 0xfd, 0x5b, 0x33, 0x60, 0x00, 0x52, 0x60, 0x00, 0x60, 0x20, 0x52, 0x60,
        0x40, 0x60, 0x00, 0x20, 0x80, 0x54, 0x60, 0x24, 0x35, 0x80, 0x82, 0x10, 0x60, 0x7c, 0x57,
        0x80, 0x91, 0x03, 0x82, 0x55, 0x90, 0x50, 0x60, 0x04, 0x35, 0x60, 0x00, 0x52, 0x60, 0x40,
        0x60, 0x00, 0x20, 0x80, 0x54, 0x82, 0x01, 0x90, 0x55, 0x60, 0x00, 0x52, 0x60, 0x04, 0x35,
        0x33, 0x7f,
    ];
    code.extend_from_slice(TRANSFER_TOPIC.as_slice());
    code.extend_from_slice(&[
        0x60, 0x20, 0x60, 0x00, 0xa3, 0x60, 0x01, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3,
        0x5b, 0x60, 0x00, 0x80, 0xfd,
    ]);
    assert_eq!(code.len(), 0x81, "jump targets assume this layout");
    code.into()
}

fn balance_slot(owner: Address) -> B256 {
    let mut preimage = [0u8; 64];
    preimage[12..32].copy_from_slice(owner.as_slice());
    keccak256(preimage)
}

struct Workload {
    name: &'static str,
    genesis: Genesis,
    raw: Vec<Bytes>,
    txs: Vec<(TxEnvelope, Address)>,
}

fn signers(count: usize) -> Vec<PrivateKeySigner> {
    (0..count)
        .map(|i| PrivateKeySigner::from_bytes(&B256::from(U256::from(i + 1))).unwrap())
        .collect()
}

fn sign(
    signer: &PrivateKeySigner,
    to: Address,
    value: U256,
    input: Bytes,
    gas_limit: u64,
) -> TxEnvelope {
    let tx = TxEip1559 {
        chain_id: tandem_evm::genesis::DEV_CHAIN_ID,
        nonce: 0,
        gas_limit,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value,
        access_list: alloy_eips::eip2930::AccessList::default(),
        input,
    };
    let signature = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    TxEnvelope::from(tx.into_signed(signature))
}

fn workload(name: &'static str, count: usize, erc20: bool) -> Workload {
    let mut genesis = dev_genesis();
    genesis.gas_limit = 200_000_000;
    let signers = signers(count);
    let mut storage = std::collections::BTreeMap::new();
    for signer in &signers {
        genesis.alloc.insert(
            signer.address(),
            GenesisAccount::default().with_balance(U256::from(10u64).pow(U256::from(18))),
        );
        storage.insert(
            balance_slot(signer.address()),
            B256::from(U256::from(1_000_000)),
        );
    }
    if erc20 {
        genesis.alloc.insert(
            TOKEN,
            GenesisAccount::default()
                .with_code(Some(token_runtime()))
                .with_storage(Some(storage)),
        );
    }
    let txs: Vec<(TxEnvelope, Address)> = signers
        .iter()
        .enumerate()
        .map(|(i, signer)| {
            let recipient = Address::from_word(B256::from(U256::from(0x1_0000_0000u64 + i as u64)));
            let tx = if erc20 {
                let mut input = vec![0xa9, 0x05, 0x9c, 0xbb];
                input.extend_from_slice(recipient.into_word().as_slice());
                input.extend_from_slice(B256::from(U256::from(10)).as_slice());
                sign(signer, TOKEN, U256::ZERO, input.into(), 60_000)
            } else {
                sign(signer, recipient, U256::from(1_000), Bytes::new(), 21_000)
            };
            (tx, signer.address())
        })
        .collect();
    let raw = txs
        .iter()
        .map(|(tx, _)| Bytes::from(tx.encoded_2718()))
        .collect();
    Workload {
        name,
        genesis,
        raw,
        txs,
    }
}

fn attributes(raw: &[Bytes], timestamp: u64) -> OpPayloadAttributes {
    OpPayloadAttributes {
        inner: PayloadAttributes {
            timestamp,
            prev_randao: B256::repeat_byte(0x11),
            suggested_fee_recipient: Address::repeat_byte(0xfe),
            withdrawals: Some(vec![]),
            parent_beacon_block_root: Some(BEACON_ROOT),
            slot_number: None,
            target_gas_limit: None,
        },
        transactions: Some(raw.to_vec()),
        no_tx_pool: Some(true),
        gas_limit: Some(200_000_000),
    }
}

/// A fresh chain that built a block of `work`'s transactions on genesis, at another timestamp
/// than the block the cases time (its sender cache is full).
fn warm_chain(work: &Workload) -> Chain {
    let mut chain = Chain::open(&work.genesis, None).unwrap();
    chain
        .forkchoice_updated(
            head_state(&chain),
            Some(attributes(&work.raw, 1_600_000_000)),
        )
        .unwrap();
    chain
}

/// The payload of the block that `attrs` build on genesis, as another node would send it.
fn built_payload(work: &Workload, attrs: OpPayloadAttributes) -> ExecutionPayloadV3 {
    let mut chain = Chain::open(&work.genesis, None).unwrap();
    let updated = chain
        .forkchoice_updated(head_state(&chain), Some(attrs))
        .unwrap();
    let payload = chain
        .get_payload(updated.payload_id.unwrap())
        .unwrap()
        .execution_payload;
    assert_eq!(
        payload.payload_inner.payload_inner.transactions.len(),
        work.txs.len()
    );
    payload
}

fn head_state(chain: &Chain) -> ForkchoiceState {
    let genesis = chain.genesis_hash();
    ForkchoiceState {
        head_block_hash: genesis,
        safe_block_hash: genesis,
        finalized_block_hash: genesis,
    }
}

/// Raw revm: the same transactions with known senders, no roots, receipts, hashing or RPC.
/// Returns the gas used and the database, so that freeing it is not timed (as no case below
/// times dropping its chain).
fn raw_revm(work: &Workload, db: CacheDB<EmptyDB>) -> (u64, CacheDB<EmptyDB>) {
    let mut cfg = revm::context::CfgEnv::new_with_spec(SpecId::CANCUN);
    cfg.chain_id = tandem_evm::genesis::DEV_CHAIN_ID;
    let block = revm::context::BlockEnv {
        number: U256::from(1),
        timestamp: U256::from(1_700_000_000u64),
        gas_limit: 200_000_000,
        basefee: 875_000_000,
        prevrandao: Some(B256::repeat_byte(0x11)),
        ..Default::default()
    };
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(block)
        .with_cfg(cfg)
        .build_mainnet();
    let mut gas = 0;
    for (tx, sender) in &work.txs {
        use alloy_consensus::Transaction as _;
        let env = TxEnv {
            tx_type: 2,
            caller: *sender,
            gas_limit: tx.gas_limit(),
            gas_price: tx.max_fee_per_gas(),
            kind: tx.kind(),
            value: tx.value(),
            data: tx.input().clone(),
            nonce: tx.nonce(),
            chain_id: tx.chain_id(),
            gas_priority_fee: tx.max_priority_fee_per_gas(),
            ..Default::default()
        };
        let result = evm.transact_commit(env).expect("valid transaction");
        assert!(result.is_success());
        gas += result.tx_gas_used();
    }
    (gas, evm.ctx.journaled_state.database)
}

fn raw_db(work: &Workload) -> CacheDB<EmptyDB> {
    let mut db = CacheDB::new(EmptyDB::default());
    for (address, account) in &work.genesis.alloc {
        let code = account.code.clone().map(Bytecode::new_raw);
        let info = AccountInfo {
            balance: account.balance,
            nonce: account.nonce.unwrap_or(0),
            code_hash: code
                .as_ref()
                .map_or(alloy_trie::KECCAK_EMPTY, Bytecode::hash_slow),
            code,
            ..Default::default()
        };
        db.insert_account_info(*address, info);
        for (slot, value) in account.storage.iter().flatten() {
            db.insert_account_storage(
                *address,
                U256::from_be_bytes(slot.0),
                U256::from_be_bytes(value.0),
            )
            .unwrap();
        }
    }
    db
}

/// The allocator settings the `tandem-evm` binary starts with ([`tandem_evm::malloc`]), for
/// the whole bench process: the ceiling runs under them too.
fn as_the_binary_runs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tandem_evm::malloc::keep_freed_memory();
    });
}

fn bench_blocks(c: &mut Criterion) {
    as_the_binary_runs();
    for work in [
        workload("eth_transfers_5000", 5000, false),
        workload("erc20_transfers_2000", 2000, true),
    ] {
        let mut group = c.benchmark_group(work.name);
        group.sample_size(10);
        group.throughput(Throughput::Elements(work.txs.len() as u64));
        let attrs = attributes(&work.raw, 1_700_000_000);

        group.bench_function("raw_revm_ceiling", |b| {
            b.iter_batched(
                || raw_db(&work),
                |db| raw_revm(&work, db),
                BatchSize::LargeInput,
            );
        });

        let payload = built_payload(&work, attrs.clone());

        // Every routine takes its chain and its own copy of the request (made in the setup,
        // as a server's decoding would make it) and returns its chain: criterion drops it after
        // the timing.
        let validate = |(mut chain, payload): (Chain, ExecutionPayloadV3)| {
            let status = chain.new_payload(payload, &[], BEACON_ROOT);
            assert!(status.is_valid(), "{status:?}");
            chain
        };
        let build = |(mut chain, attrs): (Chain, OpPayloadAttributes)| {
            let updated = chain
                .forkchoice_updated(head_state(&chain), Some(attrs))
                .unwrap();
            (updated, chain)
        };

        group.bench_function("build_cold_senders", |b| {
            b.iter_batched(
                || (Chain::open(&work.genesis, None).unwrap(), attrs.clone()),
                build,
                BatchSize::LargeInput,
            );
        });
        group.bench_function("build_warm_senders", |b| {
            b.iter_batched(
                || (warm_chain(&work), attrs.clone()),
                build,
                BatchSize::LargeInput,
            );
        });
        group.bench_function("validate_cold_senders", |b| {
            b.iter_batched(
                || (Chain::open(&work.genesis, None).unwrap(), payload.clone()),
                validate,
                BatchSize::LargeInput,
            );
        });
        group.bench_function("validate_warm_senders", |b| {
            // Senders cached by building the same txs into another block (another timestamp):
            // the payload is not this node's own, so it is re-executed.
            b.iter_batched(
                || (warm_chain(&work), payload.clone()),
                validate,
                BatchSize::LargeInput,
            );
        });
        group.bench_function("new_payload_of_own_build", |b| {
            // As in an Engine API cycle: the payload `getPayload` served comes back.
            b.iter_batched(
                || {
                    let mut chain = Chain::open(&work.genesis, None).unwrap();
                    let updated = chain
                        .forkchoice_updated(head_state(&chain), Some(attrs.clone()))
                        .unwrap();
                    let served = chain.get_payload(updated.payload_id.unwrap()).unwrap();
                    (chain, served.execution_payload)
                },
                |(mut chain, served)| {
                    let status = chain.new_payload(served, &[], BEACON_ROOT);
                    assert!(status.is_valid(), "{status:?}");
                    chain
                },
                BatchSize::LargeInput,
            );
        });

        bench_paired(
            &mut group,
            &work,
            "paired/build_warm_senders",
            || attrs.clone(),
            |input| build(input).1,
        );
        bench_paired(
            &mut group,
            &work,
            "paired/validate_warm_senders",
            || payload.clone(),
            validate,
        );
        group.finish();
    }
}

/// The ratio that judges the target, measured in pairs: each iteration runs the ceiling and then
/// the same block through tandem-evm (`tandem`, on a chain that built another block of the same
/// transactions: warm senders), each on its own fresh state, a fraction of a second apart, so
/// that the VM's slow and fast phases (±40 % minutes apart) hit both halves alike. Criterion
/// times the tandem half; the median of the per-pair ratios is printed at the end.
fn bench_paired<I>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    work: &Workload,
    name: &str,
    input: impl Fn() -> I,
    tandem: impl Fn((Chain, I)) -> Chain,
) {
    let pairs = std::cell::RefCell::new(Vec::new());
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let (mut last_ceiling, mut last_tandem) = (None, None);
            for _ in 0..iters {
                // Each half right after its own setup, and each setup right after freeing the
                // previous output of its own half, as in the cases above. The tandem half's
                // setup has just run the same block (it builds one), so the ceiling runs its
                // block once untimed too: neither half runs on caches or a heap the other one
                // left.
                drop(last_ceiling.take());
                drop(raw_revm(work, raw_db(work)));
                let db = raw_db(work);
                let start = Instant::now();
                last_ceiling = Some(raw_revm(work, db));
                let ceiling = start.elapsed();
                drop(last_tandem.take());
                let setup = (warm_chain(work), input());
                let start = Instant::now();
                last_tandem = Some(tandem(setup));
                let own = start.elapsed();
                total += own;
                pairs.borrow_mut().push((ceiling, own));
            }
            total
        });
    });
    let pairs = pairs.into_inner();
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    println!(
        "{}/{name}: median ratio tandem/ceiling = {:.2} over {} pairs (median ceiling {:.2} ms, tandem {:.2} ms)",
        work.name,
        median(pairs.iter().map(|(c, t)| t.as_secs_f64() / c.as_secs_f64()).collect()),
        pairs.len(),
        median(pairs.iter().map(|(c, _)| ms(c)).collect()),
        median(pairs.iter().map(|(_, t)| ms(t)).collect()),
    );
}

/// A small block on a large state: 50 ETH transfers (to new accounts) on a genesis state of
/// 100,000 other accounts. The cost of its state root should follow what the block changes,
/// not the size of the state.
fn bench_large_state(c: &mut Criterion) {
    const ACCOUNTS: u32 = 100_000;
    as_the_binary_runs();
    let mut work = workload("large_state", 50, false);
    for i in 0..ACCOUNTS {
        let address = Address::from_slice(&keccak256(i.to_be_bytes())[12..]);
        work.genesis.alloc.insert(
            address,
            GenesisAccount::default().with_balance(U256::from(1)),
        );
    }
    let attrs = attributes(&work.raw, 1_700_000_000);
    let mut group = c.benchmark_group("state_100k_accounts");
    group.sample_size(10);
    group.throughput(Throughput::Elements(work.txs.len() as u64));
    group.bench_function("build_50_transfers_warm", |b| {
        b.iter_batched(
            || (warm_chain(&work), attrs.clone()),
            |(mut chain, attrs)| {
                let updated = chain
                    .forkchoice_updated(head_state(&chain), Some(attrs))
                    .unwrap();
                (updated, chain)
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

/// One JSON-RPC call over a kept-alive HTTP/1.1 connection, as a real client would use.
async fn post(
    conn: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    addr: std::net::SocketAddr,
    token: &str,
    body: String,
) -> serde_json::Value {
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.get_mut().write_all(request.as_bytes()).await.unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.unwrap();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    value["result"].clone()
}

fn call(method: &str, params: &serde_json::Value) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()
}

fn bench_engine_cycle(c: &mut Criterion) {
    as_the_binary_runs();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let secret = tandem_evm::jwt::parse_secret(&"42".repeat(32)).unwrap();
    let handle = runtime.block_on(async {
        tandem_evm::start(tandem_evm::Config {
            genesis: dev_genesis(),
            datadir: None,
            jwt_secret: secret,
            engine_addr: "127.0.0.1:0".parse().unwrap(),
            rpc_addr: "127.0.0.1:0".parse().unwrap(),
            forwarder: None,
            metrics_addr: None,
        })
        .await
        .unwrap()
    });
    let addr = handle.engine_addr();
    let head = std::sync::Mutex::new(handle.genesis_hash());
    let timestamp = AtomicU64::new(1_700_000_000);
    let conn = tokio::sync::Mutex::new(runtime.block_on(async {
        tokio::io::BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap())
    }));
    let mut group = c.benchmark_group("engine_api");
    group.sample_size(20);
    group.bench_function("empty_block_cycle", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let token = secret.encode(&Claims::with_current_timestamp()).unwrap();
                let conn = &mut *conn.lock().await;
                let parent = *head.lock().unwrap();
                let fcs = serde_json::json!({"headBlockHash": parent, "safeBlockHash": parent, "finalizedBlockHash": parent});
                let attrs = attributes(&[], timestamp.fetch_add(1, Ordering::Relaxed));
                let updated = post(conn, addr, &token, call("engine_forkchoiceUpdatedV3", &serde_json::json!([fcs, attrs]))).await;
                let envelope = post(conn, addr, &token, call("engine_getPayloadV3", &serde_json::json!([updated["payloadId"]]))).await;
                let payload = &envelope["executionPayload"];
                let status = post(conn, addr, &token, call("engine_newPayloadV3", &serde_json::json!([payload, [], BEACON_ROOT]))).await;
                assert_eq!(status["status"], "VALID");
                let new_head: B256 = serde_json::from_value(payload["blockHash"].clone()).unwrap();
                let fcs = serde_json::json!({"headBlockHash": new_head, "safeBlockHash": new_head, "finalizedBlockHash": new_head});
                post(conn, addr, &token, call("engine_forkchoiceUpdatedV3", &serde_json::json!([fcs, null]))).await;
                *head.lock().unwrap() = new_head;
            });
        });
    });
    let mut chain = Chain::open(&dev_genesis(), None).unwrap();
    let mut in_process_head = chain.genesis_hash();
    group.bench_function("empty_block_cycle_in_process", |b| {
        b.iter(|| {
            let state = ForkchoiceState {
                head_block_hash: in_process_head,
                safe_block_hash: in_process_head,
                finalized_block_hash: in_process_head,
            };
            let attrs = attributes(&[], timestamp.fetch_add(1, Ordering::Relaxed));
            let id = chain
                .forkchoice_updated(state, Some(attrs))
                .unwrap()
                .payload_id
                .unwrap();
            let payload = chain.get_payload(id).unwrap().execution_payload;
            let hash = payload.payload_inner.payload_inner.block_hash;
            assert!(chain.new_payload(payload, &[], BEACON_ROOT).is_valid());
            let state = ForkchoiceState {
                head_block_hash: hash,
                safe_block_hash: hash,
                finalized_block_hash: hash,
            };
            chain.forkchoice_updated(state, None).unwrap();
            in_process_head = hash;
        });
    });
    group.finish();
    runtime.block_on(handle.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench_blocks, bench_large_state, bench_engine_cycle
}
criterion_main!(benches);
