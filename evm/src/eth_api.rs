//! The public `eth_`/`net_`/`web3_` JSON-RPC subset wallets and tools need.

use std::sync::{Arc, Mutex, MutexGuard};

use alloy_consensus::{transaction::Recovered, Sealed, Transaction as _, TxEnvelope};
use alloy_eips::{eip2718::Decodable2718 as _, BlockId, BlockNumberOrTag, Typed2718 as _};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256, U64};
use alloy_rlp::Encodable as _;
use alloy_rpc_types_eth::{
    BlockTransactions, FeeHistory, Filter, FilterBlockOption, Log, TransactionInfo,
    TransactionReceipt, TransactionRequest,
};
use jsonrpsee::{types::ErrorObjectOwned, RpcModule};
use revm::{
    context::result::{EVMError, ExecutionResult},
    database::CacheDB,
    Context, ExecuteEvm as _, MainBuilder as _, MainContext as _,
};

use crate::{
    chain::{max_cost, Chain},
    executor::{self, Candidate, ExecutedBlock},
    forwarder::Forwarder,
    state::StateDb,
};

/// Largest raw transaction accepted by `eth_sendRawTransaction`.
pub const MAX_RAW_TX_BYTES: usize = 128 * 1024;
/// Widest block range `eth_getLogs` scans.
const MAX_LOG_RANGE: u64 = 10_000;
/// Most logs `eth_getLogs` returns.
const MAX_LOGS: usize = 10_000;
/// Most blocks `eth_feeHistory` covers.
const MAX_FEE_HISTORY: u64 = 1024;
/// Tip suggested by `eth_maxPriorityFeePerGas` (1 gwei).
const SUGGESTED_TIP: u128 = 1_000_000_000;

/// What the public RPC handlers share.
#[derive(Debug)]
pub(crate) struct EthContext {
    pub(crate) chain: Arc<Mutex<Chain>>,
    pub(crate) forwarder: Option<Forwarder>,
}

impl EthContext {
    fn chain(&self) -> MutexGuard<'_, Chain> {
        self.chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, message.into(), None::<()>)
}

fn server_error(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32000, message.into(), None::<()>)
}

fn resolve(chain: &Chain, id: Option<BlockId>) -> Result<&ExecutedBlock, ErrorObjectOwned> {
    let found = match id.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest)) {
        BlockId::Hash(hash) => chain.block(&hash.block_hash),
        BlockId::Number(number) => resolve_number(chain, number),
    };
    found.ok_or_else(|| server_error("header not found"))
}

fn resolve_number(chain: &Chain, number: BlockNumberOrTag) -> Option<&ExecutedBlock> {
    match number {
        BlockNumberOrTag::Latest | BlockNumberOrTag::Pending => Some(chain.head()),
        BlockNumberOrTag::Safe => chain.block(&chain.safe_hash()),
        BlockNumberOrTag::Finalized => chain.block(&chain.finalized_hash()),
        BlockNumberOrTag::Earliest => chain
            .canonical_block(0)
            .or_else(|| chain.block(&chain.genesis_hash())),
        BlockNumberOrTag::Number(n) => chain.canonical_block(n),
    }
}

fn rpc_transaction(block: &ExecutedBlock, index: usize) -> alloy_rpc_types_eth::Transaction {
    let tx = block.block.body.transactions[index].clone();
    let info = TransactionInfo {
        hash: Some(*tx.tx_hash()),
        index: Some(index as u64),
        block_hash: Some(block.hash),
        block_number: Some(block.number()),
        base_fee: block.header().base_fee_per_gas,
        block_timestamp: Some(block.header().timestamp),
    };
    alloy_rpc_types_eth::Transaction::from_transaction(
        Recovered::new_unchecked(tx, block.senders[index]),
        info,
    )
}

fn rpc_block(block: &ExecutedBlock, full: bool) -> alloy_rpc_types_eth::Block {
    let size = U256::from(block.block.length());
    let header = alloy_rpc_types_eth::Header::from_consensus(
        Sealed::new_unchecked(block.block.header.clone(), block.hash),
        None,
        Some(size),
    );
    let transactions = if full {
        BlockTransactions::Full(
            (0..block.block.body.transactions.len())
                .map(|i| rpc_transaction(block, i))
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(
            block
                .block
                .body
                .transactions
                .iter()
                .map(|tx| *tx.tx_hash())
                .collect(),
        )
    };
    alloy_rpc_types_eth::Block {
        header,
        uncles: vec![],
        transactions,
        withdrawals: block.block.body.withdrawals.clone(),
    }
}

/// The logs of a block with their RPC positions, in order.
fn block_logs(block: &ExecutedBlock) -> Vec<Log> {
    let mut logs = Vec::new();
    for (tx_index, receipt) in block.receipts.iter().enumerate() {
        let tx_hash = *block.block.body.transactions[tx_index].tx_hash();
        for log in receipt.logs() {
            logs.push(Log {
                inner: log.clone(),
                block_hash: Some(block.hash),
                block_number: Some(block.number()),
                block_timestamp: Some(block.header().timestamp),
                transaction_hash: Some(tx_hash),
                transaction_index: Some(tx_index as u64),
                log_index: Some(logs.len() as u64),
                removed: false,
            });
        }
    }
    logs
}

fn rpc_receipt(block: &ExecutedBlock, index: usize) -> TransactionReceipt {
    let tx = &block.block.body.transactions[index];
    let sender = block.senders[index];
    let cumulative = block.receipts[index].cumulative_gas_used();
    let previous = index
        .checked_sub(1)
        .map_or(0, |i| block.receipts[i].cumulative_gas_used());
    let first_log = block.receipts[..index]
        .iter()
        .map(|r| r.logs().len())
        .sum::<usize>();
    let all_logs = block_logs(block);
    let mut logs = all_logs.into_iter().skip(first_log);
    let inner = block.receipts[index]
        .clone()
        .map_logs(|_| logs.next().expect("receipt logs are in the block logs"));
    TransactionReceipt {
        inner,
        transaction_hash: *tx.tx_hash(),
        transaction_index: Some(index as u64),
        block_hash: Some(block.hash),
        block_number: Some(block.number()),
        gas_used: cumulative - previous,
        effective_gas_price: tx.effective_gas_price(block.header().base_fee_per_gas),
        blob_gas_used: None,
        blob_gas_price: None,
        from: sender,
        to: tx.to(),
        contract_address: tx.is_create().then(|| sender.create(tx.nonce())),
    }
}

/// Runs a call against the state after `block`, in the context of the block after it.
fn simulate(
    chain_id: u64,
    block: &ExecutedBlock,
    request: &TransactionRequest,
    gas: u64,
) -> Result<ExecutionResult, ErrorObjectOwned> {
    let header = block.header();
    let mut env = executor::block_env(header);
    env.number = U256::from(header.number + 1);
    env.timestamp = U256::from(header.timestamp + 1);
    env.basefee = executor::next_base_fee(header);
    let mut cfg = executor::cfg_env(chain_id);
    cfg.disable_nonce_check = true;
    let caller = request.from.unwrap_or_default();
    let gas_price = request.max_fee_per_gas.or(request.gas_price).unwrap_or(0);
    // As geth does for calls: no fee given means no base fee, and the call may use more gas
    // than the block limit.
    if gas_price == 0 {
        env.basefee = 0;
    }
    env.gas_limit = env.gas_limit.max(gas);
    let tx = revm::context::TxEnv {
        tx_type: if request.max_fee_per_gas.is_some() {
            2
        } else {
            0
        },
        caller,
        gas_limit: gas,
        gas_price,
        kind: request.to.unwrap_or(TxKind::Create),
        value: request.value.unwrap_or_default(),
        data: request.input.input().cloned().unwrap_or_default(),
        nonce: request
            .nonce
            .unwrap_or_else(|| block.state.account(caller).map_or(0, |a| a.nonce)),
        chain_id: Some(chain_id),
        access_list: request.access_list.clone().unwrap_or_default(),
        gas_priority_fee: request
            .max_priority_fee_per_gas
            .filter(|_| request.max_fee_per_gas.is_some()),
        ..Default::default()
    };
    let hashes = [(header.number, block.hash)];
    let db = CacheDB::new(StateDb::new(&block.state, &hashes));
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(env)
        .with_cfg(cfg)
        .build_mainnet();
    match evm.transact(tx) {
        Ok(result) => Ok(result.result),
        Err(EVMError::Transaction(err)) => Err(server_error(err.to_string())),
        Err(EVMError::Header(err)) => Err(server_error(err.to_string())),
        Err(err) => Err(server_error(format!("execution failed: {err}"))),
    }
}

fn call_output(result: ExecutionResult) -> Result<Bytes, ErrorObjectOwned> {
    match result {
        ExecutionResult::Success { output, .. } => Ok(output.into_data()),
        ExecutionResult::Revert { output, .. } => Err(ErrorObjectOwned::owned(
            3,
            "execution reverted",
            Some(output),
        )),
        ExecutionResult::Halt { reason, .. } => {
            Err(server_error(format!("execution halted: {reason:?}")))
        }
    }
}

fn estimate_gas(
    chain_id: u64,
    block: &ExecutedBlock,
    request: &TransactionRequest,
) -> Result<u64, ErrorObjectOwned> {
    let cap = request.gas.unwrap_or(block.header().gas_limit);
    let result = simulate(chain_id, block, request, cap)?;
    let used = result.tx_gas_used();
    call_output(result)?;
    // Binary search for the least gas that succeeds (the 63/64 rule and refunds make `used`
    // a lower bound only).
    let (mut low, mut high) = (used.saturating_sub(1), cap);
    if simulate(chain_id, block, request, used)?.is_success() {
        return Ok(used);
    }
    low = low.max(used);
    while low + 1 < high {
        let mid = low + (high - low) / 2;
        if simulate(chain_id, block, request, mid)?.is_success() {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(high)
}

/// Validates a raw transaction against the head state; returns it with its sender.
fn validate_raw(chain: &mut Chain, raw: &[u8]) -> Result<Candidate, ErrorObjectOwned> {
    if raw.len() > MAX_RAW_TX_BYTES {
        return Err(invalid_params(format!(
            "transaction is {} bytes, at most {MAX_RAW_TX_BYTES} accepted",
            raw.len()
        )));
    }
    let tx = TxEnvelope::decode_2718_exact(raw)
        .map_err(|e| invalid_params(format!("undecodable transaction: {e}")))?;
    if tx.is_eip4844() || tx.is_eip7702() {
        return Err(invalid_params(format!(
            "transaction type {} is not supported",
            tx.ty()
        )));
    }
    if let Some(id) = tx.chain_id() {
        if id != chain.chain_id() {
            return Err(invalid_params(format!(
                "chain id {id} does not match this chain ({})",
                chain.chain_id()
            )));
        }
    }
    let sender = chain.recover(&tx).map_err(invalid_params)?;
    let head = chain.head();
    let account = head.state.account(sender);
    let nonce = account.map_or(0, |a| a.nonce);
    if tx.nonce() < nonce {
        return Err(server_error(format!(
            "nonce too low: account {sender} has nonce {nonce}, transaction has {}",
            tx.nonce()
        )));
    }
    let balance = account.map_or(U256::ZERO, |a| a.balance);
    if balance < max_cost(&tx) {
        return Err(server_error(format!(
            "insufficient funds: account {sender} has {balance} wei, transaction may cost {}",
            max_cost(&tx)
        )));
    }
    if tx.gas_limit() > head.header().gas_limit {
        return Err(server_error(format!(
            "gas limit {} exceeds the block gas limit {}",
            tx.gas_limit(),
            head.header().gas_limit
        )));
    }
    // Full EVM validation (intrinsic gas, fee caps, chain id) on the next block's environment.
    let header = head.header();
    let mut env = executor::block_env(header);
    env.number = U256::from(header.number + 1);
    env.basefee = executor::next_base_fee(header);
    let mut cfg = executor::cfg_env(chain.chain_id());
    cfg.disable_nonce_check = true;
    let hashes = [(header.number, head.hash)];
    let db = CacheDB::new(StateDb::new(&head.state, &hashes));
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(env)
        .with_cfg(cfg)
        .build_mainnet();
    match evm.transact(executor::tx_env(&tx, sender)) {
        Ok(_) => {}
        Err(EVMError::Transaction(err)) => {
            return Err(server_error(format!("invalid transaction: {err}")))
        }
        Err(err) => return Err(server_error(format!("invalid transaction: {err}"))),
    }
    Ok(Candidate { tx, sender })
}

fn fee_history(
    chain: &Chain,
    count: u64,
    newest: BlockNumberOrTag,
    percentiles: Option<&[f64]>,
) -> Result<FeeHistory, ErrorObjectOwned> {
    let count = count.clamp(1, MAX_FEE_HISTORY);
    let newest = resolve_number(chain, newest)
        .ok_or_else(|| server_error("header not found"))?
        .number();
    let oldest = newest.saturating_sub(count - 1);
    let mut history = FeeHistory {
        oldest_block: oldest,
        ..Default::default()
    };
    let mut rewards = Vec::new();
    for number in oldest..=newest {
        let block = chain
            .canonical_block(number)
            .ok_or_else(|| server_error(format!("block {number} not found")))?;
        let header = block.header();
        let base_fee = header.base_fee_per_gas.unwrap_or(0);
        history.base_fee_per_gas.push(u128::from(base_fee));
        history.base_fee_per_blob_gas.push(1);
        history.blob_gas_used_ratio.push(0.0);
        #[expect(
            clippy::cast_precision_loss,
            reason = "an RPC ratio, never used in state"
        )]
        history
            .gas_used_ratio
            .push(header.gas_used as f64 / header.gas_limit as f64);
        if let Some(percentiles) = percentiles {
            rewards.push(block_rewards(block, base_fee, percentiles));
        }
    }
    let last = chain
        .canonical_block(newest)
        .expect("newest was resolved above");
    history
        .base_fee_per_gas
        .push(u128::from(executor::next_base_fee(last.header())));
    history.base_fee_per_blob_gas.push(1);
    if percentiles.is_some() {
        history.reward = Some(rewards);
    }
    Ok(history)
}

/// Tips at the given gas-weighted percentiles of a block (zeros for an empty block).
fn block_rewards(block: &ExecutedBlock, base_fee: u64, percentiles: &[f64]) -> Vec<u128> {
    let mut tips: Vec<(u128, u64)> = block
        .block
        .body
        .transactions
        .iter()
        .zip(&block.receipts)
        .scan(0u64, |previous, (tx, receipt)| {
            let used = receipt.cumulative_gas_used() - *previous;
            *previous = receipt.cumulative_gas_used();
            Some((tx.effective_tip_per_gas(base_fee).unwrap_or(0), used))
        })
        .collect();
    tips.sort_unstable();
    let total: u64 = tips.iter().map(|(_, used)| used).sum();
    percentiles
        .iter()
        .map(|p| {
            if tips.is_empty() {
                return 0;
            }
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "an RPC statistic, never used in state"
            )]
            let threshold = (total as f64 * p.clamp(0.0, 100.0) / 100.0) as u64;
            let mut sum = 0;
            for (tip, used) in &tips {
                sum += used;
                if sum >= threshold {
                    return *tip;
                }
            }
            tips.last().map_or(0, |(tip, _)| *tip)
        })
        .collect()
}

fn get_logs(chain: &Chain, filter: &Filter) -> Result<Vec<Log>, ErrorObjectOwned> {
    let blocks: Vec<&ExecutedBlock> = match &filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => {
            vec![chain
                .block(hash)
                .ok_or_else(|| server_error(format!("block {hash} not found")))?]
        }
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => {
            let head = chain.head().number();
            let to_number = |tag: Option<&BlockNumberOrTag>| {
                tag.map_or(Some(head), |t| {
                    resolve_number(chain, *t).map(ExecutedBlock::number)
                })
            };
            let from = to_number(from_block.as_ref())
                .ok_or_else(|| server_error("fromBlock not found"))?;
            let to = to_number(to_block.as_ref()).unwrap_or(head).min(head);
            if to >= from && to - from >= MAX_LOG_RANGE {
                return Err(invalid_params(format!(
                    "block range {from}..={to} is wider than {MAX_LOG_RANGE} blocks"
                )));
            }
            (from..=to)
                .filter_map(|n| chain.canonical_block(n))
                .collect()
        }
    };
    let mut logs = Vec::new();
    for block in blocks {
        if !filter.matches_bloom(block.header().logs_bloom) {
            continue;
        }
        for log in block_logs(block) {
            if filter.matches_address(log.address()) && filter.matches_topics(log.topics()) {
                logs.push(log);
                if logs.len() > MAX_LOGS {
                    return Err(invalid_params(format!(
                        "query returns more than {MAX_LOGS} logs; narrow it"
                    )));
                }
            }
        }
    }
    Ok(logs)
}

fn registered<T>(result: Result<T, jsonrpsee::core::RegisterMethodError>) {
    result.expect("method names are unique");
}

/// Builds the public RPC module.
#[expect(
    clippy::too_many_lines,
    reason = "one registration per method, read top to bottom"
)]
pub(crate) fn module(context: EthContext) -> RpcModule<EthContext> {
    let mut module = RpcModule::new(context);
    registered(module.register_method("eth_chainId", |_, ctx, _| {
        Ok::<_, ErrorObjectOwned>(U64::from(ctx.chain().chain_id()))
    }));
    registered(module.register_method("net_version", |_, ctx, _| {
        Ok::<_, ErrorObjectOwned>(ctx.chain().chain_id().to_string())
    }));
    registered(module.register_method("web3_clientVersion", |_, _, _| {
        Ok::<_, ErrorObjectOwned>(format!("tandem-evm/v{}", env!("CARGO_PKG_VERSION")))
    }));
    registered(module.register_method("eth_blockNumber", |_, ctx, _| {
        Ok::<_, ErrorObjectOwned>(U64::from(ctx.chain().head().number()))
    }));
    registered(module.register_method("eth_getBalance", |params, ctx, _| {
        let mut seq = params.sequence();
        let address: Address = seq.next()?;
        let id: Option<BlockId> = seq.optional_next()?;
        let chain = ctx.chain();
        let block = resolve(&chain, id)?;
        Ok::<_, ErrorObjectOwned>(
            block
                .state
                .account(address)
                .map_or(U256::ZERO, |a| a.balance),
        )
    }));
    registered(
        module.register_method("eth_getTransactionCount", |params, ctx, _| {
            let mut seq = params.sequence();
            let address: Address = seq.next()?;
            let id: Option<BlockId> = seq.optional_next()?;
            let chain = ctx.chain();
            let block = resolve(&chain, id)?;
            Ok::<_, ErrorObjectOwned>(U64::from(
                block.state.account(address).map_or(0, |a| a.nonce),
            ))
        }),
    );
    registered(module.register_method("eth_getCode", |params, ctx, _| {
        let mut seq = params.sequence();
        let address: Address = seq.next()?;
        let id: Option<BlockId> = seq.optional_next()?;
        let chain = ctx.chain();
        Ok::<_, ErrorObjectOwned>(resolve(&chain, id)?.state.code(address))
    }));
    registered(
        module.register_method("eth_getStorageAt", |params, ctx, _| {
            let mut seq = params.sequence();
            let address: Address = seq.next()?;
            let slot: U256 = seq.next()?;
            let id: Option<BlockId> = seq.optional_next()?;
            let chain = ctx.chain();
            Ok::<_, ErrorObjectOwned>(B256::from(
                resolve(&chain, id)?.state.storage(address, slot),
            ))
        }),
    );
    registered(
        module.register_blocking_method("eth_call", |params, ctx, _| {
            let mut seq = params.sequence();
            let request: TransactionRequest = seq.next()?;
            let id: Option<BlockId> = seq.optional_next()?;
            let chain = ctx.chain();
            let block = resolve(&chain, id)?;
            let gas = request.gas.unwrap_or(block.header().gas_limit);
            call_output(simulate(chain.chain_id(), block, &request, gas)?)
        }),
    );
    registered(
        module.register_blocking_method("eth_estimateGas", |params, ctx, _| {
            let mut seq = params.sequence();
            let request: TransactionRequest = seq.next()?;
            let id: Option<BlockId> = seq.optional_next()?;
            let chain = ctx.chain();
            let block = resolve(&chain, id)?;
            estimate_gas(chain.chain_id(), block, &request).map(U64::from)
        }),
    );
    registered(module.register_method("eth_gasPrice", |_, ctx, _| {
        let chain = ctx.chain();
        let base_fee = u128::from(executor::next_base_fee(chain.head().header()));
        Ok::<_, ErrorObjectOwned>(U256::from(base_fee + SUGGESTED_TIP))
    }));
    registered(
        module.register_method("eth_maxPriorityFeePerGas", |_, _, _| {
            Ok::<_, ErrorObjectOwned>(U256::from(SUGGESTED_TIP))
        }),
    );
    registered(module.register_method("eth_feeHistory", |params, ctx, _| {
        let mut seq = params.sequence();
        let count: U64 = seq.next()?;
        let newest: BlockNumberOrTag = seq.next()?;
        let percentiles: Option<Vec<f64>> = seq.optional_next()?;
        fee_history(&ctx.chain(), count.to(), newest, percentiles.as_deref())
    }));
    registered(
        module.register_method("eth_getBlockByNumber", |params, ctx, _| {
            let mut seq = params.sequence();
            let number: BlockNumberOrTag = seq.next()?;
            let full: bool = seq.next()?;
            let chain = ctx.chain();
            Ok::<_, ErrorObjectOwned>(resolve_number(&chain, number).map(|b| rpc_block(b, full)))
        }),
    );
    registered(
        module.register_method("eth_getBlockByHash", |params, ctx, _| {
            let mut seq = params.sequence();
            let hash: B256 = seq.next()?;
            let full: bool = seq.next()?;
            let chain = ctx.chain();
            Ok::<_, ErrorObjectOwned>(chain.block(&hash).map(|b| rpc_block(b, full)))
        }),
    );
    registered(
        module.register_method("eth_getTransactionByHash", |params, ctx, _| {
            let hash: B256 = params.one()?;
            let chain = ctx.chain();
            Ok::<_, ErrorObjectOwned>(
                chain
                    .transaction(&hash)
                    .map(|(block, index)| rpc_transaction(block, index)),
            )
        }),
    );
    registered(
        module.register_method("eth_getTransactionReceipt", |params, ctx, _| {
            let hash: B256 = params.one()?;
            let chain = ctx.chain();
            Ok::<_, ErrorObjectOwned>(
                chain
                    .transaction(&hash)
                    .map(|(block, index)| rpc_receipt(block, index)),
            )
        }),
    );
    registered(
        module.register_blocking_method("eth_getLogs", |params, ctx, _| {
            let filter: Filter = params.one()?;
            get_logs(&ctx.chain(), &filter)
        }),
    );
    registered(module.register_async_method(
        "eth_sendRawTransaction",
        |params, ctx, _| async move {
            let raw: Bytes = params.one()?;
            let candidate = validate_raw(&mut ctx.chain(), &raw)?;
            let hash = *candidate.tx.tx_hash();
            if let Some(forwarder) = &ctx.forwarder {
                forwarder.submit(raw).await.map_err(server_error)?;
                tracing::info!(tx = %hash, "forwarded transaction");
            } else {
                ctx.chain().add_to_pool(candidate).map_err(server_error)?;
                tracing::info!(tx = %hash, "pooled transaction");
            }
            Ok::<_, ErrorObjectOwned>(hash)
        },
    ));
    module
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_and_garbage_transactions_are_rejected_with_reason() {
        let mut chain = Chain::open(&crate::genesis::dev_genesis(), None).unwrap();
        let err = validate_raw(&mut chain, &vec![0u8; MAX_RAW_TX_BYTES + 1]).unwrap_err();
        assert!(err.message().contains("at most"), "{err:?}");
        let err = validate_raw(&mut chain, &[0x02, 0x01]).unwrap_err();
        assert!(err.message().contains("undecodable"), "{err:?}");
    }
}
