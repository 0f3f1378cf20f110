"""Transactions for the transaction-record tests: whole OCPP transactions written into a TransactionLog."""

from __future__ import annotations

from core_client.records.log import TransactionLog

T0 = 1_764_547_200  # 2025-12-01T00:00:00Z


def add_transactions(log: TransactionLog, first_id: int, n: int, cp: str = "CP-REC-1") -> None:
    for tx in range(first_id, first_id + n):
        log.record_start(cp, 1 + tx % 2, tx, f"rfid-{tx:04d}", 1000 * tx, T0 + 60 * tx)
        log.record_stop(tx, 1000 * tx + 777, "EVDisconnected", T0 + 60 * tx + 30, signed_meter_data=f"OCMF|{tx}")
