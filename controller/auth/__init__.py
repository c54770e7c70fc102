"""Who may use the API: users, API keys, tokens, the login lockout and the audit log's storage."""

from controller.auth.credentials import ROLES, Role
from controller.auth.lockout import LockoutPolicy, LoginLockout
from controller.auth.store import AuthStore

__all__ = ["ROLES", "AuthStore", "LockoutPolicy", "LoginLockout", "Role"]
