// Drives a running Tandem chain with stock cosmjs, as a wallet or a dapp would: queries,
// transfers, a two-rollup bundle, and the CometBFT RPC over HTTP and WebSocket.
// Usage: node interop.mjs <rpc url> <secp256k1 secret hex of a funded account>
// Prints one "ok: …" line per check; exits non-zero on the first failure.
import { sha256 } from "@cosmjs/crypto";
import { DirectSecp256k1Wallet, Registry } from "@cosmjs/proto-signing";
import {
  GasPrice,
  SigningStargateClient,
  StargateClient,
  calculateFee,
  defaultRegistryTypes,
} from "@cosmjs/stargate";
import { BinaryReader, BinaryWriter } from "cosmjs-types/binary";
import { TxRaw } from "cosmjs-types/cosmos/tx/v1beta1/tx";
import { fromHex, toBech32, toHex } from "@cosmjs/encoding";
import { Comet38Client, WebsocketClient } from "@cosmjs/tendermint-rpc";
import assert from "node:assert/strict";

const [rpc, secretHex] = process.argv.slice(2);
if (!rpc || !secretHex) {
  console.error("usage: node interop.mjs <rpc url> <secret hex>");
  process.exit(2);
}

// /tandem.sequencer.v1.MsgSubmitRollupData {signer = 1, rollup_id = 2, data = 3}, the one
// Tandem message cosmjs does not know; registered as any custom message type is.
const MsgSubmitRollupData = {
  encode(m, w = BinaryWriter.create()) {
    if (m.signer) w.uint32(10).string(m.signer);
    if (m.rollupId?.length) w.uint32(18).bytes(m.rollupId);
    if (m.data?.length) w.uint32(26).bytes(m.data);
    return w;
  },
  decode(input) {
    const r = input instanceof BinaryReader ? input : new BinaryReader(input);
    const m = { signer: "", rollupId: new Uint8Array(), data: new Uint8Array() };
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag === 10) m.signer = r.string();
      else if (tag === 18) m.rollupId = r.bytes();
      else if (tag === 26) m.data = r.bytes();
      else r.skipType(tag & 7);
    }
    return m;
  },
  fromPartial(o) {
    return { signer: o.signer ?? "", rollupId: o.rollupId ?? new Uint8Array(), data: o.data ?? new Uint8Array() };
  },
};

const step = (name) => console.log(`ok: ${name}`);

const wallet = await DirectSecp256k1Wallet.fromKey(fromHex(secretHex), "tandem");
const [{ address }] = await wallet.getAccounts();

const query = await StargateClient.connect(rpc);
const chainId = await query.getChainId();
assert.ok(chainId.length > 0);
step(`getChainId ${chainId}`);
const height = await query.getHeight();
assert.ok(height >= 1);
step(`getHeight ${height}`);

const account = await query.getAccount(address);
assert.ok(account, "the funded account exists");
assert.equal(account.address, address);
step(`getAccount number ${account.accountNumber} sequence ${account.sequence}`);
assert.equal(await query.getAccount(toBech32("tandem", new Uint8Array(20).fill(9))), null);
step("getAccount of an unknown address is null");

const before = await query.getBalance(address, "utnd");
assert.equal(before.denom, "utnd");
assert.ok(BigInt(before.amount) > 0n);
step(`getBalance ${before.amount}`);
const all = await query.getAllBalances(address);
assert.deepEqual(all, [before]);
step("getAllBalances");

const registry = new Registry(defaultRegistryTypes);
registry.register("/tandem.sequencer.v1.MsgSubmitRollupData", MsgSubmitRollupData);
const client = await SigningStargateClient.connectWithSigner(rpc, wallet, { registry });

const fee = { amount: [{ denom: "utnd", amount: "100000" }], gas: "200000" };
const recipient = toBech32("tandem", crypto.getRandomValues(new Uint8Array(20)));
const sent = await client.sendTokens(address, recipient, [{ denom: "utnd", amount: "12345" }], fee, "cosmjs");
assert.equal(sent.code, 0, sent.rawLog);
assert.ok(sent.height > 0);
step(`sendTokens in block ${sent.height}, tx ${sent.transactionHash}`);
const got = await query.getBalance(recipient, "utnd");
assert.equal(got.amount, "12345");
step("recipient balance");

const rollupId = new Uint8Array(32).fill(7);
const msgs = [1, 2].map((i) => ({
  typeUrl: "/tandem.sequencer.v1.MsgSubmitRollupData",
  value: { signer: address, rollupId: rollupId.map((b) => b + i), data: new TextEncoder().encode(`rollup tx ${i}`) },
}));
const bundle = await client.signAndBroadcast(address, msgs, fee, "a bundle for two rollups");
assert.equal(bundle.code, 0, bundle.rawLog);
step(`signAndBroadcast of a two-rollup bundle in block ${bundle.height}`);

const tx = await query.getTx(bundle.transactionHash);
assert.ok(tx, "getTx finds the bundle");
assert.equal(tx.height, bundle.height);
assert.equal(tx.code, 0);
step("getTx");
const found = await query.searchTx(`tx.height=${bundle.height}`);
assert.ok(found.some((t) => t.hash === bundle.transactionHash));
step("searchTx by height");
// The Cosmos SDK's `message` event, indexed: a wallet's history by sender and by action.
const bySender = await query.searchTx([{ key: "message.sender", value: address }]);
assert.ok(bySender.some((t) => t.hash === sent.transactionHash));
assert.ok(bySender.some((t) => t.hash === bundle.transactionHash));
const sends = await query.searchTx([
  { key: "message.sender", value: address },
  { key: "message.action", value: "/cosmos.bank.v1beta1.MsgSend" },
]);
assert.ok(sends.some((t) => t.hash === sent.transactionHash));
assert.ok(!sends.some((t) => t.hash === bundle.transactionHash));
const received = await query.searchTx([{ key: "transfer.recipient", value: recipient }]);
assert.deepEqual(received.map((t) => t.hash), [sent.transactionHash]);
step("searchTx by message.sender, message.action and transfer.recipient");

const after = await client.getSequence(address);
assert.equal(after.sequence, account.sequence + 2);
step(`sequence advanced to ${after.sequence}`);

const fees = 2n * 100000n;
const now = await query.getBalance(address, "utnd");
assert.equal(BigInt(now.amount), BigInt(before.amount) - 12345n - fees);
step("sender paid the amount and both fees");

// A tx that fails CheckTx is reported, not swallowed.
await assert.rejects(
  client.sendTokens(address, recipient, [{ denom: "utnd", amount: "1" }], { amount: [{ denom: "utnd", amount: "1" }], gas: "1" }),
  /fee|insufficient/i,
);
step("an underpaid tx is refused with a message");

// fee "auto": cosmjs simulates first. Tandem has no gas, and Simulate reports the fee the tx
// needs as gas_used, so with a gas price of 1utnd the tx pays that fee times cosmjs's margin.
const comet = await Comet38Client.connect(rpc);
const paramsAnswer = await comet.abciQuery({ path: "/tandem/params", data: new Uint8Array() });
const params = JSON.parse(new TextDecoder().decode(paramsAnswer.value));
const rollupBytes = msgs.reduce((n, m) => n + m.value.data.length, 0);
const required = BigInt(params.base_fee) + BigInt(params.fee_per_byte) * BigInt(rollupBytes);
const auto = await SigningStargateClient.connectWithSigner(rpc, wallet, {
  registry,
  gasPrice: GasPrice.fromString("1utnd"),
});
const estimate = await auto.simulate(address, msgs, "");
assert.equal(BigInt(estimate), required);
step(`simulate: gas_used ${estimate} = the required fee`);
const beforeAuto = BigInt((await query.getBalance(address, "utnd")).amount);
const autoTx = await auto.signAndBroadcast(address, msgs, "auto");
assert.equal(autoTx.code, 0, autoTx.rawLog);
const autoFee = calculateFee(Math.round(estimate * 1.4), "1utnd").amount[0].amount;
const afterAuto = BigInt((await query.getBalance(address, "utnd")).amount);
assert.equal(beforeAuto - afterAuto, BigInt(autoFee));
step(`signAndBroadcast with fee "auto" paid ${autoFee} utnd`);
auto.disconnect();

const block = await query.getBlock(bundle.height);
assert.equal(block.header.height, bundle.height);
step(`getBlock ${block.header.height} with ${block.txs.length} txs`);

// The CometBFT RPC itself, through cosmjs's v0.38 client, over HTTP and WebSocket.
const status = await comet.status();
assert.equal(status.nodeInfo.network, chainId);
assert.ok(status.validatorInfo.votingPower > 0n);
step(`status: validator power ${status.validatorInfo.votingPower}`);
await comet.health();
step("health");
const info = await comet.abciInfo();
assert.ok(info.lastBlockHeight >= bundle.height);
step(`abci_info at ${info.lastBlockHeight}`);
const vals = await comet.validatorsAll(bundle.height);
assert.equal(vals.total, 1);
assert.equal(vals.validators[0].votingPower, status.validatorInfo.votingPower);
step("validators");
const genesis = await comet.genesis();
assert.equal(genesis.chainId, chainId);
step("genesis");
const results = await comet.blockResults(bundle.height);
assert.equal(results.results.length, 2, "the commitment item and the bundle");
assert.ok(results.results.every((r) => r.code === 0));
step("block_results");
const chain = await comet.blockchain(1, bundle.height);
assert.ok(chain.blockMetas.length > 0);
step(`blockchain: ${chain.blockMetas.length} metas`);
const commit = await comet.commit(bundle.height);
assert.equal(commit.header.height, bundle.height);
assert.ok(commit.commit.signatures.length === 1);
step("commit");
const byHash = await comet.tx({ hash: fromHex(bundle.transactionHash), prove: true });
assert.equal(byHash.height, bundle.height);
assert.ok(byHash.proof, "prove=true returns a proof");
step("tx with proof");
const blocks = await comet.blockSearchAll({ query: `block.height=${bundle.height}` });
assert.deepEqual(blocks.blocks.map((b) => b.block.header.height), [bundle.height]);
step("block_search by the block event tandemd marks");
const search = await comet.txSearchAll({ query: `tx.height=${bundle.height}` });
assert.equal(search.totalCount, 2, "the commitment item and the bundle");
step("tx_search");
const q = await comet.abciQuery({ path: "/cosmos.bank.v1beta1.Query/Balance", data: new Uint8Array(), prove: false });
assert.notEqual(q.code, 0, "an empty Balance request is refused");
step(`abci_query refuses an empty request (code ${q.code}): ${q.log}`);
const pending = await comet.numUnconfirmedTxs();
assert.ok(pending.total >= 0);
step("num_unconfirmed_txs");

// Live events over WebSocket: a new block, then a tx.
const wsUrl = rpc.replace(/^http/, "ws");
const ws = await Comet38Client.create(new WebsocketClient(wsUrl, (e) => { throw e; }));
const firstBlock = (stream) => new Promise((resolve, reject) => {
  const sub = stream.subscribe({ next: (v) => { sub.unsubscribe(); resolve(v); }, error: reject });
});
const newBlock = await firstBlock(ws.subscribeNewBlock());
assert.ok(newBlock.header.height > bundle.height);
step(`subscribeNewBlock: block ${newBlock.header.height}`);
// Every block's first tx is its commitment item, so wait for the event of this tx.
let wanted;
const txEvent = new Promise((resolve, reject) => {
  const sub = ws.subscribeTx().subscribe({
    next: (ev) => {
      if (wanted && toHex(ev.hash) === wanted) { sub.unsubscribe(); resolve(ev); }
    },
    error: reject,
  });
});
const seq = await client.getSequence(address);
const send = {
  typeUrl: "/cosmos.bank.v1beta1.MsgSend",
  value: { fromAddress: address, toAddress: recipient, amount: [{ denom: "utnd", amount: "1" }] },
};
const signed = await client.sign(address, [send], fee, "", {
  accountNumber: seq.accountNumber,
  sequence: seq.sequence,
  chainId,
});
const txBytes = TxRaw.encode(signed).finish();
wanted = toHex(sha256(txBytes));
const committed = await comet.broadcastTxCommit({ tx: txBytes });
assert.equal(committed.checkTx.code, 0);
assert.equal(committed.txResult.code, 0);
step(`broadcast_tx_commit in block ${committed.height}`);
const ev = await txEvent;
assert.equal(toHex(ev.hash), toHex(committed.hash));
assert.equal(ev.height, committed.height);
assert.equal(ev.result.code, 0);
step("subscribeTx saw it");
ws.disconnect();
comet.disconnect();

query.disconnect();
client.disconnect();
console.log("cosmjs interop: all checks passed");
// Exit explicitly: with cosmjs 0.39, a handle stays open after both clients disconnect.
process.exit(0);
