"""docker-credential-idp: a Docker credential helper for an internal developer platform."""

__version__ = "0.1.0"
