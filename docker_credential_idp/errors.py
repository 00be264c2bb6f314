"""One error hierarchy. Every failure the user can see is an IdpError with a one-line, secret-free message.

Only the CLI catches these; it prints `message` (stdout for protocol verbs, stderr otherwise) and exits 1.
"""

# The program's name, as every message, usage line and hint names it (and as docker finds it on PATH:
# docker-credential-NAME for "credHelpers": {HOST: "NAME"}).
PROG = "docker-credential-idp"
# Docker compares the helper's trimmed stdout with this exact text (docker-credential-helpers, credentials/error.go).
NOT_FOUND_MESSAGE = "credentials not found in native keychain"


class IdpError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, always


class CredentialsNotFound(IdpError):
    def __init__(self, message: str = NOT_FOUND_MESSAGE) -> None:
        super().__init__(message)


class InvalidInput(IdpError):
    """The request, its stdin or the command line is malformed."""


class NotRegistered(IdpError):
    """An admin command named a registration id that does not exist."""


class AmbiguousRegistry(IdpError):
    """A host-only request matches several path-scoped registrations."""


class ConfigError(IdpError):
    """A file we read or write (docker config, key file) is unusable."""


class UnsafePath(IdpError):
    """A file or directory another user could have planted or can change, or one that is not what we wrote (a link,
    a FIFO): refused, as OpenSSH's StrictModes refuses a group-writable ~/.ssh."""


class NotRegularFile(UnsafePath):
    """Where a file of ours should be there is a directory, a FIFO, a socket or a device."""


class VaultError(IdpError):
    """The vault cannot be opened: wrong key, tampered or truncated file, unknown version."""


class VaultRolledBack(VaultError):
    """The vault is older than one this home has seen (restored from a backup?), or vault.serial records another
    vault. `get` refuses it until `vault accept`; `registry list` and `vault status` show it with `what` as a warning,
    so that a person can decide. `what` says what happened; the message adds how to go on."""

    def __init__(self, what: str, then: str) -> None:
        super().__init__(f"{what}; {then}")
        self.what = " ".join(what.split())


class ProviderError(IdpError):
    """A provider could not produce a credential (a still-valid cached token is served instead, whatever the cause).

    `transient`: the source did not answer (a timeout, a refused or unreachable connection, HTTP 5xx or 429, a
    script that ran out of time), so asking again at once would most likely cost the same wait; `get` holds the
    registration back for a short while instead (cache_policy.retry_after_failure). A refusal (401, 403, a wrong
    password), a malformed answer or a bad configuration is not transient: it comes back quickly, so asking
    again costs no wait."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ProviderUnavailable(ProviderError):
    """The provider's SDK cannot be imported (a broken or partial install: the default install has every SDK)."""

    def __init__(self, provider: str, package: str, reason: str) -> None:
        import sys

        super().__init__(
            f"the {provider} type needs the Python package {package!r}, which cannot be imported here ({reason}); "
            f"install it into the helper's environment: {sys.executable} -m pip install '{package}'"
        )
