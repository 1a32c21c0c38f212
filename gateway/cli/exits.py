"""The exit status of every `gateway` command, one scheme for all of them (README, "Exit
codes"). The admin HTTP client classifies what went wrong talking to the gateway;
main() and each command group turn the error into its status."""

from __future__ import annotations

OK = 0
FAILED = 1  # a check or a verdict failed: a replay regression, a test run, a rollout, a config
USAGE = 2  # bad usage or input: arguments (argparse's own 2), a file, a missing token
UNREACHABLE = 3  # no answer from the gateway: connection refused, DNS, timeout, cut off
REFUSED = 4  # the gateway answered 4xx: authentication, role, not found, conflict, bad body
GATEWAY_ERROR = 5  # the gateway answered 5xx, or something that is not its JSON

MEANINGS = {
    OK: "ok",
    FAILED: "a check or verdict failed (a replay regression, a failed test run, a rollout "
    "that did not complete, an invalid config)",
    USAGE: "usage or input error (arguments, an unreadable or malformed file, no token)",
    UNREACHABLE: "the gateway could not be reached (connection refused, DNS, timeout)",
    REFUSED: "refused by the gateway (4xx: authentication, role, not found, conflict, invalid)",
    GATEWAY_ERROR: "the gateway failed (5xx) or did not answer with its JSON",
}


def for_status(status: int) -> int:
    """An HTTP error status of the admin API as an exit status."""
    return REFUSED if status < 500 else GATEWAY_ERROR


def exit_code(exc: BaseException) -> int:
    """Errors that know their status carry `exit_code`; any other a command reports
    (a bad file, a missing option) is the user's input."""
    code = getattr(exc, "exit_code", None)
    return code if isinstance(code, int) else USAGE


def exit_codes_help() -> str:
    return "exit codes:\n" + "\n".join(f"  {code}  {what}" for code, what in MEANINGS.items())
