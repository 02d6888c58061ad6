"""The Bastion gateway: FastAPI on uvicorn in front of guarded models.

``create_app(load_gateway_config("gateway.yaml"))`` builds the application;
``bastion serve --config gateway.yaml`` runs it. See docs/gateway.md.
"""

from bastion.gateway.config import (
    GatewayConfig,
    ModelConfig,
    load_gateway_config,
    parse_gateway_text,
)

__all__ = [
    "GatewayConfig",
    "ModelConfig",
    "create_app",
    "load_gateway_config",
    "parse_gateway_text",
]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from bastion.gateway.app import create_app

        return create_app
    raise AttributeError(f"module 'bastion.gateway' has no attribute {name!r}")
