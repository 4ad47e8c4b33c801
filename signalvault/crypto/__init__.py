"""Key material: envelope encryption (AES-256-GCM data keys wrapped by the master key), where the
master key comes from, and the gateway-key format with its peppered hash.

Imports only config and errors.
"""
