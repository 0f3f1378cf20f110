"""The transaction record against a real Anvil: the hash-linked log, anchoring, and verification of
exported records (changed, dropped, reordered, not yet anchored), with the contract's own rules."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from core_client.records.log import LogMismatch, TransactionLog
from ev_network.chain import http_web3
from ev_network.errors import ContractRevert
from ev_network.merkle import MerkleTree, process_proof
from ev_network.records import (
    ZERO,
    NotAnchored,
    RecordAnchor,
    RecordError,
    VerificationFailed,
    leaf_hash,
    verify_export,
)
from ev_network.tx import TxSender
from tools.devchain import free_port
from tools.harness.chain import Net
from tools.harness.records import T0, add_transactions


def log_for(net: Net, path: Path | str, **policy: float) -> TransactionLog:
    return TransactionLog(path, RecordAnchor(net.w3, net.deployment.record_anchor), **policy)


def verify(net: Net, log: TransactionLog, index: int):
    exported = log.export(log.entry(index), net.operator.address)
    return verify_export(exported, log.anchors, net.escrow())


def forged_log(original: TransactionLog, path: Path, order: list[int], with_anchors: bool = True) -> TransactionLog:
    """What a CPO could build after anchoring: a fully consistent log (indexes, hash links, leaves all
    recomputed) holding the original records in another ``order``, with the original anchors."""
    forged = TransactionLog(path, original.anchors)
    previous = ZERO
    for new_index, old_index in enumerate(order):
        entry = original.entry(old_index)
        leaf = leaf_hash(new_index, previous, entry.record.hash())
        row = (new_index, entry.record.transaction_id, entry.record.charge_point_id, entry.record.model_dump_json())
        forged.db.execute("INSERT INTO record_log VALUES (?, ?, ?, ?, ?, ?)", (*row, leaf, entry.appended_at))
        previous = leaf
    for a in original.local_anchors() if with_anchors else []:
        row = (a.anchor_id, a.operator, a.root, a.first_index, a.count, a.timestamp, a.block)
        forged.db.execute("INSERT INTO record_anchors VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    return forged


def test_merkle_proofs_lead_to_the_root_for_any_tree_size() -> None:
    for n in (1, 2, 3, 5, 8, 13):
        leaves = [leaf_hash(i, ZERO, "0x" + f"{i + 1:064x}") for i in range(n)]
        tree = MerkleTree(leaves)
        assert all(process_proof(leaf, tree.proof(leaf)) == tree.root for leaf in leaves)
        assert process_proof(leaves[0], tree.proof(leaves[-1])) != tree.root or n == 1


def test_log_is_hash_linked_append_only_and_keeps_no_id_tag(db_location: Path | str, net: Net) -> None:
    log = log_for(net, db_location)
    add_transactions(log, 1, 3)
    entries = log.entries()
    assert [e.index for e in entries] == [0, 1, 2]
    assert (
        entries[0].previous == ZERO
        and entries[1].previous == entries[0].leaf
        and entries[2].previous == entries[1].leaf
    )
    assert all(e.leaf == leaf_hash(e.index, e.previous, e.record.hash()) for e in entries)
    record = log.find(2).record
    assert (record.meter_start, record.meter_stop, record.stop_reason) == (2000, 2777, "EVDisconnected")
    assert record.matches_id_tag("RFID-0002") and not record.matches_id_tag("rfid-0003")
    assert log.record_stop(2, 9999, "Local", T0 + 9999).index == 1  # a repeated stop: same entry, no new one
    assert log.record_stop(404, 1, "Local", T0) is None  # never started here
    assert len(log) == 3
    for change in ("UPDATE record_log SET body = 'x' WHERE idx = 0", "DELETE FROM record_log WHERE idx = 2"):
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RaiseException), match="append-only"):
            log.db.execute(change)
    if log.db.dialect == "postgresql":
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            log.db.execute("TRUNCATE record_log")
    assert len(log) == 3
    rows = [r for table in ("record_log", "record_open") for r in log.db.execute(f"SELECT * FROM {table}")]
    assert rows and "rfid-000" not in repr(rows).lower()
    log.close()
    if isinstance(db_location, Path):  # nor anywhere in the file (freed pages, write-ahead log)
        assert b"rfid-000" not in db_location.read_bytes().lower()


def test_instances_sharing_a_postgresql_append_to_one_hash_linked_log(pg_url: str, net: Net) -> None:
    """Three logs on one database (three instances), appending at once from their own threads."""
    logs = [log_for(net, pg_url) for _ in range(3)]
    start = threading.Barrier(3)

    def instance(n: int) -> None:
        start.wait(10)
        add_transactions(logs[n], 100 * (n + 1), 10, cp=f"CP-REC-{n}")

    threads = [threading.Thread(target=instance, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    entries = logs[0].entries()
    assert [e.index for e in entries] == list(range(30))
    assert all(e.leaf == leaf_hash(e.index, e.previous, e.record.hash()) for e in entries)
    assert sorted(e.record.transaction_id for e in entries) == [100 * n + i for n in (1, 2, 3) for i in range(10)]
    for log in logs:
        log.close()


def test_anchored_records_verify_against_the_chain_only(tmp_path: Path, clean_chain: Net) -> None:
    net = clean_chain
    log = log_for(net, tmp_path / "cc.sqlite")
    add_transactions(log, 1, 5)
    anchor = log.anchor(net.sender(net.operator))
    assert (anchor.anchor_id, anchor.first_index, anchor.count, anchor.operator) == (0, 0, 5, net.operator.address)
    sent = net.w3.eth.get_transaction(_anchor_tx(net, anchor.block))  # all that goes on chain: root and range
    assert bytes(sent["input"]) == bytes.fromhex(
        log.anchors.contract.encode_abi("anchor", [bytes.fromhex(anchor.root[2:]), 0, 5])[2:]
    )
    logged = b"".join(bytes(entry["data"]) for entry in net.w3.eth.get_transaction_receipt(sent["hash"])["logs"])
    assert not any(bytes.fromhex(e.record.id_tag_hash[2:]) in bytes(sent["input"]) + logged for e in log.entries())
    for index in range(5):
        verified = verify(net, log, index)
        assert (verified.anchor.anchor_id, verified.operator_name) == (0, "Volt Charging GmbH")
        exported = log.export(log.entry(index), net.operator.address)
        assert log.anchors.verify_on_chain(net.operator.address, 0, exported.proof, exported.leaf)  # OZ MerkleProof
    shown = verified.describe(log.entry(4).record)
    assert shown.startswith("transaction 5 at CP-REC-1/2: 777 Wh, stopped 2025-12-01T00:05:30Z (EVDisconnected)\n")
    assert "record 4 is in anchor 0 of operator" in shown and "(Volt Charging GmbH)" in shown
    add_transactions(log, 6, 2)
    second = log.anchor(net.sender(net.operator))
    assert (second.anchor_id, second.first_index, second.count) == (1, 5, 2)
    assert verify(net, log, 6).anchor.anchor_id == 1
    assert log.anchor(net.sender(net.operator)) is None  # nothing left to anchor


def test_changed_records_and_proofs_fail(tmp_path: Path, clean_chain: Net) -> None:
    net = clean_chain
    log = log_for(net, tmp_path / "cc.sqlite")
    add_transactions(log, 1, 4)
    log.anchor(net.sender(net.operator))
    exported = log.export(log.entry(2), net.operator.address)
    changes = [
        {"record": exported.record.model_copy(update={"meter_stop": exported.record.meter_stop + 1})},
        {"record": exported.record.model_copy(update={"stop_reason": "Local"})},
        {"record": exported.record.model_copy(update={"id_tag_hash": "0x" + "11" * 32})},
        {"index": 1},
        {"previous": "0x" + "22" * 32},
        {"proof": exported.proof[:-1]},
    ]
    for change in changes:
        with pytest.raises(VerificationFailed, match=r"changed, dropped or reordered|covers records"):
            verify_export(exported.model_copy(update=change), log.anchors, net.escrow())
    other = exported.model_copy(
        update={"anchor": exported.anchor.model_copy(update={"contract": net.deployment.escrow})}
    )
    with pytest.raises(VerificationFailed, match="not this deployment"):
        verify_export(other, log.anchors, net.escrow())
    assert verify_export(exported, log.anchors, net.escrow()).index == 2  # the untouched export still verifies


def test_dropped_or_reordered_records_fail(tmp_path: Path, clean_chain: Net) -> None:
    net = clean_chain
    log = log_for(net, tmp_path / "cc.sqlite")
    add_transactions(log, 1, 6)
    log.anchor(net.sender(net.operator))
    dropped = forged_log(log, tmp_path / "dropped.sqlite", [0, 1, 3, 4, 5])  # record 2 left out
    assert dropped.entry(1).leaf == log.entry(1).leaf  # records before the gap keep their leaves, but
    for index in range(5):  # the anchored tree held six: no record of the shortened log proves against it
        with pytest.raises(VerificationFailed, match="changed, dropped or reordered"):
            verify(net, dropped, index)
    swapped = forged_log(log, tmp_path / "swapped.sqlite", [0, 1, 3, 2, 4, 5])
    for index in (2, 3):
        with pytest.raises(VerificationFailed, match="changed, dropped or reordered"):
            verify(net, swapped, index)
    forged = forged_log(log, tmp_path / "unsynced.sqlite", [0, 1, 3, 2, 4, 5], with_anchors=False)
    with pytest.raises(LogMismatch, match="does not match this log"):  # nor pass for the anchored log
        forged.sync(net.operator.address)


def test_not_yet_anchored_says_so(tmp_path: Path, clean_chain: Net) -> None:
    net = clean_chain
    log = log_for(net, tmp_path / "cc.sqlite")
    add_transactions(log, 1, 2)
    early = log.export(log.entry(1), net.operator.address)
    assert early.anchor is None and early.proof == []
    with pytest.raises(NotAnchored, match=r"not anchored yet .*no records yet"):
        verify_export(early, log.anchors, net.escrow())
    log.anchor(net.sender(net.operator))
    with pytest.raises(NotAnchored, match="anchored since it was exported: export it again"):
        verify_export(early, log.anchors, net.escrow())
    add_transactions(log, 3, 1)
    with pytest.raises(NotAnchored, match=r"not anchored yet \(its anchors cover records 0-1\)"):
        verify(net, log, 2)


def test_the_contract_refuses_double_empty_and_foreign_anchors(tmp_path: Path, clean_chain: Net) -> None:
    net = clean_chain
    log = log_for(net, tmp_path / "cc.sqlite")
    add_transactions(log, 1, 3)
    first = log.anchor(net.sender(net.operator))
    operator = log.anchors.with_sender(net.sender(net.operator))
    for first_index, count in ((0, 3), (1, 2), (0, 5), (4, 1)):
        with pytest.raises(ContractRevert, match="RangeNotContiguous"):
            operator.anchor(first.root, first_index, count)
    with pytest.raises(ContractRevert, match="EmptyAnchor"):
        operator.anchor(first.root, 3, 0)
    with pytest.raises(ContractRevert, match="EmptyAnchor"):
        operator.anchor(ZERO, 3, 1)
    with pytest.raises(ContractRevert, match="NotRegisteredOperator"):
        log.anchors.with_sender(net.sender(net.drivers[0])).anchor(first.root, 0, 3)
    with pytest.raises(ContractRevert, match="UnknownAnchor"):
        log.anchors.anchor_of(net.operator.address, 1)
    assert log.anchors.next_index(net.operator.address) == 3 and log.anchors.anchor_count(net.operator2.address) == 0
    assert log.anchors.registry() == net.deployment.escrow


def test_gas_of_an_anchor_does_not_grow_with_volume(tmp_path: Path, clean_chain: Net) -> None:
    net = clean_chain
    log = log_for(net, tmp_path / "cc.sqlite")
    sender = net.sender(net.operator)
    gas = {}
    for n in (1, 1, 300):  # the first anchor of an operator also creates its list: measure the later ones
        add_transactions(log, len(log) + 1, n)
        anchor = log.anchor(sender)
        receipt = net.w3.eth.get_transaction_receipt(_anchor_tx(net, anchor.block))
        gas[anchor.anchor_id] = receipt["gasUsed"]
    assert abs(gas[2] - gas[1]) <= 100, gas  # calldata bytes of count/index only
    assert gas[1] < 100_000, gas


def _anchor_tx(net: Net, block: int) -> str:
    return net.w3.eth.get_block(block)["transactions"][0]


def test_a_crash_after_sending_is_picked_up_from_the_chain(tmp_path: Path, clean_chain: Net) -> None:
    net = clean_chain
    log = log_for(net, tmp_path / "cc.sqlite")
    add_transactions(log, 1, 4)
    root = log.root_of(0, 3)  # the daemon sent an anchor of 0-2, then died before storing it
    log.anchors.with_sender(net.sender(net.operator)).anchor(root, 0, 3)
    assert log.anchored_until() == 0
    resumed = log.anchor(net.sender(net.operator))
    assert (resumed.anchor_id, resumed.first_index, resumed.count) == (1, 3, 1)
    assert [a.count for a in log.local_anchors()] == [3, 1]
    assert verify(net, log, 1).anchor.anchor_id == 0


async def test_anchor_due_follows_the_policy(tmp_path: Path, clean_chain: Net) -> None:
    net = clean_chain
    sender = net.sender(net.operator)
    log = log_for(net, tmp_path / "cc.sqlite", anchor_every=3, anchor_interval_s=3600)
    add_transactions(log, 1, 2)
    assert not log.is_due() and await log.anchor_due(sender) is None
    add_transactions(log, 3, 1)
    assert (await log.anchor_due(sender)).count == 3
    add_transactions(log, 4, 1)
    assert not log.is_due() and log.is_due(now=log.entry(3).appended_at + 3600)
    log.anchor_interval_s = 0
    assert (await log.anchor_due(sender)).first_index == 3


async def test_anchor_due_postpones_while_the_chain_is_unreachable(tmp_path: Path, clean_chain: Net) -> None:
    net = clean_chain
    log = log_for(net, tmp_path / "cc.sqlite", anchor_every=1)
    add_transactions(log, 1, 2)
    unreachable = TxSender(http_web3(f"http://127.0.0.1:{free_port()}", timeout=1, retries=False), net.operator)
    assert await log.anchor_due(unreachable) is None  # logged, nothing lost
    assert log.anchored_until() == 0 and log.anchors.next_index(net.operator.address) == 0
    assert (await log.anchor_due(net.sender(net.operator))).count == 2


def test_bad_values_get_one_line_errors_and_lose_nothing(tmp_path: Path, net: Net) -> None:
    log = log_for(net, tmp_path / "cc.sqlite")
    with pytest.raises(RecordError, match="transaction 5: not a valid record: connector"):
        log.record_start("CP-REC-1", -1, 5, "tag", 0, T0)
    with pytest.raises(RecordError, match="is not ISO 8601"):
        log.record_start("CP-REC-1", 1, 5, "tag", 0, "yesterday")
    log.record_start("CP-REC-1", 1, 5, "tag", 100, "2025-12-01T00:00:00Z")
    with pytest.raises(RecordError, match="meter_stop"):
        log.record_stop(5, -7, "Local", "2025-12-01T01:00:00.250Z")
    assert len(log) == 0
    entry = log.record_stop(5, 900, None, "2025-12-01T01:00:00.250Z")  # the start was kept
    assert (entry.record.start_time, entry.record.stop_time, entry.record.stop_reason) == (T0, T0 + 3600, "")


def test_a_transaction_id_started_again_replaces_the_start_that_never_stopped(tmp_path: Path, net: Net) -> None:
    log = log_for(net, tmp_path / "cc.sqlite")
    log.record_start("CP-REC-1", 1, 9, "tag-a", 100, T0)
    salt = log._open(9).id_tag_salt
    log.record_start("CP-REC-1", 1, 9, "tag-a", 100, T0)  # the same start again: kept as it was
    assert log._open(9).id_tag_salt == salt
    log.record_start("CP-REC-1", 2, 9, "tag-b", 5000, T0 + 600)  # a new transaction under the same id
    record = log.record_stop(9, 6000, "Local", T0 + 900).record
    assert (record.connector, record.meter_start, record.matches_id_tag("tag-b")) == (2, 5000, True)
    log.record_start("CP-REC-2", 1, 9, "tag-c", 0, T0 + 1000)
    log.record_stop(9, 10, "Local", T0 + 1100)
    with pytest.raises(RecordError, match=r"several charge points \(CP-REC-1, CP-REC-2\)"):
        log.find(9)
    assert log.find(9, "CP-REC-2").index == 1


def test_a_charge_point_of_another_operator_fails(tmp_path: Path, clean_chain: Net) -> None:
    net = clean_chain
    ours = net.add_station("CP-REC-OURS")
    net.add_station("CP-REC-THEIRS", operator=net.operator2)
    log = log_for(net, tmp_path / "cc.sqlite")
    add_transactions(log, 1, 1, cp="CP-REC-OURS")
    add_transactions(log, 2, 1, cp="CP-REC-THEIRS")
    log.anchor(net.sender(net.operator))
    assert verify(net, log, 0).station_id == ours
    with pytest.raises(VerificationFailed, match=f"CP-REC-THEIRS is station .* of operator {net.operator2.address}"):
        verify(net, log, 1)
    assert (
        verify(net, log, 0).describe(log.entry(0).record).startswith(f"transaction 1 at CP-REC-OURS/2, station {ours}:")
    )


async def test_anchor_due_logs_a_refused_anchor_and_keeps_going(
    tmp_path: Path, clean_chain: Net, caplog: pytest.LogCaptureFixture
) -> None:
    net = clean_chain
    log = log_for(net, tmp_path / "cc.sqlite", anchor_every=1)
    add_transactions(log, 1, 1)
    assert await log.anchor_due(net.sender(net.drivers[0])) is None  # not a registered operator
    assert "anchoring records from 0 failed: NotRegisteredOperator" in caplog.text
    assert (await log.anchor_due(net.sender(net.operator))).count == 1


def test_a_charge_point_cannot_close_the_record_of_another(tmp_path: Path, net: Net) -> None:
    log = log_for(net, tmp_path / "cc.sqlite")
    log.record_start("CP-A", 1, 7, "rfid-a", 1000, T0)
    assert log.record_stop(7, 999_999, "Other", T0 + 10, charge_point_id="CP-B") is None
    assert len(log) == 0
    entry = log.record_stop(7, 2000, "Local", T0 + 20, charge_point_id="CP-A")
    assert (entry.index, entry.record.charge_point_id, entry.record.meter_stop) == (0, "CP-A", 2000)
