//! Events published to WebSocket subscribers, and the query language subset that selects them.
//!
//! Queries are conjunctions of `key = 'value'` (or `key = number`) conditions, matched against
//! the event's attributes: `tm.event`, `tx.hash`, `tx.height` and every ABCI event attribute as
//! `type.key`. That covers `tm.event='NewBlock'`, `tm.event='Tx'` and filters such as
//! `tm.event='Tx' AND tx.hash='…'`.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use tendermint::abci;
use tendermint_proto::v0_38::abci as pba;
use tendermint_rpc::{
    event::{Event, EventData, TxInfo, TxResult},
    ResponseError,
};

use crate::node::BlockEvent;

/// Converts a raw tx result to the domain type.
pub(super) fn exec_tx_result(
    raw: &pba::ExecTxResult,
) -> Result<abci::types::ExecTxResult, ResponseError> {
    abci::types::ExecTxResult::try_from(raw.clone())
        .map_err(|e| ResponseError::server_error(e.to_string()))
}

fn add_abci_events(map: &mut BTreeMap<String, Vec<String>>, events: &[pba::Event]) {
    for event in events {
        for attr in &event.attributes {
            map.entry(format!("{}.{}", event.r#type, attr.key))
                .or_default()
                .push(attr.value.clone());
        }
    }
}

/// The `NewBlock` event for a committed block.
pub(crate) fn event_for_block(block: &BlockEvent) -> Event {
    let mut events = BTreeMap::new();
    events.insert("tm.event".to_owned(), vec!["NewBlock".to_owned()]);
    events.insert(
        "block.height".to_owned(),
        vec![block.block.header.height.to_string()],
    );
    add_abci_events(&mut events, &block.results.events);
    let result_finalize_block = abci::response::FinalizeBlock::try_from(block.results.clone()).ok();
    Event {
        query: String::new(),
        data: EventData::NewBlock {
            block: Some(Box::new(block.block.clone())),
            block_id: block.block_id,
            result_finalize_block,
        },
        events: Some(events),
    }
}

/// One `Tx` event per tx of a committed block.
pub(crate) fn tx_events_for_block(block: &BlockEvent) -> Vec<Event> {
    let height = i64::try_from(block.block.header.height.value()).unwrap_or(i64::MAX);
    block
        .block
        .data
        .iter()
        .zip(&block.results.tx_results)
        .enumerate()
        .map(|(index, (tx, result))| {
            let mut events = BTreeMap::new();
            events.insert("tm.event".to_owned(), vec!["Tx".to_owned()]);
            events.insert(
                "tx.hash".to_owned(),
                vec![hex::encode_upper(Sha256::digest(tx))],
            );
            events.insert("tx.height".to_owned(), vec![height.to_string()]);
            add_abci_events(&mut events, &result.events);
            let domain_events = exec_tx_result(result).map(|r| r.events).unwrap_or_default();
            Event {
                query: String::new(),
                data: EventData::Tx {
                    tx_result: TxInfo {
                        height,
                        index: i64::try_from(index).ok(),
                        tx: tx.clone(),
                        result: TxResult {
                            log: Some(result.log.clone()),
                            gas_wanted: Some(result.gas_wanted.to_string()),
                            gas_used: Some(result.gas_used.to_string()),
                            events: domain_events,
                        },
                    },
                },
                events: Some(events),
            }
        })
        .collect()
}

/// The application's result for the tx of a `Tx` event of `block`.
pub(super) fn tx_result_of<'a>(
    event: &Event,
    block: &'a BlockEvent,
) -> Option<&'a pba::ExecTxResult> {
    match &event.data {
        EventData::Tx { tx_result } => tx_result
            .index
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| block.results.tx_results.get(index)),
        _ => None,
    }
}

/// Adds to an encoded `Tx` event the result fields tendermint-rs's `TxResult` has no place
/// for, as `CometBFT` writes them (each left out when empty): `code`, `codespace`, `data`,
/// `info`. Without `code`, a subscriber such as cosmjs reads a failed tx as a success.
pub(super) fn add_result_fields(wrapper: &mut serde_json::Value, result: &pba::ExecTxResult) {
    let Some(fields) = wrapper
        .pointer_mut("/result/data/value/TxResult/result")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    if result.code != 0 {
        fields.insert("code".to_owned(), result.code.into());
    }
    if !result.codespace.is_empty() {
        fields.insert("codespace".to_owned(), result.codespace.clone().into());
    }
    if !result.info.is_empty() {
        fields.insert("info".to_owned(), result.info.clone().into());
    }
    if !result.data.is_empty() {
        if let Ok(data) = super::methods::base64_value(&result.data) {
            fields.insert("data".to_owned(), data);
        }
    }
}

/// A parsed subscription query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Query {
    conditions: Vec<(String, String)>,
}

impl Query {
    /// Parses `a = 'x' AND b = 5`.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let mut conditions = Vec::new();
        for part in split_and(text) {
            let part = part.trim();
            let (key, value) = part.split_once('=').ok_or_else(|| {
                format!("unsupported query condition `{part}`: only `key = 'value'` conditions joined by AND are supported")
            })?;
            let key = key.trim();
            if key.is_empty() || key.contains(['<', '>', '!', ' ']) {
                return Err(format!("unsupported query condition `{part}`"));
            }
            let value = value.trim();
            let value = if let Some(v) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\''))
            {
                v.to_owned()
            } else if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
                value.to_owned()
            } else {
                return Err(format!("unsupported value in query condition `{part}`"));
            };
            conditions.push((key.to_owned(), value));
        }
        if conditions.is_empty() {
            return Err("empty query".to_owned());
        }
        Ok(Self { conditions })
    }

    /// The `key = value` conditions, all of which must hold.
    pub(super) fn conditions(&self) -> &[(String, String)] {
        &self.conditions
    }

    /// Whether an event with these attributes matches.
    pub(super) fn matches(&self, attrs: &BTreeMap<String, Vec<String>>) -> bool {
        self.conditions.iter().all(|(key, value)| {
            attrs.get(key).is_some_and(|values| {
                values
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(value) || v == value)
            })
        })
    }
}

fn split_and(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let mut in_quote = false;
        let mut split_at = None;
        let bytes = rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\'' {
                in_quote = !in_quote;
            } else if !in_quote && bytes[i..].starts_with(b" AND ") {
                // Compared as bytes: `i` may fall inside a multi-byte character, where a
                // `str` slice would panic. A match is ASCII, so it starts on a boundary.
                split_at = Some(i);
                break;
            }
            i += 1;
        }
        let Some(i) = split_at else {
            parts.push(rest);
            return parts;
        };
        parts.push(&rest[..i]);
        rest = &rest[i + 5..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_table() {
        let attrs: BTreeMap<String, Vec<String>> = [
            ("tm.event".to_owned(), vec!["Tx".to_owned()]),
            ("tx.height".to_owned(), vec!["7".to_owned()]),
            ("transfer.note".to_owned(), vec!["a AND b".to_owned()]),
        ]
        .into_iter()
        .collect();
        let table = [
            ("tm.event = 'Tx'", Some(true)),
            ("tm.event='NewBlock'", Some(false)),
            ("tm.event = 'Tx' AND tx.height = 7", Some(true)),
            ("tm.event = 'Tx' AND tx.height = 8", Some(false)),
            ("transfer.note = 'a AND b'", Some(true)),
            ("tx.height > 3", None),
            ("", None),
            ("tm.event = Tx", None),
            // A multi-byte character before an AND used to panic the parser.
            ("transfer.note = 'é' AND tm.event = 'Tx'", Some(false)),
            ("é AND x = 'y'", None),
        ];
        for (text, expected) in table {
            let got = Query::parse(text).map(|q| q.matches(&attrs)).ok();
            assert_eq!(got, expected, "{text}");
        }
    }
}
