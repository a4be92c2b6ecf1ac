"""SERECA: Secure Enclaves for REactive Cloud Applications.

The public API is re-exported here; subsystems live in their own packages
(``sereca.tee``, ``sereca.cas``, ``sereca.bus``, ``sereca.service``, ...).
"""

from sereca.errors import AttestationError, ConfigError, IntegrityError, SerecaError
from sereca.service.app import Service

__version__ = "0.1.0"

__all__ = ["AttestationError", "ConfigError", "IntegrityError", "SerecaError", "Service", "__version__"]
