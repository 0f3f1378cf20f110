"""The transaction record: the hash-linked log of every OCPP transaction and its anchoring on chain."""
