"""The Core Client's error base: every error it raises for its operator derives from
:class:`CoreClientError` and says what is wrong in one line; the ``core-client`` CLI catches only
this base (and ``ev_network``'s :class:`~ev_network.errors.EVNetworkError`) and prints that line."""

from ev_network.cli_errors import clean_errors as _clean_errors
from ev_network.errors import EVNetworkError


class CoreClientError(Exception):
    """Base of the errors the Core Client raises for its operator: each message is one clear line."""


#: The ``core-client`` commands' decorator: these two bases print one line and exit 1, anything else
#: keeps its traceback (a bug to report).
clean_errors = _clean_errors((CoreClientError, EVNetworkError))
