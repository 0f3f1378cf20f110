"""The Core Client's error base: every error it raises for its operator derives from
:class:`CoreClientError` and says what is wrong in one line; the ``core-client`` CLI catches only
this base (and ``ev_network``'s :class:`~ev_network.errors.EVNetworkError`) and prints that line."""


class CoreClientError(Exception):
    """Base of the errors the Core Client raises for its operator: each message is one clear line."""
